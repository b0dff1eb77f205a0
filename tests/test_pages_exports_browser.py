"""The exports page in Debian's Chromium, on the real server: a developer requests a CSV export with the form,
watches the server's runner finish it without reloading, and clicks Download; the file Chromium saves is the
one GET /api/reports/<id>/download serves.

Screenshots of the page (empty, refused, with finished exports) at both widths go to the module's tmp folder.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import Member, Server, console_problems, http, seed_org, seeded_database, wait_drawn
from tests.test_pages_alerts_browser import loaded, look
from tests.test_pages_browser import DESKTOP, PHONE, full_page_screenshot, set_width
from tests.test_pages_dashboards_browser import sign_in


@dataclass
class Seeded:
    admin: Member
    developer: Member


def seed(app: Any) -> Seeded:
    people = seed_org(app, "Acme")
    return Seeded(people["admin"], people["developer"])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    path = tmp_path_factory.mktemp("exports") / "metrics.db"
    return path, seeded_database(path, seed)


@pytest.fixture(scope="module")
def server(seeded: tuple[Path, Seeded]) -> Iterator[Server]:
    with Server(seeded[0], export_workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def api(server: Server, member: Member, method: str, path: str, body: Any = None) -> Any:
    _, _, tokens = http(
        "POST", server.url + "/api/auth/login", {"email": member.user.email, "password": member.password}
    )
    status, _, answer = http(method, server.url + path, body, {"Authorization": "Bearer " + tokens["access_token"]})
    assert status in (200, 201, 202), answer
    return answer


def add_executions(server: Server, member: Member) -> None:
    """Forty calls of two agents by `member` over the last hours."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=20)
    items = [
        {
            "agent_name": f"agent-{n % 2}",
            "command": "review",
            "execution_time_ms": 100 + n,
            "success": n % 5 != 0,
            "timestamp": (start + timedelta(minutes=29 * n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user_id": member.user.id,
        }
        for n in range(40)
    ]
    api(server, member, "POST", "/api/metrics/agents", items)


def request_csv(driver: Any, server: Server) -> None:
    """The form by keyboard and clicks: agent executions of the last 30 days, as CSV, row per hour."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "report_type")).select_by_visible_text("Agent executions")
    Select(driver.find_element(By.ID, "format")).select_by_visible_text("CSV")
    Select(driver.find_element(By.ID, "aggregation")).select_by_visible_text("Hour")
    driver.find_element(By.CSS_SELECTOR, "form.form button[type=submit]").click()
    wait_drawn(driver, lambda d: d.current_url == server.url + "/exports?done=requested" and loaded(d))


def downloaded(folder: Path) -> Path:
    files = [path for path in folder.iterdir() if not path.name.endswith(".crdownload")]
    assert len(files) == 1, files
    return files[0]


def test_an_export_requested_on_the_page_finishes_live_and_downloads(browser, server, seeded, tmp_path):
    from selenium.webdriver.common.by import By

    _, data = seeded
    add_executions(server, data.developer)
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    set_width(browser, DESKTOP)
    sign_in(browser, server, data.developer, "/exports")
    console_problems(browser)
    assert browser.find_element(By.CSS_SELECTOR, "header a[aria-current=page]").text == "Exports"
    request_csv(browser, server)
    item = browser.find_element(By.CSS_SELECTOR, "[data-job]")
    first = item.get_attribute("data-status")
    browser.execute_script("window.stillTheSamePage = true;")
    wait_drawn(browser, lambda d: d.find_element(By.CSS_SELECTOR, "[data-job]").get_attribute("data-status") == "done")
    assert browser.execute_script("return window.stillTheSamePage === true")
    if first != "done":  # it was waiting when the page loaded: the page asked until it was done
        assert int(browser.execute_script("return document.body.dataset.polls")) >= 1
    job_id = item.get_attribute("data-job")
    job = api(server, data.developer, "GET", f"/api/reports/{job_id}")
    assert job["status"] == "done" and job["progress"] == 100 and job["rows"] == 40
    facts = item.text
    assert "Done" in facts and "100 %" in facts and "40" in facts
    link = item.find_element(By.LINK_TEXT, "Download")
    assert link.is_displayed() and link.get_attribute("href") == f"{server.url}/exports/{job_id}/download"
    link.click()
    deadline = time.monotonic() + 30
    while not [p for p in tmp_path.iterdir() if not p.name.endswith(".crdownload")] and time.monotonic() < deadline:
        time.sleep(0.1)
    saved = downloaded(tmp_path)
    from_api = api(server, data.developer, "GET", f"/api/reports/{job_id}/download")
    assert saved.read_bytes().decode() == from_api
    assert from_api.startswith("occurred_at (UTC),user,agent_name,") and from_api.count("\n") == 41
    assert console_problems(browser) == []


def test_the_page_at_both_widths(browser, server, seeded, screenshots):
    from selenium.webdriver.common.by import By

    _, data = seeded
    sign_in(browser, server, data.admin, "/exports")
    for width in (PHONE, DESKTOP):
        set_width(browser, width)
        browser.get(server.url + "/exports")
        wait_drawn(browser, loaded)
        look(browser, screenshots, "exports", width)
        browser.find_element(By.ID, "metric_type").send_keys("commits")
        browser.find_element(By.ID, "include_rows").click()  # a CSV without its rows: refused
        browser.find_element(By.CSS_SELECTOR, "form.form button[type=submit]").click()
        wait_drawn(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".field__problem"))
        assert "A CSV file is its data rows" in browser.find_element(By.ID, "include_rows-problem").text
        assert browser.find_element(By.ID, "metric_type").get_attribute("value") == "commits"
        look(browser, screenshots, "exports-refused", width)
    full_page_screenshot(browser, screenshots / f"exports-final-{DESKTOP}.png", DESKTOP)
