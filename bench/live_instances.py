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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
from websockets.sync.client import ClientConnection, connect

from bench.postgresql import drop, recreate, url
from tests.support import TEST_JWT_SECRET, Server, http, seed_org
from weather_metrics import create_app

DATABASE = "weather_metrics_bench_live"
SETTINGS: dict[str, Any] = {"workers": 2, "threads": 16, "metrics_ingest_rate_limit": "100000 per minute"}


def seed(database_url: str) -> tuple[str, str]:
    """An organization: its admin's access token and an API key."""
    app = create_app({"database": database_url, "jwt_secret": TEST_JWT_SECRET, "password_time_cost": 2})
    try:
        admin = seed_org(app, "Bench")["admin"]
        key = app.test_client().post("/api/keys", json={"name": "k"}, headers=admin.headers).get_json()["secret"]
    finally:
        app.extensions["weather_metrics"].close()
    return admin.headers["Authorization"].split(" ", 1)[1], key


def collect(server: Server, key: str) -> str:
    """Post one execution; its batch id."""
    stamp = datetime.now(UTC).isoformat()
    item = {"agent_name": "a", "command": "c", "execution_time_ms": 10, "success": True, "timestamp": stamp}
    status, _, body = http("POST", server.url + "/mcp/metrics/collect", [item], headers={"X-API-Key": key})
    assert status == 201, body
    return str(body["batch_id"])


def subscribed(server: Server, token: str) -> ClientConnection:
    ws = connect(f"{server.url.replace('http', 'ws', 1)}/ws?token={token}", proxy=None, max_queue=None)
    ws.send(json.dumps({"type": "subscribe", "rooms": ["org"]}))
    while json.loads(ws.recv(10))["type"] != "subscribed":
        pass
    return ws


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


def delays(second: Server, key: str, ws: ClientConnection, posts: int) -> list[float]:
    found = []
    for _ in range(posts):
        started = time.perf_counter()
        batch_id = collect(second, key)
        while True:
            message = json.loads(ws.recv(10))
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
            token, key = seed(url(DATABASE))
            first, second = (Server(Path(folder) / name, **SETTINGS) for name in ("first.db", "second.db"))
            for server in (first, second):
                server.env["WEATHER_METRICS_DATABASE"] = url(DATABASE)
                server.env["WEATHER_METRICS_EXPORT_DIR"] = str(Path(folder) / "exports")
            with first, second, subscribed(first, token) as ws, subscribed(second, token):
                measured = delays(second, key, ws, args.posts)
                before = reads_of_live_events(url(DATABASE))
                time.sleep(args.idle)
                reads = reads_of_live_events(url(DATABASE)) - before
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
