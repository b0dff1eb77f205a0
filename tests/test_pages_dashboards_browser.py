"""A dashboard in Debian's Chromium, on the real server: every chart holds the API's figures for the person
signed in, and executions sent to /mcp/metrics/collect reach the open page over /ws without a reload.

Screenshots of the dashboard and the list at both widths go to the module's tmp folder.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import Member, Server, console_problems, http, seed_org, seeded_database, wait_drawn
from tests.test_dashboards import record_productivity
from tests.test_pages_browser import DESKTOP, PHONE, accessibility_problems, full_page_screenshot, set_width
from tests.test_pages_dashboards import EVERY_TYPE


@dataclass
class Seeded:
    admin: Member
    key: str  # an ingest API key of Acme's
    board_id: str  # the organization dashboard with every widget type


def seed(app: Any) -> Seeded:
    from weather_metrics import dashboards
    from weather_metrics.accounts import organizations as accounts

    admin = seed_org(app, "Acme")["admin"]
    record_productivity(app, admin, "commits", [2, 7, 4])
    with app.app_context():
        _, key = accounts.create_api_key(admin.user.organization_id, "fleet", admin.user.id)
        board = dashboards.create_dashboard(
            admin.user, {"name": "Fleet", "scope": "organization", "layout": EVERY_TYPE, "filters": {}}
        )
    return Seeded(admin, key, board.id)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    path = tmp_path_factory.mktemp("dashboards") / "metrics.db"
    return path, seeded_database(path, seed)


@pytest.fixture(scope="module")
def server(seeded: tuple[Path, Seeded]) -> Iterator[Server]:
    with Server(seeded[0], ws_dashboard_interval_seconds=1) as running:
        yield running


def collect(server: Server, seeded: Seeded, runs: list[tuple[str, int, bool]]) -> None:
    """Executions of the admin an hour ago, through POST /mcp/metrics/collect with the organization's key."""
    when = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body = [
        {
            "session_id": "s-1",
            "user_identifier": seeded.admin.user.email,
            "agent_name": agent,
            "command": "run",
            "execution_time_ms": ms,
            "success": ok,
            "timestamp": when,
        }  # fmt: skip
        for agent, ms, ok in runs
    ]
    headers = {"X-API-Key": seeded.key, "Idempotency-Key": str(uuid.uuid4())}
    status, _, answer = http("POST", server.url + "/mcp/metrics/collect", body, headers=headers)
    assert status == 201, answer


def api_widgets(server: Server, member: Member, board_id: str) -> dict[str, Any]:
    _, _, tokens = http(
        "POST", server.url + "/api/auth/login", {"email": member.user.email, "password": member.password}
    )
    headers = {"Authorization": "Bearer " + tokens["access_token"]}
    status, _, body = http("GET", f"{server.url}/api/dashboards/{board_id}/data", headers=headers)
    assert status == 200, body
    return {w["id"]: w for w in body["widgets"]}


CHARTS = """
const found = {};
for (const section of document.querySelectorAll('[data-widget]')) {
  const canvas = section.querySelector('canvas');
  const chart = canvas && window.Chart && Chart.getChart(canvas);
  if (canvas && !chart) return null;
  found[section.dataset.widget] = chart
    ? {type: chart.config.type, labels: chart.data.labels, values: chart.data.datasets[0].data}
    : {text: (section.querySelector('[data-number]') || {}).textContent,
       rows: Array.from(section.querySelectorAll('[data-rows] tr'), row => Array.from(row.cells, c => c.textContent))};
}
return document.body.dataset.live === 'on' ? found : null;
"""


def plotted(driver: Any) -> dict[str, Any]:
    """What each widget shows once every chart is drawn and the page is live: chart data, or its text."""
    return wait_drawn(driver, lambda d: d.execute_script(CHARTS))  # type: ignore[no-any-return]


def sign_in(driver: Any, server: Server, member: Member, path: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(server.url + "/sign-in?next=" + path)
    driver.find_element(By.ID, "email").send_keys(member.user.email)
    driver.find_element(By.ID, "password").send_keys(member.password)
    driver.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
    wait_drawn(driver, lambda d: d.current_url == server.url + path)


def test_the_charts_hold_the_api_figures_at_both_widths(browser, server, seeded, tmp_path_factory):
    path, data = seeded
    collect(server, data, [("reviewer", 120, True), ("reviewer", 480, False), ("writer", 300, True)])
    shots = tmp_path_factory.mktemp("screenshots")
    sign_in(browser, server, data.admin, f"/dashboards/{data.board_id}")
    console_problems(browser)
    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        browser.get(f"{server.url}/dashboards/{data.board_id}")
        shown = plotted(browser)
        api = api_widgets(server, data.admin, data.board_id)
        for wid in ("per-day", "duration", "commits"):
            assert shown[wid]["values"] == [point["value"] for point in api[wid]["data"]["series"]], wid
        assert shown["per-day"]["type"] == "line" and shown["duration"]["type"] == "bar"
        assert shown["by-agent"]["type"] == "pie"
        assert dict(zip(shown["by-agent"]["labels"], shown["by-agent"]["values"], strict=True)) == {
            row["agent_name"]: row["value"] for row in api["by-agent"]["data"]["agents"]
        }
        assert shown["calls"]["text"] == "3" and shown["rate"]["text"] == "66.7 %"
        assert shown["commits-total"]["text"] == "13" and sum(shown["commits"]["values"]) == 13
        assert len(shown["p95"]["rows"]) == len(api["p95"]["data"]["series"]) >= 7
        assert [row[0] for row in shown["p95"]["rows"]] == [p["period"][:10] for p in api["p95"]["data"]["series"]]
        full_page_screenshot(browser, shots / f"dashboard-{width}.png", width)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        assert accessibility_problems(browser) == [], width
        browser.get(f"{server.url}/dashboards")
        wait_drawn(browser, lambda d: d.execute_script("return document.readyState === 'complete'"))
        full_page_screenshot(browser, shots / f"dashboards-{width}.png", width)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    assert console_problems(browser) == []


def test_a_batch_sent_to_collect_appears_on_the_open_dashboard_without_a_reload(browser, server, seeded):
    path, data = seeded
    set_width(browser, DESKTOP)
    sign_in(browser, server, data.admin, f"/dashboards/{data.board_id}")  # on its own: tests may run apart
    before = plotted(browser)
    browser.execute_script("window.stillTheSamePage = true;")
    calls = int(before["calls"]["text"].replace(",", ""))
    sent = time.monotonic()
    collect(server, data, [("tester", 50, True)] * 4)
    wait_drawn(browser, lambda d: d.execute_script("return document.body.dataset.ingested") == "4")  # metric_ingested
    wait_drawn(browser, lambda d: d.execute_script(CHARTS)["calls"]["text"] == str(calls + 4))  # dashboard_update
    after = browser.execute_script(CHARTS)
    assert time.monotonic() - sent < 15
    assert browser.execute_script("return window.stillTheSamePage === true")
    assert after["by-agent"]["labels"] and "tester" in after["by-agent"]["labels"]
    assert sum(after["per-day"]["values"]) == sum(before["per-day"]["values"]) + 4
    calls_in = lambda shown: sum(int(row[1].replace(",", "")) for row in shown["p95"]["rows"])  # noqa: E731
    assert calls_in(after) == calls_in(before) + 4  # a percentile's table counts calls per period
    # The status line tells the last live message, whichever of the two came last.
    status = browser.execute_script("return document.getElementById('live-status').textContent")
    assert status.startswith("Live: ") and ("updated at" in status or "4 new records" in status), status
    assert console_problems(browser) == []
