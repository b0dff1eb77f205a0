"""The header on a phone and on a desktop, in Debian's Chromium on the real server: one line on a 375 px phone, the
navigation behind a Menu button (a popover: no script) that the keyboard opens, walks and closes; a plain row of
links at 1440 px. Axe finds nothing with the menu shut or open. Screenshots go to the module's tmp folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Member, Server, console_problems, seed_org, seeded_database, wait_drawn
from tests.test_pages_browser import DESKTOP, PHONE, accessibility_problems, drawn, full_page_screenshot, set_width
from tests.test_pages_dashboards_browser import sign_in

NAV = ["API", "Dashboards", "Explore", "Alerts", "Exports", "Administration", "Admin", "Sign out"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Member]:
    path = tmp_path_factory.mktemp("menu") / "metrics.db"
    return path, seeded_database(path, lambda app: seed_org(app, "Acme")["admin"])


@pytest.fixture(scope="module")
def server(seeded: tuple[Path, Member]) -> Iterator[Server]:
    with Server(seeded[0], public_pages="false") as running:
        yield running


def header(driver: Any) -> dict[str, Any]:
    """The header's height, the brand's and Menu button's rows, and the navigation entries a person can see."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "const box = e => e.getBoundingClientRect();"
        "const button = document.querySelector('.site-menu-button');"
        "const seen = e => e.checkVisibility() && box(e).width > 0;"
        "return {height: box(document.querySelector('.site-header')).height,"
        "  brand: box(document.querySelector('.brand')).top, button: seen(button) ? box(button).top : null,"
        "  expanded: button.matches(':popover-open') || document.querySelector('#site-menu').matches(':popover-open'),"
        "  links: [...document.querySelectorAll('.site-nav a, .site-nav button')].filter(seen)"
        "    .map(e => e.textContent.replace('Your account: ', '').trim())};"
    )


def test_on_a_phone_the_header_is_one_line_and_the_keyboard_opens_walks_and_closes_the_menu(
    browser, server, seeded, tmp_path_factory
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shots = tmp_path_factory.mktemp("screenshots")
    set_width(browser, DESKTOP)
    sign_in(browser, server, seeded[1], "/account")
    console_problems(browser)
    set_width(browser, PHONE)
    browser.get(server.url + "/account")
    wait_drawn(browser, drawn)
    shut = header(browser)
    assert shut["height"] < 64 and abs(shut["brand"] - shut["button"]) < 12, shut  # one line, was three
    assert shut["links"] == [] and not shut["expanded"]
    full_page_screenshot(browser, shots / f"menu-shut-{PHONE}.png", PHONE)
    assert accessibility_problems(browser) == []
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB, Keys.TAB, Keys.TAB)  # skip link, brand, Menu
    button = browser.switch_to.active_element
    assert button.text == "Menu"
    button.send_keys(Keys.ENTER)
    opened = wait_drawn(browser, lambda d: (lambda h: h if h["links"] else None)(header(d)))
    assert opened["links"] == NAV and opened["height"] == shut["height"]  # over the page, not pushing it down
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE
    full_page_screenshot(browser, shots / f"menu-open-{PHONE}.png", PHONE)
    assert accessibility_problems(browser) == []
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "API"  # the first entry comes next
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_drawn(browser, lambda d: header(d)["links"] == [])
    button.send_keys(Keys.ENTER)
    wait_drawn(browser, lambda d: header(d)["links"])
    browser.find_element(By.LINK_TEXT, "Dashboards").click()
    wait_drawn(browser, lambda d: d.current_url == server.url + "/dashboards" and drawn(d))
    assert header(browser)["links"] == []  # a new page starts with the menu shut

    set_width(browser, DESKTOP)
    browser.get(server.url + "/account")
    wait_drawn(browser, drawn)
    wide = header(browser)
    assert wide["button"] is None and wide["links"] == NAV and wide["height"] < 64, wide
    full_page_screenshot(browser, shots / f"menu-{DESKTOP}.png", DESKTOP)
    assert accessibility_problems(browser) == []
    assert console_problems(browser) == []
