"""Ingestion throughput and latency of the real server, against the single-thread write ceiling."""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import sqlite3
import statistics
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.ceiling import copy_database, request_cpu_ms, write_rate
from bench.load import REQUEST_TIMEOUT, LoadPlan, Sample, drive, http_post
from bench.workload import batch_events, current_hour, make_installs
from tests.support import ROOT, Server
from weather_metrics.settings import load_settings
from weather_metrics.store.db import is_url
from weather_metrics.store.events import event_row

BATCH = 100
DISTINCT_REQUESTS = 256
INSTALLS = 5_000
TARGET_RATIO = 0.9
TARGET_P99_MS = 200.0
TARGET_CPU_FACTOR = 0.5  # CPU per event at most half of the baseline's
TARGET_SPEEDUP = 1.5  # acknowledged events/s at least 1.5x the baseline's
# Without --baseline: the figures of issue 16, measured on this machine before the work on it.
RECORDED_CPU_PER_MILLION = 32.0
RECORDED_ACKED = 30_000.0
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
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. a git worktree of the previous main) measured in alternating rounds",
    )
    parser.add_argument("--rounds", type=int, help="rounds per checkout (default 3 with --baseline, else 1)")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.baseline else 1
    return args


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


# Where a server keeps its events: a SQLite file, or a PostgreSQL URL.
Location = Path | str


def scalar(location: Location, sql: str, params: tuple[Any, ...] = ()) -> int:
    """One number from the server's database, read on a connection of our own (`?` placeholders)."""
    if isinstance(location, str) and is_url(location):
        import psycopg2

        pg = psycopg2.connect(location, connect_timeout=10)
        try:
            with pg.cursor() as cursor:
                cursor.execute(sql.replace("?", "%s"), params)
                return int(cursor.fetchone()[0])
        finally:
            pg.close()
    with sqlite3.connect(f"file:{location}?mode=ro", uri=True, timeout=10) as con:
        found = con.execute(sql, params).fetchone()[0]
    con.close()
    return int(found)


def snapshot(server: Server, location: Location) -> Snapshot:
    """MAX(id) rather than COUNT(*): ids only grow, and it costs the server's CPU nothing."""
    max_id = scalar(location, "SELECT COALESCE(MAX(id), 0) FROM events")
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


def run_load(server: Server, location: Location, plan: LoadPlan) -> LoadResult:
    """Drive the server from another process; snapshot the database at the window's edges."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    client = context.Process(target=drive, args=(plan, theirs), name="bench-load")
    client.start()
    theirs.close()
    try:
        begin, end = receive(ours, 60)
        sleep_until(begin)
        first = snapshot(server, location)
        sleep_until(end)
        last = snapshot(server, location)
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


@dataclass(frozen=True)
class Run:
    """One checkout's figures over one measured window."""

    label: str
    acked: float  # acknowledged events/s
    p99_ms: float
    cpu_per_million: float  # server CPU seconds per million events stored
    group: float  # the writer's mean group, in events
    lost: int = 0  # acknowledged events missing from the database after the server stopped


def run_figures(label: str, result: LoadResult, processes: int = 1) -> Run:
    """The figures of a window, printed on two lines; the writer's only from a server of one process.

    Each process has its own writer and counters, and /metrics answers for whichever took the request.
    """
    statuses = Counter(s[2] for s in result.samples)
    acked = statuses[200] * BATCH / result.seconds
    stored = result.end.max_id - result.start.max_id
    latencies = [s[1] * 1000 for s in result.samples]
    cpu = result.end.server_cpu - result.start.server_cpu
    others = ", ".join(f"{status}: {count:,}" for status, count in sorted(statuses.items()) if status != 200)
    run = Run(label, acked, percentile(latencies, 0.99), cpu / stored * 1e6 if stored else math.nan, group_size(result))
    print(
        f"{label:<9} {acked:>7,.0f} events/s acknowledged, {stored / result.seconds:>7,.0f} stored; "
        f"p50 {percentile(latencies, 0.5):5.1f} ms, p99 {run.p99_ms:5.1f} ms; "
        f"server CPU {cpu / result.seconds:4.0%} of a core, {run.cpu_per_million:4.1f} s per million events"
    )
    writer = writer_line(result) if processes == 1 else f"writer figures not shown ({processes} processes)"
    print(f"{'':<9} non-200: {others or 'none'}; {writer}; load client {result.client_cores:.0%} of a core")
    return run


def group_size(result: LoadResult) -> float:
    delta = {k: result.end.writer.get(k, 0.0) - result.start.writer.get(k, 0.0) for k in WRITER_SERIES}
    commits = delta["weather_metrics_writer_batch_rows_count"]
    return delta["weather_metrics_writer_batch_rows_sum"] / commits if commits else float(BATCH)


def writer_line(result: LoadResult) -> str:
    """The writer's commits, mean commit time and busy time over the window."""
    delta = {k: result.end.writer.get(k, 0.0) - result.start.writer.get(k, 0.0) for k in WRITER_SERIES}
    commits = delta["weather_metrics_writer_batch_rows_count"]
    busy = delta["weather_metrics_writer_commit_seconds_sum"]
    mean_ms = busy / commits * 1000 if commits else float("nan")
    return (
        f"writer {commits:,.0f} commits of {group_size(result):,.0f} events, {mean_ms:.1f} ms each, "
        f"busy {busy / result.seconds:.0%}"
    )


def max_event_id(location: Location) -> int:
    return scalar(location, "SELECT COALESCE(MAX(id), 0) FROM events")


def check_durability(result: LoadResult, location: Location, first_id: int) -> int:
    """After SIGTERM: every acknowledged event must be in the database; how many are missing."""
    acked = sum(1 for s in result.all_samples if s[2] == 200) * BATCH
    rows = scalar(location, "SELECT COUNT(*) FROM events WHERE id > ?", (first_id,))
    if rows < acked:
        print(f"{'':<9} FAIL after SIGTERM: {acked - rows:,} of {acked:,} acknowledged events missing")
    return max(0, acked - rows)


def measure(root: Path, label: str, tmp: Path, args: argparse.Namespace, batches: list[Batch]) -> Run:
    """Start `root`'s server on a fresh (or copied) file, load it, stop it; its figures."""
    db_path = tmp / f"{label}-{time.monotonic_ns()}.db"
    copy_database(args.from_database, db_path)
    server = Server(db_path, root=root, rate_limit_per_minute=1_000_000_000, ack=args.ack)
    run = load_server(server, db_path, label, args, batches)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    return run


def load_server(server: Server, location: Location, label: str, args: argparse.Namespace, batches: list[Batch]) -> Run:
    """Start the server (its database at `location`), load it for one window, stop it: its figures and losses."""
    requests = [http_post("127.0.0.1", server.port, "/v1/events", encode(batch)) for batch in batches]
    plan = LoadPlan("127.0.0.1", server.port, requests, args.connections, args.warmup, args.seconds)
    server.start()
    try:
        first_id = max_event_id(location)  # once started: a new database has its tables by then
        result = run_load(server, location, plan)
    finally:
        server.stop()
    run = run_figures(label, result, int(server.env.get("WEATHER_METRICS_WORKERS", "1")))
    return replace(run, lost=check_durability(result, location, first_id))


def ceiling(tmp: Path, args: argparse.Namespace, batches: list[Batch], group: float, synchronous: str) -> float:
    """This checkout's single-thread write_batches rate at the server's mean group, on a file like the server's."""
    pool = [[event_row(event, 0) for event in batch] for batch in batches]
    requests = max(1, round(group / BATCH))
    seconds = args.ceiling_seconds or min(args.seconds, 10.0)
    path = tmp / "ceiling.db"
    copy_database(args.from_database, path)
    rate = write_rate(path, pool, requests, seconds, synchronous)
    start = f"a copy of {args.from_database}" if args.from_database else "a fresh SQLite file"
    print(
        f"\n== single-thread ceiling: write_batches (raw rows + rollups), {requests * BATCH} events a transaction "
        f"(the server's mean group), into {start}, synchronous={synchronous}, {seconds:.0f} s: {rate:,.0f} events/s"
    )
    cpu = request_cpu_ms([encode(batch) for batch in batches])
    print(
        f"request CPU       {cpu:.2f} ms per {BATCH}-event request to decode, validate and build rows "
        f"(one core: {BATCH / cpu * 1000:,.0f} events/s before any write)"
    )
    return rate


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def summary(ours: list[Run], baseline: list[Run], rate: float) -> None:
    """Medians beside their targets: against the baseline measured in the same run, or the issue's figures."""
    cpu, acked, p99 = (median([getattr(r, f) for r in ours]) for f in ("cpu_per_million", "acked", "p99_ms"))
    if baseline:
        base_cpu, base_acked = (median([getattr(r, f) for r in baseline]) for f in ("cpu_per_million", "acked"))
        against = f"the baseline's median ({len(baseline)} rounds, alternating)"
    else:
        base_cpu, base_acked = RECORDED_CPU_PER_MILLION, RECORDED_ACKED
        against = "the figures recorded before this work (no --baseline given)"
    print(f"\n== medians of {len(ours)} rounds; targets against {against}")
    print(f"{'figure':<32} {'before':>10} {'after':>10} {'change':>8}  target")
    rows = (
        ("CPU s per million events", base_cpu, cpu, cpu <= base_cpu * TARGET_CPU_FACTOR, f"<= {TARGET_CPU_FACTOR}x"),
        ("acknowledged events/s", base_acked, acked, acked >= base_acked * TARGET_SPEEDUP, f">= {TARGET_SPEEDUP}x"),
    )
    for name, before, after, ok, target in rows:
        print(f"{name:<32} {before:>10,.1f} {after:>10,.1f} {after / before:>7.2f}x  {target:<9} {verdict(ok)}")
    base_p99 = f"{median([r.p99_ms for r in baseline]):>10,.1f}" if baseline else f"{'':>10}"
    ok = p99 < TARGET_P99_MS
    print(f"{'p99 latency, ms':<32} {base_p99} {p99:>10,.1f} {'':>8}  < {TARGET_P99_MS:.0f} ms  {verdict(ok)}")
    ratio = acked / rate
    before_ratio = f"{base_acked / rate:>10.2f}"
    ok = ratio >= TARGET_RATIO
    target = f">= {TARGET_RATIO}"
    print(f"{'acknowledged / write ceiling':<32} {before_ratio} {ratio:>10.2f} {'':>8}  {target:<9} {verdict(ok)}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    batches = make_batches(args.seed)
    checkouts = [("this", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    runs: dict[str, list[Run]] = {label: [] for label, _ in checkouts}
    print(
        f"== POST /v1/events on the real server (gunicorn, ack={args.ack}), {args.connections} keep-alive "
        f"connections, {BATCH} events a request, {args.seconds:.0f} s windows after {args.warmup:.0f} s warm-up"
    )
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        for round_ in range(args.rounds):
            print(f"-- round {round_ + 1} of {args.rounds}")
            # Alternate which goes first: the machine's load drifts.
            for label, root in checkouts if round_ % 2 == 0 else checkouts[::-1]:
                runs[label].append(measure(root, label, tmp, args, batches))
        synchronous = load_settings(environ={"WEATHER_METRICS_CONFIG": os.devnull})["synchronous"]
        rate = ceiling(tmp, args, batches, median([r.group for r in runs["this"]]), synchronous)
    summary(runs["this"], runs.get("baseline", []), rate)


if __name__ == "__main__":
    main()
