"""/admin/teams: the organization's teams and members as GET /api/teams lists them, changed as /api/teams changes them.

Admins change any team; a manager creates teams (and leads them), and changes only the teams
they lead, adding and removing developers: accounts.check_team_change decides, here as in the API,
and the page offers only what it would allow.
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue

from weather_metrics.accounts import organizations as accounts
from weather_metrics.accounts.organizations import TEAM_ROLES
from weather_metrics.core import errors
from weather_metrics.store.models import Team, User
from weather_metrics.web.api.schemas import MemberSchema, TeamCreateSchema
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
)
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.dashboards import per_person
from weather_metrics.web.pages.sessions import current_viewer, signed_in


def _allowed(actor: User, team: Team, member: User | None = None) -> bool:
    try:
        accounts.check_team_change(actor, team, member)
    except errors.OutOfScope:
        return False
    return True


def _team_entry(actor: User, team: Team, people: dict[str, User]) -> dict[str, Any]:
    """A team as the API shows it, with what this person may do to it and to each member."""
    view = accounts.team_view(team, include_members=True)
    members = {m["user_id"] for m in view["members"]}
    view["may_change"] = _allowed(actor, team)
    for member in view["members"]:
        member["may_remove"] = view["may_change"] and _allowed(actor, team, people[member["user_id"]])
    view["candidates"] = (
        [u for u in people.values() if u.id not in members and _allowed(actor, team, u)] if view["may_change"] else []
    )
    return view


def _teams_page(status: int = 200, **context: Any) -> ResponseReturnValue:
    login = current_viewer()
    page = page_number()
    teams, total = accounts.list_teams(login.organization.id, page, PAGE_SIZE)
    people = {u.id: u for u in User.select().where(User.organization == login.organization.id).order_by(User.name)}
    values = {"new": {}, "problems": {}, **context}
    return render_template(
        "pages/admin_teams.html",
        login=login,
        teams=[_team_entry(login.user, team, people) for team in teams],
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        team_roles=TEAM_ROLES,
        **values,
    ), status


@bp.get("/admin/teams")
@signed_in(*ADMINISTRATORS)
@per_person
def admin_teams() -> ResponseReturnValue:
    """Every team with its members; the forms this person may use."""
    return _teams_page()


@bp.post("/admin/teams")
@signed_in(*ADMINISTRATORS)
@per_person
def create_team() -> ResponseReturnValue:
    """Create a team as POST /api/teams does; a manager leads the team they create."""
    login = current_viewer()
    posted = form_fields("name", "description")
    data, problems = checked(TeamCreateSchema(), posted)
    if problems:
        return _teams_page(400, new=posted, problems=problems)
    lead = login.user if login.role == "manager" else None
    try:
        accounts.create_team(login.organization.id, data["name"], data["description"], lead)
    except errors.Conflict as exc:
        return _teams_page(409, new=posted, problems={"name": f"{exc}."})
    return back_to("pages.admin_teams")


@bp.post("/admin/teams/<team_id>/delete")
@signed_in(*ADMINISTRATORS)
@per_person
def delete_team(team_id: str) -> ResponseReturnValue:
    """Delete a team and its memberships, the users stay (managers: teams they lead)."""
    login = current_viewer()
    with page_errors():
        team = accounts.find_team(login.organization.id, team_id)
        accounts.check_team_change(login.user, team)
        accounts.delete_team(team)
    return back_to("pages.admin_teams")


@bp.post("/admin/teams/<team_id>/members")
@signed_in(*ADMINISTRATORS)
@per_person
def add_member(team_id: str) -> ResponseReturnValue:
    """Add a user of the organization to a team as lead or member (managers: developers, to teams they lead)."""
    login = current_viewer()
    with page_errors():
        team = accounts.find_team(login.organization.id, team_id)
    data, problems = checked(MemberSchema(), form_fields("user_id", "role"))
    if problems:
        return _teams_page(400, problems={f"{name}-{team_id}": text for name, text in problems.items()})
    with page_errors():
        user = accounts.find_user(login.organization.id, data["user_id"])
        accounts.check_team_change(login.user, team, user)
    try:
        accounts.add_member(team, user, data["role"])
    except errors.Conflict as exc:
        return _teams_page(409, problems={f"user_id-{team_id}": f"{exc}."})
    return back_to("pages.admin_teams")


@bp.post("/admin/teams/<team_id>/members/<user_id>/remove")
@signed_in(*ADMINISTRATORS)
@per_person
def remove_member(team_id: str, user_id: str) -> ResponseReturnValue:
    """Take a user out of a team (managers: developers of teams they lead)."""
    login = current_viewer()
    with page_errors():
        team = accounts.find_team(login.organization.id, team_id)
        try:
            user: User | None = accounts.find_user(login.organization.id, user_id)
        except errors.NotFound:
            user = None  # not a member either: remove_member says 404 once the change is allowed
        accounts.check_team_change(login.user, team, user)
        accounts.remove_member(team, user_id)
    return back_to("pages.admin_teams")


# OpenAPI, merged into /openapi.json by web/docs.py.
PATHS: dict[str, dict[str, Any]] = {
    "/admin/teams": {
        "get": {
            **read_page("Teams and their members (admin, manager)", {"400": "A bad page number"}),
            "parameters": PAGE_QUERY,
        },
        "post": form_post(
            "Create a team as POST /api/teams does (admin; a manager, who then leads it)",
            {"name": {"type": "string", "maxLength": 200}, "description": {"type": "string", "maxLength": 2000}},
            {
                "303": "Created: back to the list",
                "400": "A field the API refuses (the form again, beside the field)",
                "409": "A team of this name exists (the form again)",
            },
        ),
    },
    "/admin/teams/{team_id}/delete": {
        "post": form_post(
            "Delete a team and its memberships; the users stay",
            {},
            {"303": "Deleted: back to the list", "404": "No such team in your organization (a page)"},
        ),
        "parameters": path_ids("team_id"),
    },
    "/admin/teams/{team_id}/members": {
        "post": form_post(
            "Add a user of your organization to a team, as lead or member",
            {"user_id": {"type": "string", "maxLength": 64}, "role": {"type": "string", "enum": list(TEAM_ROLES)}},
            {
                "303": "Added: back to the list",
                "400": "A field the API refuses (the list again, beside the field)",
                "404": "No such team or user in your organization (a page)",
                "409": "Already a member (the list again)",
            },
        ),
        "parameters": path_ids("team_id"),
    },
    "/admin/teams/{team_id}/members/{user_id}/remove": {
        "post": form_post(
            "Take a user out of a team",
            {},
            {"303": "Removed: back to the list", "404": "No such team, or the user is not a member (a page)"},
        ),
        "parameters": path_ids("team_id", "user_id"),
    },
}
