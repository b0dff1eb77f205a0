"""/api/dashboards: CRUD, who may see and change which scope, defaults, widget rules, widget data."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import KEEP_HISTORY, assert_api_error, seed_org
from weather_metrics.accounts import organizations as accounts
from weather_metrics.store.agents import AGENTS, agent_row
from weather_metrics.store.batches import PendingBatch, write_batches
from weather_metrics.store.productivity import PRODUCTIVITY, productivity_row


@pytest.fixture
def app(service):  # type: ignore[no-untyped-def]
    """A copy of the shared seeded database (conftest's seeded_db), keeping data of past dates."""
    return service(**KEEP_HISTORY)


@pytest.fixture
def other(globex):
    """The other organization's members (seeded with Acme)."""
    return globex


@pytest.fixture
def teams(app, acme) -> dict[str, str]:
    """Core has the manager and the developer; Ops has nobody."""
    org_id = acme["admin"].user.organization_id
    with app.app_context():
        core = accounts.create_team(org_id, "Core", "")
        ops = accounts.create_team(org_id, "Ops", "")
        accounts.add_member(core, acme["manager"].user, "lead")
        accounts.add_member(core, acme["developer"].user, "member")
    return {"core": core.id, "ops": ops.id}


def widget(wid: str = "w1", metric: str = "agents.calls", **extra: Any) -> dict[str, Any]:
    return {"id": wid, "type": "number", "metric": metric, "position": {"x": 0, "y": 0, "w": 6, "h": 4}, **extra}


def create(client, member, **body: Any):
    return client.post("/api/dashboards", headers=member.headers, json={"name": "Board", **body})


def make(client, member, **body: Any) -> dict[str, Any]:
    response = create(client, member, **body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def names(client, member, query: str = "") -> list[str]:
    response = client.get(f"/api/dashboards{query}", headers=member.headers)
    assert response.status_code == 200, response.get_json()
    return sorted(d["name"] for d in response.get_json()["dashboards"])


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def record_executions(app, member, executions: list[tuple[str, float, bool]]) -> None:
    """Store (agent_name, duration_ms, success) executions of `member`, an hour ago."""
    user = member.user
    rows = [
        agent_row(
            user.organization_id,
            "batch-" + uuid.uuid4().hex,
            int(time.time()),
            {"agent_name": agent, "command": "run", "execution_time_ms": ms, "success": ok, "timestamp": ago(hours=1)},
            user.id,
        )
        for agent, ms, ok in executions
    ]
    with app.app_context():
        write_batches([PendingBatch(rows=rows, response={}, kind=AGENTS)])


def record_productivity(app, member, kind: str, values: list[float]) -> None:
    user = member.user
    items = [{"timestamp": ago(hours=2), "type": kind, "value": v, "user_id": user.id} for v in values]
    rows = [productivity_row(user.organization_id, "batch-" + uuid.uuid4().hex, int(time.time()), i) for i in items]
    with app.app_context():
        write_batches([PendingBatch(rows=rows, response={}, kind=PRODUCTIVITY)])


# --- CRUD ----------------------------------------------------------------------------


def test_crud_round_trip(client, acme):
    dev = acme["developer"]
    body = {
        "name": "Mine",
        "description": "What I watch",
        "layout": [widget("calls"), widget("rate", "agents.success_rate", title="Success", filters={"range": "30d"})],
        "filters": {"agent_name": "reviewer", "aggregation": "week"},
    }
    created = make(client, dev, **body)
    assert created["scope"] == "user" and created["team_id"] is None and created["is_default"] is False
    assert created["owner_id"] == dev.user.id
    assert created["layout"][1] == {**body["layout"][1], "title": "Success"}
    assert created["layout"][0]["filters"] == {} and created["layout"][0]["title"] == ""
    assert created["filters"] == body["filters"]
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None

    url = f"/api/dashboards/{created['id']}"
    assert client.get(url, headers=dev.headers).get_json() == created
    assert names(client, dev) == ["Mine"]

    changed = client.put(url, headers=dev.headers, json={"name": "Renamed", "layout": [widget("only")]})
    assert changed.status_code == 200, changed.get_json()
    updated = changed.get_json()
    assert updated["name"] == "Renamed" and [w["id"] for w in updated["layout"]] == ["only"]
    assert updated["description"] == "What I watch" and updated["filters"] == body["filters"]
    assert client.get(url, headers=dev.headers).get_json() == updated

    assert client.delete(url, headers=dev.headers).status_code == 204
    assert_api_error(client.get(url, headers=dev.headers), 404)
    assert_api_error(client.delete(url, headers=dev.headers), 404)
    assert names(client, dev) == []


def test_needs_a_token(client, acme):
    assert_api_error(client.get("/api/dashboards"), 401)
    assert_api_error(client.post("/api/dashboards", json={"name": "x"}), 401)


# --- who may create which scope --------------------------------------------------------

CREATE_RULES = [
    ("admin", "user", None, 201),
    ("manager", "user", None, 201),
    ("developer", "user", None, 201),
    ("admin", "team", "core", 201),
    ("admin", "team", "ops", 201),
    ("manager", "team", "core", 201),
    ("manager", "team", "ops", 403),  # a manager outside the team
    ("developer", "team", "core", 403),  # a member, but not a manager
    ("admin", "organization", None, 201),
    ("manager", "organization", None, 403),
    ("developer", "organization", None, 403),
]


@pytest.mark.parametrize(("role", "scope", "team", "status"), CREATE_RULES)
def test_create_permissions(client, acme, teams, role, scope, team, status):
    body: dict[str, Any] = {"scope": scope, **({"team_id": teams[team]} if team else {})}
    response = create(client, acme[role], **body)
    if status == 201:
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["team_id"] == (teams[team] if team else None)
    else:
        assert_api_error(response, status)


def test_team_id_must_fit_the_scope(client, acme, other, teams):
    admin = acme["admin"]
    assert assert_api_error(create(client, admin, scope="team"), 400)["details"] == {
        "team_id": "Required when scope is team"
    }
    assert "team_id" in assert_api_error(create(client, admin, scope="team", team_id=None), 400)["details"]
    assert "team_id" in assert_api_error(create(client, admin, scope="user", team_id=teams["core"]), 400)["details"]
    assert_api_error(create(client, admin, scope="team", team_id="no-such-team"), 404)
    # Another organization's admin cannot aim at Acme's team, and Acme cannot aim at theirs.
    assert_api_error(create(client, other["admin"], scope="team", team_id=teams["core"]), 404)


# --- who sees what ---------------------------------------------------------------------


@pytest.fixture
def boards(client, acme, teams) -> dict[str, dict[str, Any]]:
    """One dashboard of every kind in Acme, named by who can see it."""
    admin, manager, dev = acme["admin"], acme["manager"], acme["developer"]
    return {
        "admin-own": make(client, admin, name="admin-own"),
        "manager-own": make(client, manager, name="manager-own"),
        "dev-own": make(client, dev, name="dev-own"),
        "core": make(client, manager, name="core", scope="team", team_id=teams["core"]),
        "ops": make(client, admin, name="ops", scope="team", team_id=teams["ops"]),
        "org": make(client, admin, name="org", scope="organization"),
    }


def test_list_shows_what_each_role_may_see(client, acme, other, boards):
    assert names(client, acme["admin"]) == ["admin-own", "core", "ops", "org"]
    assert names(client, acme["manager"]) == ["core", "manager-own", "org"]
    assert names(client, acme["developer"]) == ["core", "dev-own", "org"]
    assert names(client, other["admin"]) == []
    assert names(client, acme["admin"], "?scope=team") == ["core", "ops"]
    assert names(client, acme["developer"], "?scope=user") == ["dev-own"]


def test_get_hides_what_the_caller_cannot_see(client, acme, boards):
    dev = acme["developer"]
    for name in ("manager-own", "admin-own", "ops"):
        assert_api_error(client.get(f"/api/dashboards/{boards[name]['id']}", headers=dev.headers), 404)
    for name in ("dev-own", "core", "org"):
        assert client.get(f"/api/dashboards/{boards[name]['id']}", headers=dev.headers).status_code == 200
    assert_api_error(client.get(f"/api/dashboards/{boards['ops']['id']}", headers=acme["manager"].headers), 404)


EDIT_RULES = [
    ("developer", "org", 403),
    ("developer", "core", 403),
    ("developer", "ops", 404),
    ("developer", "manager-own", 404),
    ("manager", "org", 403),
    ("manager", "core", 200),
    ("manager", "ops", 404),
    ("admin", "manager-own", 404),  # personal dashboards are their owner's alone
    ("admin", "core", 200),
    ("admin", "org", 200),
]


@pytest.mark.parametrize(("role", "board", "status"), EDIT_RULES)
def test_update_and_delete_permissions(client, acme, boards, role, board, status):
    url = f"/api/dashboards/{boards[board]['id']}"
    headers = acme[role].headers
    response = client.put(url, headers=headers, json={"description": "changed"})
    deleted = client.delete(url, headers=headers)
    if status == 200:
        assert response.status_code == 200 and response.get_json()["description"] == "changed"
        assert deleted.status_code == 204
    else:
        assert_api_error(response, status)
        assert_api_error(deleted, status)
        owner = acme["manager" if board == "manager-own" else "admin"]
        assert client.get(url, headers=owner.headers).json["description"] == ""


def test_other_organizations_admin_gets_404_everywhere(client, acme, other, boards):
    headers = other["admin"].headers
    for board in boards.values():
        url = f"/api/dashboards/{board['id']}"
        assert_api_error(client.get(url, headers=headers), 404)
        assert_api_error(client.get(url + "/data", headers=headers), 404)
        assert_api_error(client.put(url, headers=headers, json={"name": "mine now"}), 404)
        assert_api_error(client.delete(url, headers=headers), 404)
    assert client.get(f"/api/dashboards/{boards['org']['id']}", headers=acme["developer"].headers).json["name"] == "org"


def test_scope_changes_are_checked_as_new_dashboards(client, acme, other, teams, boards):
    manager, admin = acme["manager"], acme["admin"]
    core_url = f"/api/dashboards/{boards['core']['id']}"
    assert_api_error(client.put(core_url, headers=manager.headers, json={"scope": "organization"}), 403)
    assert_api_error(client.put(core_url, headers=manager.headers, json={"team_id": teams["ops"]}), 403)
    # The board belongs to the manager, so the admin cannot make it their personal one.
    assert_api_error(client.put(core_url, headers=admin.headers, json={"scope": "user"}), 403)
    moved = client.put(core_url, headers=admin.headers, json={"scope": "organization"})
    assert moved.status_code == 200 and moved.json["scope"] == "organization" and moved.json["team_id"] is None

    own_url = f"/api/dashboards/{boards['manager-own']['id']}"
    to_team = client.put(own_url, headers=manager.headers, json={"scope": "team"})
    assert "team_id" in assert_api_error(to_team, 400)["details"]
    assert_api_error(client.put(own_url, headers=manager.headers, json={"team_id": teams["core"]}), 400)
    assert_api_error(client.put(own_url, headers=manager.headers, json={"scope": "team", "team_id": "nope"}), 404)
    other_team = client.post("/api/teams", headers=other["admin"].headers, json={"name": "Theirs"}).json["id"]
    assert_api_error(client.put(own_url, headers=manager.headers, json={"scope": "team", "team_id": other_team}), 404)
    shared = client.put(own_url, headers=manager.headers, json={"scope": "team", "team_id": teams["core"]})
    assert shared.status_code == 200 and shared.json["team_id"] == teams["core"]
    assert "manager-own" in names(client, acme["developer"])


# --- one default per scope -------------------------------------------------------------


def defaults(client, member) -> list[str]:
    return names(client, member, "?default_only=true")


def test_one_default_per_scope(client, acme, teams):
    admin, manager, dev = acme["admin"], acme["manager"], acme["developer"]
    first = make(client, dev, name="dev-1", is_default=True)
    make(client, dev, name="dev-2", is_default=True)
    make(client, manager, name="mgr-1", is_default=True)
    make(client, manager, name="core-1", scope="team", team_id=teams["core"], is_default=True)
    make(client, admin, name="ops-1", scope="team", team_id=teams["ops"], is_default=True)
    make(client, admin, name="org-1", scope="organization", is_default=True)
    make(client, admin, name="org-2", scope="organization", is_default=True)
    assert defaults(client, dev) == ["core-1", "dev-2", "org-2"]
    assert defaults(client, manager) == ["core-1", "mgr-1", "org-2"]
    assert defaults(client, admin) == ["core-1", "ops-1", "org-2"]
    assert names(client, dev, "?default_only=0") == ["core-1", "dev-1", "dev-2", "org-1", "org-2"]

    again = client.put(f"/api/dashboards/{first['id']}", headers=dev.headers, json={"is_default": True})
    assert again.status_code == 200 and again.json["is_default"] is True
    assert defaults(client, dev) == ["core-1", "dev-1", "org-2"]
    assert defaults(client, manager) == ["core-1", "mgr-1", "org-2"]


def test_default_moving_to_another_scope_replaces_that_scopes_default(client, acme, teams):
    admin = acme["admin"]
    make(client, admin, name="org-default", scope="organization", is_default=True)
    core = make(client, admin, name="core-default", scope="team", team_id=teams["core"], is_default=True)
    moved = client.put(f"/api/dashboards/{core['id']}", headers=admin.headers, json={"scope": "organization"})
    assert moved.status_code == 200
    assert defaults(client, admin) == ["core-default"]


@pytest.mark.parametrize("query", ["?scope=everyone", "?default_only=maybe", "?default_only=TRUE", "?page=2"])
def test_list_rejects_bad_query(client, acme, query):
    error = assert_api_error(client.get(f"/api/dashboards{query}", headers=acme["admin"].headers), 400)
    assert error["details"]


# --- widgets and bad input ---------------------------------------------------------------


def at(x: int = 0, y: int = 0, w: int = 6, h: int = 4) -> dict[str, Any]:
    return {"x": x, "y": y, "w": w, "h": h}


BAD_BODIES = [
    ({"layout": [widget("a"), widget("b"), widget("c", "agents.bogus")]}, "layout.2.metric"),
    ({"layout": [widget(metric="productivity.never_sent")]}, "layout.0.metric"),
    ({"layout": [widget(metric="cpu.load")]}, "layout.0.metric"),
    ({"layout": [widget(metric="agents")]}, "layout.0.metric"),
    ({"layout": [widget(position=at(x=8, w=6))]}, "layout.0.position.w"),
    ({"layout": [widget(position=at(x=12, w=1))]}, "layout.0.position.x"),
    ({"layout": [widget(position=at(w=0))]}, "layout.0.position.w"),
    ({"layout": [widget(position=at(w=13))]}, "layout.0.position.w"),
    ({"layout": [widget(position=at(h=25))]}, "layout.0.position.h"),
    ({"layout": [widget(position=at(y=-1))]}, "layout.0.position.y"),
    ({"layout": [widget(position={**at(), "x": "1"})]}, "layout.0.position.x"),
    ({"layout": [widget(position={**at(), "x": 1.5})]}, "layout.0.position.x"),
    ({"layout": [widget(position={**at(), "x": True})]}, "layout.0.position.x"),
    ({"layout": [widget(position={"x": 0, "y": 0, "w": 6})]}, "layout.0.position.h"),
    ({"layout": [widget(position={**at(), "z": 1})]}, "layout.0.position.z"),
    ({"layout": [widget("same"), widget("other"), widget("same")]}, "layout.2.id"),
    ({"layout": [widget(str(i)) for i in range(51)]}, "layout"),
    ({"layout": [widget("")]}, "layout.0.id"),
    ({"layout": [widget("x" * 65)]}, "layout.0.id"),
    ({"layout": [widget(type="donut")]}, "layout.0.type"),
    ({"layout": [widget(title="t" * 101)]}, "layout.0.title"),
    ({"layout": [widget(colour="red")]}, "layout.0.colour"),
    ({"layout": [widget(filters={"colour": "red"})]}, "layout.0.filters.colour"),
    ({"layout": [widget(filters={"range": "1y"})]}, "layout.0.filters.range"),
    ({"layout": [widget(filters={"range": "7d", "start_date": "2025-01-01"})]}, "layout.0.filters.range"),
    ({"layout": [widget(filters={"success_only": "yes"})]}, "layout.0.filters.success_only"),
    ({"layout": [widget(filters=["range"])]}, "layout.0.filters"),
    ({"layout": [{"id": "w", "type": "bar"}]}, "layout.0.metric"),
    ({"layout": {"w": widget()}}, "layout"),
    ({"layout": ["not a widget"]}, "layout.0"),
    ({"filters": {"aggregation": "year"}}, "filters.aggregation"),
    ({"filters": {"start_date": "yesterday"}}, "filters.start_date"),
    ({"filters": {"user_id": 7}}, "filters.user_id"),
    ({"filters": "7d"}, "filters"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "n" * 101}, "name"),
    ({"name": 42}, "name"),
    ({"name": None}, "name"),
    ({"description": "d" * 501}, "description"),
    ({"scope": "world"}, "scope"),
    ({"is_default": "true"}, "is_default"),
    ({"is_default": 1}, "is_default"),
    ({"owner_id": "someone"}, "owner_id"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_bad_bodies_are_400_naming_the_field(client, acme, body, field):
    admin = acme["admin"]
    error = assert_api_error(create(client, admin, **body), 400)
    assert field in error["details"], error["details"]
    board = make(client, admin, name="fine")
    update = client.put(f"/api/dashboards/{board['id']}", headers=admin.headers, json=body)
    assert field in assert_api_error(update, 400)["details"]
    assert names(client, admin) == ["fine"]


def test_missing_name_and_unreadable_bodies(client, acme):
    headers = acme["developer"].headers
    assert "name" in assert_api_error(client.post("/api/dashboards", headers=headers, json={}), 400)["details"]
    for raw in (b"{", b"[]", b'"board"', b"null", b""):
        response = client.post("/api/dashboards", headers=headers, data=raw, content_type="application/json")
        assert_api_error(response, 400)
    oversized = {"name": "big", "description": "d" * 70_000}
    assert_api_error(client.post("/api/dashboards", headers=headers, json=oversized), 413)
    board = make(client, acme["developer"], name="fine")
    url = f"/api/dashboards/{board['id']}"
    assert_api_error(client.put(url, headers=headers, data=b"[1]", content_type="application/json"), 400)


def test_every_known_metric_is_accepted(client, app, acme):
    admin = acme["admin"]
    agents = ["calls", "successes", "failures", "success_rate", "avg_duration_ms"]
    agents += ["p50_duration_ms", "p95_duration_ms", "p99_duration_ms"]
    layout = [widget(f"a{i}", f"agents.{m}", position=at(y=i)) for i, m in enumerate(agents)]
    layout += [widget("p", "productivity.commits", position=at(x=6, w=6))]
    assert len(make(client, admin, layout=layout)["layout"]) == 9
    # A custom productivity type becomes a metric once the organization has sent data of it.
    custom = [widget(metric="productivity.story_points")]
    assert "layout.0.metric" in assert_api_error(create(client, admin, layout=custom), 400)["details"]
    record_productivity(app, acme["developer"], "story_points", [3])
    assert make(client, admin, layout=custom)["layout"][0]["metric"] == "productivity.story_points"
    assert len(make(client, admin, layout=[widget(str(i)) for i in range(50)])["layout"]) == 50


# --- widget data -------------------------------------------------------------------------

DEV_RUNS = [("reviewer", 100.0, True), ("reviewer", 300.0, False), ("writer", 200.0, True)]
MANAGER_RUNS = [("reviewer", 500.0, True)]
ADMIN_RUNS = [("writer", 1000.0, True)]


@pytest.fixture
def activity(app, acme, other):
    record_executions(app, acme["developer"], DEV_RUNS)
    record_executions(app, acme["manager"], MANAGER_RUNS)
    record_executions(app, acme["admin"], ADMIN_RUNS)
    record_executions(app, other["admin"], [("reviewer", 50.0, True)] * 7)  # never counted for Acme
    record_productivity(app, acme["developer"], "commits", [3, 5])
    record_productivity(app, acme["manager"], "commits", [10])


DATA_LAYOUT = [
    widget("calls", "agents.calls"),
    widget("rate", "agents.success_rate", type="line"),
    widget("avg", "agents.avg_duration_ms", type="bar"),
    widget("p95", "agents.p95_duration_ms", type="table"),
    widget("reviewer", "agents.calls", filters={"agent_name": "reviewer"}),
    widget("ok", "agents.calls", filters={"success_only": True}),
    widget("commits", "productivity.commits", type="area"),
]


def data_of(client, member, board_id: str) -> dict[str, dict[str, Any]]:
    response = client.get(f"/api/dashboards/{board_id}/data", headers=member.headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["dashboard"]["id"] == board_id
    return {w["id"]: w for w in body["widgets"]}


def agent_values(data: dict[str, Any]) -> dict[str, Any]:
    return {row["agent_name"]: row["value"] for row in data["agents"]}


def test_data_matches_the_executions(client, acme, activity):
    board = make(client, acme["admin"], scope="organization", layout=DATA_LAYOUT)
    widgets = data_of(client, acme["admin"], board["id"])
    assert [w["id"] for w in widgets.values()] == [w["id"] for w in DATA_LAYOUT]
    calls = widgets["calls"]["data"]
    assert widgets["calls"]["metric"] == "agents.calls" and widgets["calls"]["type"] == "number"
    assert calls["value"] == 5
    assert agent_values(calls) == {"reviewer": 3, "writer": 2}
    assert sum(row["value"] for row in calls["series"]) == 5
    assert len(calls["series"]) >= 7  # the default 7 days, by day
    assert widgets["rate"]["data"]["value"] == pytest.approx(4 / 5, abs=1e-4)
    assert agent_values(widgets["rate"]["data"]) == pytest.approx({"reviewer": 2 / 3, "writer": 1.0}, abs=1e-4)
    assert widgets["avg"]["data"]["value"] == pytest.approx((100 + 300 + 200 + 500 + 1000) / 5)
    p95 = widgets["p95"]["data"]
    assert p95["series_metric"] == "calls" and sum(row["value"] for row in p95["series"]) == 5
    assert set(agent_values(p95)) == {"reviewer", "writer"} and p95["value"] > 0
    assert widgets["reviewer"]["data"]["value"] == 3
    assert widgets["ok"]["data"]["value"] == 4
    commits = widgets["commits"]["data"]
    assert commits["totals"]["sum"] == pytest.approx(18) and commits["totals"]["samples"] == 3
    assert sum(row["value"] for row in commits["series"]) == pytest.approx(18)


def test_developer_sees_only_their_own_data_on_an_organization_dashboard(client, acme, activity):
    board = make(client, acme["admin"], scope="organization", layout=DATA_LAYOUT)
    widgets = data_of(client, acme["developer"], board["id"])
    assert widgets["calls"]["data"]["value"] == 3
    assert agent_values(widgets["calls"]["data"]) == {"reviewer": 2, "writer": 1}
    assert widgets["rate"]["data"]["value"] == pytest.approx(2 / 3, abs=1e-4)
    assert widgets["avg"]["data"]["value"] == pytest.approx(200)
    assert widgets["ok"]["data"]["value"] == 2
    assert widgets["commits"]["data"]["totals"]["sum"] == pytest.approx(8)


def test_dashboard_filters_apply_and_widget_filters_win(client, acme, activity):
    layout = [widget("all"), widget("writer", filters={"agent_name": "writer"})]
    board = make(client, acme["admin"], layout=layout, filters={"agent_name": "reviewer", "range": "24h"})
    widgets = data_of(client, acme["admin"], board["id"])
    assert widgets["all"]["data"]["value"] == 3
    assert widgets["writer"]["data"]["value"] == 2
    managers = make(client, acme["admin"], layout=[widget()], filters={"user_id": acme["manager"].user.id})
    assert data_of(client, acme["admin"], managers["id"])["w1"]["data"]["value"] == 1


def test_out_of_scope_filter_fails_only_its_widget(client, acme, teams, activity):
    manager_id = acme["manager"].user.id
    layout = [
        widget("mine"),
        widget("manager", filters={"user_id": manager_id}),
        widget("ops", filters={"team_id": teams["ops"]}),
        widget("ghost", filters={"user_id": "no-such-user"}),
        widget("old", filters={"start_date": "2000-01-01"}),
    ]
    board = make(client, acme["admin"], scope="organization", layout=layout)
    widgets = data_of(client, acme["developer"], board["id"])
    assert widgets["mine"]["data"]["value"] == 3
    assert widgets["manager"]["error"]["status"] == 403 and "data" not in widgets["manager"]
    assert widgets["ops"]["error"]["status"] == 403
    assert widgets["ghost"]["error"]["status"] == 404
    assert widgets["old"]["error"]["status"] == 400 and widgets["old"]["error"]["details"]
    # The admin may see the manager, so the same dashboard gives them the number.
    assert data_of(client, acme["admin"], board["id"])["manager"]["data"]["value"] == 1


def test_data_of_an_invisible_dashboard_is_404(client, acme, boards):
    assert_api_error(client.get(f"/api/dashboards/{boards['ops']['id']}/data", headers=acme["manager"].headers), 404)
    assert_api_error(client.get("/api/dashboards/nope/data", headers=acme["admin"].headers), 404)


def test_a_widget_with_too_many_periods_gets_its_own_error(client, app):
    """Hourly data over 60 days is 1,440 points: that widget says so, the others still draw."""
    people = seed_org(app, "Periods")
    admin = people["admin"]
    hourly = {"range": "90d", "aggregation": "hour"}
    widgets = [widget("w1", filters=hourly), widget("w2")]
    created = client.post("/api/dashboards", json={"name": "d", "layout": widgets}, headers=admin.headers)
    assert created.status_code == 201, created.get_json()
    data = client.get(f"/api/dashboards/{created.get_json()['id']}/data", headers=admin.headers).get_json()
    first, second = data["widgets"]
    assert first["error"]["status"] == 400 and "aggregation" in first["error"]["details"]
    assert "data" in second and len(second["data"]["series"]) == 8  # the default 7 days, today included
