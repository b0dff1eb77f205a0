"""/api/teams: list and create teams, add and remove members, delete a team."""

from __future__ import annotations

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from weather_metrics.accounts import organizations as accounts
from weather_metrics.query.org_metrics import pagination
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.api.schemas import MemberSchema, TeamCreateSchema, TeamQuerySchema
from weather_metrics.web.auth import authenticated, current_user
from weather_metrics.web.bodies import json_body, load

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
    team = accounts.create_team(current_user().organization_id, data["name"], data["description"])
    return jsonify(accounts.team_view(team, include_members=True)), 201


@bp.delete("/teams/<team_id>")
@authenticated(*MANAGERS)
def delete_team(team_id: str) -> ResponseReturnValue:
    """Delete a team and its memberships (the users stay)."""
    accounts.delete_team(accounts.find_team(current_user().organization_id, team_id))
    return "", 204


@bp.post("/teams/<team_id>/members")
@authenticated(*MANAGERS)
def add_member(team_id: str) -> ResponseReturnValue:
    """Add a user of the organization to a team, as lead or member."""
    org_id = current_user().organization_id
    team = accounts.find_team(org_id, team_id)
    data = json_body(MemberSchema())
    member = accounts.add_member(team, accounts.find_user(org_id, data["user_id"]), data["role"])
    return jsonify(accounts.membership_view(member)), 201


@bp.delete("/teams/<team_id>/members/<user_id>")
@authenticated(*MANAGERS)
def remove_member(team_id: str, user_id: str) -> ResponseReturnValue:
    """Take a user out of a team."""
    accounts.remove_member(accounts.find_team(current_user().organization_id, team_id), user_id)
    return "", 204
