"""Speed of the organization pages at 10 million executions: server time, and until the figures are in the DOM.

Pages: /dashboards/<id> (a dashboard with every widget type: numbers, line, bar, area, pie,
table), /explore/agents over 90 days, /explore/teams and /alerts/history, each as the
admin, the manager and a developer (a page a role may not open is left out).

- Server time, on the real server (gunicorn from the Procfile): a GET with the session
  cookie over a keep-alive connection, request sent to last byte. Cold is the first request
  after the server starts (Python, templates, SQLite's page cache and the queries' caches
  cold; the operating system's file cache warm); warm is the median of `--runs`.
  Target < 300 ms warm and < 1000 ms cold: a page is one or two of the API's queries
  (bench/org.py: < 50 ms p95, < 100 ms cold) plus rendering, and 300 ms is about where a
  click stops feeling immediate; cold pays the process's first imports and queries once.
- In headless Chromium: from navigation start until the figures are in the DOM: the page
  is complete and every chart canvas holds a drawn Chart.js chart; polled every few ms, so
  a figure may be late by one poll. Cold is the first load with an empty browser cache after
  a server restart; warm the median of `--loads` more. Target < 500 ms warm (the public
  pages' target, bench/pages.py), < 1500 ms cold.

The database is bench/org.py's (bench/results/org-<size>.db), reused while the code that
shapes it is unchanged. `--executions 200000` is a quick run; the default is 10 million.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from bench import org as org_bench
from bench.stats import size_label
from tests.support import CHROMEDRIVER, CHROMIUM, TEST_JWT_SECRET, Server, chromium
from weather_metrics import create_app, dashboards
from weather_metrics.accounts.logins import BrowserSessions
from weather_metrics.store.db import database
from weather_metrics.store.models import Dashboard, User
from weather_metrics.web.api.dashboard_schemas import DashboardCreateSchema
from weather_metrics.web.pages.sessions import SESSION_COOKIE

ROLES = ("admin", "manager", "developer")
SERVER_TARGETS = (300.0, 1000.0)  # warm, cold (ms)
BROWSER_TARGETS = (500.0, 1500.0)
BOARD = "Every widget (bench)"
# The figures are in the DOM: the page is loaded and every chart canvas has its chart drawn.
DRAWN = """
const canvases = Array.from(document.querySelectorAll('canvas'));
const drawn = canvases.filter(c => window.Chart && Chart.getChart(c)).length;
const ready = document.readyState === 'complete' && drawn === canvases.length;
return {ready: ready, charts: drawn, cells: document.querySelectorAll('main td, main dd, main .empty').length,
        at: performance.now()};
"""


def spot(wid: str, kind: str, metric: str, x: int, y: int, w: int = 6) -> dict[str, Any]:
    return {"id": wid, "type": kind, "metric": metric, "position": {"x": x, "y": y, "w": w, "h": 4}}


WIDGETS = [
    spot("calls", "number", "agents.calls", 0, 0, 4),
    spot("rate", "number", "agents.success_rate", 4, 0, 4),
    spot("per-day", "line", "agents.calls", 0, 1),
    spot("duration", "bar", "agents.avg_duration_ms", 6, 1),
    spot("commits", "area", "productivity.commits", 0, 2),
    spot("by-agent", "pie", "agents.calls", 6, 2),
    spot("p95", "table", "agents.p95_duration_ms", 0, 3, 12),
]


@dataclass(frozen=True)
class Timing:
    """One page for one role: the median of warm tries and the cold one, in ms."""

    page: str
    role: str
    warm: float
    cold: float


def prepare(args: argparse.Namespace) -> tuple[dict[str, str], str]:
    """The database (built or reused), the bench dashboard, and a session cookie of each role."""
    path: Path = args.database
    wanted = org_bench.fingerprint(args.executions, args.days, args.seed)
    if args.rebuild or not (org_bench.reusable(path, wanted) or (args.keep and path.exists())):
        path.parent.mkdir(parents=True, exist_ok=True)
        org_bench.build(path, args.executions, args.days, args.seed)
    else:
        print(f"reusing {path}")
    app = create_app({"database": str(path), "jwt_secret": TEST_JWT_SECRET, "log_level": "warning"})
    try:
        with app.app_context():
            state = app.extensions["weather_metrics"]
            sessions = BrowserSessions(state.tokens, TEST_JWT_SECRET, state.settings["browser_session_days"])
            people = {role: User.get(User.role == role) for role in ROLES}
            cookies = {role: sessions.start(user)[0] for role, user in people.items()}
            board = Dashboard.get_or_none(Dashboard.name == BOARD)
            if board is None:
                data = DashboardCreateSchema().load({"name": BOARD, "scope": "organization", "layout": WIDGETS})
                board = dashboards.create_dashboard(people["admin"], data)
            total = database.execute_sql("SELECT COUNT(*) FROM agent_executions").fetchone()[0]
        print(f"{total:,} executions over {args.days} days")
        return cookies, str(board.id)
    finally:
        app.extensions["weather_metrics"].close()
        database.close_all()


def pages(board: str, days: int) -> list[tuple[str, tuple[str, ...]]]:
    """Each page measured, with the roles that may open it."""
    today = datetime.now(UTC).date()
    start = today - timedelta(days=days - 1)
    return [
        (f"/dashboards/{board}", ROLES),
        (f"/explore/agents?start_date={start}&end_date={today}&aggregation=day", ROLES),
        ("/explore/teams", ("admin", "manager")),
        ("/alerts/history", ("admin", "manager")),
    ]


def timed_get(connection: HTTPConnection, path: str, cookie: str) -> float:
    started = time.perf_counter()
    connection.request("GET", path, headers={"Accept": "text/html", "Cookie": f"{SESSION_COOKIE}={cookie}"})
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200 or b"<main" not in body:
        raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
    return elapsed


def server_times(server: Server, cases: list[tuple[str, str]], cookies: dict[str, str], runs: int) -> list[Timing]:
    timings = []
    for path, role in cases:
        server.stop()
        server.start(timeout=120)
        connection = HTTPConnection("127.0.0.1", server.port, timeout=120)
        try:
            cold = timed_get(connection, path, cookies[role])
            for _ in range(2):
                timed_get(connection, path, cookies[role])
            warm = [timed_get(connection, path, cookies[role]) for _ in range(runs)]
        finally:
            connection.close()
        timings.append(Timing(path, role, statistics.median(warm), cold))
    return timings


def load(driver: Any, url: str) -> float:
    """Load a page; ms from navigation start until its figures are in the DOM."""
    from selenium.webdriver.support.ui import WebDriverWait

    def done(d: Any) -> dict[str, Any] | bool:
        found: dict[str, Any] = d.execute_script(DRAWN)
        return found if found["ready"] else False

    driver.get(url)
    found = WebDriverWait(driver, 60, poll_frequency=0.005).until(done)
    assert isinstance(found, dict)
    if not found["charts"] and not found["cells"]:
        raise RuntimeError(f"{url}: no chart, figure or empty-list notice in the page")
    return float(found["at"])


def browser_times(server: Server, cases: list[tuple[str, str]], cookies: dict[str, str], loads: int) -> list[Timing]:
    driver = chromium(width=1440, height=900)
    try:
        timings = []
        for path, role in cases:
            server.stop()
            server.start(timeout=120)
            driver.get(server.url + "/static/favicon.svg")  # a page of the origin, to set its cookie on
            driver.delete_all_cookies()
            driver.add_cookie({"name": SESSION_COOKIE, "value": cookies[role], "path": "/"})
            driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            cold = load(driver, server.url + path)
            warm = [load(driver, server.url + path) for _ in range(loads)]
            timings.append(Timing(path, role, statistics.median(warm), cold))
        return timings
    finally:
        driver.quit()


def shown(page: str) -> str:
    """A page as printed: an explorer's dates as the days they span."""
    return page.split("?")[0] + " (90 days, by day)" if "start_date=" in page else page


def verdict(value: float, target: float) -> str:
    return "PASS" if value < target else "FAIL"


def report(title: str, timings: list[Timing], targets: tuple[float, float]) -> int:
    """Print each figure beside its target; the number that missed it."""
    warm_target, cold_target = targets
    print(f"\n== {title}")
    print(f"{'page':<52} {'role':<10} {'warm ms':>8}  {'target':<8} {'':<4}  {'cold ms':>8}  {'target':<8}")
    missed = 0
    for t in timings:
        missed += (t.warm >= warm_target) + (t.cold >= cold_target)
        print(
            f"{shown(t.page):<52} {t.role:<10} {t.warm:>8.1f}  < {warm_target:<6.0f} {verdict(t.warm, warm_target)}  "
            f"{t.cold:>8.1f}  < {cold_target:<6.0f} {verdict(t.cold, cold_target)}"
        )
    return missed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.org_pages", description=__doc__)
    parser.add_argument("--executions", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--database", type=Path, help="default bench/results/org-<size>.db")
    parser.add_argument("--runs", type=int, default=20, help="warm requests per page and role (default 20)")
    parser.add_argument("--loads", type=int, default=5, help="warm browser loads per page and role (default 5)")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--keep", action="store_true", help="reuse the database even if other code built it")
    parser.add_argument("--no-browser", action="store_true", help="server times only")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.database = args.database or org_bench.RESULTS / f"org-{size_label(args.executions)}.db"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cookies, board = prepare(args)
    cases = [(path, role) for path, roles in pages(board, args.days) for role in roles]
    server = Server(args.database, log_level="warning").start(timeout=120)
    results: list[tuple[str, list[Timing], tuple[float, float]]] = []
    try:
        title = f"server time on gunicorn, cold = first request after a start, warm = median of {args.runs}"
        results.append((title, server_times(server, cases, cookies, args.runs), SERVER_TARGETS))
        if args.no_browser or not all(os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER)):
            print("\nbrowser figures skipped: " + ("--no-browser" if args.no_browser else f"{CHROMIUM} missing"))
        else:
            title = f"headless Chromium, navigation start to figures in the DOM, warm = median of {args.loads}"
            results.append((title, browser_times(server, cases, cookies, args.loads), BROWSER_TARGETS))
    finally:
        server.stop()
    missed = sum(report(*result) for result in results)
    figures = sum(2 * len(timings) for _, timings, _ in results)
    print(f"{figures - missed} of {figures} figures meet their target")
    print(f"load average of the machine: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
