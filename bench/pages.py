"""Speed of the public pages on a database of 10 million events: server time, and drawing in Chromium.

Each page: / for 7, 30 and 90 days, and /tools/<name> of the busiest tool for the same periods.

- Server time, on the real server (gunicorn from the Procfile): a GET over a keep-alive
  connection, from sending the request to the answer's last byte over loopback. The median of
  `--runs` warm requests, and the first request after the server restarts (Python, templates
  and SQLite's page cache cold; the operating system's file cache warm). Target: < 100 ms.
- In headless Chromium (Debian's, as the browser tests drive it): from navigation start until
  the page's figures are in the DOM and its chart is drawn. The chart script is deferred and
  Chart.js draws synchronously (animation off), so that is when DOMContentLoaded has run; the
  chart is checked to exist. The median of `--loads` loads, and the first with an empty
  browser cache. Target: < 500 ms.

The database is the one bench/stats.py builds (bench/results/stats-<events>.db), reused while
the code that shapes it is unchanged.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from bench import stats as stats_bench
from tests.support import CHROMEDRIVER, CHROMIUM, Server, chromium, http

SERVER_TARGET_MS = 100.0
BROWSER_TARGET_MS = 500.0
PERIODS = ("7d", "30d", "90d")
# The page's figures are in the DOM and its chart (if it has calls) is drawn; navigation timing of the load.
DRAWN = """
const figures = document.querySelectorAll('dl.figures dd').length;
const canvas = document.querySelector('canvas[data-chart]');
const chart = Boolean(canvas && window.Chart && Chart.getChart(canvas));
const [nav] = performance.getEntriesByType('navigation');
return {figures: figures, chart: chart, complete: document.readyState === 'complete',
        response: nav ? nav.responseEnd : null, drawn: nav ? nav.domContentLoadedEventEnd : null};
"""


@dataclass(frozen=True)
class Timing:
    """What one page measured: the median of warm tries and the first, cold one, in ms."""

    page: str
    median: float
    first: float
    runs: int


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__)
    parser.add_argument("--events", type=int, default=stats_bench.DEFAULT_EVENTS, help="events (default 10M)")
    parser.add_argument("--database", type=Path, help="database file, reused when it exists")
    parser.add_argument("--days", type=int, default=90, help="days the events span (default 90)")
    parser.add_argument("--runs", type=int, default=20, help="warm requests per page (default 20)")
    parser.add_argument("--loads", type=int, default=5, help="browser loads per page after the first (default 5)")
    parser.add_argument("--rebuild", action="store_true", help="build the database even when it could be reused")
    parser.add_argument("--keep", action="store_true", help="reuse the file even if the code that wrote it changed")
    parser.add_argument("--no-browser", action="store_true", help="server times only")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.database = args.database or stats_bench.RESULTS / f"stats-{stats_bench.size_label(args.events)}.db"
    return args


def prepare(args: argparse.Namespace) -> None:
    """The database, built or reused as bench/stats.py does, and pruned as the server would at start."""
    reason = stats_bench.stale_reason(args.database, stats_bench.fingerprint(args.events, args.days, args.seed))
    if args.rebuild or (reason and not (args.keep and args.database.exists())):
        print(f"building: {'--rebuild' if args.rebuild else reason}")
        args.database.parent.mkdir(parents=True, exist_ok=True)
        stats_bench.build(args.database, args.events, args.days, args.seed)
    else:
        print(f"reusing {args.database}" + (f" although it was {reason} (--keep)" if reason else ""))
    stats_bench.describe(args.database)


def pages(server: Server) -> list[str]:
    """The pages measured: the overview and the busiest tool's page, for each period."""
    status, _, body = http("GET", server.url + "/v1/stats/tools?period=90d")
    if status != 200 or not body["tools"]:
        raise RuntimeError(f"/v1/stats/tools answered {status}: {body}")
    busiest = body["tools"][0]["name"]
    return [f"/?period={p}" for p in PERIODS] + [f"/tools/{busiest}?period={p}" for p in PERIODS]


def timed_get(connection: HTTPConnection, path: str) -> float:
    """Milliseconds from sending a GET to the answer's last byte; the answer must be a 200 page."""
    started = time.perf_counter()
    connection.request("GET", path, headers={"Accept": "text/html"})
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200 or b'<dl class="figures">' not in body:
        raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
    return elapsed


def server_times(server: Server, paths: list[str], runs: int) -> list[Timing]:
    """Per page: the first GET after a restart, then the median of `runs` warm ones."""
    timings = []
    for path in paths:
        server.stop()
        server.start(timeout=120)
        connection = HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            first = timed_get(connection, path)
            for _ in range(2):  # warm-up, untimed
                timed_get(connection, path)
            warm = [timed_get(connection, path) for _ in range(runs)]
        finally:
            connection.close()
        timings.append(Timing(path, statistics.median(warm), first, runs))
    return timings


def load(driver: Any, url: str) -> dict[str, Any]:
    """Load a page and wait until it is complete; its figures, chart and navigation timing."""
    from selenium.webdriver.support.ui import WebDriverWait

    def done(d: Any) -> dict[str, Any] | bool:
        found: dict[str, Any] = d.execute_script(DRAWN)
        return found if found["complete"] and found["drawn"] else False

    driver.get(url)
    found = WebDriverWait(driver, 30).until(done)
    assert isinstance(found, dict)
    if not found["figures"] or not found["chart"]:
        raise RuntimeError(f"{url}: {found['figures']} figures, chart drawn: {found['chart']}")
    return found


def browser_times(server: Server, paths: list[str], loads: int) -> list[Timing]:
    """Per page: the first load with an empty browser cache, then the median of `loads` more."""
    driver = chromium(width=1440, height=900)
    try:
        timings = []
        for path in paths:
            driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            first = load(driver, server.url + path)["drawn"]
            warm = [load(driver, server.url + path)["drawn"] for _ in range(loads)]
            timings.append(Timing(path, statistics.median(warm), first, loads))
        return timings
    finally:
        driver.quit()


def verdict(value: float, target: float) -> str:
    return "PASS" if value < target else "FAIL"


def report(title: str, timings: list[Timing], target: float, cold: str) -> int:
    """Print each figure beside its target; the number that missed it."""
    print(f"\n== {title}")
    print(f"{'page':<44} {'median ms':>9}  {'target':<9} {'result':<6}  {cold + ' ms':>16}  {'target':<9} result")
    missed = 0
    for t in timings:
        missed += (t.median >= target) + (t.first >= target)
        print(
            f"{t.page:<44} {t.median:>9.1f}  < {target:<7.0f} {verdict(t.median, target):<6}  "
            f"{t.first:>16.1f}  < {target:<7.0f} {verdict(t.first, target)}"
        )
    return missed


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    prepare(args)
    load_before = os.getloadavg()[0]
    server = Server(args.database).start(timeout=120)
    results: list[tuple[str, list[Timing], float, str]] = []
    try:
        paths = pages(server)
        results.append(
            (
                f"server time on gunicorn, {args.runs} warm requests per page",
                server_times(server, paths, args.runs),
                SERVER_TARGET_MS,
                "after restart",
            )
        )
        browser_ready = all(os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER))
        if args.no_browser or not browser_ready:
            print("\nbrowser figures skipped: " + ("--no-browser" if args.no_browser else f"{CHROMIUM} missing"))
        else:
            results.append(
                (
                    f"headless Chromium, navigation start to figures and chart drawn, {args.loads} loads per page",
                    browser_times(server, paths, args.loads),
                    BROWSER_TARGET_MS,
                    "empty cache",
                )
            )
    finally:
        server.stop()
    missed = sum(report(*result) for result in results)
    figures = sum(2 * len(timings) for _, timings, _, _ in results)
    print(f"{figures - missed} of {figures} figures meet their target")
    load_after = os.getloadavg()[0]
    print(f"load average of the machine: {load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
