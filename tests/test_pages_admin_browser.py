"""The administration pages in Debian's Chromium, on the real server: an admin creates a team and an API key
through the forms, the API sees both, the key's secret works; every page is free of axe violations.

Screenshots of each administration page at both widths go to the module's tmp folder (screenshots/NAME-WIDTH.png).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Member, Server, console_problems, http, seed_org, seeded_database, wait_drawn
from tests.test_pages_browser import DESKTOP, PHONE, accessibility_problems, full_page_screenshot, set_width
from tests.test_pages_dashboards_browser import sign_in


def seed(app: Any) -> dict[str, Member]:
    """Acme's three people, a team Core the manager leads with the developer in it, and a key made earlier."""
    from weather_metrics.accounts import organizations as accounts

    people = seed_org(app, "Acme")
    with app.app_context():
        org_id = people["admin"].user.organization_id
        core = accounts.create_team(org_id, "Core", "The collector and its storage", lead=people["manager"].user)
        accounts.add_member(core, people["developer"].user, "member")
        accounts.create_api_key(org_id, "fleet collector", people["admin"].user.id)
    return people


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Member]]:
    path = tmp_path_factory.mktemp("admin") / "metrics.db"
    return path, seeded_database(path, seed)


@pytest.fixture(scope="module")
def server(seeded: tuple[Path, dict[str, Member]]) -> Iterator[Server]:
    with Server(seeded[0]) as running:
        yield running


def api_get(server: Server, member: Member, path: str) -> Any:
    _, _, tokens = http(
        "POST", server.url + "/api/auth/login", {"email": member.user.email, "password": member.password}
    )
    status, _, body = http("GET", server.url + path, headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert status == 200, body
    return body


def send(driver: Any, fields: dict[str, str]) -> None:
    """Fill the named fields (by id) and send their form with its button; wait for the next page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    for name, value in fields.items():
        element = driver.find_element(By.ID, name)
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)
    driver.execute_script("window.beforeSending = true;")
    form = driver.find_element(By.ID, next(iter(fields))).find_element(By.XPATH, "./ancestor::form")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_drawn(
        driver, lambda d: d.execute_script("return window.beforeSending !== true && document.readyState === 'complete'")
    )


def look(driver: Any, shots: Path, name: str, width: int) -> None:
    """A full-page screenshot, nothing wider than the window, and no axe violation."""
    full_page_screenshot(driver, shots / f"{name}-{width}.png", width)
    assert driver.execute_script("return document.documentElement.scrollWidth") <= width, (name, width)
    assert accessibility_problems(driver) == [], (name, width)


def test_an_admin_creates_a_team_and_a_key_through_the_forms(browser, server, seeded, tmp_path_factory):
    from selenium.webdriver.common.by import By

    _, people = seeded
    admin = people["admin"]
    shots = tmp_path_factory.mktemp("screenshots")
    set_width(browser, DESKTOP)
    sign_in(browser, server, admin, "/admin/teams")
    console_problems(browser)
    send(browser, {"name": "Data platform", "description": "Pipelines and exports"})
    assert browser.current_url == server.url + "/admin/teams"
    teams = {t["name"]: t for t in api_get(server, admin, "/api/teams?include_members=true")["teams"]}
    assert teams["Data platform"]["description"] == "Pipelines and exports"
    developer = people["developer"].user
    send(browser, {f"user_id-{teams['Data platform']['id']}": developer.id})
    teams = {t["name"]: t for t in api_get(server, admin, "/api/teams?include_members=true")["teams"]}
    assert [m["user_id"] for m in teams["Data platform"]["members"]] == [developer.id]

    browser.get(server.url + "/admin/keys")
    send(browser, {"name": "grafana", "scope": "read"})
    secret = browser.find_element(By.ID, "secret").get_attribute("value")
    keys = {k["name"]: k for k in api_get(server, admin, "/api/keys")["keys"]}
    assert keys["grafana"]["scope"] == "read" and secret.startswith(keys["grafana"]["prefix"])
    status, _, _ = http("GET", server.url + "/api/metrics/agents", headers={"X-API-Key": secret})
    assert status == 200
    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        look(browser, shots, "key-created", width)
    browser.get(server.url + "/admin/keys")
    assert secret not in browser.page_source

    browser.get(server.url + "/admin/users")
    send(browser, {"email": "newcomer@acme.test", "name": "Newcomer", "role": "developer"})
    one_time = browser.find_element(By.ID, "secret").get_attribute("value")
    status, _, _ = http("POST", server.url + "/api/auth/login", {"email": "newcomer@acme.test", "password": one_time})
    assert status == 200
    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        look(browser, shots, "user-created", width)
    assert console_problems(browser) == []


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_every_administration_page_at_both_widths(browser, server, seeded, tmp_path_factory, width):
    _, people = seeded
    shots = tmp_path_factory.mktemp(f"screenshots-{width}")
    set_width(browser, width)
    sign_in(browser, server, people["admin"], "/admin/users")
    console_problems(browser)
    for name in ("users", "teams", "keys", "organization"):
        browser.get(f"{server.url}/admin/{name}")
        look(browser, shots, f"admin-{name}", width)
    browser.get(server.url + "/admin/users")
    send(browser, {"email": "not an email", "name": "", "password": "short"})
    look(browser, shots, "admin-users-refused", width)
    assert ["status of 400" in problem for problem in console_problems(browser)] == [True]  # the refused form's answer
    sign_in(browser, server, people["manager"], "/admin/teams")
    look(browser, shots, "manager-teams", width)
    assert console_problems(browser) == []
