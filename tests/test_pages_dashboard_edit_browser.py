"""The dashboard forms in Debian's Chromium, on the real server: a developer creates a dashboard, adds a widget and sees
it drawn with the API's figures; the forms (also refused, with their problems) at both widths pass axe and fit. And two
sessions of the developer adding widgets to one dashboard at the same moment, on the real server: both are kept.

Screenshots of the new dashboard form and the edit page at both widths go to the module's tmp folder.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

from tests import databases
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


class Session:
    """A browser without JavaScript on the real server: its own cookies, and the form token of the last page read."""

    TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

    def __init__(self, server: Server) -> None:
        self.url = server.url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.token = ""

    def get(self, path: str) -> str:
        with self.opener.open(self.url + path, timeout=30) as answer:
            page = answer.read().decode()
        found = self.TOKEN.search(page)
        self.token = found.group(1) if found else self.token
        return page

    def post(self, path: str, **fields: str) -> str:
        """The form sent; the address it ends on after the redirect."""
        body = urllib.parse.urlencode({"csrf_token": self.token, **fields}).encode()
        with self.opener.open(self.url + path, data=body, timeout=30) as answer:
            return str(answer.url)


def test_two_sessions_adding_widgets_at_the_same_moment_both_keep_theirs(server, seeded):
    """Both requests reach the server while another writer holds the database: each reads the layout only once it
    may write, so the second adds its widget after the first's (a read before waiting would lose one)."""
    path, developer = seeded
    tabs = [Session(server), Session(server)]
    for tab in tabs:
        tab.get("/sign-in")
        tab.post("/sign-in", email=developer.user.email, password=developer.password, next="/account")
    tabs[0].get("/dashboards")
    board_id = tabs[0].post("/dashboards/new", name="Raced", description="", scope="user").split("/")[-2]
    for tab in tabs:
        assert "Add a widget" in tab.get(f"/dashboards/{board_id}/edit")
    ended: list[str] = []

    def add(tab: Session, title: str) -> None:
        fields = {"add-type": "line", "add-metric": "agents.calls", "add-title": title}
        fields.update({"add-x": "0", "add-y": "0", "add-w": "6", "add-h": "4"})
        ended.append(tab.post(f"/dashboards/{board_id}/widgets", **fields))

    with databases.holding_write_lock(path):
        adding = [threading.Thread(target=add, args=(tab, f"Tab {i}")) for i, tab in enumerate(tabs)]
        for thread in adding:
            thread.start()
        time.sleep(1.5)  # both requests are in the server, waiting for the write lock
    for thread in adding:
        thread.join(30)
    assert [url.rsplit("?", 1)[-1] for url in ended] == ["done=added", "done=added"]
    titles = [widget["title"] for widget in api_board(server, developer, board_id)["dashboard"]["layout"]]
    assert sorted(titles) == ["Tab 0", "Tab 1"]
