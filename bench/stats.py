"""Latency of every /v1/stats endpoint and period on a database of 10 million events over 90 days.

Each answer is timed cold and from memory (an unchanged question). Cold is the first answer after
a restart: nothing kept in memory, and a new database connection, so SQLite's page cache is empty
too; the operating system's file cache stays warm, as a restart of the service leaves it. (A
connection kept open would hold the pages read by the previous request, which a restart, and on
PostgreSQL any new connection, does not.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import secrets
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from bench.workload import HOUR, Write, current_hour, event_rows, make_installs, write_batch
from weather_metrics import create_app
from weather_metrics.query import stats
from weather_metrics.settings import load_settings
from weather_metrics.store.db import database, is_postgresql, open_database
from weather_metrics.store.events import EVENTS
from weather_metrics.store.folds import fold
from weather_metrics.store.pruning import prune

DEFAULT_EVENTS = 10_000_000
EVENTS_PER_TRANSACTION = 10_000
DAY = 86400
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# A database built before one of these changed may hold other rows or rollups: rebuild it.
SHAPING_SOURCES = (
    "schema.sql",
    "weather_metrics/store/events.py",
    "weather_metrics/core/histogram.py",
    "bench/workload.py",
)
PERIODS = ("7d", "30d", "90d")
TARGET_COLD_MS = 15.0  # median, computed afresh
TARGET_MEMORY_MS = 1.0  # median, an unchanged question answered from memory


def size_label(events: int) -> str:
    """10m, 200k, 1500: how many events a database file holds, for its name."""
    for unit, scale in (("m", 1_000_000), ("k", 1_000)):
        if events >= scale and events % scale == 0:
            return f"{events // scale}{unit}"
    return str(events)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.stats", description=__doc__)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="events in the database (default 10M)")
    parser.add_argument(
        "--database", type=Path, help="database file, reused when it exists (default bench/results/stats-<events>.db)"
    )
    parser.add_argument("--days", type=int, default=90, help="days the events span (default 90)")
    parser.add_argument("--runs", type=int, default=20, help="timed requests per endpoint and period (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first (default 3)")
    parser.add_argument("--rebuild", action="store_true", help="build the database even when it could be reused")
    parser.add_argument("--keep", action="store_true", help="reuse the file even if the code that wrote it changed")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.database = args.database or RESULTS / f"stats-{size_label(args.events)}.db"
    return args


def fingerprint(events: int, days: int, seed: int) -> dict[str, Any]:
    """What a built database depends on: the workload and the code that writes rows and rollups."""
    digest = hashlib.sha256()
    for source in SHAPING_SOURCES:
        digest.update((ROOT / source).read_bytes())
    return {"events": events, "days": days, "seed": seed, "code": digest.hexdigest()[:16]}


def stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def stale_reason(path: Path, wanted: dict[str, Any]) -> str | None:
    """Why the database at `path` cannot be reused, or None when it can."""
    if not path.exists():
        return "no database file yet"
    try:
        built = json.loads(stamp_path(path).read_text())
    except (OSError, ValueError):
        return f"{stamp_path(path).name} is missing or unreadable"
    changed = [key for key in wanted if built.get(key) != wanted[key]]
    if changed:
        return "built with a different " + ", ".join(
            "code (schema, rollups or workload)" if k == "code" else k for k in changed
        )
    return None


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def file_mb(path: Path) -> float:
    return sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal") if Path(f"{path}{s}").exists()) / 1e6


def write_events(
    events: int, days: int, seed: int, per_transaction: int = EVENTS_PER_TRANSACTION, write: Write = write_batch
) -> None:
    """Events in arrival order, `per_transaction` per write (a write_batches call), into the open database."""
    rng = random.Random(seed)
    installs = make_installs(rng, max(1_000, min(200_000, events // 50)))
    newest = current_hour() + HOUR
    oldest = newest - days * DAY + HOUR  # stays inside the retention the server prunes to
    chunks = math.ceil(events / per_transaction)
    span = (newest - oldest) / chunks
    for k in range(chunks):
        count = min(per_transaction, events - k * per_transaction)
        hours = (oldest + int(k * span), oldest + int((k + 1) * span))
        write(EVENTS, event_rows(rng, installs, hours, count, hours[1]))
        if (k + 1) % max(1, chunks // 10) == 0:
            print(f"  {(k + 1) / chunks:4.0%} written", flush=True)


def build(path: Path, events: int, days: int, seed: int) -> None:
    """Write the database next to `path`, and move it there only once it is complete."""
    partial = path.with_name(path.name + ".partial")
    remove_database(partial)
    print(f"building {path} with {events:,} events over {days} days ...", flush=True)
    started = time.perf_counter()
    open_database(str(partial), "normal")
    with database.connection_context():
        write_events(events, days, seed)
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.close_all()
    remove_database(path)  # a stale -wal beside the new file would be replayed into it
    partial.replace(path)
    remove_database(partial)
    stamp_path(path).write_text(json.dumps({**fingerprint(events, days, seed), "built_at": time.time()}))
    seconds = time.perf_counter() - started
    print(f"built in {seconds:.1f} s ({events / seconds:,.0f} events/s); file {file_mb(path):,.0f} MB")


def describe(location: Path | str) -> None:
    """Print what the database (a file or a PostgreSQL URL) holds; fold and prune it as the server does at start."""
    settings = load_settings({"database": str(location)})
    open_database(str(location), "normal")
    with database.connection_context():
        fold(datetime.now(UTC))  # the ended days into their spans
        pruned = prune(
            datetime.now(UTC),
            settings["retention_days"],
            settings["rollup_retention_days"],
            settings["idempotency_ttl_hours"],
        )
        events = database.execute_sql("SELECT COUNT(*) FROM events").fetchone()[0]
        sessions = database.execute_sql("SELECT COUNT(*) FROM sessions").fetchone()[0]
        newest = database.execute_sql("SELECT MAX(hour) FROM tool_hourly").fetchone()[0] or 0
        if is_postgresql():
            size_mb = database.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0] / 1e6
        else:
            size_mb = file_mb(Path(location))
    database.close_all()
    age_days = (current_hour() - newest) / DAY
    print(
        f"database {location}: {events:,} events, {sessions:,} sessions, {size_mb:,.0f} MB; "
        f"newest hour {age_days:.1f} days ago" + (f"; pruned {pruned:,} rows past retention" if pruned else "")
    )
    if age_days > 1:
        print("  note: the data is old, so the 7d and 30d windows hold fewer events; use --rebuild to refresh")


def time_get(client: FlaskClient, url: str, runs: int, warmup: int, cold: bool = False) -> list[float]:
    """Milliseconds of `runs` GETs after `warmup` untimed ones; every answer must be 200.

    `cold`: before each, nothing kept in memory (stats.ANSWERS emptied) and the pooled database
    connections closed, so the request opens a new one whose page cache is empty: as after a restart.
    """
    timings = []
    for index in range(warmup + runs):
        if cold:
            stats.ANSWERS.clear()
            database.close_idle()
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}: {response.get_data(as_text=True)}")
        if index >= warmup:
            timings.append(elapsed)
    return timings


def stats_questions(client: FlaskClient) -> list[tuple[str, str]]:
    """(endpoint, period) of every /v1/stats question timed; the tool asked about is the busiest."""
    busiest = client.get("/v1/stats/tools?period=90d").get_json()["tools"][0]["name"]
    endpoints = ("overview", "tools", f"tool/{busiest}", "errors", "performance")
    return [(endpoint, period) for endpoint in endpoints for period in PERIODS]


Timings = tuple[str, str, list[float], list[float]]


def measure(path: Path, runs: int, warmup: int) -> list[Timings]:
    """(endpoint, period, cold and from-memory milliseconds) of every endpoint and period, through the test client."""
    app = create_app(
        {
            "database": str(path),
            "rate_limit_per_minute": 1_000_000_000,
            "log_level": "warning",
            "jwt_secret": secrets.token_urlsafe(48),  # required; no token is signed here
        }
    )
    client = app.test_client()
    try:
        out = []
        for endpoint, period in stats_questions(client):
            url = f"/v1/stats/{endpoint}?period={period}"
            cold = time_get(client, url, runs, warmup, cold=True)
            out.append((f"/v1/stats/{endpoint}", period, cold, time_get(client, url, runs, warmup)))
        return out
    finally:
        app.extensions["weather_metrics"].close()
        database.close_all()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def report(results: list[Timings], runs: int) -> None:
    print(f"\n== GET /v1/stats/* through the Flask test client, {runs} timed runs each, medians")
    print("   cold: nothing in memory and a new database connection (empty page cache; OS file cache warm)")
    print(f"{'endpoint':<44} {'period':<6} {'cold ms':>8}  {'target':<8} {'':<5} {'memory ms':>9}  {'target':<7}")
    passed = 0
    for endpoint, period, cold, warm in results:
        cold_ok = statistics.median(cold) < TARGET_COLD_MS
        warm_ok = statistics.median(warm) < TARGET_MEMORY_MS
        passed += cold_ok + warm_ok
        print(
            f"{endpoint:<44} {period:<6} {statistics.median(cold):>8.2f}  < {TARGET_COLD_MS:.0f} ms  "
            f"{'PASS' if cold_ok else 'FAIL'}  {statistics.median(warm):>9.2f}  < {TARGET_MEMORY_MS:.0f} ms "
            f"{'PASS' if warm_ok else 'FAIL'}"
        )
    print(f"{passed} of {2 * len(results)} figures meet their target")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    reason = stale_reason(args.database, fingerprint(args.events, args.days, args.seed))
    if args.rebuild or (reason and not (args.keep and args.database.exists())):
        print(f"building: {'--rebuild' if args.rebuild else reason}")
        build(args.database, args.events, args.days, args.seed)
    else:
        print(f"reusing {args.database}" + (f" although it was {reason} (--keep)" if reason else ""))
    describe(args.database)
    load_before = os.getloadavg()[0]
    report(measure(args.database, args.runs, args.warmup), args.runs)
    load_after = os.getloadavg()[0]
    print(f"load average of the machine: {load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
