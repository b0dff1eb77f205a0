"""Ingestion throughput and latency of the real server, against the single-thread write ceiling."""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import sqlite3
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.ceiling import copy_database, request_cpu_ms, write_rate
from bench.load import REQUEST_TIMEOUT, LoadPlan, Sample, drive, http_post
from bench.workload import batch_events, current_hour, make_installs
from tests.support import Server
from weather_metrics.settings import load_settings
from weather_metrics.store.events import event_row

BATCH = 100
DISTINCT_REQUESTS = 256
INSTALLS = 5_000
TARGET_RATIO = 0.9
TARGET_P99_MS = 200.0
WRITER_SERIES = (
    "weather_metrics_writer_batch_rows_sum",
    "weather_metrics_writer_batch_rows_count",
    "weather_metrics_writer_commit_seconds_sum",
)
Batch = list[dict[str, Any]]


@dataclass(frozen=True)
class Snapshot:
    """Rows committed so far and the writer's cumulative counters, at one moment."""

    max_id: int
    writer: dict[str, float]
    server_cpu: float  # CPU seconds the server's processes have used


@dataclass(frozen=True)
class LoadResult:
    """What the load process saw, and the server's state at the edges of the measured window."""

    seconds: float
    samples: list[Sample]  # answered within the measured window
    all_samples: list[Sample]
    start: Snapshot
    end: Snapshot
    client_cores: float  # CPU the load process used, in cores


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window (default 20)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up before the window (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--ack", choices=("commit", "enqueue"), default="commit", help="server's ack setting")
    parser.add_argument("--ceiling-seconds", type=float, help="duration of each ceiling run (default --seconds)")
    parser.add_argument(
        "--from-database",
        type=Path,
        help="start the server's file (and the ceiling's) as a copy "
        "of this one, e.g. bench/results/stats-10m.db, instead of empty",
    )
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def make_batches(seed: int) -> list[Batch]:
    """Distinct 100-event request batches, each from one installation of a large fleet."""
    rng = random.Random(seed)
    installs = make_installs(rng, INSTALLS)
    newest = current_hour()
    return [batch_events(rng, rng.choice(installs), BATCH, newest) for _ in range(DISTINCT_REQUESTS)]


def encode(batch: Batch) -> bytes:
    return json.dumps({"events": batch}, separators=(",", ":")).encode()


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process and its children (gunicorn's master and worker), from /proc."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def snapshot(server: Server, db_path: Path) -> Snapshot:
    """MAX(id) rather than COUNT(*): ids only grow, and it costs the server's CPU nothing."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as con:
        max_id = con.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    con.close()
    assert server.process is not None
    return Snapshot(max_id, writer_counters(server.url), process_cpu_seconds(server.process.pid))


def writer_counters(url: str) -> dict[str, float]:
    """The writer's cumulative series from the server's /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in WRITER_SERIES:
            values[name] = float(value)
    return values


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def receive(conn: Connection, timeout: float) -> Any:
    """The load process's next message; a clear error when it died or hangs."""
    try:
        if conn.poll(timeout):
            return conn.recv()
    except EOFError:
        pass
    raise RuntimeError("the load process stopped without reporting; see its traceback above")


def run_load(server: Server, db_path: Path, plan: LoadPlan) -> LoadResult:
    """Drive the server from another process; snapshot the database at the window's edges."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    client = context.Process(target=drive, args=(plan, theirs), name="bench-load")
    client.start()
    theirs.close()
    try:
        begin, end = receive(ours, 60)
        sleep_until(begin)
        first = snapshot(server, db_path)
        sleep_until(end)
        last = snapshot(server, db_path)
        samples, client_cores = receive(ours, REQUEST_TIMEOUT + 30)
    finally:
        client.join(10)
        if client.is_alive():
            client.terminate()
    inside = [s for s in samples if begin <= s[0] <= end]
    return LoadResult(end - begin, inside, samples, first, last, client_cores)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN without values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else float("nan")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report_server(result: LoadResult, plan: LoadPlan, ack: str) -> float:
    """Print the server's figures; returns acknowledged events/s."""
    statuses = Counter(s[2] for s in result.samples)
    acked = statuses[200] * BATCH / result.seconds
    stored = (result.end.max_id - result.start.max_id) / result.seconds
    latencies = [s[1] * 1000 for s in result.samples]
    p99 = percentile(latencies, 0.99)
    others = ", ".join(f"{status}: {count:,}" for status, count in sorted(statuses.items()) if status != 200)
    print(
        f"\n== POST /v1/events on the real server (gunicorn, ack={ack}), {plan.connections} keep-alive "
        f"connections, {BATCH} events/request"
    )
    print(f"window            {result.seconds:.1f} s after {plan.warmup:.1f} s warm-up")
    print(f"requests          {len(result.samples):,} answered ({statuses[200]:,} x 200; non-200: {others or 'none'})")
    print(f"acknowledged      {acked:,.0f} events/s")
    print(f"stored            {stored:,.0f} events/s (rows committed during the window)")
    print(
        f"latency           p50 {percentile(latencies, 0.5):.1f} ms, p90 {percentile(latencies, 0.9):.1f} ms, "
        f"p99 {p99:.1f} ms, max {max(latencies, default=float('nan')):.1f} ms"
    )
    print(f"                  target p99 < {TARGET_P99_MS:.0f} ms: {verdict(p99 < TARGET_P99_MS)}")
    server_cores = (result.end.server_cpu - result.start.server_cpu) / result.seconds
    print(f"server CPU        {server_cores:.0%} of one core (of {os.cpu_count()} on this machine)")
    print(f"load client       {result.client_cores:.0%} of one core (pre-serialized requests on asyncio sockets)")
    return acked


def writer_figures(result: LoadResult) -> float:
    """Print the writer's group size and busy time over the window; returns the mean group size."""
    delta = {k: result.end.writer.get(k, 0.0) - result.start.writer.get(k, 0.0) for k in WRITER_SERIES}
    commits = delta["weather_metrics_writer_batch_rows_count"]
    group = delta["weather_metrics_writer_batch_rows_sum"] / commits if commits else float(BATCH)
    busy = delta["weather_metrics_writer_commit_seconds_sum"] / result.seconds
    mean_ms = delta["weather_metrics_writer_commit_seconds_sum"] / commits * 1000 if commits else float("nan")
    print(
        f"writer            {commits:,.0f} commits, mean group {group:,.0f} events, mean commit {mean_ms:.1f} ms, "
        f"busy {busy:.0%} of the window"
    )
    return group


def max_event_id(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    with sqlite3.connect(db_path) as con:
        found = con.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    con.close()
    return int(found)


def report_durability(result: LoadResult, db_path: Path, first_id: int) -> None:
    """After SIGTERM: every acknowledged event must be in the file."""
    acked = sum(1 for s in result.all_samples if s[2] == 200) * BATCH
    with sqlite3.connect(db_path) as con:
        rows = con.execute("SELECT COUNT(*) FROM events WHERE id > ?", (first_id,)).fetchone()[0]
    con.close()
    print(
        f"after SIGTERM     {rows:,} rows stored; {acked:,} events acknowledged over the whole run "
        f"({max(0, acked - rows):,} acknowledged but missing)"
    )


def report_ceilings(
    tmp: Path, args: argparse.Namespace, batches: list[Batch], acked: float, group: float, synchronous: str
) -> None:
    """Single-thread write_batches rates, on a file that starts as the server's did."""
    pool = [[event_row(event, 0) for event in batch] for batch in batches]
    group_requests = max(1, round(group / BATCH))
    seconds = args.ceiling_seconds or args.seconds
    start = f"a copy of {args.from_database}" if args.from_database else "a fresh SQLite file"
    print(
        f"\n== single-thread ceiling: write_batches (raw rows + rollups) into {start}, "
        f"synchronous={synchronous}, {seconds:.0f} s each"
    )
    for label, requests in (("one request", 1), ("server's mean group", group_requests)):
        path = tmp / f"ceiling-{requests}.db"
        copy_database(args.from_database, path)
        rate = write_rate(path, pool, requests, seconds, synchronous)
        ratio = acked / rate
        print(
            f"{requests * BATCH:>6} events/transaction ({label:<19}) {rate:>9,.0f} events/s; "
            f"acknowledged/ceiling {ratio:.2f} (target >= {TARGET_RATIO}: {verdict(ratio >= TARGET_RATIO)})"
        )
    cpu = request_cpu_ms([encode(batch) for batch in batches])
    print(
        f"request CPU       {cpu:.2f} ms per {BATCH}-event request to decode, validate and build rows "
        f"(one core: {BATCH / cpu * 1000:,.0f} events/s before any write)"
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    batches = make_batches(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        db_path = tmp / "server.db"
        copy_database(args.from_database, db_path)
        first_id = max_event_id(db_path)
        server = Server(db_path, rate_limit_per_minute=1_000_000_000, ack=args.ack)
        requests = [http_post("127.0.0.1", server.port, "/v1/events", encode(batch)) for batch in batches]
        plan = LoadPlan("127.0.0.1", server.port, requests, args.connections, args.warmup, args.seconds)
        server.start()
        try:
            result = run_load(server, db_path, plan)
        finally:
            server.stop()
        acked = report_server(result, plan, args.ack)
        group = writer_figures(result)
        report_durability(result, db_path, first_id)
        synchronous = load_settings(environ=server.env)["synchronous"]
        report_ceilings(tmp, args, batches, acked, group, synchronous)


if __name__ == "__main__":
    main()
