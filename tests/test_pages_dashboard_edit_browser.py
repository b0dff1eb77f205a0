"""The dashboard forms in Debian's Chromium, on the real server: a developer creates a dashboard, adds a widget and sees
it drawn with the API's figures; the forms (also refused, with their problems) at both widths pass axe and fit.

Screenshots of the new dashboard form and the edit page at both widths go to the module's tmp folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Member, Server, console_problems, http, seed_org, seeded_database, wait_drawn
from tests.test_dashboards import record_productivity
from tests.test_pages_browser import DESKTOP, PHONE, accessibility_problems, full_page_screenshot, set_width
from tests.test_pages_dashboards_browser import sign_in


def seed(app: Any) -> Member:
    developer = seed_org(app, "Acme")["developer"]
    record_productivity(app, developer, "commits", [2, 7, 4])
    return developer


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Member]:
    path = tmp_path_factory.mktemp("dashboard-edit") / "metrics.db"
    return path, seeded_database(path, seed)


@pytest.fixture(scope="module")
def server(seeded: tuple[Path, Member]) -> Iterator[Server]:
    with Server(seeded[0]) as running:
        yield running


def fits(driver: Any, width: int) -> None:
    assert driver.execute_script("return document.documentElement.scrollWidth") <= width
    assert accessibility_problems(driver) == [], width


def api_board(server: Server, member: Member, board_id: str) -> dict[str, Any]:
    _, _, tokens = http(
        "POST", server.url + "/api/auth/login", {"email": member.user.email, "password": member.password}
    )
    headers = {"Authorization": "Bearer " + tokens["access_token"]}
    status, _, body = http("GET", f"{server.url}/api/dashboards/{board_id}/data", headers=headers)
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def test_a_developer_creates_a_dashboard_with_a_widget_and_sees_it_drawn(browser, server, seeded, tmp_path_factory):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, developer = seeded
    shots = tmp_path_factory.mktemp("screenshots")
    set_width(browser, DESKTOP)
    sign_in(browser, server, developer, "/dashboards")
    console_problems(browser)
    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        browser.get(server.url + "/dashboards")
        full_page_screenshot(browser, shots / f"new-{width}.png", width)
        fits(browser, width)
    browser.find_element(By.ID, "create-dashboard").click()  # nothing typed: refused, the problem beside the name
    wait_drawn(browser, lambda d: d.find_elements(By.ID, "name-problem"))
    full_page_screenshot(browser, shots / f"new-refused-{DESKTOP}.png", DESKTOP)
    fits(browser, DESKTOP)
    assert [line for line in console_problems(browser) if "400 (BAD REQUEST)" not in line] == []  # the refusal's
    browser.find_element(By.ID, "name").send_keys("Commits")
    browser.find_element(By.ID, "create-dashboard").click()
    wait_drawn(browser, lambda d: "/edit?done=created" in d.current_url)
    board_id = browser.current_url.split("/")[-2]
    Select(browser.find_element(By.ID, "add-type")).select_by_value("bar")
    Select(browser.find_element(By.ID, "add-metric")).select_by_value("productivity.commits")
    browser.find_element(By.ID, "add-title").send_keys("Commits per day")
    browser.find_element(By.ID, "add-widget").click()
    wait_drawn(browser, lambda d: "done=added" in d.current_url)
    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        browser.get(f"{server.url}/dashboards/{board_id}/edit")
        full_page_screenshot(browser, shots / f"edit-{width}.png", width)
        fits(browser, width)
    browser.get(f"{server.url}/dashboards/{board_id}")
    chart = (
        "const c = document.querySelector('[data-widget] canvas'); const g = c && window.Chart && Chart.getChart(c);"
    )
    drawn = wait_drawn(
        browser,
        lambda d: d.execute_script(chart + "return g ? {type: g.config.type, values: g.data.datasets[0].data} : null"),
    )
    api = api_board(server, developer, board_id)["widgets"][0]
    assert drawn == {"type": "bar", "values": [point["value"] for point in api["data"]["series"]]}
    assert sum(drawn["values"]) == 13
    assert browser.find_element(By.CSS_SELECTOR, ".widget__title").text == "Commits per day"
    assert console_problems(browser) == []
