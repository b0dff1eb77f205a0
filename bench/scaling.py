"""One instance against two sharing one PostgreSQL and one Redis: /v1 ingestion on the real servers.

`python -m bench.scaling` drives POST /v1/events (100-event batches, ack = commit) in
alternating rounds against
- one: one gunicorn server with `workers = 2`;
- two: two gunicorn servers on two ports with `workers = 1` each, the load split evenly.
Both on a new PostgreSQL database each round (weather_metrics_bench_scaling), both with
`redis_url` set, so every request takes its rate-limit tokens from Redis in either case.
Two load processes of half the connections each drive either set-up (in "one" both aim at
its port), so the client side is the same.

Why one worker per instance in "two": the same two service processes on the same cores
as "one", so the ratio shows what being two instances costs (two servers, their own
connection pools, the shared write lock taken from two masters) and not what a third and
fourth process would cost on a box of two cores. On separate hosts each instance would run
as many workers as its host has cores. On this box both set-ups share its two cores (with
PostgreSQL, Redis and the load): the figures show the cost of sharing, not the gain of a
second host.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.ingest import BATCH, Batch, encode, make_batches, median, percentile, receive, scalar, sleep_until
from bench.load import REQUEST_TIMEOUT, LoadPlan, Sample, drive, http_post
from bench.postgresql import drop, load_average, recreate, url
from tests.support import Server

DATABASE = "weather_metrics_bench_scaling"
REDIS = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Figures:
    """One set-up's figures over one measured window."""

    acked: float  # acknowledged events/s, both instances together
    stored: float  # events/s that reached the database in the window
    p99_ms: float
    lost: int  # acknowledged events missing once the servers stopped


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up before the window (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections in all (default 32)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per set-up (default 2)")
    parser.add_argument("--redis-url", default=REDIS, help=f"the Redis both set-ups count limits in (default {REDIS})")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def servers(tmp: Path, label: str, args: argparse.Namespace) -> list[Server]:
    """The set-up's servers, not yet started, on the bench database."""
    shape = [2] if label == "one" else [1, 1]
    made = []
    for number, workers in enumerate(shape):
        server = Server(
            tmp / f"{label}-{number}.db",  # names its log file only
            rate_limit_per_minute=1_000_000_000,
            ack="commit",
            workers=workers,
            redis_url=args.redis_url,
        )
        server.env["WEATHER_METRICS_DATABASE"] = url(DATABASE)
        made.append(server)
    return made


def drive_all(plans: list[LoadPlan]) -> tuple[float, int, list[Sample], list[Sample]]:
    """Run one load process per plan at once: the window's length, events stored in it, its samples and all."""
    context = multiprocessing.get_context("spawn")
    pipes, clients = [], []
    for plan in plans:
        ours, theirs = context.Pipe()
        client = context.Process(target=drive, args=(plan, theirs), name="bench-load")
        client.start()
        theirs.close()
        pipes.append(ours)
        clients.append(client)
    try:
        windows = [receive(pipe, 60) for pipe in pipes]
        begin, end = max(w[0] for w in windows), min(w[1] for w in windows)
        sleep_until(begin)
        first = max_id()
        sleep_until(end)
        last = max_id()
        samples = [s for pipe in pipes for s in receive(pipe, REQUEST_TIMEOUT + 30)[0]]
    finally:
        for client in clients:
            client.join(10)
            if client.is_alive():
                client.terminate()
    return end - begin, last - first, [s for s in samples if begin <= s[0] <= end], samples


def max_id() -> int:
    return scalar(url(DATABASE), "SELECT COALESCE(MAX(id), 0) FROM events")


def measure(tmp: Path, label: str, args: argparse.Namespace, batches: list[Batch]) -> Figures:
    """Start the set-up on a new database, load it for one window, stop it: its figures."""
    recreate(DATABASE)
    started: list[Server] = []
    try:
        for server in servers(tmp, label, args):
            started.append(server.start())  # one after the other: the first creates the tables
        ports = [s.port for s in started] * (2 // len(started))
        plans = [
            LoadPlan(
                "127.0.0.1",
                port,
                [http_post("127.0.0.1", port, "/v1/events", encode(batch)) for batch in batches],
                args.connections // 2,
                args.warmup,
                args.seconds,
            )
            for port in ports
        ]
        seconds, stored, inside, every = drive_all(plans)
    finally:
        for server in started:
            server.stop()
    try:
        acknowledged = sum(1 for s in every if s[2] == 200) * BATCH
        lost = max(0, acknowledged - scalar(url(DATABASE), "SELECT COUNT(*) FROM events"))
        return figures(label, seconds, stored, inside, lost)
    finally:
        drop(DATABASE)


def figures(label: str, seconds: float, stored: int, inside: list[Sample], lost: int) -> Figures:
    """The window's figures, printed on one line."""
    statuses = Counter(s[2] for s in inside)
    latencies = [s[1] * 1000 for s in inside]
    result = Figures(statuses[200] * BATCH / seconds, stored / seconds, percentile(latencies, 0.99), lost)
    others = ", ".join(f"{status}: {count:,}" for status, count in sorted(statuses.items()) if status != 200)
    print(
        f"{label:<5} {result.acked:>7,.0f} events/s acknowledged, {result.stored:>7,.0f} stored; "
        f"p50 {percentile(latencies, 0.5):5.1f} ms, p99 {result.p99_ms:5.1f} ms; "
        f"non-200: {others or 'none'}; acknowledged but missing: {result.lost:,}",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    batches = make_batches(args.seed)
    runs: dict[str, list[Figures]] = {"one": [], "two": []}
    print(
        f"== POST /v1/events, {BATCH} events a request, ack=commit, {args.connections} keep-alive connections "
        f"from two load processes, {args.seconds:.0f} s windows after {args.warmup:.0f} s warm-up; "
        f"one: 1 instance with 2 workers; two: 2 instances with 1 worker each, half the load each; "
        f"one PostgreSQL ({url(DATABASE)}) and one Redis ({args.redis_url}); {multiprocessing.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp_name:
        for round_ in range(args.rounds):
            print(f"-- round {round_ + 1} of {args.rounds}", flush=True)
            for label in runs:
                runs[label].append(measure(Path(tmp_name), label, args, batches))
    acked = {k: median([r.acked for r in v]) for k, v in runs.items()}
    p99 = {k: median([r.p99_ms for r in v]) for k, v in runs.items()}
    lost = {k: sum(r.lost for r in v) for k, v in runs.items()}
    print(f"\n== medians of {args.rounds} alternating rounds each; load average {load_average()}")
    print(f"{'figure':<28} {'one instance':>13} {'two instances':>14} {'two / one':>10}")
    for name, values, shape in (("acknowledged events/s", acked, ",.0f"), ("p99 latency, ms", p99, ",.1f")):
        ratio = values["two"] / values["one"]
        print(f"{name:<28} {values['one']:>13{shape}} {values['two']:>14{shape}} {ratio:>9.2f}x")
    print(f"{'acknowledged events missing':<28} {lost['one']:>13,} {lost['two']:>14,}")


if __name__ == "__main__":
    main()
