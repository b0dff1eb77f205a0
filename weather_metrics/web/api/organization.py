"""/api/organization: the caller's organization (name, time zone of its reports)."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue

from weather_metrics.core.times import iso
from weather_metrics.store.models import Organization
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.api.schemas import OrganizationUpdateSchema
from weather_metrics.web.auth import authenticated, current_user
from weather_metrics.web.bodies import json_body
from weather_metrics.web.openapi import RATE_LIMITED, TOO_LARGE, UNAUTHORIZED, operation


def organization_view(org: Organization) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "time_zone": org.time_zone, "created_at": iso(org.created_at)}


@bp.get("/organization")
@authenticated()
def get_organization() -> ResponseReturnValue:
    """The caller's organization."""
    return jsonify(organization_view(Organization.get_by_id(current_user().organization_id)))


@bp.put("/organization")
@authenticated("admin")
def update_organization() -> ResponseReturnValue:
    """Rename the organization or set the time zone its days, weeks and months follow (admin)."""
    changes = json_body(OrganizationUpdateSchema())
    org_id = current_user().organization_id
    if changes:
        Organization.update(**changes).where(Organization.id == org_id).execute()
    return jsonify(organization_view(Organization.get_by_id(org_id)))


# OpenAPI, merged into /openapi.json by web/docs.py.
TAG = "Organization"
PATHS: dict[str, dict[str, Any]] = {
    "/api/organization": {
        "get": operation(
            "Your organization, with the time zone its days, weeks and months follow",
            TAG,
            "200 The organization",
            "Organization",
            {**UNAUTHORIZED, **RATE_LIMITED},
        ),
        "put": operation(
            "Rename the organization or set its IANA time zone (admin)",
            TAG,
            "200 The changed organization",
            "Organization",
            {
                "400": "Validation failed, or an unknown time zone",
                "403": "Admins only",
                **TOO_LARGE,
                **UNAUTHORIZED,
                **RATE_LIMITED,
            },
            body="OrganizationUpdate",
        ),
    },
}
