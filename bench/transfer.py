"""`copy-to-postgresql` on a SQLite database of 1 million events: rows/s of the copy, its check, and peak memory.

The SQLite file is built once (bench/results/transfer-<size>.db, with its rollups, by the
service's own write path) and reused; each run copies it into a new PostgreSQL database
(weather_metrics_bench_transfer on the local server), then runs the check.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import stats
from bench.postgresql import drop, recreate, url
from weather_metrics.query import parity
from weather_metrics.store import transfer

DATABASE = "weather_metrics_bench_transfer"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.transfer", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="Leave the PostgreSQL copy on the server.")
    return parser.parse_args(argv)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    source = stats.RESULTS / f"transfer-{stats.size_label(args.events)}.db"
    wanted = stats.fingerprint(args.events, args.days, args.seed)
    if stats.stale_reason(source, wanted):
        stats.build(source, args.events, args.days, args.seed)
    size_mb = Path(source).stat().st_size / 1e6
    print(f"source {source}: {size_mb:,.0f} MB; peak memory before copying {peak_mb():,.0f} MB")
    recreate(DATABASE)
    try:
        started = time.perf_counter()
        copied = transfer.copy_database(source, url(DATABASE))
        copy_seconds = time.perf_counter() - started
        rows = sum(table.rows for table in copied)
        for table in sorted(copied, key=lambda table: -table.rows)[:4]:
            print(f"  {table.name:<22} {table.rows:>11,} rows {table.seconds:7.1f} s")
        print(f"copy:  {rows:,} rows in {copy_seconds:.1f} s = {rows / copy_seconds:,.0f} rows/s")
        started = time.perf_counter()
        differences = transfer.table_differences(source, url(DATABASE))
        differences += parity.answer_differences(source, url(DATABASE), datetime.now(UTC))
        check_seconds = time.perf_counter() - started
        print(f"check: {check_seconds:.1f} s = {rows / check_seconds:,.0f} rows/s, {len(differences)} differences")
        print(f"peak memory {peak_mb():,.0f} MB")
    finally:
        if not args.keep:
            drop(DATABASE)


if __name__ == "__main__":
    main()
