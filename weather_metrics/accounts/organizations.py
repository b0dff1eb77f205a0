"""Organizations, users, teams and API keys: the rules, free of HTTP.

Every lookup takes the caller's organization: an id from another organization is
simply not found.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from typing import Any

from peewee import IntegrityError

from weather_metrics.accounts.passwords import Passwords, generate_password
from weather_metrics.core.errors import Conflict, NotFound, OutOfScope, Rejected
from weather_metrics.core.times import iso
from weather_metrics.store.db import database, execute, write_transaction
from weather_metrics.store.models import ApiKey, Organization, Team, TeamMember, User
from weather_metrics.store.team_rollups import add_member_rows, drop_team_rows, remove_member_rows

ROLES = ("admin", "manager", "developer")
TEAM_ROLES = ("lead", "member")
API_KEY_PREFIX = "wm_"
# What a key may do: `ingest` sends metrics and manages webhooks on /mcp; `read` reads the
# organization-wide metrics and analytics of /api. A key has exactly one scope.
INGEST, READ = "ingest", "read"
KEY_SCOPES = (INGEST, READ)
# Email too: addresses are unique across organizations, so a refused change (409) would tell
# anyone whether an address has an account elsewhere. Admins, who create accounts, change them.
ADMIN_ONLY_FIELDS = ("role", "active", "email")


def _now() -> int:
    return int(time.time())


def _id() -> str:
    return str(uuid.uuid4())


def create_organization(
    name: str, admin_email: str, admin_name: str, passwords: Passwords
) -> tuple[Organization, User, str]:
    """A new organization with its first admin, who gets a one-time password."""
    with database.atomic():
        org = Organization.create(id=_id(), name=name, created_at=_now())
        admin, password = create_user(org.id, admin_email, admin_name, "admin", passwords)
    return org, admin, password


def create_user(
    org_id: str, email: str, name: str, role: str, passwords: Passwords, password: str | None = None
) -> tuple[User, str]:
    """A user; without a password, a one-time one is made and returned (shown once)."""
    chosen = password or generate_password()
    hashed = passwords.hash(chosen)
    now = _now()
    try:
        with database.atomic():
            user = User.create(
                id=_id(),
                organization=org_id,
                email=email.lower(),
                name=name,
                role=role,
                password_hash=hashed,
                active=True,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:
        raise Conflict("A user with this email already exists") from None
    return user, ("" if password else chosen)


def find_user(org_id: str, user_id: str) -> User:
    user = User.get_or_none((User.id == user_id) & (User.organization == org_id))
    if user is None:
        raise NotFound(f"User {user_id} not found")
    return user


def update_user(user: User, changes: dict[str, Any]) -> User:
    """Apply already-authorized changes (a new password arrives hashed); emails stay unique."""
    if "email" in changes:
        changes["email"] = changes["email"].lower()
    for field, value in changes.items():
        setattr(user, field, value)
    user.updated_at = _now()
    try:
        with database.atomic():
            user.save()
    except IntegrityError:
        raise Conflict("A user with this email already exists") from None
    return user


def change_user(actor: User, user_id: str, changes: dict[str, Any]) -> User:
    """Change a user of the actor's organization as the actor may (a new password arrives hashed).

    The last-admin check and the change happen in one write transaction, with no other write between.
    """
    with write_transaction():
        user = find_user(actor.organization_id, user_id)
        check_user_changes(actor, user, changes)
        return update_user(user, changes)


def check_user_changes(actor: User, user: User, changes: dict[str, Any]) -> None:
    """Admins change anyone; others only their own name and password; an organization keeps an active admin."""
    if actor.role != "admin":
        if user.id != actor.id:
            raise Rejected(403, "Only admins may change other users")
        refused = {name: "Only admins may change this" for name in ADMIN_ONLY_FIELDS if name in changes}
        if refused:
            raise Rejected(403, "Only admins may change role, active or email", refused)
    leaves_admins = changes.get("role", "admin") != "admin" or changes.get("active") is False
    if user.role == "admin" and leaves_admins and _other_active_admins(user) == 0:
        raise Rejected(409, "The organization must keep at least one active admin")


def _other_active_admins(user: User) -> int:
    return (
        User.select()
        .where(
            (User.organization == user.organization_id)
            & (User.role == "admin")
            & (User.active == True)  # noqa: E712 - peewee expression
            & (User.id != user.id)
        )
        .count()
    )


def list_users(
    org_id: str, role: str | None, team_id: str | None, page: int, limit: int, only_id: str | None = None
) -> tuple[list[User], int]:
    """A page of the organization's users and their total; `only_id` narrows it to one user."""
    query = User.select().where(User.organization == org_id)
    if only_id:
        query = query.where(User.id == only_id)
    if role:
        query = query.where(User.role == role)
    if team_id:
        find_team(org_id, team_id)
        query = query.join(TeamMember, on=(TeamMember.user == User.id)).where(TeamMember.team == team_id)
    total = query.count()
    return list(query.order_by(User.created_at, User.email).paginate(page, limit)), total


def user_view(user: User) -> dict[str, Any]:
    teams = TeamMember.select(TeamMember, Team).join(Team).where(TeamMember.user == user.id).order_by(Team.name)
    return {
        "id": user.id,
        "organization_id": user.organization_id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "active": user.active,
        "teams": [{"id": m.team.id, "name": m.team.name, "role": m.role} for m in teams],
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
    }


def create_team(org_id: str, name: str, description: str, lead: User | None = None) -> Team:
    """A new team; `lead` (a manager creating it) leads it from the start."""
    try:
        with write_transaction():  # the lead's rows join the team's rollups (store/team_rollups.py)
            team = Team.create(id=_id(), organization=org_id, name=name, description=description, created_at=_now())
            if lead is not None:
                TeamMember.create(team=team.id, user=lead.id, role="lead", created_at=_now())
                add_member_rows(team.id, lead.id)
            return team
    except IntegrityError:
        raise Conflict(f"A team named {name!r} already exists") from None


def check_team_change(actor: User, team: Team, member: User | None = None) -> None:
    """Admins change any team. A manager changes only teams they lead, and only their developers, never
    their own membership: otherwise joining a team (or adding an admin to one) would widen their scope."""
    if actor.role == "admin":
        return
    leads = (
        TeamMember.select()
        .where((TeamMember.team == team.id) & (TeamMember.user == actor.id) & (TeamMember.role == "lead"))
        .exists()
    )
    if not leads:
        raise OutOfScope("Managers change only the teams they lead")
    if member is not None and member.id == actor.id:
        raise OutOfScope("Managers cannot change their own membership")
    if member is not None and member.role != "developer":
        raise OutOfScope("Managers add and remove developers only")


def find_team(org_id: str, team_id: str) -> Team:
    team = Team.get_or_none((Team.id == team_id) & (Team.organization == org_id))
    if team is None:
        raise NotFound(f"Team {team_id} not found")
    return team


def list_teams(org_id: str, page: int, limit: int) -> tuple[list[Team], int]:
    query = Team.select().where(Team.organization == org_id)
    return list(query.order_by(Team.name).paginate(page, limit)), query.count()


def team_view(team: Team, include_members: bool, show_emails: bool = True) -> dict[str, Any]:
    count = TeamMember.select().where(TeamMember.team == team.id).count()
    view = {
        "id": team.id,
        "organization_id": team.organization_id,
        "name": team.name,
        "description": team.description,
        "member_count": count,
        "created_at": iso(team.created_at),
    }
    if include_members:
        members = TeamMember.select(TeamMember, User).join(User).where(TeamMember.team == team.id).order_by(User.email)
        view["members"] = [membership_view(m, show_emails) for m in members]
    return view


def membership_view(member: TeamMember, show_email: bool = True) -> dict[str, Any]:
    view = {
        "team_id": member.team_id,
        "user_id": member.user_id,
        "email": member.user.email,
        "name": member.user.name,
        "role": member.role,
        "created_at": iso(member.created_at),
    }
    if not show_email:
        del view["email"]  # developers see who is on a team, not how to reach them
    return view


# Every change of a team's members changes its rollups in the same write transaction, which
# also orders it with the writer's commits: the team's rows stay the sum of its current members'.


def add_member(team: Team, user: User, role: str) -> TeamMember:
    try:
        with write_transaction():
            member = TeamMember.create(team=team.id, user=user.id, role=role, created_at=_now())
            add_member_rows(team.id, user.id)
            return member
    except IntegrityError:
        raise Conflict(f"User {user.id} is already a member of this team") from None


def remove_member(team: Team, user_id: str) -> None:
    with write_transaction():
        deleted = TeamMember.delete().where((TeamMember.team == team.id) & (TeamMember.user == user_id)).execute()
        if deleted:
            remove_member_rows(team.id, user_id)
    if not deleted:
        raise NotFound(f"User {user_id} is not a member of this team")


def delete_team(team: Team) -> None:
    with write_transaction():
        TeamMember.delete().where(TeamMember.team == team.id).execute()
        drop_team_rows(team.id)
        team.delete_instance()


def hash_api_key(secret: str) -> str:
    """Keys are 256 random bits, so a plain SHA-256 is a safe way to store them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(org_id: str, name: str, created_by: str, scope: str = INGEST) -> tuple[ApiKey, str]:
    """A new key of that scope and its secret, which is never stored and cannot be shown again."""
    if scope not in KEY_SCOPES:
        raise ValueError(f"Unknown API key scope {scope!r}")
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.create(
        id=_id(),
        organization=org_id,
        name=name,
        prefix=secret[:11],
        secret_hash=hash_api_key(secret),
        created_by=created_by,
        created_at=_now(),
        scope=scope,
    )
    return key, secret


def list_api_keys(org_id: str) -> list[ApiKey]:
    return list(ApiKey.select().where(ApiKey.organization == org_id).order_by(ApiKey.created_at, ApiKey.name))


def revoke_api_key(org_id: str, key_id: str) -> None:
    key = ApiKey.get_or_none((ApiKey.id == key_id) & (ApiKey.organization == org_id))
    if key is None or key.revoked_at is not None:
        raise NotFound(f"API key {key_id} not found")
    ApiKey.update(revoked_at=_now()).where(ApiKey.id == key.id).execute()


def authenticate_api_key(secret: str) -> ApiKey | None:
    """The live key with this secret, whatever its scope (each surface checks the scope it takes), or None."""
    if not secret.startswith(API_KEY_PREFIX):
        return None
    # Every /mcp request asks: one plain statement, not a peewee query built each time.
    row = execute(
        "SELECT id, organization_id, name, prefix, scope FROM api_keys WHERE secret_hash = ? AND revoked_at IS NULL",
        (hash_api_key(secret),),
    ).fetchone()
    if row is None:
        return None
    return ApiKey(id=row[0], organization=row[1], name=row[2], prefix=row[3], scope=row[4])


def api_key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scope": key.scope,
        "created_by": key.created_by_id,
        "created_at": iso(key.created_at),
        "last_used_at": None if key.last_used_at is None else iso(key.last_used_at),
        "revoked": key.revoked_at is not None,
    }
