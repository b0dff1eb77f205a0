"""/admin/keys: the organization's API keys as GET /api/keys lists them (admins only).

A new key's secret is on the answer to the form that made it, never cached, and nowhere after:
only its hash is stored, as for POST /api/keys.
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue

from weather_metrics.accounts import organizations as accounts
from weather_metrics.accounts.organizations import INGEST, KEY_SCOPES
from weather_metrics.store.models import ApiKey, User
from weather_metrics.web.api.schemas import ApiKeyCreateSchema
from weather_metrics.web.pages.admin import (
    back_to,
    checked,
    form_fields,
    form_post,
    page_errors,
    path_ids,
    read_page,
    secret_page,
)
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.dashboards import per_person
from weather_metrics.web.pages.sessions import current_viewer, signed_in

SCOPE_NAMES = {"ingest": "Ingest (/mcp)", "read": "Read (metrics and analytics)"}


def _key_entry(key: ApiKey, names: dict[str, str]) -> dict[str, Any]:
    """A key as the API shows it, with its times as numbers for the page's time format and its maker's name."""
    return {
        **accounts.api_key_view(key),
        "created": key.created_at,
        "last_used": key.last_used_at,
        "creator": names.get(key.created_by_id or "", "–"),
    }


def _keys_page(status: int = 200, **context: Any) -> ResponseReturnValue:
    org_id = current_viewer().organization.id
    names = {u.id: u.name for u in User.select(User.id, User.name).where(User.organization == org_id)}
    keys = [_key_entry(key, names) for key in accounts.list_api_keys(org_id)]
    values = {"new": {"scope": INGEST}, "problems": {}, **context}
    return render_template(
        "pages/admin_keys.html", keys=keys, scopes=KEY_SCOPES, scope_names=SCOPE_NAMES, **values
    ), status


@bp.get("/admin/keys")
@signed_in("admin")
@per_person
def admin_keys() -> ResponseReturnValue:
    """Every key of the organization, revoked ones too: its prefix, never its secret."""
    return _keys_page()


@bp.post("/admin/keys")
@signed_in("admin")
@per_person
def create_key() -> ResponseReturnValue:
    """Make a key as POST /api/keys does; its secret is on this answer only."""
    login = current_viewer()
    posted = form_fields("name", "scope")
    data, problems = checked(ApiKeyCreateSchema(), posted)
    if problems:
        return _keys_page(400, new=posted, problems=problems)
    key, secret = accounts.create_api_key(login.organization.id, data["name"], login.user.id, data["scope"])
    return secret_page(
        "pages/admin_key_created.html", key=accounts.api_key_view(key), secret=secret, scope_names=SCOPE_NAMES
    )


@bp.post("/admin/keys/<key_id>/revoke")
@signed_in("admin")
@per_person
def revoke_key(key_id: str) -> ResponseReturnValue:
    """Revoke a key: requests with it are refused from now on."""
    with page_errors():
        accounts.revoke_api_key(current_viewer().organization.id, key_id)
    return back_to("pages.admin_keys")


# OpenAPI, merged into /openapi.json by web/docs.py.
PATHS: dict[str, dict[str, Any]] = {
    "/admin/keys": {
        "get": read_page("API keys of your organization: prefix only, never the secret (admin)"),
        "post": form_post(
            "Create an API key as POST /api/keys does; its secret is on this answer only (admin)",
            {"name": {"type": "string", "maxLength": 200}, "scope": {"type": "string", "enum": list(KEY_SCOPES)}},
            {
                "201": "The key with its secret, shown once and never cached",
                "400": "A field the API refuses (the form again, beside the field)",
            },
        ),
    },
    "/admin/keys/{key_id}/revoke": {
        "post": form_post(
            "Revoke an API key: requests with it are refused from now on (admin)",
            {},
            {"303": "Revoked: back to the list", "404": "No such live key in your organization (a page)"},
        ),
        "parameters": path_ids("key_id"),
    },
}
