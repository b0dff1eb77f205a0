"""Pages on a 375 px phone, in Debian's Chromium on the real server. The header: one line, the navigation behind a
Menu button (a popover: no script) that the keyboard opens, walks and closes; a plain row of links at 1440 px; axe
finds nothing with the menu shut or open. With a dozen agents: a dashboard's pie shows every agent in its legend, and
the explorer's per-agent table is one block per agent, each figure named, nothing scrolling sideways.
Screenshots go to the module's tmp folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import Member, Server, console_problems, http, seed_org, seeded_database, wait_drawn
from tests.test_pages_browser import DESKTOP, PHONE, accessibility_problems, drawn, full_page_screenshot, set_width
from tests.test_pages_dashboards_browser import sign_in

NAV = ["API", "Dashboards", "Explore", "Alerts", "Exports", "Administration", "Admin", "Sign out"]


AGENTS = [
    f"{name}-agent" for name in "code test refactor doc plan debug security migrate release deps perf guide".split()
]
PIE = {"id": "by-agent", "type": "pie", "metric": "agents.calls", "position": {"x": 0, "y": 0, "w": 6, "h": 4}}


@dataclass
class Seeded:
    admin: Member
    key: str
    board_id: str


def seed(app: Any) -> Seeded:
    from weather_metrics import dashboards
    from weather_metrics.accounts import organizations as accounts

    admin = seed_org(app, "Acme")["admin"]
    with app.app_context():
        _, key = accounts.create_api_key(admin.user.organization_id, "fleet", admin.user.id)
        board = dashboards.create_dashboard(admin.user, {"name": "Agents", "scope": "organization", "layout": [PIE]})
    return Seeded(admin, key, board.id)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Member, Seeded]:
    path = tmp_path_factory.mktemp("phone") / "metrics.db"
    data = seeded_database(path, seed)
    return path, data.admin, data


@pytest.fixture(scope="module")
def server(seeded: tuple[Path, Member, Seeded]) -> Iterator[Server]:
    with Server(seeded[0], public_pages="false") as running:
        data = seeded[2]
        when = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        body = [
            {
                "session_id": "s",
                "user_identifier": data.admin.user.email,
                "agent_name": agent,
                "command": "run",
                "execution_time_ms": 100 * (i + 1),
                "success": True,
                "timestamp": when,
            }  # fmt: skip
            for i, agent in enumerate(AGENTS)
            for _ in range(i + 1)
        ]
        headers = {"X-API-Key": data.key, "Idempotency-Key": str(uuid.uuid4())}
        status, _, answer = http("POST", running.url + "/mcp/metrics/collect", body, headers=headers)
        assert status == 201, answer
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


LEGEND = """
const chart = Chart.getChart(document.querySelector('[data-widget="by-agent"] canvas'));
if (!chart || chart.data.labels.length < arguments[0]) return null;
const legend = chart.legend;
return {labels: chart.data.labels.length, shown: legend.legendHitBoxes.filter(b => b.top + b.height <= legend.bottom
  && b.top >= legend.top).length};
"""
STACKED = """
const box = document.querySelector('[data-agents]').closest('.table-scroll');
const cells = [...document.querySelectorAll('[data-agents] tbody td')];
const rows = document.querySelectorAll('[data-agents] tbody tr').length;
return {sideways: box.scrollWidth > box.clientWidth + 1, rows: rows,
        named: cells.filter(td => getComputedStyle(td, '::before').content === JSON.stringify(td.dataset.label)).length,
        cells: cells.length};
"""


def test_on_a_phone_a_pie_shows_every_agent_and_the_agents_table_is_a_block_per_agent(
    browser, server, seeded, tmp_path_factory
):
    shots = tmp_path_factory.mktemp("screenshots")
    data = seeded[2]
    set_width(browser, DESKTOP)
    sign_in(browser, server, data.admin, "/account")
    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        browser.get(f"{server.url}/dashboards/{data.board_id}")
        legend = wait_drawn(browser, lambda d: d.execute_script(LEGEND, len(AGENTS)))
        assert legend == {"labels": len(AGENTS), "shown": len(AGENTS)}, width  # none cut off below the legend
        full_page_screenshot(browser, shots / f"pie-{width}.png", width)
        browser.get(f"{server.url}/explore/agents")
        wait_drawn(browser, drawn)
        table = browser.execute_script(STACKED)
        assert table["rows"] == len(AGENTS) and not table["sideways"], (width, table)
        assert table["named"] == (table["cells"] if width == PHONE else 0), width  # each figure says what it is
        full_page_screenshot(browser, shots / f"explore-agents-{width}.png", width)
        assert accessibility_problems(browser) == [], width
