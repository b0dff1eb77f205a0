"""The explorers in Debian's Chromium, on the real server: the filters sent through the form, the charts hold
the figures the API gives for the same filters, and every page fits a phone and a desktop with no axe problem.

Screenshots of every explorer at both widths go to the module's tmp folder.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from tests.support import Member, Server, console_problems, http, seed_org, seeded_database, wait_drawn
from tests.test_dashboards import record_productivity
from tests.test_pages_browser import DESKTOP, PHONE, accessibility_problems, full_page_screenshot, set_width
from tests.test_pages_dashboards_browser import sign_in


@dataclass
class Seeded:
    people: dict[str, Member]
    key: str  # an ingest API key of Acme's


def seed(app: Any) -> Seeded:
    from weather_metrics.accounts import organizations as accounts

    people = seed_org(app, "Acme")
    with app.app_context():
        org_id = people["admin"].user.organization_id
        _, key = accounts.create_api_key(org_id, "fleet", people["admin"].user.id)
        for name in ("Core", "Platform"):
            team = accounts.create_team(org_id, name, "")
            accounts.add_member(team, people["manager"].user, "lead")
        accounts.add_member(team, people["developer"].user, "member")
    record_productivity(app, people["developer"], "commits", [3, 5, 8])
    record_productivity(app, people["manager"], "reviews", [2])
    return Seeded(people, key)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    path = tmp_path_factory.mktemp("explore") / "metrics.db"
    return path, seeded_database(path, seed)


@pytest.fixture(scope="module")
def server(seeded: tuple[Path, Seeded]) -> Iterator[Server]:
    with Server(seeded[0]) as running:
        yield running


def collect(server: Server, seeded: Seeded, who: str, hours_ago: int, runs: list[tuple[str, int, bool]]) -> None:
    """Executions of `who`, through POST /mcp/metrics/collect with the organization's key."""
    when = (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat()
    body = [
        {
            "session_id": "s-1",
            "user_identifier": seeded.people[who].user.email,
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


def api(server: Server, member: Member, path_and_query: str) -> Any:
    _, _, tokens = http(
        "POST", server.url + "/api/auth/login", {"email": member.user.email, "password": member.password}
    )
    headers = {"Authorization": "Bearer " + tokens["access_token"]}
    status, _, body = http("GET", server.url + path_and_query, headers=headers)
    assert status == 200, body
    return body


CHARTS = """
if (document.readyState !== 'complete' || document.body.dataset.charts !== 'drawn') return null;
const found = [];
for (const canvas of document.querySelectorAll('canvas[data-chart]')) {
  const chart = window.Chart && Chart.getChart(canvas);
  if (!chart) return null;
  found.push({type: chart.config.type, labels: chart.data.labels,
              datasets: chart.data.datasets.map(d => ({label: d.label, values: d.data}))});
}
return {charts: found};
"""


def plotted(driver: Any) -> list[dict[str, Any]]:
    """What each chart of the page plots, once every one is drawn."""
    return wait_drawn(driver, lambda d: d.execute_script(CHARTS))["charts"]  # type: ignore[no-any-return]


def look(driver: Any, shots: Path, name: str, width: int) -> None:
    """A screenshot of the page; it fits the width and axe finds no serious problem."""
    full_page_screenshot(driver, shots / f"{name}-{width}.png", width)
    assert driver.execute_script("return document.documentElement.scrollWidth") <= width, name
    assert accessibility_problems(driver) == [], (name, width)


def test_the_agent_explorer_plots_the_api_figures_for_the_filters_of_its_form(browser, server, seeded):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    _, data = seeded
    collect(server, data, "developer", 3, [("reviewer", 120, True), ("reviewer", 480, False), ("writer", 300, True)])
    collect(server, data, "developer", 1, [("reviewer", 200, True)])
    collect(server, data, "admin", 2, [("reviewer", 900, True)])
    set_width(browser, DESKTOP)
    sign_in(browser, server, data.people["manager"], "/explore/agents")
    console_problems(browser)
    assert browser.find_element(By.CSS_SELECTOR, "header a[aria-current=page]").text == "Explore"
    today = datetime.now(UTC).date()
    Select(browser.find_element(By.ID, "aggregation")).select_by_value("hour")
    browser.find_element(By.ID, "agent_name").send_keys("reviewer")
    browser.find_element(By.ID, "start_date").send_keys((today - timedelta(days=1)).isoformat())
    browser.find_element(By.ID, "end_date").send_keys(today.isoformat(), Keys.ENTER)
    wait_drawn(browser, lambda d: "aggregation=hour" in d.current_url)
    calls, duration = plotted(browser)
    sent = parse_qsl(
        urlsplit(browser.current_url).query
    )  # every field: the page ignores empty ones, the API refuses them
    query = urlencode([(name, value) for name, value in sent if value])
    assert "agent_name=reviewer" in query and "start_date=" in query
    answer = api(server, data.people["manager"], "/api/metrics/agents?" + query)
    series = answer["series"]
    assert len(series) == 48 and answer["totals"]["calls"] == 3  # the manager's scope: the developer's reviewer
    assert calls["type"] == "bar" and duration["type"] == "line"
    assert calls["labels"] == [p["period"][:10] + " " + p["period"][11:16] for p in series]
    assert [d["values"] for d in calls["datasets"]] == [
        [p["successes"] for p in series],
        [p["failures"] for p in series],
    ]
    assert duration["datasets"][0]["values"] == [p["avg_duration_ms"] for p in series]
    assert sum(calls["datasets"][0]["values"]) + sum(calls["datasets"][1]["values"]) == 3
    assert browser.find_element(By.CSS_SELECTOR, '[data-figure="calls"]').text == "3"
    assert console_problems(browser) == []


PAGES = {
    "explore-agents": "/explore/agents",
    "explore-productivity": "/explore/productivity",
    "explore-trends": "/explore/trends?comparison_period=previous",
    "explore-teams": "/explore/teams",
    "explore-refused": "/explore/agents?start_date=yesterday&aggregation=year",
}


def test_every_explorer_fits_both_widths_and_passes_axe(browser, server, seeded, tmp_path_factory):
    _, data = seeded
    shots = tmp_path_factory.mktemp("screenshots")
    admin = data.people["admin"]
    sign_in(browser, server, admin, "/explore/agents")
    console_problems(browser)
    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        for name, path in PAGES.items():
            browser.get(server.url + path)
            drawn = plotted(browser)
            if name == "explore-productivity":
                answer = api(server, admin, "/api/metrics/productivity")
                assert [d["label"] for d in drawn[0]["datasets"]] == ["commits", "reviews"]
                assert [d["values"] for d in drawn[0]["datasets"]] == [
                    [p["metrics"].get(t, {}).get("sum", 0) for p in answer["series"]] for t in ("commits", "reviews")
                ]
            if name == "explore-teams":
                answer = api(server, admin, "/api/analytics/team-comparison")
                assert [c["datasets"][0]["values"] for c in drawn] == [
                    [t["metrics"][m] for t in answer["teams"]] for m in answer["metric_types"]
                ]
            look(browser, shots, name, width)
    refused = "explore/agents?start_date=yesterday&aggregation=year - Failed to load resource"  # its 400, as meant
    assert [p for p in console_problems(browser) if refused not in p] == []
