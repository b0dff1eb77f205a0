"""PostgreSQL against SQLite: ingestion on the real server, and the queries at 10 million events.

`python -m bench.postgresql ingest` drives the real server (gunicorn, ack = commit) with
100-event batches on 32 keep-alive connections in alternating rounds: SQLite with one
process, then PostgreSQL with two (`workers = 2`) on a new database each round
(weather_metrics_bench on the local server).
`python -m bench.postgresql queries` times /v1/stats and the organization queries on a
PostgreSQL database of 10 million events and 10 million agent executions over 90 days,
built once (weather_metrics_bench_10m; its COMMENT says what it holds, so a rerun reuses it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import psycopg2

from bench import org, stats
from bench.ceiling import rows_of
from bench.ingest import BATCH, Batch, Run, encode, load_server, make_batches, measure, median, verdict
from bench.org_workload import write_executions
from bench.workload import Rows, write_batch
from tests.support import ROOT, Server
from weather_metrics import create_app
from weather_metrics.query.org_metrics import SETTLED
from weather_metrics.query.stats import ANSWERS
from weather_metrics.store import db, versions
from weather_metrics.store.agents import AGENTS
from weather_metrics.store.batches import compiled, upsert_totals
from weather_metrics.store.db import database, open_database
from weather_metrics.store.events import EVENTS
from weather_metrics.store.rowkind import RowKind

SERVER = os.environ.get("WEATHER_METRICS_BENCH_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432")
INGEST_DATABASE = "weather_metrics_bench"
QUERY_DATABASE = "weather_metrics_bench_{size}"  # size: 10m, 200k (bench.stats.size_label)
ROWS_PER_COPY = 50_000
PRIMING_BATCHES = 10  # --analyzed: events written before ANALYZE
TARGET_RATIO = 0.8  # PostgreSQL's acknowledged events/s against SQLite's single process
TARGET_P99_MS = 250.0
TARGET_WARM_MS = 50.0
QUERY_WARMUP = 3  # untimed requests before each query's repeats
START_SECONDS = 2.0  # a new server process's start, before its first (cold) answer


# -- the PostgreSQL server ---------------------------------------------------------------------


def url(name: str) -> str:
    return f"{SERVER}/{name}"


@contextmanager
def server_admin() -> Iterator[Any]:
    """A cursor on the server's `postgres` database, outside any transaction."""
    try:
        conn = psycopg2.connect(url("postgres"), connect_timeout=5)
    except psycopg2.OperationalError as exc:
        raise SystemExit(f"bench.postgresql needs a PostgreSQL server at {SERVER}: {exc}") from exc
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            yield cursor
    finally:
        conn.close()


def recreate(name: str) -> None:
    with server_admin() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')


def drop(name: str) -> None:
    with server_admin() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def marker(name: str) -> dict[str, Any] | None:
    """What a database built here holds (its COMMENT), or None when it does not exist or has none."""
    with server_admin() as cursor:
        cursor.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,))
        row = cursor.fetchone()
    try:
        return json.loads(row[0]) if row and row[0] else None
    except ValueError:
        return None


# -- ingestion ---------------------------------------------------------------------------------


def measure_postgresql(tmp: Path, args: argparse.Namespace, batches: list[Batch]) -> Run:
    """The server with `workers` processes on a new PostgreSQL database, for one window."""
    recreate(INGEST_DATABASE)
    server = Server(
        tmp / "postgresql.db",  # names its log file only
        rate_limit_per_minute=1_000_000_000,
        ack="commit",
        workers=args.workers,
    )
    server.env["WEATHER_METRICS_DATABASE"] = url(INGEST_DATABASE)
    try:
        if args.analyzed:
            analyze_first_events(batches[:PRIMING_BATCHES])
        return load_server(server, url(INGEST_DATABASE), "postgres", args, batches)
    finally:
        drop(INGEST_DATABASE)


def analyze_first_events(batches: list[Batch]) -> None:
    """Give the new database its schema and a few events, then ANALYZE it, as autovacuum soon would.

    Until events has statistics, the planner guesses that `id > ?` (every rollup of a
    commit) matches a third of the table and scans all of it.
    """
    open_database(url(INGEST_DATABASE))
    with database.connection_context():
        for batch in batches:
            write_batch(EVENTS, rows_of(encode(batch)))
        database.execute_sql("ANALYZE")
    database.close_all()


def bench_ingest(args: argparse.Namespace) -> None:
    batches = make_batches(args.seed)
    runs: dict[str, list[Run]] = {"sqlite": [], "postgres": []}
    print(
        f"== POST /v1/events on the real server (gunicorn, ack=commit), {args.connections} keep-alive connections, "
        f"{BATCH} events a request, {args.seconds:.0f} s windows after {args.warmup:.0f} s warm-up; "
        f"sqlite: 1 process on a new file, postgres: {args.workers} processes on a new database at {SERVER}"
        f"{' (analysed after its first 1,000 events)' if args.analyzed else ''}; "
        "server CPU counts the service's processes, not PostgreSQL's"
    )
    with tempfile.TemporaryDirectory(prefix="bench-postgresql-") as tmp_name:
        tmp = Path(tmp_name)
        for round_ in range(args.rounds):
            print(f"-- round {round_ + 1} of {args.rounds}", flush=True)
            runs["sqlite"].append(measure(ROOT, "sqlite", tmp, args, batches))
            runs["postgres"].append(measure_postgresql(tmp, args, batches))
    sqlite_acked, pg_acked = (median([r.acked for r in runs[k]]) for k in ("sqlite", "postgres"))
    sqlite_p99, pg_p99 = (median([r.p99_ms for r in runs[k]]) for k in ("sqlite", "postgres"))
    lost = sum(r.lost for r in runs["postgres"])
    ratio = pg_acked / sqlite_acked
    print(f"\n== medians of {args.rounds} alternating rounds each; load average {load_average()}")
    print(f"{'figure':<36} {'SQLite, 1 proc':>15} {f'PostgreSQL, {args.workers}':>15}  target")
    print(
        f"{'acknowledged events/s':<36} {sqlite_acked:>15,.0f} {pg_acked:>15,.0f}  "
        f">= {TARGET_RATIO}x: {ratio:.2f}x {verdict(ratio >= TARGET_RATIO)}"
    )
    print(
        f"{'p99 latency, ms':<36} {sqlite_p99:>15,.1f} {pg_p99:>15,.1f}  "
        f"< {TARGET_P99_MS:.0f} ms {verdict(pg_p99 < TARGET_P99_MS)}"
    )
    print(
        f"{'acknowledged events missing (SIGTERM)':<36} {sum(r.lost for r in runs['sqlite']):>15,} {lost:>15,}  "
        f"none {verdict(lost == 0)}"
    )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- queries at 10 million events --------------------------------------------------------------


def fingerprint(events: int, days: int, seed: int) -> dict[str, Any]:
    """What a built database depends on: both workloads, the code writing them, and the PostgreSQL schema."""
    schema = hashlib.sha256((ROOT / "schema.postgresql.sql").read_bytes()).hexdigest()[:16]
    return {
        "events": stats.fingerprint(events, days, seed),
        "executions": org.fingerprint(events, days, seed),
        "schema": schema,
    }


def copy_rows(kind: RowKind, rows: Rows) -> None:
    """Append rows with COPY and add up their Totals, leaving rollup statements to `fold`: the build's fast path."""
    with database.atomic():
        db.copy_rows(kind.table, kind.columns, rows)
        for totals in kind.totals(rows) if kind.totals else []:
            upsert_totals(totals)


def fold(kinds: tuple[RowKind, ...]) -> None:
    """Fold every row into the rollups at once, with write_batches' own statements (bound to every id).

    The rollups are sums, counts and maxima, so one pass over all rows gives what a
    write_batches call per chunk would have given.
    """
    with database.atomic():
        database.execute_sql("SET LOCAL work_mem = '256MB'")  # the aggregates stay in memory
        for kind in kinds:
            for sql, params in compiled(kind).rollups(0, 2**62):
                database.execute_sql(sql, params)
        versions.bump(kind.table for kind in kinds)


def build(name: str, events: int, days: int, seed: int) -> None:
    """Write the database under another name, analyse it, and give it `name` only once it is complete."""
    partial = name + "_partial"
    recreate(partial)
    print(f"building {name} with {events:,} events and {events:,} agent executions over {days} days ...", flush=True)
    started = time.perf_counter()
    open_database(url(partial))
    with database.connection_context():
        stats.write_events(events, days, seed, ROWS_PER_COPY, copy_rows)
        write_executions(events, days, seed, ROWS_PER_COPY, copy_rows)
        copied = time.perf_counter() - started
        fold((EVENTS, AGENTS))
    database.close_all()
    folded = time.perf_counter() - started - copied
    conn = psycopg2.connect(url(partial))
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")  # what autovacuum would do soon: visibility map and planner statistics
    conn.close()
    with server_admin() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'ALTER DATABASE "{partial}" RENAME TO "{name}"')
        cursor.execute(f'COMMENT ON DATABASE "{name}" IS %s', (json.dumps(fingerprint(events, days, seed)),))
    seconds = time.perf_counter() - started
    print(
        f"built in {seconds:.0f} s: rows copied in {copied:.0f} s ({2 * events / copied:,.0f} rows/s), "
        f"rollups in {folded:.0f} s, VACUUM (ANALYZE) in {seconds - copied - folded:.0f} s"
    )


@dataclass(frozen=True)
class Question:
    """One GET timed: how it is printed, its URL and headers, and the in-memory cache its answer is kept in."""

    label: str
    url: str
    headers: dict[str, str]
    forget: Callable[[], None]  # empties that cache: the database answers the next request


def questions(app: Any, days: int) -> list[Question]:
    """Every /v1/stats question bench.stats times, and every organization query bench.org times."""
    client = app.test_client()
    out = [
        Question(f"stats {endpoint} period={period}", f"/v1/stats/{endpoint}?period={period}", {}, stats_forget)
        for endpoint, period in stats.stats_questions(client)
    ]
    headers, teams = org.sign_in(app)
    for path, role, query, _headline in org.query_cases(days, teams):
        label = f"{role} {org.shown(path, query, teams)}"
        out.append(Question(label, f"{path}?{query}", headers[role], SETTLED.clear))
    return out


def stats_forget() -> None:
    ANSWERS.clear()


def timed_get(client: Any, url: str, headers: dict[str, str]) -> float:
    """Milliseconds of one GET, which must answer 200."""
    started = time.perf_counter()
    response = client.get(url, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}: {response.get_data(as_text=True)[:300]}")
    return elapsed


def repeats(client: Any, question: Question, runs: int, warmup: int, computed: bool) -> list[float]:
    """Milliseconds of `runs` GETs after `warmup`; `computed`: its cache emptied before each."""
    timings = []
    for index in range(warmup + runs):
        if computed:
            question.forget()
        elapsed = timed_get(client, question.url, question.headers)
        if index >= warmup:
            timings.append(elapsed)
    return timings


def first_answer(config: dict[str, Any], url: str, headers: dict[str, str]) -> float:
    """In a new process: build the app (new connections, empty caches) and time its first answer.

    The answer waits for the start's own work (pruning, and each background thread opening its
    connection: on PostgreSQL, each a new server process) to pass: else it measures that.
    """
    app = create_app(config)
    time.sleep(START_SECONDS)
    try:
        return timed_get(app.test_client(), url, headers)
    finally:
        app.extensions["weather_metrics"].close()
        database.close_all()


def cold(config: dict[str, Any], question: Question) -> float:
    """The question's first answer from a new server process (see first_answer)."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        return pool.submit(first_answer, config, question.url, question.headers).result()


def bench_queries(args: argparse.Namespace) -> None:
    name = QUERY_DATABASE.format(size=stats.size_label(args.events))
    wanted = fingerprint(args.events, args.days, args.seed)
    found = marker(name)
    if args.rebuild or found != wanted:
        reason = "--rebuild" if args.rebuild else "no such database" if found is None else "it holds other data"
        print(f"building: {reason}")
        build(name, args.events, args.days, args.seed)
    else:
        print(f"reusing {name}")
    stats.describe(url(name))  # prunes as the server does at start, so no request waits on it
    config = {
        "database": url(name),
        "jwt_secret": secrets.token_urlsafe(48),
        "log_level": "warning",
        "rate_limit_per_minute": 1_000_000_000,
        "api_rate_limit": "1000000000 per hour",
    }
    app = create_app(config)
    client = app.test_client()
    try:
        asked = questions(app, args.days)
        print(
            f"\n== {len(asked)} queries on PostgreSQL, {args.events:,} events and {args.events:,} executions over "
            f"{args.days} days, Flask test client; load average {load_average()}\n"
            f"cold: the first answer of a new server process, {START_SECONDS:.0f} s after its start (new "
            "connections to PostgreSQL, every in-memory cache empty; PostgreSQL's shared buffers and the OS page "
            "cache stay as they are)\n"
            f"computed: median of {args.runs}, the service's answer caches emptied before each (the database "
            f"answers every time); served: median of {args.runs} as a repeated question is served"
        )
        print(f"{'question':<96} {'cold ms':>8} {'computed':>9}  {'target':<9} {'':<4} {'served':>7}")
        passed = 0
        for question in asked:
            first = cold(config, question)
            computed = statistics.median(repeats(client, question, args.runs, QUERY_WARMUP, computed=True))
            served = statistics.median(repeats(client, question, args.runs, QUERY_WARMUP, computed=False))
            ok = computed < TARGET_WARM_MS
            passed += ok
            print(
                f"{question.label[:96]:<96} {first:>8.1f} {computed:>9.1f}  < {TARGET_WARM_MS:.0f} ms  "
                f"{verdict(ok)} {served:>7.1f}",
                flush=True,
            )
        print(f"{passed} of {len(asked)} queries answer computed in under {TARGET_WARM_MS:.0f} ms (median)")
    finally:
        app.extensions["weather_metrics"].close()
        database.close_all()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.postgresql", description=__doc__)
    parser.add_argument("part", nargs="?", choices=("ingest", "queries", "all"), default="all")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window of each round (default 15)")
    parser.add_argument("--warmup", type=float, default=2.0, help="ingest warm-up before each window (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per backend (default 2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="server processes on PostgreSQL (default 2)")
    parser.add_argument(
        "--analyzed",
        action="store_true",
        help="start each PostgreSQL round from a database analysed after its first 1,000 events "
        "(as autovacuum does within a minute), not a brand-new one",
    )
    parser.add_argument("--events", type=int, default=10_000_000, help="events, and executions, queried (default 10M)")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=20, help="timed requests per query (default 20)")
    parser.add_argument("--rebuild", action="store_true", help="build the query database even when it could be reused")
    parser.add_argument("--seed", type=int, default=1)
    parser.set_defaults(ack="commit", from_database=None)  # what bench.ingest's SQLite server reads
    args = parser.parse_args(argv)
    if args.part in ("ingest", "all"):
        bench_ingest(args)
    if args.part in ("queries", "all"):
        bench_queries(args)


if __name__ == "__main__":
    main()
