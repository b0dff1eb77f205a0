"""Report exports of 1 million rows in each format: time and peak memory.

Builds (once, into bench/results/) a database of 1M agent executions over 30 days, then
runs one export per format in a fresh process each, so peak memory (ru_maxrss) belongs
to that export alone. The idle figure is the same process before it exports anything.
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.org import RESULTS, build, fingerprint, reusable
from weather_metrics import create_app
from weather_metrics.store.db import database
from weather_metrics.store.models import ReportJob, User

FORMATS = ("csv", "xlsx", "pdf")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def export_once(path: Path, fmt: str, max_rows: int) -> dict[str, float]:
    """One export in this process: seconds, rows, file size and peak memory."""
    from weather_metrics.reports.builder import build_report

    app = create_app({"database": str(path), "jwt_secret": secrets.token_urlsafe(48), "log_level": "warning"})
    try:
        with app.app_context():
            admin = User.get(User.role == "admin")
            now = int(time.time())
            job = ReportJob.create(
                id=str(uuid.uuid4()),
                organization=admin.organization_id,
                user=admin.id,
                report_type="agents",
                format=fmt,
                filters=json.dumps({"start_date": time.strftime("%Y-%m-%d", time.gmtime(now - 40 * 86400))}),
                status="running",
                progress=0,
                rows_written=0,
                attempts=1,
                created_at=now,
                expires_at=now + 3600,
            )
            idle = peak_mb()
            out = path.with_name(f"export-bench.{fmt}")
            started = time.perf_counter()
            rows = build_report(job, out, max_rows, lambda _done: None)
            seconds = time.perf_counter() - started
            size = out.stat().st_size
            out.unlink()
            ReportJob.delete().where(ReportJob.id == job.id).execute()
    finally:
        app.extensions["weather_metrics"].close()
        database.close_all()
    return {"seconds": seconds, "rows": rows, "mb": size / 1e6, "peak_mb": peak_mb(), "idle_mb": idle}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.exports", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--one", choices=FORMATS, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--database", type=Path)
    args = parser.parse_args(argv)
    path = args.database or RESULTS / f"exports-{args.rows}.db"
    if args.one:
        print(json.dumps(export_once(path, args.one, args.rows)))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    wanted = fingerprint(args.rows, 30, 7)
    if not reusable(path, wanted):
        build(path, args.rows, 30, 7)
    print(f"\n== report exports of the 'agents' report, {args.rows:,} executions, each in a fresh process")
    print(f"{'format':<7} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'file MB':>8} {'peak MB':>8} {'idle MB':>8}")
    for fmt in FORMATS:
        child = subprocess.run(
            [sys.executable, "-m", "bench.exports", "--one", fmt, "--rows", str(args.rows), "--database", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(f"{fmt:<7} failed: {child.stderr.strip().splitlines()[-1] if child.stderr.strip() else '?'}")
            continue
        r = json.loads(child.stdout.strip().splitlines()[-1])
        print(
            f"{fmt:<7} {r['rows']:>10,} {r['seconds']:>8.1f} {r['rows'] / r['seconds']:>9,.0f} {r['mb']:>8.1f} "
            f"{r['peak_mb']:>8.0f} {r['idle_mb']:>8.0f}"
        )


if __name__ == "__main__":
    main()
