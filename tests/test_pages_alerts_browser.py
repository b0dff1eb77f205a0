"""The alert pages in Debian's Chromium, on the real server: an admin makes a rule with the form, by keyboard and
clicks; executions that breach it go to /mcp/metrics/collect, the server's evaluator fires it, and the alert
appears on the open /alerts/history without a reload.

Screenshots of the rules, the form (with its problems) and the history at both widths go to the module's tmp folder.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import Member, Server, console_problems, http, seed_org, seeded_database, wait_drawn
from tests.test_pages_browser import DESKTOP, PHONE, accessibility_problems, full_page_screenshot, set_width
from tests.test_pages_dashboards_browser import sign_in


@dataclass
class Seeded:
    admin: Member
    key: str  # an ingest API key of Acme's


def seed(app: Any) -> Seeded:
    from weather_metrics.accounts import organizations as accounts

    admin = seed_org(app, "Acme")["admin"]
    with app.app_context():
        _, key = accounts.create_api_key(admin.user.organization_id, "fleet", admin.user.id)
    return Seeded(admin, key)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    path = tmp_path_factory.mktemp("alerts") / "metrics.db"
    return path, seeded_database(path, seed)


@pytest.fixture(scope="module")
def server(seeded: tuple[Path, Seeded]) -> Iterator[Server]:
    with Server(seeded[0], alert_evaluation_seconds=1) as running:
        yield running


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def api(server: Server, member: Member, path: str) -> Any:
    _, _, tokens = http(
        "POST", server.url + "/api/auth/login", {"email": member.user.email, "password": member.password}
    )
    status, _, body = http("GET", server.url + path, headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert status == 200, body
    return body


def collect(server: Server, seeded: Seeded, agent: str, runs: list[bool]) -> None:
    """Executions of `agent` half a minute ago, through POST /mcp/metrics/collect with the organization's key."""
    when = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    body = [
        {
            "user_identifier": seeded.admin.user.email,
            "agent_name": agent,
            "command": "review",
            "execution_time_ms": 900,
            "success": ok,
            "timestamp": when,
        }  # fmt: skip
        for ok in runs
    ]
    headers = {"X-API-Key": seeded.key, "Idempotency-Key": str(uuid.uuid4())}
    status, _, answer = http("POST", server.url + "/mcp/metrics/collect", body, headers=headers)
    assert status == 201, answer


def loaded(driver: Any) -> bool:
    return bool(driver.execute_script("return document.readyState === 'complete'"))


def look(driver: Any, shots: Path, name: str, width: int) -> None:
    """A screenshot of the page; it fits the width and axe finds no serious problem."""
    full_page_screenshot(driver, shots / f"{name}-{width}.png", width)
    assert driver.execute_script("return document.documentElement.scrollWidth") <= width, name
    assert accessibility_problems(driver) == [], (name, width)


def fill_in_a_rule(driver: Any, server: Server) -> None:
    """The new-rule form by keyboard: a name, the scope an agent, errors above 50 % of its calls, no quiet time."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver.find_element(By.LINK_TEXT, "New rule").click()
    wait_drawn(driver, lambda d: d.current_url == server.url + "/alerts/new" and loaded(d))
    name = driver.find_element(By.ID, "name")
    name.click()
    name.send_keys("Reviewer failing")
    Select(driver.find_element(By.ID, "scope_type")).select_by_visible_text("An agent")
    driver.find_element(By.ID, "scope_name").send_keys("code-reviewer")
    for field, value in (("threshold", "50"), ("window_minutes", "10"), ("cooldown_minutes", "0")):
        box = driver.find_element(By.ID, field)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(value)
    Select(driver.find_element(By.ID, "severity")).select_by_visible_text("Critical")
    driver.find_element(By.ID, "cooldown_minutes").send_keys(Keys.ENTER)  # sends the form, as Enter does


def test_a_rule_made_with_the_form_fires_and_its_alert_appears_live(browser, server, seeded, screenshots):
    from selenium.webdriver.common.by import By

    _, data = seeded
    set_width(browser, DESKTOP)
    sign_in(browser, server, data.admin, "/alerts")
    console_problems(browser)
    assert browser.find_element(By.CSS_SELECTOR, "header a[aria-current=page]").text == "Alerts"
    fill_in_a_rule(browser, server)
    wait_drawn(browser, lambda d: d.current_url == server.url + "/alerts?done=created" and loaded(d))
    (rule,) = api(server, data.admin, "/api/alerts/rules")["rules"]
    assert (rule["name"], rule["scope"], rule["threshold"], rule["severity"]) == (
        "Reviewer failing",
        {"type": "agent", "name": "code-reviewer"},
        50.0,
        "critical",
    )
    card = browser.find_element(By.CSS_SELECTOR, f'[data-rule="{rule["id"]}"]').text
    assert "Reviewer failing" in card and "Error rate > 50.0 % over 10 minutes" in card and "Never" in card

    browser.find_element(By.LINK_TEXT, "History").click()
    wait_drawn(browser, lambda d: d.execute_script("return document.body.dataset.live") == "on")
    assert "No alerts yet" in browser.find_element(By.ID, "alert-history").text
    browser.execute_script("window.stillTheSamePage = true;")
    sent = time.monotonic()
    collect(server, data, "code-reviewer", [False, False, False, True])  # 75 % failed
    row = wait_drawn(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#alert-history tr[data-alert]"))
    assert time.monotonic() - sent < 20
    assert browser.execute_script("return window.stillTheSamePage === true")
    (alert,) = api(server, data.admin, "/api/alerts")["alerts"]
    assert row.get_attribute("data-alert") == alert["id"] and alert["metric_value"] == 75.0
    assert "Reviewer failing" in row.text and "75.0 %" in row.text and "Firing" in row.text
    status = browser.find_element(By.ID, "live-status").text
    assert re.fullmatch(r"Live: “Reviewer failing” fired at \d\d:\d\d:\d\d UTC\.", status), status
    full_page_screenshot(browser, screenshots / f"alert-history-live-{DESKTOP}.png", DESKTOP)
    assert console_problems(browser) == []


def test_the_pages_at_both_widths(browser, server, seeded, screenshots):
    from selenium.webdriver.common.by import By

    _, data = seeded
    sign_in(browser, server, data.admin, "/alerts")
    collect(server, data, "code-reviewer", [True] * 12)  # the rule resolves: the history shows both states
    wait_drawn(browser, lambda d: api(server, data.admin, "/api/alerts?state=resolved")["alerts"])
    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        for name, path in (("alerts", "/alerts"), ("alert-history", "/alerts/history"), ("alert-new", "/alerts/new")):
            browser.get(server.url + path)
            wait_drawn(browser, loaded)
            if name == "alert-history":
                wait_drawn(browser, lambda d: d.execute_script("return document.body.dataset.live") == "on")
            look(browser, screenshots, name, width)
        browser.find_element(By.ID, "name").send_keys("Too slow")
        window = browser.find_element(By.ID, "window_minutes")
        window.clear()
        window.send_keys("two")
        browser.find_element(By.CSS_SELECTOR, "form.form button[type=submit]").click()
        wait_drawn(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".field__problem"))
        assert browser.find_element(By.ID, "window_minutes-problem").text == "Must be an integer."
        assert browser.find_element(By.ID, "name").get_attribute("value") == "Too slow"
        look(browser, screenshots, "alert-refused", width)
        rule_id = api(server, data.admin, "/api/alerts/rules")["rules"][0]["id"]
        browser.get(f"{server.url}/alerts/{rule_id}/delete")
        wait_drawn(browser, loaded)
        look(browser, screenshots, "alert-delete", width)
    problems = console_problems(browser)
    assert [p for p in problems if "/alerts/new - " not in p or "(BAD REQUEST)" not in p] == [], problems
