"""/docs in Debian's Chromium: Swagger UI draws /openapi.json from this host only, under the page's CSP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import Server, console_problems, http, requested_urls, wait_drawn


@dataclass
class Visit:
    """What one load of /docs showed and did."""

    url: str
    operations: set[tuple[str, str]]
    console: list[str]
    requests: list[str]
    screenshot: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("docs") / "metrics.db") as running:
        yield running


@pytest.fixture(scope="module")
def visit(browser: Any, server: Server, tmp_path_factory: pytest.TempPathFactory) -> Visit:
    """/docs loaded once and drawn; its console and requests up to then, and a screenshot."""
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/docs")
    wait_drawn(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    operations = {
        (
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.lower(),
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
        )
        for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")
    }
    screenshot = tmp_path_factory.mktemp("screenshots") / "docs.png"
    browser.save_screenshot(str(screenshot))
    return Visit(server.url, operations, console_problems(browser), requested_urls(browser), screenshot)


def test_swagger_ui_draws_every_operation_of_the_document(visit):
    _, _, spec = http("GET", visit.url + "/openapi.json")
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops if method != "parameters"}
    assert {("post", "/v1/events"), ("post", "/api/auth/login"), ("get", "/v1/stats/tool/{tool_name}")} <= documented
    assert visit.operations == documented
    assert visit.screenshot.stat().st_size > 10_000


def test_the_page_logs_no_error_and_no_policy_violation(visit):
    assert visit.console == []


def test_every_request_stays_on_this_host(visit):
    assert visit.url + "/openapi.json" in visit.requests
    assert visit.url + "/docs/static/docs.js" in visit.requests
    elsewhere = [url for url in visit.requests if not url.startswith((visit.url + "/", "data:"))]
    assert elsewhere == []


def test_try_it_out_calls_the_api_from_the_page(visit, browser):
    """The CSP's connect-src lets the page's own requests through."""
    from selenium.webdriver.common.by import By

    operation = browser.find_element(By.XPATH, "//div[contains(@class, 'opblock ')][.//*[@data-path='/v1/health']]")
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait_drawn(browser, lambda _: operation.find_element(By.CSS_SELECTOR, ".try-out__btn")).click()
    wait_drawn(browser, lambda _: operation.find_element(By.CSS_SELECTOR, ".btn.execute")).click()
    status = wait_drawn(
        browser, lambda _: operation.find_element(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status")
    )
    assert status.text == "200"
    assert '"status": "healthy"' in operation.find_element(By.CSS_SELECTOR, ".live-responses-table .microlight").text
    assert console_problems(browser) == []
    assert visit.url + "/v1/health" in requested_urls(browser)


def test_the_checks_see_inline_script_and_other_hosts(visit, browser):
    """What the checks above would report if the page broke its policy: they can fail."""
    console_problems(browser)  # start from here: both logs drain as they are read
    requested_urls(browser)
    browser.execute_script(
        "const script = document.createElement('script'); script.textContent = 'window.inline = 1';"
        "document.body.append(script);"
        "const image = document.createElement('img'); image.src = 'https://example.invalid/pixel.png';"
        "document.body.append(image);"
    )
    problems: list[str] = []
    wait_drawn(browser, lambda d: problems.extend(console_problems(d)) or len(problems) >= 2)
    assert any("inline script" in p and "Content Security Policy" in p for p in problems), problems
    assert any("example.invalid" in p and "Content Security Policy" in p for p in problems), problems
    assert browser.execute_script("return window.inline") is None
    assert "https://example.invalid/pixel.png" in requested_urls(browser)
