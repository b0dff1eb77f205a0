"""The administration pages' common parts, and /admin/organization: its name and time zone.

Each page calls the functions its /api route calls, for the person signed in, and checks the
posted fields with the API's own schemas, so a page allows exactly what the API allows that
person. Admins and managers use them (a manager reads users and the organization, and changes
the teams they lead); developers get 403, and an id of another organization is 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Response, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import BadRequest, Forbidden, NotFound

from weather_metrics.accounts.logins import BrowserLogin
from weather_metrics.core import errors
from weather_metrics.store.models import Organization
from weather_metrics.web import nul
from weather_metrics.web.api.schemas import MAX_PAGE, OrganizationUpdateSchema
from weather_metrics.web.pages.account import _html_page
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.dashboards import per_person
from weather_metrics.web.pages.sessions import current_viewer, signed_in

ADMINISTRATORS = ("admin", "manager")
PAGE_SIZE = 100  # the API's largest page


@bp.app_template_global()
def administers(login: BrowserLogin | None) -> bool:
    """Whether the header links to Administration: for roles that may use at least one of its pages."""
    return login is not None and login.role in ADMINISTRATORS


def form_fields(*names: str) -> dict[str, str]:
    """The named fields of the posted form; an empty one is left out, as the API treats a field not sent."""
    found = {name: request.form.get(name, "").strip() for name in names}
    return {name: value for name, value in found.items() if value}


def checked(schema: Schema, data: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The fields loaded by the API's schema, and what is wrong with each field it refuses.

    A NUL character is refused first, as the API refuses it in a JSON body (web/nul.py): PostgreSQL
    cannot store one.
    """
    with_nul = {name: nul.MESSAGE for name, value in data.items() if nul.NUL in value}
    if with_nul:
        return {}, with_nul
    try:
        return schema.load(data), {}
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_form": exc.messages}
        return {}, {name: _sentence(problem) for name, problem in messages.items()}


def _sentence(problem: Any) -> str:
    text = str(problem[0] if isinstance(problem, list) else problem)
    return text if text.endswith(".") else text + "."


def page_number() -> int:
    """?page=N of a listing (1 when absent); 400 for anything the API's page parameter refuses."""
    raw = request.args.get("page", "1")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(f"The page number must be a whole number from 1 to {MAX_PAGE:,}.")
    return int(raw)


@contextmanager
def page_errors() -> Iterator[None]:
    """The domain's refusals as the API answers them: another organization's id 404, out of the role's scope 403."""
    try:
        yield
    except errors.NotFound as exc:
        raise NotFound(f"{exc}: nothing of that id is in your organization.") from None
    except errors.OutOfScope as exc:
        raise Forbidden(f"{exc}.") from None
    except errors.Rejected as exc:
        if exc.status == 404:
            raise NotFound(f"{exc}.") from None
        if exc.status == 403:
            raise Forbidden(f"{exc}.") from None
        raise


def back_to(endpoint: str) -> ResponseReturnValue:
    """After a change: to the listing again (303), so a reload sends nothing twice."""
    return redirect(url_for(endpoint), 303)


def secret_page(template: str, **context: Any) -> Response:
    """A page showing a secret once (a key, a one-time password): 201, and never stored by any cache."""
    response = make_response(render_template(template, **context), 201)
    response.headers["Cache-Control"] = "no-store"
    return response


def _organization_page(status: int = 200, **context: Any) -> ResponseReturnValue:
    login = current_viewer()
    org = Organization.get_by_id(login.organization.id)
    values = {"time_zone": org.time_zone, "problems": {}, "saved": "saved" in request.args, **context}
    return render_template("pages/admin_organization.html", org=org, login=login, **values), status


@bp.get("/admin/organization")
@signed_in(*ADMINISTRATORS)
@per_person
def admin_organization() -> ResponseReturnValue:
    """The organization as GET /api/organization shows it; admins change its time zone."""
    return _organization_page()


@bp.post("/admin/organization")
@signed_in("admin")
@per_person
def change_organization() -> ResponseReturnValue:
    """Set the organization's time zone, checked as PUT /api/organization checks it (admin)."""
    data, problems = checked(OrganizationUpdateSchema(), {"time_zone": request.form.get("time_zone", "").strip()})
    if problems:
        return _organization_page(400, time_zone=request.form.get("time_zone", ""), problems=problems)
    Organization.update(**data).where(Organization.id == current_viewer().organization.id).execute()
    return redirect(url_for("pages.admin_organization", saved=1), 303)


# OpenAPI, merged into /openapi.json by web/docs.py: pages answer HTML, their errors too.
BROWSER_SESSION: list[dict[str, list[str]]] = [{"browserSession": []}]
SIGN_IN_FIRST = {"303": "Nobody signed in: to the sign-in page, then back", "429": "Too many requests (a page)"}
NOT_YOURS = {"403": "Not for your role (a page)"}
FORM_ANSWERS = {
    "403": "Not for your role, or a form without this browser's token (a page)",
    "413": "Form too large (a page)",
    "429": "Too many requests (a page)",
}


def read_page(summary: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The OpenAPI operation of an administration page one reads."""
    return _html_page(summary, BROWSER_SESSION, {"200": "The page", **(extra or {}), **NOT_YOURS, **SIGN_IN_FIRST})


def form_post(summary: str, fields: dict[str, Any], answers: dict[str, str]) -> dict[str, Any]:
    """The OpenAPI operation of an administration form: its fields and the pages it answers."""
    properties = {"csrf_token": {"type": "string", "description": "The token of the page's form"}, **fields}
    body = {"type": "object", "required": ["csrf_token"], "properties": properties}
    return {
        **_html_page(summary, BROWSER_SESSION, {**answers, **FORM_ANSWERS}),
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": body}}},
    }


def path_ids(*names: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names]


PAGE_QUERY = [
    {
        "name": "page",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
        "description": f"Which page of {PAGE_SIZE} to show",
    }
]
PATHS: dict[str, dict[str, Any]] = {
    "/admin/organization": {
        "get": read_page("Your organization: its name and the time zone its days, weeks and months follow"),
        "post": form_post(
            "Set the organization's time zone (admin)",
            {"time_zone": {"type": "string", "maxLength": 64}},
            {"303": "Saved: back to the page", "400": "An unknown time zone (the form again, saying so)"},
        ),
    },
}
