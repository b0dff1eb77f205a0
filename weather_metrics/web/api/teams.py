"""/api/teams: list and create teams, add and remove members, delete a team."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from weather_metrics.accounts import organizations as accounts
from weather_metrics.core.errors import NotFound
from weather_metrics.query.org_metrics import pagination
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.api.schemas import MemberSchema, TeamCreateSchema, TeamQuerySchema
from weather_metrics.web.auth import authenticated, current_user
from weather_metrics.web.bodies import json_body, load
from weather_metrics.web.openapi import RATE_LIMITED, TOO_LARGE, UNAUTHORIZED, operation, path_id

MANAGERS = ("admin", "manager")


@bp.get("/teams")
@authenticated()
def list_teams() -> ResponseReturnValue:
    """Teams of the organization, with their members when include_members=true."""
    query = load(TeamQuerySchema(), request.args.to_dict())
    me = current_user()
    teams, total = accounts.list_teams(me.organization_id, query["page"], query["limit"])
    show_emails = me.role != "developer"
    return jsonify(
        {
            "teams": [accounts.team_view(t, query["include_members"], show_emails) for t in teams],
            "pagination": pagination(query["page"], query["limit"], total),
        }
    )


@bp.post("/teams")
@authenticated(*MANAGERS)
def create_team() -> ResponseReturnValue:
    """Create a team (names are unique in an organization)."""
    data = json_body(TeamCreateSchema())
    me = current_user()
    lead = me if me.role == "manager" else None  # a manager leads the teams they create
    team = accounts.create_team(me.organization_id, data["name"], data["description"], lead)
    return jsonify(accounts.team_view(team, include_members=True)), 201


@bp.delete("/teams/<team_id>")
@authenticated(*MANAGERS)
def delete_team(team_id: str) -> ResponseReturnValue:
    """Delete a team and its memberships (the users stay); managers only teams they lead."""
    me = current_user()
    team = accounts.find_team(me.organization_id, team_id)
    accounts.check_team_change(me, team)
    accounts.delete_team(team)
    return "", 204


@bp.post("/teams/<team_id>/members")
@authenticated(*MANAGERS)
def add_member(team_id: str) -> ResponseReturnValue:
    """Add a user of the organization to a team, as lead or member; managers add developers to teams they lead."""
    me = current_user()
    team = accounts.find_team(me.organization_id, team_id)
    data = json_body(MemberSchema())
    user = accounts.find_user(me.organization_id, data["user_id"])
    accounts.check_team_change(me, team, user)
    member = accounts.add_member(team, user, data["role"])
    return jsonify(accounts.membership_view(member)), 201


@bp.delete("/teams/<team_id>/members/<user_id>")
@authenticated(*MANAGERS)
def remove_member(team_id: str, user_id: str) -> ResponseReturnValue:
    """Take a user out of a team; managers only developers of teams they lead."""
    me = current_user()
    team = accounts.find_team(me.organization_id, team_id)
    try:
        user = accounts.find_user(me.organization_id, user_id)
    except NotFound:
        user = None  # not a member either: remove_member answers 404 once the caller may change the team
    accounts.check_team_change(me, team, user)
    accounts.remove_member(team, user_id)
    return "", 204


# OpenAPI, merged into /openapi.json by web/docs.py.
TAG = "Teams"
COMMON = {**UNAUTHORIZED, **RATE_LIMITED}
CHANGE_REFUSED = "Admins and managers only; managers change only teams they lead, and only their developers"
TEAM_ID = path_id("team_id", "team")
PATHS: dict[str, dict[str, Any]] = {
    "/api/teams": {
        "get": operation(
            "Teams of your organization, with their members when include_members=true",
            TAG,
            "200 A page of teams",
            "Teams",
            {"400": "Bad query parameter", **COMMON},
            parameters=[{"in": "query", "schema": TeamQuerySchema}],
        ),
        "post": operation(
            "Create a team (admin, manager: who then leads it)",
            TAG,
            "201 The new team, with its members",
            "Team",
            {
                "400": "Validation failed",
                "403": "Admins and managers only",
                "409": "A team of this name exists",
                **TOO_LARGE,
                **COMMON,
            },
            body="TeamCreate",
        ),
    },
    "/api/teams/{team_id}": {
        "delete": operation(
            "Delete a team and its memberships; the users stay",
            TAG,
            "204 Deleted",
            None,
            {"403": CHANGE_REFUSED, "404": "No such team in your organization", **COMMON},
        ),
        "parameters": [TEAM_ID],
    },
    "/api/teams/{team_id}/members": {
        "post": operation(
            "Add a user of your organization to a team, as lead or member",
            TAG,
            "201 The membership",
            "Membership",
            {
                "400": "Validation failed",
                "403": CHANGE_REFUSED,
                "404": "No such team or user in your organization",
                "409": "Already a member",
                **TOO_LARGE,
                **COMMON,
            },
            body="Member",
        ),
        "parameters": [TEAM_ID],
    },
    "/api/teams/{team_id}/members/{user_id}": {
        "delete": operation(
            "Take a user out of a team",
            TAG,
            "204 Removed",
            None,
            {"403": CHANGE_REFUSED, "404": "No such team, or the user is not a member", **COMMON},
        ),
        "parameters": [TEAM_ID, path_id("user_id", "user")],
    },
}
