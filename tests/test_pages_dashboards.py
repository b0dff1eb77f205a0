"""/dashboards and /dashboards/<id>: each role sees the dashboards and figures the API gives the same person, an
outsider none; every widget type is drawn; POST /live/ticket. In Chromium: test_pages_dashboards_browser.py."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest

from tests.support import KEEP_HISTORY, TEST_JWT_SECRET
from tests.test_dashboards import record_executions, record_productivity
from tests.test_signin import SESSION, bearer, sign_in
from weather_metrics.accounts import organizations as accounts
from weather_metrics.accounts.logins import secret_hash
from weather_metrics.store.models import WsTicket

LIVE_BLOCK = re.compile(
    r'<script type="application/json" id="dashboard-live" data-csrf="([0-9a-f]{64})">(.*?)</script>'
)
BOARD_LINK = re.compile(r'<a href="/dashboards/([0-9a-f-]{36})">([^<]+)</a>')


def spot(wid: str, kind: str, metric: str, x: int, y: int, w: int = 6, **extra: Any) -> dict[str, Any]:
    return {"id": wid, "type": kind, "metric": metric, "position": {"x": x, "y": y, "w": w, "h": 4}, **extra}


# Every widget type the API accepts (dashboards.WIDGET_TYPES), each with a metric of its own.
EVERY_TYPE = [
    spot("calls", "number", "agents.calls", 0, 0, 4, title="Calls this week"),
    spot("rate", "number", "agents.success_rate", 4, 0, 4),
    spot("commits-total", "number", "productivity.commits", 8, 0, 4),
    spot("per-day", "line", "agents.calls", 0, 1),
    spot("duration", "bar", "agents.avg_duration_ms", 6, 1),
    spot("commits", "area", "productivity.commits", 0, 2),
    spot("by-agent", "pie", "agents.calls", 6, 2),
    spot("p95", "table", "agents.p95_duration_ms", 0, 3, 12),
]


@pytest.fixture
def site(service, acme, globex) -> dict[str, Any]:
    """Acme with a team Core (manager, developer), Ops (nobody), a dashboard of each scope and some activity."""
    app = service(**KEEP_HISTORY)
    client = app.test_client()
    org_id = acme["admin"].user.organization_id
    with app.app_context():
        core = accounts.create_team(org_id, "Core", "")
        ops = accounts.create_team(org_id, "Ops", "")
        accounts.add_member(core, acme["manager"].user, "lead")
        accounts.add_member(core, acme["developer"].user, "member")
    record_executions(app, acme["developer"], [("reviewer", 100.0, True), ("reviewer", 300.0, False)])
    record_executions(app, acme["manager"], [("writer", 200.0, True), ("reviewer", 500.0, True)])
    record_productivity(app, acme["developer"], "commits", [3, 5])
    record_productivity(app, acme["manager"], "commits", [10])

    def make(member: Any, **body: Any) -> str:
        answer = client.post("/api/dashboards", headers=bearer(client, member), json=body)
        assert answer.status_code == 201, answer.get_json()
        return str(answer.get_json()["id"])

    boards = {
        "Everything": make(acme["admin"], name="Everything", scope="organization", layout=EVERY_TYPE),
        "Admin's own": make(acme["admin"], name="Admin's own"),
        "Developer's own": make(acme["developer"], name="Developer's own"),
        "Core board": make(acme["manager"], name="Core board", scope="team", team_id=core.id),
        "Ops board": make(acme["admin"], name="Ops board", scope="team", team_id=ops.id),
    }
    return {"app": app, "boards": boards, "acme": acme, "globex": globex}


def browser_of(site: dict[str, Any], member: Any) -> Any:
    client = site["app"].test_client()
    assert sign_in(client, member).status_code == 303
    return client


def listed(client: Any) -> list[str]:
    page = client.get("/dashboards")
    assert page.status_code == 200, page.text[:500]
    return sorted(unescape(name) for _, name in BOARD_LINK.findall(page.text))


def api_names(site: dict[str, Any], member: Any) -> list[str]:
    client = site["app"].test_client()
    return sorted(
        d["name"] for d in client.get("/api/dashboards", headers=bearer(client, member)).get_json()["dashboards"]
    )


@pytest.mark.parametrize(
    ("who", "names"),
    [
        ("admin", ["Admin's own", "Core board", "Everything", "Ops board"]),
        ("manager", ["Core board", "Everything"]),
        ("developer", ["Core board", "Developer's own", "Everything"]),
    ],
)
def test_each_role_lists_the_dashboards_the_api_lists_for_them(site, who, names):
    member = site["acme"][who]
    assert listed(browser_of(site, member)) == names == api_names(site, member)


def test_an_outsider_lists_none_and_gets_404_for_each(site):
    outsider = browser_of(site, site["globex"]["admin"])
    assert listed(outsider) == []
    for board_id in site["boards"].values():
        page = outsider.get(f"/dashboards/{board_id}")
        assert page.status_code == 404 and "text/html" in page.content_type
        assert "No dashboard of yours" in page.text
    assert outsider.get("/dashboards/not-an-id").status_code == 404


def test_a_dashboard_not_shared_with_someone_is_404_for_them(site):
    developer = browser_of(site, site["acme"]["developer"])
    for name in ("Admin's own", "Ops board"):
        assert developer.get(f"/dashboards/{site['boards'][name]}").status_code == 404
    assert developer.get(f"/dashboards/{site['boards']['Core board']}").status_code == 200


def page_figures(client: Any, board_id: str) -> tuple[str, dict[str, Any], str]:
    page = client.get(f"/dashboards/{board_id}")
    assert page.status_code == 200, page.text[:500]
    found = LIVE_BLOCK.search(page.text)
    assert found, page.text[:2000]
    return found.group(1), json.loads(found.group(2)), page.text


def without_window_ends(widgets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries with the window's end dropped: it is `now`, a moment later in the second request."""
    return [{**w, "data": {**w["data"], "window": {**w["data"]["window"], "end": None}}} for w in widgets]


@pytest.mark.parametrize("who", ["admin", "manager", "developer"])
def test_the_page_holds_the_figures_the_api_gives_the_same_person(site, who):
    member, board_id = site["acme"][who], site["boards"]["Everything"]
    _, live, html = page_figures(browser_of(site, member), board_id)
    api = site["app"].test_client()
    data = api.get(f"/api/dashboards/{board_id}/data", headers=bearer(api, member)).get_json()
    assert live["dashboard_id"] == board_id
    assert live["data_room"] == ("org" if who == "admin" else "user:" + member.user.id)
    assert without_window_ends(live["widgets"]) == without_window_ends(data["widgets"])
    calls = {w["id"]: w for w in data["widgets"]}["calls"]["data"]["value"]
    assert re.search(rf'<p class="widget__number" data-number>{calls}</p>', html), html
    # Scope: the developer counts only their own executions, the admin everyone's.
    assert calls == {"admin": 4, "manager": 4, "developer": 2}[who]


def test_every_widget_type_is_drawn(site):
    _, live, html = page_figures(browser_of(site, site["acme"]["admin"]), site["boards"]["Everything"])
    sections = re.findall(r'<section class="widget widget--(\w+) span-(\d+)" data-widget="([^"]+)"', html)
    assert [(kind, int(span), wid) for kind, span, wid in sections] == [
        (w["type"], w["position"]["w"], w["id"]) for w in EVERY_TYPE
    ]
    assert {kind for kind, _, _ in sections} == {"line", "bar", "area", "pie", "number", "table"}
    assert html.count("<canvas ") == 4  # line, bar, area, pie (drawn by static/dashboard.js)
    assert "Calls this week" in html and "Success rate (agents)" in html
    assert '<p class="widget__number" data-number>75.0 %</p>' in html  # 3 of 4 succeeded
    assert '<p class="widget__number" data-number>18</p>' in html and "Sum of 3 samples" in html
    table = html[html.index('data-widget="p95"') :]
    series = {w["id"]: w for w in live["widgets"]}["p95"]["data"]["series"]
    assert table.count("<tr><td>") == len(series) >= 7
    assert "script-src 'self'" in site["app"].test_client().get("/dashboards").headers.get(
        "Content-Security-Policy", ""
    )


def test_a_widget_someone_may_not_see_says_why(site):
    admin = site["app"].test_client()
    core = [spot("mine", "number", "agents.calls", 0, 0, 12, filters={"user_id": site["acme"]["admin"].user.id})]
    board = admin.put(
        f"/api/dashboards/{site['boards']['Everything']}",
        headers=bearer(admin, site["acme"]["admin"]),
        json={"layout": core},
    )
    assert board.status_code == 200, board.get_json()
    _, live, html = page_figures(browser_of(site, site["acme"]["developer"]), site["boards"]["Everything"])
    assert live["widgets"][0]["error"]["status"] == 403
    assert 'class="notice notice--error widget__error"' in html


def test_pages_need_someone_signed_in(site):
    client = site["app"].test_client()
    page = client.get(f"/dashboards/{site['boards']['Everything']}")
    assert page.status_code == 303 and page.headers["Location"].startswith("/sign-in?next=/dashboards/")
    assert client.get("/dashboards").status_code == 303


def test_a_live_ticket_needs_the_pages_token_and_is_bound_to_the_browser_session(site):
    client = browser_of(site, site["acme"]["manager"])
    token, _, _ = page_figures(client, site["boards"]["Everything"])
    assert client.post("/live/ticket").status_code == 403
    assert client.post("/live/ticket", headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    answer = client.post("/live/ticket", headers={"X-CSRF-Token": token})
    assert answer.status_code == 201, answer.text[:500]
    ticket = answer.get_json()
    assert ticket["url"] == "/ws?ticket=" + ticket["ticket"] and ticket["expires_in"] > 0
    with site["app"].app_context():
        row = WsTicket.get()
        assert row.user_id == site["acme"]["manager"].user.id
        assert row.session_id == secret_hash(TEST_JWT_SECRET, client.get_cookie(SESSION).value)
    anonymous = site["app"].test_client()
    assert anonymous.post("/live/ticket", headers={"X-CSRF-Token": token}).status_code in (303, 403)
