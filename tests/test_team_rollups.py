"""Team rollups equal the sum of their current members' rows; answers read from them equal the per-user path's."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests import databases
from weather_metrics.accounts import organizations as accounts
from weather_metrics.core.histogram import latency_bucket
from weather_metrics.core.times import zone
from weather_metrics.query import analytics, org_metrics
from weather_metrics.query.scope import narrow, organization_scope, scope_for
from weather_metrics.query.windows import parse_window
from weather_metrics.store import db
from weather_metrics.store.agents import AGENTS
from weather_metrics.store.batches import PendingBatch, write_batches
from weather_metrics.store.db import database, execute
from weather_metrics.store.models import Organization, Team, TeamMember, User

HOUR, DAY = 3600, 86400
START = 1_767_225_600  # 2026-01-01
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
# Each team table, the per-user one it mirrors, its key after the owner, and its summed columns.
MIRRORS = (
    ("agent_team_daily", "agent_user_daily", "day, agent_name, success", "SUM(u.calls), SUM(u.duration_sum)"),
    ("agent_team_latency_daily", "agent_user_latency_daily", "day, agent_name, success, bucket", "SUM(u.calls)"),
    (
        "agent_team_latency_spans",
        "agent_user_latency_spans",
        "span, start, agent_name, success, bucket",
        "SUM(u.calls)",
    ),
)


def executions(rng: random.Random, org_id: str, users: list[str], count: int) -> list[tuple]:
    """Rows as agent_row() builds them. Durations are quarters of a millisecond: their sums are exact in
    any order, so the team path and the per-user path give the very same figures."""
    rows = []
    for _ in range(count):
        moment = START + rng.randrange(50 * DAY)
        duration = rng.randrange(4, 40_000) / 4
        user = rng.choice([*users, None])
        rows.append(
            (org_id, "b", moment, float(moment), moment // HOUR * HOUR, None, user, user or "laptop",
             rng.choice(("reviewer", "planner", "tester")), "run", duration, latency_bucket(duration),
             int(rng.random() < 0.9), None, None)
        )  # fmt: skip
    return rows


def ingest(rng: random.Random, org_id: str, users: list[str], count: int) -> None:
    write_batches([PendingBatch(rows=executions(rng, org_id, users, count), response={}, kind=AGENTS)])


def organization(names: list[str]) -> tuple[str, dict[str, User]]:
    """An organization and its users, named by role and number ("manager", "dev1", ...)."""
    org = Organization.create(id=str(uuid.uuid4()), name="Teams", created_at=0)
    users = {}
    for name in names:
        role = name if name in ("admin", "manager") else "manager" if name.startswith("manager") else "developer"
        users[name] = User.create(
            id=str(uuid.uuid4()), organization=org.id, email=f"{name}@teams.test", name=name, role=role,
            active=True, created_at=0, updated_at=0,
        )  # fmt: skip
    return org.id, users


def rows(sql: str) -> list[tuple]:
    return sorted(tuple(execute(sql).fetchall()))


def assert_teams_sum_their_members() -> int:
    """Every team table equals the per-user rows summed over each team's current members; returns rows compared."""
    compared = 0
    for table, user_table, key, sums in MIRRORS:
        keyed = ", ".join(f"u.{column}" for column in key.split(", "))
        expected = rows(
            f"SELECT m.team_id, {keyed}, {sums} FROM team_members AS m JOIN {user_table} AS u"
            f" ON u.user_id = m.user_id GROUP BY m.team_id, {keyed}"
        )
        assert rows(f"SELECT * FROM {table}") == expected, table
        compared += len(expected)
    return compared


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_team_rows_equal_their_members_rows_through_ingestion_and_membership_changes(app, seed):
    rng = random.Random(seed)
    with app.app_context():
        org_id, people = organization([f"dev{i}" for i in range(6)])
        users = list(people.values())
        ids = [user.id for user in users]
        teams = [accounts.create_team(org_id, f"team{i}", "", rng.choice(users)).id for i in range(2)]
        compared = 0
        for step in range(30):
            action = rng.choice(("ingest", "ingest", "add", "remove", "create", "delete")) if step else "ingest"
            if action == "ingest":
                ingest(rng, org_id, ids, rng.randrange(1, 80))
            elif action == "create" or not teams:
                teams.append(accounts.create_team(org_id, f"team{step}x", "", rng.choice([*users, None])).id)
            elif action == "delete":
                accounts.delete_team(Team.get_by_id(teams.pop(rng.randrange(len(teams)))))
            else:
                team = Team.get_by_id(rng.choice(teams))
                members = {m.user_id for m in TeamMember.select().where(TeamMember.team == team.id)}
                if action == "add" and len(members) < len(users):
                    accounts.add_member(team, rng.choice([u for u in users if u.id not in members]), "member")
                elif action == "remove" and members:
                    accounts.remove_member(team, rng.choice(sorted(members)))
            compared += assert_teams_sum_their_members()
        assert compared > 1000  # the teams had rows to compare most of the time
        assert execute("SELECT COUNT(*) FROM agent_team_daily WHERE calls = 0").fetchone()[0] == 0


def test_a_deleted_team_leaves_no_rows_and_a_removed_member_takes_their_rows(app):
    rng = random.Random(4)
    with app.app_context():
        org_id, people = organization(["dev1", "dev2"])
        team = accounts.create_team(org_id, "solo", "", people["dev1"])
        ingest(rng, org_id, [people["dev1"].id], 50)
        assert execute("SELECT SUM(calls) FROM agent_team_daily").fetchone()[0] > 0
        accounts.remove_member(team, people["dev1"].id)
        assert rows("SELECT * FROM agent_team_latency_spans") == []
        accounts.add_member(team, people["dev1"], "member")
        accounts.add_member(team, people["dev2"], "member")
        assert assert_teams_sum_their_members() > 0
        accounts.delete_team(team)
        assert [rows(f"SELECT * FROM {table}") for table, *_ in MIRRORS] == [[], [], []]


def per_user(scope):  # type: ignore[no-untyped-def]
    """The same scope read from each member's rows."""
    return replace(scope, rollup_teams=None)


@pytest.fixture
def organized(app):  # type: ignore[no-untyped-def]
    """A manager in one team, a manager in two (they overlap in that manager), teams changed after ingestion."""
    rng = random.Random(5)
    with app.app_context():
        names = ["admin", "manager", "manager2", *(f"dev{i}" for i in range(6))]
        org_id, people = organization(names)
        ids = [people[name].id for name in names]
        team_a = accounts.create_team(org_id, "a", "", people["manager"])
        team_b = accounts.create_team(org_id, "b", "", people["manager2"])
        team_c = accounts.create_team(org_id, "c", "", people["manager2"])
        for team, devs in ((team_a, ("dev0", "dev1")), (team_b, ("dev2", "dev3")), (team_c, ("dev4",))):
            for dev in devs:
                accounts.add_member(team, people[dev], "member")
        for _ in range(3):
            ingest(rng, org_id, ids, 400)
        accounts.add_member(team_a, people["dev5"], "member")  # history joins the team's rows
        accounts.remove_member(team_a, people["dev1"].id)
        ingest(rng, org_id, ids, 400)
        yield org_id, people, (team_a, team_b, team_c)


# Europe/Paris days start inside UTC days: the hourly edges are read too.
WINDOWS = [("2026-01-01", "2026-02-19", "day", "UTC"), ("2026-01-03", "2026-02-10", "week", "Europe/Paris")]


@pytest.mark.parametrize("window", WINDOWS, ids=["utc-days", "paris-weeks"])
def test_manager_and_team_answers_equal_the_per_user_path(app, organized, window):
    org_id, people, (team_a, team_b, team_c) = organized
    start, end, aggregation, tz = window
    with app.app_context():
        span = parse_window(start, end, aggregation, zone(tz), NOW, 400)
        admin, manager = organization_scope(org_id), scope_for(people["manager"])
        scopes = [manager, narrow(manager, team_id=team_a.id), narrow(admin, team_id=team_c.id)]
        assert all(scope.rollup_teams for scope in scopes)
        for scope in scopes:
            for options in ({}, {"agent_name": "planner"}, {"success_only": True}):
                answer = org_metrics.agent_metrics(scope, span, **options)
                assert answer["totals"]["calls"] > 0
                assert answer == org_metrics.agent_metrics(per_user(scope), span, **options)
        overlapping = scope_for(people["manager2"])  # in both of their teams: each member once, per user
        assert overlapping.rollup_teams is None and len(overlapping.user_ids or ()) == 4


def test_team_comparison_equals_the_per_user_path(app, organized, monkeypatch):
    org_id, _people, teams = organized
    with app.app_context():
        span = parse_window("2026-01-01", "2026-02-19", "day", zone("UTC"), NOW, 400)
        admin = organization_scope(org_id)
        answer = analytics.team_comparison(admin, list(teams), None, span)
        assert all(team["metrics"]["agent_executions"] > 0 for team in answer["teams"])
        monkeypatch.setattr(analytics, "narrow", lambda *args, **kwargs: per_user(narrow(*args, **kwargs)))
        org_metrics.SETTLED.clear()
        assert answer == analytics.team_comparison(admin, list(teams), None, span)


def test_the_migration_fills_team_rows_from_current_memberships(app):
    rng = random.Random(6)
    with app.app_context():
        org_id, people = organization(["dev1", "dev2", "dev3"])
        for name, devs in (("x", ("dev1", "dev2")), ("y", ("dev2", "dev3"))):
            team = accounts.create_team(org_id, name, "", None)
            for dev in devs:
                accounts.add_member(team, people[dev], "member")
        ingest(rng, org_id, [user.id for user in people.values()], 300)
        expected = [rows(f"SELECT * FROM {table}") for table, *_ in MIRRORS]
        with database.atomic():
            for table, *_ in MIRRORS:
                execute(f"DELETE FROM {table}")
            script = (migration_folder() / "0012_team_rollups.sql").read_text()
            fill = script[script.index("-- Fill them") :]
            for statement in filter(str.strip, fill.split(";")):
                execute(statement)
        assert [rows(f"SELECT * FROM {table}") for table, *_ in MIRRORS] == expected
        assert all(expected)


def migration_folder():  # type: ignore[no-untyped-def]
    from weather_metrics.store import migrate
    from weather_metrics.store.db import is_postgresql

    return migrate.POSTGRESQL_MIGRATIONS_DIR if is_postgresql() else migrate.MIGRATIONS_DIR


def test_a_membership_change_shows_in_the_next_answer_over_past_days(app, organized):
    org_id, people, (team_a, _b, _c) = organized
    with app.app_context():
        span = parse_window("2026-01-01", "2026-02-19", "day", zone("UTC"), NOW, 400)
        before = org_metrics.agent_metrics(scope_for(people["manager"]), span)  # past days: kept in SETTLED
        accounts.add_member(team_a, people["dev2"], "member")
        scope = scope_for(people["manager"])
        after = org_metrics.agent_metrics(scope, span)
        assert scope.rollup_teams == frozenset({team_a.id})
        assert after["totals"]["calls"] > before["totals"]["calls"]
        assert after == org_metrics.agent_metrics(per_user(scope), span)


# A version 10 database: two teams sharing a member, and that member's rows of one day.
VERSION_10_ROWS = (
    "INSERT INTO organizations (id, name, created_at) VALUES ('o', 'O', 0)",
    "INSERT INTO users (id, organization_id, email, name, role, active, created_at, updated_at)"
    " VALUES ('u', 'o', 'u@o.test', 'U', 'developer', 1, 0, 0), ('v', 'o', 'v@o.test', 'V', 'developer', 1, 0, 0)",
    "INSERT INTO teams (id, organization_id, name, description, created_at) VALUES ('t1', 'o', 'a', '', 0),"
    " ('t2', 'o', 'b', '', 0)",
    "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES ('t1', 'u', 'member', 0),"
    " ('t1', 'v', 'member', 0), ('t2', 'u', 'member', 0)",
    "INSERT INTO agent_user_daily (user_id, day, agent_name, success, calls, duration_sum)"
    " VALUES ('u', 86400, 'reviewer', 1, 3, 12.5), ('v', 86400, 'reviewer', 1, 2, 4.0)",
    "INSERT INTO agent_user_latency_spans (user_id, span, start, agent_name, success, bucket, calls)"
    " VALUES ('u', 4, 0, 'reviewer', 1, 7, 3), ('v', 4, 0, 'reviewer', 1, 7, 2)",
)
FILLED = (
    [("t1", 86400, "reviewer", 1, 5, 16.5), ("t2", 86400, "reviewer", 1, 3, 12.5)],
    [("t1", 4, 0, "reviewer", 1, 7, 5), ("t2", 4, 0, "reviewer", 1, 7, 3)],
)


def test_a_version_10_database_gets_team_rows_from_its_memberships(tmp_path):
    location = databases.at_version(tmp_path / "v10.db", 10, [(sql, [()]) for sql in VERSION_10_ROWS])
    db.open_database(location)
    db.database.close_all()
    found = [databases.rows(tmp_path / "v10.db", f"SELECT * FROM {table} ORDER BY 1") for table in TEAM_TABLES]
    assert tuple(found) == FILLED


TEAM_TABLES = ("agent_team_daily", "agent_team_latency_spans")
