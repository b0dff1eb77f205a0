"""Live events across instances: how soon a socket on one instance hears of a batch posted to another.

`python -m bench.live_instances` starts two servers on one PostgreSQL database (made
afresh, dropped at the end), opens an `org` socket on the first and posts single batches
to the second (`--posts`, one at a time, a fraction of a second apart). It prints the
median and the slowest delay from sending the POST to the socket's receipt, and how many
times the relays read `live_events` in `--idle` seconds with a socket open on each
instance and nothing posted: the cost of waiting for events.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import psycopg2

from bench.postgresql import drop, recreate, url
from tests.support import Server
from tests.test_instances import collect, execution, seed, servers, token_of_headers
from tests.test_ws import Socket

DATABASE = "weather_metrics_bench_live"


def reads_of_live_events(database_url: str) -> int:
    """Scans of `live_events` so far (index and sequential), from PostgreSQL's statistics."""
    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT COALESCE(idx_scan, 0) + COALESCE(seq_scan, 0) FROM pg_stat_user_tables"
                " WHERE relname = 'live_events'"
            )
            return int(cursor.fetchone()[0])
    finally:
        conn.close()


def delays(first: Server, second: Server, key: str, sock: Socket, posts: int) -> list[float]:
    found = []
    for _ in range(posts):
        started = time.perf_counter()
        batch_id = collect(second, key, [execution()])["batch_id"]
        while True:
            message = sock.next(10)
            if message["type"] == "metric_ingested" and message["data"]["batch_id"] == batch_id:
                break
        found.append(time.perf_counter() - started)
        time.sleep(0.3)  # not in step with any poll interval
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.live_instances", description=__doc__)
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of counting idle reads (default 10)")
    args = parser.parse_args(argv)
    recreate(DATABASE)
    try:
        with tempfile.TemporaryDirectory() as folder:
            admin, key = seed(url(DATABASE))
            first, second = servers(Path(folder), url(DATABASE))
            with first, second:
                token = token_of_headers(admin)
                sock, other = Socket(first, f"?token={token}"), Socket(second, f"?token={token}")
                for each in (sock, other):
                    each.subscribe("org")
                measured = delays(first, second, key, sock, args.posts)
                before = reads_of_live_events(url(DATABASE))
                time.sleep(args.idle)
                reads = reads_of_live_events(url(DATABASE)) - before
                sock.close()
                other.close()
    finally:
        drop(DATABASE)
    figures = {
        "posts": len(measured),
        "median_ms": round(statistics.median(measured) * 1000, 1),
        "slowest_ms": round(max(measured) * 1000, 1),
        "idle_reads_per_second": round(reads / args.idle, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
