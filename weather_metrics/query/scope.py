"""Whose data a caller may see: the scope of a user, narrowed to one user or team of the organization."""

from __future__ import annotations

from dataclasses import dataclass

from weather_metrics.core.errors import OutOfScope, UnknownTarget
from weather_metrics.store.models import Team, TeamMember, User


@dataclass(frozen=True)
class Scope:
    """Whose data a caller may see inside their organization.

    `user_ids` None means every user; otherwise only rows of those users. Productivity rows
    tagged with a team in `team_ids` are visible too (None: every team). `rollup_teams`, when
    set, are teams whose members are exactly `user_ids`, each user in one of them only: the sum
    of their team rollups (store/team_rollups.py) is the sum of those users' rows.
    """

    organization_id: str
    user_ids: frozenset[str] | None
    team_ids: frozenset[str] | None
    rollup_teams: frozenset[str] | None = None


def team_member_ids(team_ids: frozenset[str] | set[str]) -> frozenset[str]:
    rows = TeamMember.select(TeamMember.user_id).where(TeamMember.team.in_(sorted(team_ids)))
    return frozenset(row.user_id for row in rows)


def _teams_scope(org_id: str, team_ids: frozenset[str], also: frozenset[str] = frozenset()) -> Scope:
    """The members of the teams and `also`; their rollups stand for them when no one is counted twice or left out."""
    pairs = [m.user_id for m in TeamMember.select(TeamMember.user_id).where(TeamMember.team.in_(sorted(team_ids)))]
    members = frozenset(pairs)
    # Overlapping teams would count a shared member twice (a manager in two teams is in both): per-user rows then.
    disjoint = bool(team_ids) and len(pairs) == len(members) and also <= members
    return Scope(org_id, members | also, team_ids, team_ids if disjoint else None)


def organization_scope(org_id: str) -> Scope:
    """Everyone's data in the organization: an admin's scope, and a read API key's."""
    return Scope(org_id, None, None)


def scope_for(user: User) -> Scope:
    """Admins see the organization; managers their teams' members and themselves; developers themselves."""
    if user.role == "admin":
        return organization_scope(user.organization_id)
    if user.role == "manager":
        teams = frozenset(m.team_id for m in TeamMember.select(TeamMember.team_id).where(TeamMember.user == user.id))
        return _teams_scope(user.organization_id, teams, frozenset({user.id}))
    return Scope(user.organization_id, frozenset({user.id}), frozenset())


def narrow(scope: Scope, user_id: str | None = None, team_id: str | None = None) -> Scope:
    """The scope limited to one user and/or team of the organization.

    UnknownTarget when the id is not in the organization; OutOfScope when it is but the
    caller may not see it.
    """
    org = scope.organization_id
    if team_id is not None:
        if not Team.select().where((Team.id == team_id) & (Team.organization == org)).exists():
            raise UnknownTarget("No such team in this organization")
        if scope.team_ids is not None and team_id not in scope.team_ids:
            raise OutOfScope("This team is outside your scope")
        team = _teams_scope(org, frozenset({team_id}))
        members = team.user_ids or frozenset()
        if scope.user_ids is not None and not members <= scope.user_ids:  # some members are not the caller's
            team = Scope(org, members & scope.user_ids, team.team_ids)
        scope = team
    if user_id is not None:
        if not User.select().where((User.id == user_id) & (User.organization == org)).exists():
            raise UnknownTarget("No such user in this organization")
        if scope.user_ids is not None and user_id not in scope.user_ids:
            raise OutOfScope("This user is outside your scope")
        scope = Scope(org, frozenset({user_id}), frozenset())
    return scope
