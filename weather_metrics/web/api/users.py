"""GET/POST /api/users, GET/PUT /api/users/<id>."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request
from flask.typing import ResponseReturnValue

from weather_metrics.accounts import organizations as accounts
from weather_metrics.accounts.passwords import PasswordPolicyError
from weather_metrics.query.org_metrics import pagination
from weather_metrics.store.models import User
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.api.schemas import UserCreateSchema, UserQuerySchema, UserUpdateSchema
from weather_metrics.web.auth import authenticated, caller_key, current_user
from weather_metrics.web.bodies import json_body, load, peek_body
from weather_metrics.web.errors import ApiProblem
from weather_metrics.web.limits import account_key, account_limit
from weather_metrics.web.openapi import RATE_LIMITED, TOO_LARGE, UNAUTHORIZED, operation, path_id
from weather_metrics.web.services import services


@bp.get("/users")
@authenticated()
def list_users() -> ResponseReturnValue:
    """Users of the organization, filtered by role or team; developers see only themselves."""
    query = load(UserQuerySchema(), request.args.to_dict())
    me = current_user()
    users, total = accounts.list_users(
        me.organization_id,
        query.get("role"),
        query.get("team_id"),
        query["page"],
        query["limit"],
        only_id=me.id if me.role == "developer" else None,
    )
    return jsonify(
        {
            "users": [accounts.user_view(u) for u in users],
            "pagination": pagination(query["page"], query["limit"], total),
        }
    )


@bp.post("/users")
@authenticated("admin")
def create_user() -> ResponseReturnValue:
    """Add a user; without a password, a one-time password is returned once."""
    data = json_body(UserCreateSchema())
    user, one_time = accounts.create_user(
        current_user().organization_id,
        data["email"],
        data["name"],
        data["role"],
        services().passwords,
        data.get("password"),
    )
    body: dict[str, Any] = accounts.user_view(user)
    if one_time:
        body["one_time_password"] = one_time
    return jsonify(body), 201


def _visible_user(user_id: str) -> User:
    """A user of the caller's organization that the caller may see (404 / 403 otherwise)."""
    me = current_user()
    user = accounts.find_user(me.organization_id, user_id)
    if me.role == "developer" and user.id != me.id:
        raise ApiProblem(403, "Developers may only see their own profile")
    return user


@bp.get("/users/<user_id>")
@authenticated()
def get_user(user_id: str) -> ResponseReturnValue:
    """One user's profile."""
    return jsonify(accounts.user_view(_visible_user(user_id)))


def _own_account() -> User | None:
    """The caller's own user when they are changing their own profile."""
    user_id = (request.view_args or {}).get("user_id", "")
    return User.get_or_none(User.id == user_id) if caller_key() == f"user:{user_id}" else None


def _own_account_key() -> str:
    user = _own_account()
    return account_key(user.email) if user else "login:"


def _not_a_password_change() -> bool:
    return "password" not in peek_body() or _own_account() is None


# A refused change of your own password (a wrong current_password) counts as a failed
# login, so a stolen access token cannot guess the password faster than the login form.
@bp.put("/users/<user_id>")
@account_limit(
    _own_account_key,
    exempt_when=_not_a_password_change,
    deduct_when=lambda response: response.status_code == 403,
)
@authenticated()
def update_user(user_id: str) -> ResponseReturnValue:
    """Change a profile: admins any user's, everyone else only their own (name and password)."""
    me = current_user()
    user = accounts.find_user(me.organization_id, user_id)
    changes = json_body(UserUpdateSchema())
    state = services()
    current_password = changes.pop("current_password", None)
    new_password = changes.pop("password", None)
    if new_password is not None:
        if user.id == me.id and not state.passwords.verify(user.password_hash, current_password or ""):
            raise ApiProblem(403, "current_password is wrong", {"current_password": "Does not match"})
        try:
            changes["password_hash"] = state.passwords.hash(new_password)  # before the lock: it is slow
        except PasswordPolicyError as exc:
            raise ApiProblem(400, "Request validation failed", {"password": str(exc)}) from None
    user = accounts.change_user(me, user_id, changes)
    if new_password is not None:
        # Whoever knew the old password is signed out everywhere but here.
        state.tokens.revoke_user_sessions(user.id, keep=g.claims["sid"] if user.id == me.id else None)
    if changes.get("active") is False:
        state.tokens.revoke_user_sessions(user.id)  # so reactivation brings back no old token
    return jsonify(accounts.user_view(user))


# OpenAPI, merged into /openapi.json by web/docs.py.
TAG = "Users"
COMMON = {**UNAUTHORIZED, **RATE_LIMITED}
BUSY = {"503": "Too many password hashes at once; retry after Retry-After"}
PATHS: dict[str, dict[str, Any]] = {
    "/api/users": {
        "get": operation(
            "Users of your organization, filtered by role or team (developers: only themselves)",
            TAG,
            "200 A page of users",
            "Users",
            {"400": "Bad query parameter", "404": "No such team in your organization", **COMMON},
            parameters=[{"in": "query", "schema": UserQuerySchema}],
        ),
        "post": operation(
            "Add a user (admin); without a password the answer holds a one-time password",
            TAG,
            "201 The new user",
            "NewUser",
            {
                "400": "Validation failed",
                "403": "Admins only",
                "409": "A user with this email already exists",
                **TOO_LARGE,
                **COMMON,
                **BUSY,
            },
            body="UserCreate",
        ),
    },
    "/api/users/{user_id}": {
        "get": operation(
            "One user's profile (developers: only their own)",
            TAG,
            "200 The user",
            "User",
            {"403": "Developers see only themselves", "404": "No such user in your organization", **COMMON},
        ),
        "put": operation(
            "Change a profile: admins anyone's; others their own name and password (with current_password)",
            TAG,
            "200 The changed user",
            "User",
            {
                "400": "Validation failed",
                "403": "Not yours to change, a field only admins change, or a wrong current_password",
                "404": "No such user in your organization",
                "409": "Email taken, or the change would leave no active admin",
                **TOO_LARGE,
                **COMMON,
                **BUSY,
            },
            body="UserUpdate",
        ),
        "parameters": [path_id("user_id", "user")],
    },
}
