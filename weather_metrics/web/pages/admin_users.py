"""/admin/users: the organization's users as GET /api/users lists them; admins add users and change role and access."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import ServiceUnavailable

from weather_metrics.accounts import organizations as accounts
from weather_metrics.accounts.organizations import ROLES
from weather_metrics.accounts.passwords import MAX_LENGTH, MIN_LENGTH, PasswordsBusy
from weather_metrics.core import errors
from weather_metrics.web.api.schemas import UserCreateSchema, UserUpdateSchema
from weather_metrics.web.pages.admin import (
    ADMINISTRATORS,
    PAGE_QUERY,
    PAGE_SIZE,
    back_to,
    checked,
    form_fields,
    form_post,
    page_errors,
    page_number,
    path_ids,
    read_page,
    secret_page,
)
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.dashboards import per_person
from weather_metrics.web.pages.sessions import current_viewer, signed_in
from weather_metrics.web.services import services

NEW_USER_FIELDS = ("email", "name", "role", "password")


def _users_page(status: int = 200, **context: Any) -> ResponseReturnValue:
    """The listing, with the add form's values and problems, or a refusal to show above it."""
    login = current_viewer()
    page = page_number()
    users, total = accounts.list_users(login.organization.id, None, None, page, PAGE_SIZE)
    values = {"new": {"role": "developer"}, "problems": {}, "refused": None, **context}
    return render_template(
        "pages/admin_users.html",
        login=login,
        users=[accounts.user_view(user) for user in users],
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        total=total,
        roles=ROLES,
        role_options=[(role, role.capitalize()) for role in ROLES],
        password_lengths=(MIN_LENGTH, MAX_LENGTH),
        **values,
    ), status


@bp.get("/admin/users")
@signed_in(*ADMINISTRATORS)
@per_person
def admin_users() -> ResponseReturnValue:
    """Every user of the organization: name, email, role, teams, whether they may sign in."""
    return _users_page()


@bp.post("/admin/users")
@signed_in("admin")
@per_person
def create_user() -> ResponseReturnValue:
    """Add a user as POST /api/users does; without a password, a one-time password shown on this answer only."""
    posted = form_fields(*NEW_USER_FIELDS)
    data, problems = checked(UserCreateSchema(), posted)
    if problems:
        return _users_page(400, new={**posted, "password": ""}, problems=problems)
    try:
        user, one_time = accounts.create_user(
            current_viewer().organization.id,
            data["email"],
            data["name"],
            data["role"],
            services().passwords,
            data.get("password"),
        )
    except errors.Conflict as exc:
        return _users_page(409, new={**posted, "password": ""}, problems={"email": f"{exc}."})
    except PasswordsBusy as exc:
        raise ServiceUnavailable(f"{exc}.", retry_after=services().settings["retry_after_seconds"]) from None
    return secret_page("pages/admin_user_created.html", user=accounts.user_view(user), one_time=one_time)


def _change(user_id: str, field: str) -> ResponseReturnValue:
    """Change one field of a user as PUT /api/users/<id> does: the same checks, the same session ends."""
    login = current_viewer()
    with page_errors():
        accounts.find_user(login.organization.id, user_id)  # another organization's user: 404 before anything
    data, problems = checked(UserUpdateSchema(only=(field,)), {field: request.form.get(field, "")})
    if problems:
        return _users_page(400, problems={f"{field}-{user_id}": problems[field]})
    try:
        with page_errors():
            user = accounts.change_user(login.user, user_id, data)
    except errors.Rejected as exc:  # the last active admin
        return _users_page(exc.status, refused=f"{exc}.")
    if data.get("active") is False:
        services().tokens.revoke_user_sessions(user.id)  # so reactivation brings back no old session
    return back_to("pages.admin_users")


@bp.post("/admin/users/<user_id>/role")
@signed_in("admin")
@per_person
def change_role(user_id: str) -> ResponseReturnValue:
    """Give a user another role (admin)."""
    return _change(user_id, "role")


@bp.post("/admin/users/<user_id>/active")
@signed_in("admin")
@per_person
def change_access(user_id: str) -> ResponseReturnValue:
    """Deactivate a user (their sessions end at once) or let them sign in again (admin)."""
    return _change(user_id, "active")


# OpenAPI, merged into /openapi.json by web/docs.py.
CHANGED = {
    "303": "Changed: back to the list",
    "400": "A value the API refuses (the list again, saying so)",
    "404": "No such user in your organization (a page)",
    "409": "It would leave the organization without an active admin (the list again, saying so)",
}
PATHS: dict[str, dict[str, Any]] = {
    "/admin/users": {
        "get": {
            **read_page("Users of your organization (admin, manager)", {"400": "A bad page number"}),
            "parameters": PAGE_QUERY,
        },
        "post": form_post(
            "Add a user as POST /api/users does (admin); without a password, a one-time password shown once",
            {
                "email": {"type": "string", "maxLength": 254},
                "name": {"type": "string", "maxLength": 200},
                "role": {"type": "string", "enum": list(ROLES)},
                "password": {"type": "string", "maxLength": MAX_LENGTH},
            },
            {
                "201": "The new user, and their one-time password when none was chosen (never cached)",
                "400": "A field the API refuses (the form again, beside the field)",
                "409": "A user with this email exists (the form again)",
                "503": "Too many password hashes at once (a page)",
            },
        ),
    },
    "/admin/users/{user_id}/role": {
        "post": form_post("Change a user's role (admin)", {"role": {"type": "string", "enum": list(ROLES)}}, CHANGED),
        "parameters": path_ids("user_id"),
    },
    "/admin/users/{user_id}/active": {
        "post": form_post(
            "Deactivate a user (their sessions end) or reactivate them (admin)",
            {"active": {"type": "string", "enum": ["true", "false"]}},
            CHANGED,
        ),
        "parameters": path_ids("user_id"),
    },
}
