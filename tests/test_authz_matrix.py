"""Who may call what on /api: every route of app.url_map against every kind of caller.

The table ROUTES declares, for each route, the status each identity gets. Path ids come
from Acme's data, so the outsider (admin of another organization) asks for ids that are
not theirs and must get 404. A route added to /api without a row here fails the tests.

API keys are callers too, sent as X-API-Key: Acme's read key and ingest key, and a read key
of the other organization. A read key reads the organization-wide metrics and analytics;
on every other route, as an ingest key everywhere on /api, a key is no credential: 401.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from flask import Flask

from tests.support import TEST_JWT_SECRET, Member, assert_api_error, seed_org, seeded_database
from weather_metrics import dashboards
from weather_metrics.accounts import organizations as accounts
from weather_metrics.alerts import rules as alerts
from weather_metrics.reports import jobs as reports
from weather_metrics.store.models import Dashboard, ReportJob, Team
from weather_metrics.web.api.alert_schemas import RuleCreateSchema
from weather_metrics.web.api.dashboard_schemas import DashboardCreateSchema

SIGNED_IN = ("admin", "manager", "developer", "outsider")
KEYS = ("read_key", "ingest_key", "outsider_key")
ANONYMOUS = ("no_token", "expired", "alg_none", "wrong_key", "refresh_as_access")
IDENTITIES = SIGNED_IN + KEYS + ANONYMOUS


@dataclass
class World:
    """Two seeded organizations on one app, and the means to mint tokens for a cell."""

    app: Flask
    secret: str
    acme: dict[str, Member]
    other: dict[str, Member]
    target: Any  # an Acme developer that none of the callers is
    key_secrets: dict[str, str]  # identity in KEYS: the secret of its API key
    counter: list[int] = field(default_factory=lambda: [0])
    acme_marks: list[str] = field(default_factory=list)  # agent names, metric types... only Acme's data holds

    def unique(self, stem: str) -> str:
        self.counter[0] += 1
        return f"{stem}-{self.counter[0]}-{uuid.uuid4().hex[:8]}"

    def session(self, user: Any) -> dict[str, Any]:
        """A fresh login session (no password hashing), so a logout in one cell spares the others."""
        with self.app.app_context():
            return self.app.extensions["weather_metrics"].tokens.start_session(user).as_dict()

    def admin_claims(self) -> dict[str, Any]:
        """The claims of a real, live access token of Acme's admin."""
        token = self.session(self.acme["admin"].user)["access_token"]
        return jwt.decode(token, self.secret, algorithms=["HS256"])

    def headers_for(self, identity: str) -> dict[str, str]:
        if identity == "no_token":
            return {}
        if identity in KEYS:
            return {"X-API-Key": self.key_secrets[identity]}
        if identity in ("admin", "manager", "developer"):
            token = self.session(self.acme[identity].user)["access_token"]
        elif identity == "outsider":
            token = self.session(self.other["admin"].user)["access_token"]
        elif identity == "refresh_as_access":
            token = self.session(self.acme["admin"].user)["refresh_token"]
        else:
            token = forge(identity, self.admin_claims(), self.secret)
        return {"Authorization": f"Bearer {token}"}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forge(kind: str, claims: dict[str, Any], secret: str) -> str:
    """A token that must be refused, built from otherwise valid claims."""
    now = int(time.time())
    if kind == "expired":
        return jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, secret, algorithm="HS256")
    if kind == "alg_none":
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    if kind == "wrong_key":
        return jwt.encode(claims, "not-the-service-secret-" + "k" * 48, algorithm="HS256")
    raise ValueError(kind)


@dataclass(frozen=True)
class People:
    """Who the seeded file holds: Acme, the other organization, Acme's target developer, the API keys' secrets."""

    acme: dict[str, Member]
    other: dict[str, Member]
    target: Any
    key_secrets: dict[str, str]


def seed_people(app: Flask) -> People:
    acme, other = seed_org(app, "Acme"), seed_org(app, "Other")
    with app.app_context():
        target, _ = accounts.create_user(
            acme["admin"].user.organization_id,
            "target@acme.test",
            "Target",
            "developer",
            app.extensions["weather_metrics"].passwords,
        )
    key_secrets = {}
    with app.app_context():
        for identity, members, scope in (
            ("read_key", acme, accounts.READ),
            ("ingest_key", acme, accounts.INGEST),
            ("outsider_key", other, accounts.READ),
        ):
            admin = members["admin"].user
            _key, key_secrets[identity] = accounts.create_api_key(admin.organization_id, identity, admin.id, scope)
    return People(acme, other, target, key_secrets)


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, People]:
    """The people, written once for the module (their passwords hashed once); each test has a copy (`app`)."""
    path = tmp_path_factory.mktemp("authz") / "metrics.db"
    return path, seeded_database(path, seed_people)


@pytest.fixture
def app(service: Callable[..., Flask]) -> Flask:
    return service()


@pytest.fixture
def people(seeded_db: tuple[Path, People]) -> People:
    return copy.deepcopy(seeded_db[1])


def build_world(app: Flask, people: People) -> World:
    """The app's World: the seeded people, and metrics and a dashboard of Acme that only Acme's data holds."""
    acme, other, target, key_secrets = people.acme, people.other, people.target, people.key_secrets
    world = World(app, TEST_JWT_SECRET, acme, other, target, key_secrets)
    seed_acme_data(world)
    return world


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _execution(world: World, **fields: Any) -> dict[str, Any]:
    return {
        "agent_name": world.unique("agent"),
        "command": "run",
        "execution_time_ms": 120,
        "success": True,
        "timestamp": _timestamp(),
        **fields,
    }


def _productivity(world: World, **fields: Any) -> dict[str, Any]:
    return {"type": "commits", "value": 3, "timestamp": _timestamp(), **fields}


def _org_dashboard(world: World, name: str) -> str:
    """An organization dashboard of Acme, made by Acme's admin, with one widget."""
    widget = {"id": "w1", "type": "line", "metric": "agents.calls", "position": {"x": 0, "y": 0, "w": 6, "h": 4}}
    data = DashboardCreateSchema().load({"name": name, "scope": "organization", "layout": [widget]})
    with world.app.app_context():
        return str(dashboards.create_dashboard(world.acme["admin"].user, data).id)


def seed_acme_data(world: World) -> None:
    """Metrics and a dashboard of Acme whose names appear nowhere else: the outsider must never see them."""
    agent, kind, board = world.unique("acme-agent"), "acme_only_" + uuid.uuid4().hex[:12], world.unique("acme-board")
    team = _team(world)
    with world.app.app_context():  # a metric tagged with a team counts for it only from its members
        accounts.add_member(accounts.find_team(_org(world), team), world.target, "member")
    client, headers = world.app.test_client(), world.headers_for("admin")
    for path, item in (
        ("/api/metrics/agents", _execution(world, agent_name=agent, user_id=world.target.id)),
        ("/api/metrics/productivity", _productivity(world, type=kind, user_id=world.target.id, team_id=team)),
    ):
        response = client.post(path, json=[item], headers=headers)
        assert response.status_code == 201, response.get_data(as_text=True)
    _org_dashboard(world, board)
    world.acme_marks.extend([agent, kind, board])


# What a cell needs before its request: path parameters (Acme's ids) and a JSON body.
Prepare = Callable[[World], tuple[dict[str, str], dict[str, Any] | None]]


def _org(world: World) -> str:
    return str(world.acme["admin"].user.organization_id)


def _team(world: World) -> str:
    with world.app.app_context():
        return str(accounts.create_team(_org(world), world.unique("team"), "").id)


def _led_team(world: World) -> str:
    """A fresh Acme team that Acme's manager leads (managers change only teams they lead)."""
    with world.app.app_context():
        return str(accounts.create_team(_org(world), world.unique("team"), "", world.acme["manager"].user).id)


def nothing(world: World) -> tuple[dict[str, str], None]:
    return {}, None


def login_body(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    admin = world.acme["admin"]
    return {}, {"email": admin.user.email, "password": admin.password}


def refresh_body(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"refresh_token": world.session(world.acme["admin"].user)["refresh_token"]}


def new_user(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"email": world.unique("user") + "@example.test", "name": "New", "role": "developer"}


def target_user(world: World) -> tuple[dict[str, str], None]:
    return {"user_id": world.target.id}, None


def rename_target(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {"user_id": world.target.id}, {"name": world.unique("name")}


def new_team(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"name": world.unique("team"), "description": "made by the matrix"}


def fresh_team(world: World) -> tuple[dict[str, str], None]:
    return {"team_id": _led_team(world)}, None


def fresh_team_new_member(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {"team_id": _led_team(world)}, {"user_id": world.target.id, "role": "member"}


def fresh_membership(world: World) -> tuple[dict[str, str], None]:
    team_id = _led_team(world)
    with world.app.app_context():
        accounts.add_member(accounts.find_team(_org(world), team_id), world.target, "member")
    return {"team_id": team_id, "user_id": world.target.id}, None


def new_key(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"name": world.unique("key")}


def fresh_key(world: World) -> tuple[dict[str, str], None]:
    with world.app.app_context():
        key, _ = accounts.create_api_key(_org(world), world.unique("key"), world.acme["admin"].user.id)
    return {"key_id": key.id}, None


def own_execution(world: World) -> tuple[dict[str, str], list[dict[str, Any]]]:
    return {}, [_execution(world)]


def execution_for_target(world: World) -> tuple[dict[str, str], list[dict[str, Any]]]:
    return {}, [_execution(world, user_id=world.target.id)]


def own_productivity(world: World) -> tuple[dict[str, str], list[dict[str, Any]]]:
    return {}, [_productivity(world)]


def productivity_for_target(world: World) -> tuple[dict[str, str], list[dict[str, Any]]]:
    return {}, [_productivity(world, user_id=world.target.id)]


def rename_org(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"name": world.unique("org")}


def new_dashboard(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"name": world.unique("board")}


def new_org_dashboard(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"name": world.unique("board"), "scope": "organization"}


def fresh_dashboard(world: World) -> tuple[dict[str, str], None]:
    return {"dashboard_id": _org_dashboard(world, world.unique("board"))}, None


def rename_fresh_dashboard(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {"dashboard_id": _org_dashboard(world, world.unique("board"))}, {"name": world.unique("board")}


def acme_teams(world: World) -> tuple[dict[str, str], None]:
    return {"team_ids": _team(world)}, None


def acme_team(world: World) -> tuple[dict[str, str], None]:
    return {"team_id": _team(world)}, None


def own_export(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, {"format": "csv", "report_type": "productivity"}


def _admin_job(world: World, done: bool) -> str:
    """An export job of Acme's admin; with done, built by the app's runner before the request."""
    state = world.app.extensions["weather_metrics"]
    with world.app.app_context():
        job = reports.create_job(world.acme["admin"].user, "productivity", "csv", {}, datetime.now(UTC), 3600)
        deadline = time.monotonic() + 30
        while done and ReportJob.get_by_id(job.id).status != "done":
            assert time.monotonic() < deadline, "the export job did not finish"
            if not state.reports.run_once(datetime.now(UTC)):
                time.sleep(0.02)  # a runner thread is building it
    return str(job.id)


def admin_job(world: World) -> tuple[dict[str, str], None]:
    return {"job_id": _admin_job(world, done=False)}, None


def done_admin_job(world: World) -> tuple[dict[str, str], None]:
    return {"job_id": _admin_job(world, done=True)}, None


def _rule_body(world: World, scope: dict[str, str]) -> dict[str, Any]:
    return {
        "name": world.unique("rule"),
        "metric": "error_rate",
        "scope": scope,
        "comparison": "gt",
        "threshold": 50,
        "window_minutes": 10,
        "severity": "high",
        "cooldown_minutes": 0,
    }


def _acme_rule(world: World, scope: dict[str, str]) -> str:
    """An alert rule of Acme, made by Acme's admin."""
    data = RuleCreateSchema().load(_rule_body(world, scope))
    with world.app.app_context():
        return str(alerts.create_rule(world.acme["admin"].user, data, int(time.time())).id)


def new_org_rule(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {}, _rule_body(world, {"type": "organization"})


def new_team_rule(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    """A rule of an Acme team nobody calling is in."""
    return {}, _rule_body(world, {"type": "team", "id": _team(world)})


def fresh_rule(world: World) -> tuple[dict[str, str], None]:
    return {"rule_id": _acme_rule(world, {"type": "organization"})}, None


def rename_fresh_rule(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return {"rule_id": _acme_rule(world, {"type": "organization"})}, {"name": world.unique("rule")}


def managed_team_rule(world: World) -> tuple[dict[str, str], None]:
    """A rule of a fresh Acme team whose member Acme's manager is."""
    team_id = _team(world)
    with world.app.app_context():
        accounts.add_member(accounts.find_team(_org(world), team_id), world.acme["manager"].user, "lead")
    return {"rule_id": _acme_rule(world, {"type": "team", "id": team_id})}, None


def rename_managed_team_rule(world: World) -> tuple[dict[str, str], dict[str, Any]]:
    return managed_team_rule(world)[0], {"name": world.unique("rule")}


@dataclass(frozen=True)
class Row:
    admin: int
    manager: int
    developer: int
    outsider: int
    read_key: int
    ingest_key: int
    outsider_key: int
    prepare: Prepare = nothing
    anonymous: int = 401  # no token, expired token and each forged token
    query: tuple[str, ...] = ()  # prepared values sent as the query string rather than in the path

    @classmethod
    def everyone(cls, status: int, prepare: Prepare) -> Row:
        """A route whose body is the credential (login, refresh): every caller gets `status`."""
        return cls(*[status] * (len(SIGNED_IN) + len(KEYS)), prepare, anonymous=status)

    def expected(self, identity: str) -> int:
        return self.anonymous if identity in ANONYMOUS else int(getattr(self, identity))


# fmt: off
# Columns: admin manager developer outsider, then the keys: Acme's read key, Acme's ingest key, the outsider's read key.
ROUTES: dict[tuple[str, str], Row] = {
    #                                                   admin manager developer outsider read ingest outsider's read
    ("POST", "/api/auth/login"):                         Row.everyone(200, login_body),
    ("POST", "/api/auth/refresh"):                       Row.everyone(200, refresh_body),
    ("POST", "/api/auth/logout"):                        Row(204, 204, 204, 204, 401, 401, 401),
    ("GET", "/api/users"):                               Row(200, 200, 200, 200, 401, 401, 401),
    ("POST", "/api/users"):                              Row(201, 403, 403, 201, 401, 401, 401, new_user),
    ("GET", "/api/users/<user_id>"):                     Row(200, 200, 403, 404, 401, 401, 401, target_user),
    ("PUT", "/api/users/<user_id>"):                     Row(200, 403, 403, 404, 401, 401, 401, rename_target),
    ("GET", "/api/teams"):                               Row(200, 200, 200, 200, 401, 401, 401),
    ("POST", "/api/teams"):                              Row(201, 201, 403, 201, 401, 401, 401, new_team),
    ("DELETE", "/api/teams/<team_id>"):                  Row(204, 204, 403, 404, 401, 401, 401, fresh_team),
    ("POST", "/api/teams/<team_id>/members"):            Row(201, 201, 403, 404, 401, 401, 401, fresh_team_new_member),
    ("DELETE", "/api/teams/<team_id>/members/<user_id>"): Row(204, 204, 403, 404, 401, 401, 401, fresh_membership),
    ("GET", "/api/keys"):                                Row(200, 403, 403, 200, 401, 401, 401),
    ("POST", "/api/keys"):                               Row(201, 403, 403, 201, 401, 401, 401, new_key),
    ("DELETE", "/api/keys/<key_id>"):                    Row(204, 403, 403, 404, 401, 401, 401, fresh_key),
    ("GET", "/api/metrics/agents"):                      Row(200, 200, 200, 200, 200, 401, 200),
    ("POST", "/api/metrics/agents"):                     Row(201, 201, 201, 201, 401, 401, 401, own_execution),
    ("GET", "/api/metrics/productivity"):                Row(200, 200, 200, 200, 200, 401, 200),
    ("POST", "/api/metrics/productivity"):               Row(201, 201, 201, 201, 401, 401, 401, own_productivity),
    ("GET", "/api/organization"):                        Row(200, 200, 200, 200, 401, 401, 401),
    ("PUT", "/api/organization"):                        Row(200, 403, 403, 200, 401, 401, 401, rename_org),
    ("GET", "/api/dashboards"):                          Row(200, 200, 200, 200, 401, 401, 401),
    ("POST", "/api/dashboards"):                         Row(201, 201, 201, 201, 401, 401, 401, new_dashboard),
    ("GET", "/api/dashboards/<dashboard_id>"):           Row(200, 200, 200, 404, 401, 401, 401, fresh_dashboard),
    ("PUT", "/api/dashboards/<dashboard_id>"):           Row(200, 403, 403, 404, 401, 401, 401, rename_fresh_dashboard),
    ("DELETE", "/api/dashboards/<dashboard_id>"):        Row(204, 403, 403, 404, 401, 401, 401, fresh_dashboard),
    ("GET", "/api/dashboards/<dashboard_id>/data"):      Row(200, 200, 200, 404, 401, 401, 401, fresh_dashboard),
    ("GET", "/api/analytics/productivity-trends"):       Row(200, 200, 200, 200, 200, 401, 200),
    # A manager without a team compares no teams: 200 with an empty list ("default: your teams").
    ("GET", "/api/analytics/team-comparison"):           Row(200, 200, 403, 200, 200, 401, 200),
    ("POST", "/api/reports/export"):                     Row(202, 202, 202, 202, 401, 401, 401, own_export),
    # Jobs are their requester's; the organization's admins may see them too, others get 404.
    ("GET", "/api/reports/<job_id>"):                    Row(200, 404, 404, 404, 401, 401, 401, admin_job),
    ("GET", "/api/reports/<job_id>/download"):           Row(200, 404, 404, 404, 401, 401, 401, done_admin_job),
    # Alert rules: admins and managers; a manager's are those of their teams, others are not found.
    ("POST", "/api/ws/ticket"):                          Row(201, 201, 201, 201, 401, 401, 401),
    ("GET", "/api/alerts/rules"):                        Row(200, 200, 403, 200, 401, 401, 401),
    ("POST", "/api/alerts/rules"):                       Row(201, 403, 403, 201, 401, 401, 401, new_org_rule),
    ("GET", "/api/alerts/rules/<rule_id>"):              Row(200, 404, 403, 404, 401, 401, 401, fresh_rule),
    ("PUT", "/api/alerts/rules/<rule_id>"):              Row(200, 404, 403, 404, 401, 401, 401, rename_fresh_rule),
    ("DELETE", "/api/alerts/rules/<rule_id>"):           Row(204, 404, 403, 404, 401, 401, 401, fresh_rule),
    ("GET", "/api/alerts"):                              Row(200, 200, 403, 200, 401, 401, 401),
}

# Further cells of a route already in ROUTES: the same request with a query or body that names
# someone else's data (the Acme target developer, or an Acme team none of the callers is in).
EXTRA_CELLS: dict[tuple[str, str, str], Row] = {
    #       admin manager developer outsider read ingest outsider's read
    ("GET", "/api/metrics/agents", "user_id=target"):
        Row(200, 403, 403, 404, 200, 401, 404, target_user, query=("user_id",)),
    ("GET", "/api/metrics/productivity", "user_id=target"):
        Row(200, 403, 403, 404, 200, 401, 404, target_user, query=("user_id",)),
    ("POST", "/api/metrics/agents", "for target"):
        Row(201, 403, 403, 400, 401, 401, 401, execution_for_target),
    ("POST", "/api/metrics/productivity", "for target"):
        Row(201, 403, 403, 400, 401, 401, 401, productivity_for_target),
    ("POST", "/api/dashboards", "org scope"):
        Row(201, 403, 403, 201, 401, 401, 401, new_org_dashboard),
    ("GET", "/api/analytics/team-comparison", "team_ids"):
        Row(200, 403, 403, 404, 200, 401, 404, acme_teams, query=("team_ids",)),
    ("GET", "/api/analytics/productivity-trends", "team_id"):
        Row(200, 403, 403, 404, 200, 401, 404, acme_team, query=("team_id",)),
    ("POST", "/api/alerts/rules", "team outside yours"):
        Row(201, 403, 403, 404, 401, 401, 401, new_team_rule),
    ("GET", "/api/alerts/rules/<rule_id>", "your team's"):
        Row(200, 200, 403, 404, 401, 401, 401, managed_team_rule),
    ("PUT", "/api/alerts/rules/<rule_id>", "your team's"):
        Row(200, 200, 403, 404, 401, 401, 401, rename_managed_team_rule),
    ("DELETE", "/api/alerts/rules/<rule_id>", "your team's"):
        Row(204, 204, 403, 404, 401, 401, 401, managed_team_rule),
}
# fmt: on

PLACEHOLDER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def api_routes(app: Flask) -> list[tuple[str, str]]:
    """Every (method, rule) the app serves under /api/, HEAD and OPTIONS aside."""
    found = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    return sorted(found)


def fill(rule: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], rule)


def acme_fingerprints(world: World) -> list[str]:
    """Strings that only Acme's data contains: none may reach the outsider."""
    people = [member.user for member in world.acme.values()] + [world.target]
    with world.app.app_context():  # every team and dashboard of Acme, also those the cells made
        teams = [(t.id, t.name) for t in Team.select().where(Team.organization == _org(world))]
        boards = [(d.id, d.name) for d in Dashboard.select().where(Dashboard.organization == _org(world))]
    named = [text for pair in teams + boards for text in pair]
    return [_org(world)] + [u.id for u in people] + [u.email for u in people] + named + world.acme_marks


def run_cell(world: World, identity: str, method: str, rule: str, row: Row) -> str | None:
    """One request; a description of what went wrong, or None."""
    values, body = row.prepare(world)
    path = fill(rule, values)
    if row.query:
        path += "?" + urlencode({name: values[name] for name in row.query})
    headers = world.headers_for(identity)
    response = world.app.test_client().open(path, method=method, headers=headers, json=body)
    want = row.expected(identity)
    where = f"{identity:>17} {method} {rule}" + (f" ?{','.join(row.query)}" if row.query else "")
    if response.status_code != want:
        return f"{where}: expected {want}, got {response.status_code} {response.get_data(as_text=True)[:200]}"
    if not response.headers.get("X-Request-ID"):
        return f"{where}: no X-Request-ID header"
    if want >= 300:
        try:
            assert_api_error(response, want)
        except AssertionError as exc:
            return f"{where}: error body: {exc}"
    elif identity in ("outsider", "outsider_key") and row.anonymous == 401:  # a route that acts for its caller
        text = response.get_data(as_text=True)
        leaked = [s for s in acme_fingerprints(world) if s in text]
        if leaked:
            return f"{where}: the outsider saw Acme's data {leaked}"
    return None


def test_the_table_covers_every_api_route_and_nothing_else(app):
    served = set(api_routes(app))
    assert served, "no /api routes found: is the blueprint registered?"
    missing = sorted(served - set(ROUTES))
    stale = sorted(set(ROUTES) - served)
    assert not missing, f"add a row to ROUTES for each new /api route: {missing}"
    assert not stale, f"rows in ROUTES for routes that no longer exist: {stale}"
    orphans = sorted(key for key in EXTRA_CELLS if key[:2] not in served)
    assert not orphans, f"EXTRA_CELLS for routes that no longer exist: {orphans}"


@pytest.mark.parametrize("identity", IDENTITIES)
def test_authorization_matrix(app, people, identity):
    world = build_world(app, people)
    problems = []
    for method, rule in api_routes(app):
        row = ROUTES.get((method, rule))
        if row is None:
            problems.append(f"{method} {rule}: no row in ROUTES")
            continue
        problem = run_cell(world, identity, method, rule, row)
        if problem:
            problems.append(problem)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("identity", IDENTITIES)
def test_extra_cells(app, people, identity):
    world = build_world(app, people)
    problems = []
    for (method, rule, label), row in EXTRA_CELLS.items():
        problem = run_cell(world, identity, method, rule, row)
        if problem:
            problems.append(f"{problem} [{label}]")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("identity", ["admin", "read_key"])
def test_acme_data_is_there_for_the_fingerprints_to_catch(app, people, identity):
    """Control for the outsiders' leak check: Acme's own admin, and Acme's read key, see each marked string."""
    world = build_world(app, people)
    client, headers = app.test_client(), world.headers_for(identity)
    agent, kind, board = world.acme_marks
    seen = {
        agent: client.get("/api/metrics/agents", headers=headers),
        kind: client.get("/api/metrics/productivity", headers=headers),
    }
    if identity == "admin":  # a read key reads metrics and analytics only
        seen[board] = client.get("/api/dashboards", headers=headers)
    for mark, response in seen.items():
        assert response.status_code == 200
        assert mark in response.get_data(as_text=True), mark
    trends = client.get("/api/analytics/productivity-trends", headers=headers).get_data(as_text=True)
    assert kind in trends
    teams = client.get("/api/analytics/team-comparison", headers=headers).get_data(as_text=True)
    assert any(s in teams for s in acme_fingerprints(world) if s.startswith("team-"))


def test_crafted_tokens_differ_from_a_valid_one_only_in_their_defect(app, people):
    """Control for the forged cells: the same claims, signed properly and unexpired, are accepted."""
    world = build_world(app, people)
    claims = world.admin_claims()
    now = int(time.time())
    valid = jwt.encode({**claims, "iat": now, "exp": now + 600}, world.secret, algorithm="HS256")
    response = app.test_client().get("/api/users", headers={"Authorization": f"Bearer {valid}"})
    assert response.status_code == 200
    assert response.get_json()["pagination"]["total"] == 4  # Acme's admin sees all of Acme


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Basic YWRtaW46cGFzcw==", "Token {token}", "{token}", "Bearer not.a.jwt"],
)
def test_malformed_authorization_headers_get_401(app, people, header):
    world = build_world(app, people)
    token = world.session(world.acme["admin"].user)["access_token"]
    response = app.test_client().get("/api/users", headers={"Authorization": header.format(token=token)})
    assert_api_error(response, 401)


def test_the_bearer_scheme_is_case_insensitive(app, people):
    # RFC 7235: the authentication scheme is case-insensitive.
    world = build_world(app, people)
    token = world.session(world.acme["admin"].user)["access_token"]
    response = app.test_client().get("/api/users", headers={"Authorization": f"bearer {token}"})
    assert response.status_code == 200


def test_a_token_missing_a_required_claim_gets_401(app, people):
    world = build_world(app, people)
    claims = world.admin_claims()
    for name in ("sub", "org", "role", "exp", "iat", "jti", "sid", "typ"):
        partial = {k: v for k, v in claims.items() if k != name}
        token = jwt.encode(partial, world.secret, algorithm="HS256")
        response = app.test_client().get("/api/users", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert_api_error(response, 401)


def test_a_logged_out_access_token_stops_working_at_once(app, people):
    world = build_world(app, people)
    client = app.test_client()
    headers = world.headers_for("admin")
    assert client.get("/api/users", headers=headers).status_code == 200
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert_api_error(client.get("/api/users", headers=headers), 401)


def test_a_manager_cannot_widen_their_scope_through_team_membership(app, people):
    """Joining another team, adding an admin to one, or changing a team they do not lead: each 403, and the
    admin's data stays out of reach."""
    world = build_world(app, people)
    client = world.app.test_client()
    manager, admin = world.acme["manager"], world.acme["admin"]
    theirs = _team(world)  # a team the manager does not lead
    led = _led_team(world)
    attempts = [
        ("POST", f"/api/teams/{theirs}/members", {"user_id": manager.user.id, "role": "member"}),
        ("POST", f"/api/teams/{theirs}/members", {"user_id": world.target.id, "role": "member"}),
        ("POST", f"/api/teams/{led}/members", {"user_id": admin.user.id, "role": "member"}),
        ("POST", f"/api/teams/{led}/members", {"user_id": manager.user.id, "role": "lead"}),
        ("DELETE", f"/api/teams/{led}/members/{manager.user.id}", None),
        ("DELETE", f"/api/teams/{theirs}", None),
    ]
    for method, path, body in attempts:
        answer = client.open(path, method=method, json=body, headers=manager.headers)
        assert answer.status_code == 403, (method, path, body, answer.get_json())
    assert client.get(f"/api/metrics/agents?user_id={admin.user.id}", headers=manager.headers).status_code == 403
    posted = client.post(
        "/api/metrics/productivity",
        json={"type": "commits", "value": 1, "user_id": admin.user.id, "timestamp": execution_time()},
        headers=manager.headers,
    )
    assert posted.status_code == 403, posted.get_json()
    created = client.post("/api/teams", json={"name": world.unique("team")}, headers=manager.headers)
    assert created.status_code == 201 and [(m["user_id"], m["role"]) for m in created.get_json()["members"]] == [
        (manager.user.id, "lead")
    ]


def execution_time() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
