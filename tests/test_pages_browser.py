"""The pages in Debian's Chromium, on the real server: drawn from this host only under the pages' CSP,
at phone and desktop widths, with charts that hold the /v1/stats figures and a tools table that sorts;
signing in, the account page and signing out, with nothing left in the page's storage.

Screenshots of every page at both widths go to the module's tmp folder (screenshots/NAME-WIDTH.png).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    DESKTOP,
    PHONE,
    ROOT,
    Member,
    Server,
    assert_vendored,
    console_problems,
    full_page_screenshot,
    http,
    requested_urls,
    seed_org,
    seeded_database,
    set_width,
    wait_drawn,
)
from tests.test_pages import TOOLS, decimal, page_events

AXE = ROOT / "tests" / "vendor" / "axe-core-4.14.1"  # the accessibility checker; where it came from: its README.md
# name: (path, status)
PAGES = {
    "overview": ("/", 200),
    "overview-7d": ("/?period=7d", 200),
    "overview-90d": ("/?period=90d", 200),
    "tool": ("/tools/get_forecast", 200),
    "tool-7d": ("/tools/get_current_conditions?period=7d", 200),
    "tool-90d": ("/tools/get_forecast?period=90d", 200),
    "unknown-tool": ("/tools/get_tides", 404),
    "bad-period": ("/?period=1y", 400),
    "no-such-page": ("/no/such/page", 404),
    "docs": ("/docs", 200),
    "sign-in": ("/sign-in", 200),
}


@dataclass
class Visit:
    """What one load of a page showed and did."""

    url: str
    status: int
    console: list[str]
    requests: list[str]
    scroll_width: int
    viewport_width: int
    clipped_tables: int  # tables wider than their box, which would scroll inside it
    chart: dict[str, Any] | None  # labels and values the chart instance holds
    accessibility: list[str]  # axe-core's serious and critical violations (not run on /docs, Swagger UI's)
    screenshot: Path


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Member]:
    """The server's database, with Acme; returns its path and Acme's manager, who signs in."""
    path = tmp_path_factory.mktemp("pages") / "metrics.db"
    return path, seeded_database(path, lambda app: seed_org(app, "Acme")["manager"])


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def server(database: tuple[Path, Member]) -> Iterator[Server]:
    with Server(database[0]) as running:
        status, _, body = http("POST", running.url + "/v1/events", {"events": page_events()})
        assert status == 200, body
        yield running


def drawn(driver: Any) -> bool:
    """The document is loaded, and its chart (if any) or Swagger UI has drawn."""
    return bool(
        driver.execute_script(
            "if (document.readyState !== 'complete') return false;"
            "const canvas = document.querySelector('canvas[data-chart]');"
            "if (canvas) return Boolean(window.Chart && Chart.getChart(canvas));"
            "if (document.getElementById('swagger-ui')) return Boolean(document.querySelector('.opblock'));"
            "return true;"
        )
    )


def chart_data(driver: Any) -> dict[str, Any] | None:
    """The labels and values of the page's chart, as the Chart.js instance holds them."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "const canvas = document.querySelector('canvas[data-chart]');"
        "const chart = canvas && Chart.getChart(canvas);"
        "return chart ? {labels: chart.data.labels, values: chart.data.datasets[0].data} : null;"
    )


def accessibility_problems(driver: Any) -> list[str]:
    """The serious and critical violations axe-core finds in the page (WCAG 2.2 A and AA, and best practice)."""
    driver.execute_script((AXE / "axe.min.js").read_text())  # through WebDriver: the page's CSP does not apply
    violations = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then("
        "  result => done(result.violations.filter(v => ['serious', 'critical'].includes(v.impact))"
        "    .map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))),"
        "  error => done(['axe failed: ' + error]));"
    )
    return list(violations)


@pytest.fixture(scope="module")
def visits(browser: Any, server: Server, screenshots: Path) -> dict[tuple[str, int], Visit]:
    """Every page loaded once at each width and drawn; its console, requests, width, chart and screenshot."""
    folder = screenshots
    found = {}
    console_problems(browser), requested_urls(browser)  # start from here: both logs drain as they are read
    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        for name, (path, status) in PAGES.items():
            browser.get(server.url + path)
            wait_drawn(browser, drawn)
            screenshot = folder / f"{name}-{width}.png"
            full_page_screenshot(browser, screenshot, width)
            found[name, width] = Visit(
                url=server.url + path,
                status=status,
                console=console_problems(browser),
                requests=requested_urls(browser),
                scroll_width=browser.execute_script("return document.documentElement.scrollWidth"),
                viewport_width=browser.execute_script("return window.innerWidth"),
                clipped_tables=browser.execute_script(
                    "return [...document.querySelectorAll('.table-scroll')]"
                    ".filter(box => box.scrollWidth > box.clientWidth).length"
                ),
                chart=chart_data(browser),
                accessibility=[] if name == "docs" else accessibility_problems(browser),
                screenshot=screenshot,
            )
    set_width(browser, DESKTOP)
    return found


def test_pages_log_no_error_and_no_policy_violation(visits):
    for (name, width), visit in visits.items():
        # An error page's own status is the one line Chromium logs for it.
        expected = [] if visit.status == 200 else [f"{visit.url} - Failed to load resource: the server responded"]
        assert [line.split(" with a status")[0] for line in visit.console] == expected, (name, width, visit.console)


def test_every_request_stays_on_this_host(visits):
    for (name, width), visit in visits.items():
        host = visit.url.split("/", 3)[:3]
        elsewhere = [url for url in visit.requests if not url.startswith(("/".join(host) + "/", "data:"))]
        assert elsewhere == [], (name, width)
    overview = visits["overview", DESKTOP].requests
    assert any(url.endswith("/static/vendor/chart.js-4.6.1/chart.umd.js") for url in overview)
    assert any(url.endswith("/static/pages.css") for url in overview)


def test_no_page_scrolls_sideways(visits):
    for (name, width), visit in visits.items():
        assert visit.viewport_width == width, (name, width)
        assert visit.scroll_width <= width, (name, width, visit.scroll_width)
        assert visit.clipped_tables == 0, (name, width)  # every column in view, even at 375 px


def test_every_page_has_a_screenshot_at_both_widths(visits):
    for (name, width), visit in visits.items():
        assert visit.screenshot.stat().st_size > 5_000, (name, width)
    assert {key[0] for key in visits} == set(PAGES)


def test_axe_finds_no_serious_accessibility_problem(visits):
    for (name, width), visit in visits.items():
        assert visit.accessibility == [], (name, width)


def test_the_checker_is_the_registry_package_with_its_licence():
    assert_vendored(AXE, "axe-core", {"LICENSE", "LICENSE-3RD-PARTY.txt"})


def api(server: Server, path: str) -> Any:
    status, _, body = http("GET", server.url + path)
    assert status in (200, 404), (path, status, body)
    return body


def expected_series(server: Server, tools: tuple[str, ...], period: str, labels: list[str]) -> list[int]:
    """Calls per date of `labels`, summed over what /v1/stats/tool/<name> answers for each of `tools`."""
    calls: dict[str, int] = {}
    for tool in tools:
        for day in api(server, f"/v1/stats/tool/{tool}?period={period}").get("daily_data", []):
            calls[day["date"]] = calls.get(day["date"], 0) + day["calls"]
    assert set(calls) <= set(labels)
    return [calls.get(date, 0) for date in labels]


@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_the_charts_hold_the_api_figures(visits, server, width):
    days = {"7d": 7, "30d": 30, "90d": 90}
    charts = {
        "overview": (TOOLS, "30d"),
        "overview-7d": (TOOLS, "7d"),
        "overview-90d": (TOOLS, "90d"),
        "tool": (("get_forecast",), "30d"),
        "tool-7d": (("get_current_conditions",), "7d"),
        "tool-90d": (("get_forecast",), "90d"),
    }
    for name, (tools, period) in charts.items():
        chart = visits[name, width].chart
        assert chart is not None, name
        assert len(chart["labels"]) == days[period] + 1  # the N days before today, and today
        assert chart["values"] == expected_series(server, tools, period, chart["labels"]), name
        assert sum(chart["values"]) > 0
    total = api(server, "/v1/stats/overview?period=90d")["summary"]["total_calls"]
    assert sum(visits["overview-90d", width].chart["values"]) == total
    assert visits["unknown-tool", width].chart is None


def tool_rows(driver: Any) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "table[data-sortable] tbody tr")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def heading(driver: Any, text: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, f"//table[@data-sortable]//th[.//button[normalize-space()='{text}']]")


def test_the_tools_table_sorts_by_the_column_pressed(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server.url + "/?period=90d")
    wait_drawn(browser, drawn)
    tools = api(server, "/v1/stats/tools?period=90d")["tools"]
    assert [row[0] for row in tool_rows(browser)] == [t["name"] for t in tools]  # the API's order: calls, most first
    assert heading(browser, "Calls").get_attribute("aria-sort") == "descending"

    heading(browser, "Tool").find_element(By.TAG_NAME, "button").click()
    assert [row[0] for row in tool_rows(browser)] == sorted(t["name"] for t in tools)
    assert heading(browser, "Tool").get_attribute("aria-sort") == "ascending"
    assert heading(browser, "Calls").get_attribute("aria-sort") is None
    heading(browser, "Tool").find_element(By.TAG_NAME, "button").click()
    assert [row[0] for row in tool_rows(browser)] == sorted((t["name"] for t in tools), reverse=True)

    # From the keyboard: a heading's button takes Enter.
    heading(browser, "Success rate").find_element(By.TAG_NAME, "button").send_keys(Keys.ENTER)
    by_rate = sorted(tools, key=lambda t: (-t["success_rate"], t["name"]))
    assert [row[0] for row in tool_rows(browser)] == [t["name"] for t in by_rate]
    heading(browser, "Calls").find_element(By.TAG_NAME, "button").send_keys(Keys.ENTER)
    heading(browser, "Calls").find_element(By.TAG_NAME, "button").send_keys(Keys.ENTER)
    assert [int(row[1].replace(",", "")) for row in tool_rows(browser)] == sorted(t["calls"] for t in tools)
    assert heading(browser, "Calls").get_attribute("aria-sort") == "ascending"

    # Each tool's p95 as the API gives it, slowest first.
    heading(browser, "p95 response time (ms)").find_element(By.TAG_NAME, "button").click()
    by_p95 = sorted(tools, key=lambda t: (-t["p95_ms"], t["name"]))
    assert [[row[0], row[4]] for row in tool_rows(browser)] == [[t["name"], decimal(t["p95_ms"])] for t in by_p95]
    assert console_problems(browser) == []


def test_the_first_tab_offers_a_skip_to_the_content(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server.url + "/")
    wait_drawn(browser, drawn)
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    skip = browser.switch_to.active_element
    assert skip.text == "Skip to content" and skip.is_displayed()
    skip.send_keys(Keys.ENTER)
    assert browser.switch_to.active_element.get_attribute("id") == "main"


def test_the_checks_see_inline_script_on_a_page(browser, server):
    """What the console check above would report if a page broke its policy: it can fail."""
    browser.get(server.url + "/")
    wait_drawn(browser, drawn)
    console_problems(browser)
    browser.execute_script(
        "const script = document.createElement('script'); script.textContent = 'window.inline = 1';"
        "document.body.append(script);"
    )
    problems: list[str] = []
    wait_drawn(browser, lambda d: problems.extend(console_problems(d)) or problems)
    assert any("inline script" in p and "Content Security Policy" in p for p in problems), problems
    assert browser.execute_script("return window.inline") is None


def test_axe_sees_an_image_without_a_text_alternative(browser, server):
    """What the accessibility check above would report if a page lost its labels: it can fail."""
    browser.get(server.url + "/tools/get_forecast")
    wait_drawn(browser, drawn)
    assert accessibility_problems(browser) == []
    browser.execute_script(
        "const image = document.createElement('img'); image.src = 'data:,'; document.body.append(image);"
    )
    assert [p.split(":")[0] for p in accessibility_problems(browser)] == ["image-alt"]


# --- signing in ----------------------------------------------------------------------------------


def storage_and_cookies(driver: Any) -> dict[str, Any]:
    """What the page's scripts could read of the sign-in: Web Storage and document.cookie."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "return {local: localStorage.length, session: sessionStorage.length, cookie: document.cookie};"
    )


def test_sign_in_by_keyboard_see_the_account_and_sign_out(browser, server, database, screenshots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    manager = database[1]
    set_width(browser, DESKTOP)
    browser.delete_all_cookies()
    console_problems(browser)
    browser.get(server.url + "/account?tab=1")
    wait_drawn(browser, drawn)
    assert browser.current_url == server.url + "/sign-in?next=/account?tab%3D1"
    assert browser.switch_to.active_element.get_attribute("id") == "email"  # the form has the focus
    browser.switch_to.active_element.send_keys(manager.user.email, Keys.TAB, manager.password, Keys.ENTER)
    wait_drawn(browser, lambda d: d.current_url == server.url + "/account?tab=1" and drawn(d))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Your account"
    details = browser.find_element(By.CSS_SELECTOR, "dl.details").text
    assert all(shown in details for shown in ("Acme", "Manager", "Session ends"))
    assert manager.user.email in browser.find_element(By.CSS_SELECTOR, ".page-head").text
    assert storage_and_cookies(browser) == {"local": 0, "session": 0, "cookie": ""}  # the cookie is HttpOnly
    cookie = browser.get_cookie("weather_metrics_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]

    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        browser.get(server.url + "/account")
        wait_drawn(browser, drawn)
        full_page_screenshot(browser, screenshots / f"account-{width}.png", width)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        assert accessibility_problems(browser) == [], width
    assert console_problems(browser) == []

    sign_out = browser.find_element(By.XPATH, "//header//button[normalize-space()='Sign out']")
    sign_out.send_keys(Keys.ENTER)
    wait_drawn(browser, lambda d: "/sign-in" in d.current_url and drawn(d))
    assert browser.find_element(By.CSS_SELECTOR, "[role=status]").text == "You are signed out."
    assert browser.get_cookie("weather_metrics_session") is None
    assert storage_and_cookies(browser) == {"local": 0, "session": 0, "cookie": ""}
    browser.get(server.url + "/account")
    wait_drawn(browser, drawn)
    assert browser.current_url == server.url + "/sign-in"
    assert console_problems(browser) == []


def test_a_form_sent_without_its_token_is_refused_with_a_page_saying_why(browser, server):
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(server.url + "/sign-in")
    wait_drawn(browser, drawn)
    browser.execute_script("document.querySelector('input[name=csrf_token]').remove()")
    browser.find_element(By.ID, "email").send_keys("anyone@acme.test")
    browser.find_element(By.ID, "password").send_keys("a password of theirs")
    browser.find_element(By.CSS_SELECTOR, "main button[type=submit]").click()
    wait_drawn(browser, lambda d: d.find_element(By.TAG_NAME, "h1").text == "Not allowed")
    assert "no security token" in browser.find_element(By.CSS_SELECTOR, ".error-message").text
    problems = console_problems(browser)
    assert [p for p in problems if "403" not in p] == [], problems


def test_the_server_believes_no_forwarded_scheme_without_trusted_proxies(server):
    """Only trusted_proxies lets a header say a request came over TLS: gunicorn's own trust of 127.0.0.1 is off."""
    for forged in ({"X-Forwarded-Proto": "https"}, {"X-Forwarded-Ssl": "on"}, {"X-Forwarded-Protocol": "ssl"}):
        status, headers, _ = http("GET", server.url + "/sign-in", headers=forged)
        assert status == 200 and "HttpOnly" in headers["Set-Cookie"], headers
        assert "Secure" not in headers["Set-Cookie"], forged
