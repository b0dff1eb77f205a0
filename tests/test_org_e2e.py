"""End to end for organization metrics: an MCP key posts executions to the real server, people read them back.

Real parts only: the organization is created with the operator's CLI, everything else goes over
HTTP to gunicorn started from the Procfile, on one SQLite file that outlives a SIGTERM restart.
Every expected figure is computed here from the executions sent, not read from the server.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from tests import databases
from tests.support import ROOT, TEST_JWT_SECRET, Server, http

ZONE = "Pacific/Auckland"  # far from UTC, so local days and UTC days clearly differ
TZ = ZoneInfo(ZONE)
CHEAP_ARGON2 = {"password_time_cost": 2, "password_memory_kib": 19456}
LIMITS = {"metrics_max_items": 50, "metrics_max_body_bytes": 65536, "clock_skew_seconds": 120}
MCP_RATE_LIMIT = "5000 per minute"
EMAILS = {"alice": "alice@acme.test", "bob": "bob@acme.test", "manager": "manager@acme.test"}
IDENTIFIERS = {"alice": EMAILS["alice"], "bob": EMAILS["bob"], "ci": "ci-runner"}
IDEMPOTENT_REQUEST = 4
LABELS = ("organization", "admin", "password")  # lines create-org prints
PERCENTILES = (("p50_duration_ms", 0.50), ("p95_duration_ms", 0.95), ("p99_duration_ms", 0.99))


@dataclass(frozen=True)
class Execution:
    """One execution as sent: which request carried it, whose it is, and when (hours + minutes ago)."""

    request: int
    who: str
    hours_ago: int
    minute: int
    agent: str
    duration_ms: int
    success: bool


EXECUTIONS = [
    Execution(1, "alice", 1, 5, "code-reviewer", 1200, True),  # request 1: a single object
    Execution(2, "alice", 1, 40, "test-writer", 800, True),
    Execution(2, "alice", 2, 10, "code-reviewer", 1500, False),
    Execution(2, "alice", 5, 0, "code-reviewer", 900, True),
    Execution(2, "bob", 1, 20, "code-reviewer", 2000, True),
    Execution(2, "bob", 3, 0, "deployer", 4100, False),
    Execution(3, "ci", 2, 30, "deployer", 5000, True),
    Execution(3, "ci", 5, 45, "deployer", 6100, False),
    Execution(3, "ci", 14, 35, "test-writer", 450, True),
    Execution(3, "bob", 3, 30, "deployer", 3900, True),
    Execution(3, "bob", 9, 10, "code-reviewer", 1700, True),
    Execution(4, "alice", 9, 30, "deployer", 3000, True),  # request 4: sent twice with one Idempotency-Key
    Execution(4, "alice", 20, 15, "test-writer", 650, True),
    Execution(4, "bob", 14, 5, "test-writer", 500, True),
    Execution(4, "ci", 33, 15, "code-reviewer", 950, True),
    Execution(5, "alice", 26, 45, "code-reviewer", 1100, True),
    Execution(5, "alice", 33, 59, "test-writer", 700, False),
    Execution(5, "bob", 26, 50, "code-reviewer", 1300, False),
    Execution(5, "bob", 40, 25, "deployer", 3500, True),
    Execution(5, "ci", 40, 55, "deployer", 5200, True),
]
LATE = Execution(6, "bob", 47, 30, "deployer", 2700, True)  # arrives after the first reads


# --- the organization ------------------------------------------------------------------------------


@dataclass
class Org:
    """The running service and what the test knows about the organization in it."""

    server: Server
    database: Path
    now: datetime  # the fixed "now" every timestamp and query window is computed from
    org_id: str
    other_org_id: str
    outsider_id: str  # the admin of the other organization
    key: str
    user_ids: dict[str, str]
    team_ids: dict[str, str]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    batch_ids: dict[int, str] = field(default_factory=dict)
    sent: list[Execution] = field(default_factory=list)

    def get(self, path: str, who: str, **query: str) -> tuple[int, Any]:
        status, _, body = http("GET", f"{self.server.url}{path}?{urlencode(query)}", headers=self.headers[who])
        return status, body

    def collect(self, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        status, _, answer = http("POST", self.server.url + "/mcp/metrics/collect", body, headers=headers)
        return status, answer


def create_org_with_cli(database: Path, name: str, email: str) -> tuple[str, str, str]:
    """`flask --app app create-org` as an operator runs it; the organization id, admin id and password."""
    env = {
        **os.environ,
        "WEATHER_METRICS_DATABASE": databases.location(database),
        "WEATHER_METRICS_JWT_SECRET": TEST_JWT_SECRET,
        **{f"WEATHER_METRICS_{k.upper()}": str(v) for k, v in CHEAP_ARGON2.items()},
    }
    env["WEATHER_METRICS_CONFIG"] = os.devnull
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "create-org", name, "--admin", email],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    found = [re.search(rf"^{label}\s+(?:.+\()?(\S+?)\)?$", done.stdout, re.MULTILINE) for label in LABELS]
    assert all(found), done.stdout
    org_id, admin_id, password = (match.group(1) for match in found if match)
    return org_id, admin_id, password


def call(server: Server, method: str, path: str, body: Any, headers: dict[str, str], expect: int = 201) -> Any:
    status, _, answer = http(method, server.url + path, body, headers=headers)
    assert status == expect, (method, path, status, answer)
    return answer


def login(server: Server, email: str, password: str) -> dict[str, str]:
    tokens = call(server, "POST", "/api/auth/login", {"email": email, "password": password}, {}, 200)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def start_server(database: Path) -> Server:
    return Server(database, mcp_rate_limit=MCP_RATE_LIMIT, **LIMITS, **CHEAP_ARGON2).start()


def stamp(now: datetime, execution: Execution) -> str:
    """The execution's timestamp in ISO 8601; those on odd minutes with a +05:30 offset instead of Z."""
    moment = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=execution.hours_ago)
    moment += timedelta(minutes=execution.minute)
    if execution.minute % 2:
        return moment.astimezone(ZoneInfo("Asia/Kolkata")).isoformat()
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def occurred(now: datetime, execution: Execution) -> datetime:
    return datetime.fromisoformat(stamp(now, execution))


def payload(now: datetime, execution: Execution, index: int) -> dict[str, Any]:
    identifier = IDENTIFIERS[execution.who]
    if execution.who == "alice" and index == 0:
        identifier = identifier.title()  # "Alice@Acme.Test": emails match without regard to case
    item: dict[str, Any] = {
        "session_id": f"{execution.who}-{execution.request}",
        "user_identifier": identifier,
        "agent_name": execution.agent,
        "command": f"{execution.agent} --run {index}",
        "execution_time_ms": execution.duration_ms,
        "success": execution.success,
        "metadata": {"repo": "weather", "attempt": index},
        "timestamp": stamp(now, execution),
    }
    if not execution.success:
        item["error_details"] = "exit status 1"
    return item


def post_request(org: Org, number: int, executions: list[Execution], headers: dict[str, str]) -> dict[str, Any]:
    """Post the executions of one request: a lone one as an object, more as an array; 201 for all."""
    items = [payload(org.now, e, i) for i, e in enumerate(executions)]
    status, answer = org.collect(items[0] if len(items) == 1 else items, headers)
    assert status == 201, answer
    assert answer["status"] == "accepted" and answer["accepted"] == len(items), answer
    org.batch_ids[number] = answer["batch_id"]
    org.sent += executions
    return answer  # type: ignore[no-any-return]


def seed(server: Server, database: Path) -> Org:
    """Acme and Globex by CLI, then over HTTP: the zone, people, teams, a key, and every execution posted."""
    org_id, _, admin_password = create_org_with_cli(database, "Acme", "admin@acme.test")
    other_org_id, outsider_id, _ = create_org_with_cli(database, "Globex", "admin@globex.test")
    admin = login(server, "admin@acme.test", admin_password)
    assert call(server, "PUT", "/api/organization", {"time_zone": ZONE}, admin, 200)["time_zone"] == ZONE
    user_ids, headers = {}, {"admin": admin}
    for who, role in (("alice", "developer"), ("bob", "developer"), ("manager", "manager")):
        user = call(server, "POST", "/api/users", {"email": EMAILS[who], "name": who.title(), "role": role}, admin)
        user_ids[who] = user["id"]
        headers[who] = login(server, EMAILS[who], user["one_time_password"])
    team_ids = {name: call(server, "POST", "/api/teams", {"name": f"Team {name}"}, admin)["id"] for name in "AB"}
    for team, who, role in (("A", "manager", "lead"), ("A", "alice", "member"), ("B", "bob", "member")):
        call(server, "POST", f"/api/teams/{team_ids[team]}/members", {"user_id": user_ids[who], "role": role}, admin)
    key = call(server, "POST", "/api/keys", {"name": "mcp server"}, admin)["secret"]
    org = Org(server, database, datetime.now(UTC), org_id, other_org_id, outsider_id, key, user_ids, team_ids, headers)

    by_request: dict[int, list[Execution]] = {}
    for execution in EXECUTIONS:
        by_request.setdefault(execution.request, []).append(execution)
    for number, executions in sorted(by_request.items()):
        # Both ways of presenting the key, alternately.
        auth = {"X-API-Key": key} if number % 2 else {"Authorization": f"Bearer {key}"}
        if number == IDEMPOTENT_REQUEST:
            auth["Idempotency-Key"] = "mcp-batch-0004"
        post_request(org, number, executions, auth)
    return org


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    """The seeded organization on a running server; the last test restarts it, so stop whichever runs."""
    database = tmp_path_factory.mktemp("org_e2e") / "metrics.db"
    server = start_server(database)
    seeded: Org | None = None
    try:
        seeded = seed(server, database)
        yield seeded
    finally:
        (seeded.server if seeded else server).stop()


# --- expected figures, by hand ----------------------------------------------------------------------


def figures(executions: list[Execution]) -> dict[str, Any]:
    calls = len(executions)
    successes = sum(e.success for e in executions)
    duration = sum(e.duration_ms for e in executions)
    return {
        "calls": calls,
        "successes": successes,
        "failures": calls - successes,
        "success_rate": round(successes / calls, 4) if calls else None,
        "avg_duration_ms": round(duration / calls, 2) if calls else None,
    }


def nearest_rank(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def hour_periods(now: datetime) -> tuple[datetime, datetime, list[datetime]]:
    """The hour query: from 48 hours before the current hour up to now (rounded up to the hour)."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=48)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    hours = [start + timedelta(hours=i) for i in range(49)]
    return start, end, hours


def day_range(now: datetime) -> tuple[date, date]:
    """The day query: the last three local days before today, and today."""
    today = now.astimezone(TZ).date()
    return today - timedelta(days=3), today


def hour_of(org: Org, execution: Execution) -> datetime:
    return occurred(org.now, execution).astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def expected_series(org: Org, executions: list[Execution], aggregation: str) -> list[dict[str, Any]]:
    if aggregation == "hour":
        _, _, hours = hour_periods(org.now)
        return [
            {"period": hour.astimezone(TZ).isoformat(), **figures([e for e in executions if hour_of(org, e) == hour])}
            for hour in hours
        ]
    first, last = day_range(org.now)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [
        {
            "period": datetime.combine(day, time(), TZ).isoformat(),
            **figures([e for e in executions if occurred(org.now, e).astimezone(TZ).date() == day]),
        }
        for day in days
    ]


def query(org: Org, aggregation: str) -> dict[str, str]:
    if aggregation == "hour":
        start, _, _ = hour_periods(org.now)
        return {
            "start_date": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end_date": org.now.isoformat(),
            "aggregation": "hour",
        }
    first, last = day_range(org.now)
    return {"start_date": first.isoformat(), "end_date": last.isoformat(), "aggregation": "day"}


def without_percentiles(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in dict(PERCENTILES)}


def assert_metrics(org: Org, answer: dict[str, Any], executions: list[Execution], aggregation: str) -> None:
    """The answer holds exactly these executions: totals, each agent, every period of the series."""
    assert without_percentiles(answer["totals"]) == figures(executions)
    agents = sorted({e.agent for e in executions}, key=lambda a: (-sum(e.agent == a for e in executions), a))
    expected_agents = [{"agent_name": a, **figures([e for e in executions if e.agent == a])} for a in agents]
    assert [without_percentiles(a) for a in answer["agents"]] == expected_agents
    for name, fraction in PERCENTILES:
        exact = nearest_rank([e.duration_ms for e in executions], fraction)
        assert answer["totals"][name] == pytest.approx(exact, rel=0.025), name
    series = expected_series(org, executions, aggregation)
    assert answer["series"] == series
    assert answer["pagination"] == {"page": 1, "limit": 100, "total": len(series), "pages": 1}
    assert answer["window"]["aggregation"] == aggregation and answer["window"]["time_zone"] == ZONE


def mine(org: Org, *people: str) -> list[Execution]:
    return [e for e in org.sent if e.who in people]


def read(org: Org, who: str, aggregation: str, **extra: str) -> dict[str, Any]:
    status, answer = org.get("/api/metrics/agents", who, **query(org, aggregation), **extra)
    assert status == 200, answer
    return answer  # type: ignore[no-any-return]


# --- the tests -------------------------------------------------------------------------------------


def test_the_idempotent_request_sent_again_returns_the_same_batch_and_stores_nothing(org):
    executions = [e for e in EXECUTIONS if e.request == IDEMPOTENT_REQUEST]
    items = [payload(org.now, e, i) for i, e in enumerate(executions)]
    headers = {"X-API-Key": org.key, "Idempotency-Key": "mcp-batch-0004"}  # the first send used Bearer
    status, answer = org.collect(items, headers)
    assert status == 201, answer
    assert answer["batch_id"] == org.batch_ids[IDEMPOTENT_REQUEST]
    assert answer["accepted"] == len(executions)
    assert read(org, "admin", "day")["totals"]["calls"] == len(org.sent)  # stored once, not twice


def test_the_admin_sees_every_execution_by_hour_including_unmatched_identifiers(org):
    answer = read(org, "admin", "hour")
    start, end, _ = hour_periods(org.now)
    assert answer["window"]["start"] == start.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert answer["window"]["end"] == end.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert_metrics(org, answer, org.sent, "hour")
    assert answer["totals"]["calls"] == 20 and answer["totals"]["failures"] == 5  # the fixture as written


def test_the_admin_sees_every_execution_by_local_day(org):
    answer = read(org, "admin", "day")
    first, last = day_range(org.now)
    start = datetime.combine(first, time(), TZ).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), TZ).astimezone(UTC)
    assert (answer["window"]["start"], answer["window"]["end"]) == (
        start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        end.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    )
    assert_metrics(org, answer, org.sent, "day")
    assert sum(p["calls"] for p in answer["series"]) == len(EXECUTIONS)


def test_the_admin_filters_one_agent_and_successes(org):
    answer = read(org, "admin", "day", agent_name="deployer", success_only="true")
    chosen = [e for e in org.sent if e.agent == "deployer" and e.success]
    assert_metrics(org, answer, chosen, "day")


@pytest.mark.parametrize("aggregation", ["hour", "day"])
def test_a_developer_sees_only_their_own_executions(org, aggregation):
    assert_metrics(org, read(org, "bob", aggregation), mine(org, "bob"), aggregation)
    assert_metrics(org, read(org, "alice", aggregation), mine(org, "alice"), aggregation)
    # Naming yourself changes nothing.
    own = read(org, "bob", aggregation, user_id=org.user_ids["bob"])
    assert_metrics(org, own, mine(org, "bob"), aggregation)


def test_a_developer_asking_for_another_user_or_team_is_403(org):
    for extra in ({"user_id": org.user_ids["alice"]}, {"team_id": org.team_ids["A"]}):
        status, answer = org.get("/api/metrics/agents", "bob", **query(org, "day"), **extra)
        assert status == 403, answer
        assert answer["error"]["code"] == "FORBIDDEN"
        assert "series" not in answer


@pytest.mark.parametrize("aggregation", ["hour", "day"])
def test_the_manager_sees_their_teams_members_only(org, aggregation):
    # Alice's executions; the manager sent none and Bob and ci-runner are outside team A.
    assert_metrics(org, read(org, "manager", aggregation), mine(org, "alice", "manager"), aggregation)
    team = read(org, "manager", aggregation, team_id=org.team_ids["A"])
    assert_metrics(org, team, mine(org, "alice"), aggregation)
    for extra in ({"user_id": org.user_ids["bob"]}, {"team_id": org.team_ids["B"]}):
        status, answer = org.get("/api/metrics/agents", "manager", **query(org, aggregation), **extra)
        assert status == 403, answer


def test_a_user_of_another_organization_is_404_and_an_api_key_cannot_read_metrics(org):
    for user_id in (org.outsider_id, "no-such-user"):
        status, answer = org.get("/api/metrics/agents", "admin", user_id=user_id)
        assert status == 404, answer
    status, _, answer = http(
        "GET", org.server.url + "/api/metrics/agents", headers={"Authorization": f"Bearer {org.key}"}
    )
    assert status == 401, answer


def test_the_config_of_the_keys_organization_states_the_limits_the_server_enforces(org):
    status, _, config = http("GET", f"{org.server.url}/mcp/config/{org.org_id}", headers={"X-API-Key": org.key})
    assert status == 200, config
    assert config["organization_id"] == org.org_id and config["time_zone"] == ZONE
    assert config["endpoints"]["collect"] == org.server.url + "/mcp/metrics/collect"
    assert config["authentication"]["key_prefix"] == org.key[:11]
    assert org.key not in json.dumps(config)
    batching, limits = config["batching"], config["fields"]["limits"]
    assert batching["max_items_per_request"] == LIMITS["metrics_max_items"]
    assert batching["max_body_bytes"] == LIMITS["metrics_max_body_bytes"]
    assert limits["timestamp_max_future_seconds"] == LIMITS["clock_skew_seconds"]
    assert config["rate_limits"]["collect"] == MCP_RATE_LIMIT + " per organization"

    # What the config states is what the server enforces; none of these refused requests stores anything.
    key = {"X-API-Key": org.key}
    one = payload(org.now, EXECUTIONS[0], 1)
    status, answer = org.collect([one] * (batching["max_items_per_request"] + 1), key)
    assert status == 400 and "_body" in answer["error"]["details"], answer
    at_limit = [one] * (batching["max_items_per_request"] - 1) + [{**one, "success": "yes"}]
    status, answer = org.collect(at_limit, key)  # the limit itself is fine: only the bad item is named
    assert status == 400, answer
    assert set(answer["error"]["details"]) == {f"items[{batching['max_items_per_request'] - 1}].success"}
    padded = {**one, "command": "x" * limits["command_max_length"]}
    oversized = [padded] * (batching["max_body_bytes"] // limits["command_max_length"] + 1)
    status, answer = org.collect(oversized, key)
    assert status == 413, answer
    ahead = datetime.now(UTC) + timedelta(seconds=limits["timestamp_max_future_seconds"] + 60)
    status, answer = org.collect({**one, "timestamp": ahead.isoformat()}, key)
    assert status == 400 and set(answer["error"]["details"]) == {"timestamp"}, answer
    status, answer = org.collect({**one, "agent_name": "a" * (limits["agent_name_max_length"] + 1)}, key)
    assert status == 400 and set(answer["error"]["details"]) == {"agent_name"}, answer
    assert read(org, "admin", "day")["totals"]["calls"] == len(org.sent)


def test_the_config_of_another_organization_is_404(org):
    for other in (org.other_org_id, "no-such-organization"):
        status, _, answer = http("GET", f"{org.server.url}/mcp/config/{other}", headers={"X-API-Key": org.key})
        assert status == 404, answer
        assert "organization_name" not in answer
    status, _, answer = http("GET", f"{org.server.url}/mcp/config/{org.org_id}")
    assert status == 401, answer


def test_a_late_execution_counts_and_a_sigterm_restart_loses_nothing_acknowledged(org):
    before = {who: read(org, who, "day") for who in ("admin", "bob")}  # reads of older days may be cached
    post_request(org, LATE.request, [LATE], {"X-API-Key": org.key})
    after = {who: read(org, who, "day") for who in ("admin", "bob")}
    assert after["admin"]["totals"]["calls"] == before["admin"]["totals"]["calls"] + 1
    assert_metrics(org, after["admin"], org.sent, "day")
    assert_metrics(org, after["bob"], mine(org, "bob"), "day")

    assert org.server.stop() == 0
    org.server = start_server(org.database)
    for aggregation in ("hour", "day"):  # the access tokens from before the restart still work
        assert_metrics(org, read(org, "admin", aggregation), org.sent, aggregation)
    assert_metrics(org, read(org, "bob", "day"), mine(org, "bob"), "day")
    assert read(org, "admin", "day")["totals"] == after["admin"]["totals"]
