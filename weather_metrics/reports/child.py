"""One export file built in a process of its own: `python -m weather_metrics.reports.child`.

The runner starts it for each job, so a large export neither competes with request threads
for the interpreter lock nor holds their memory. It only reads the database (query_only),
and speaks JSON lines on stdout: {"progress": percent}..., then {"rows": n} or {"error": reason}.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from weather_metrics.reports.builder import build_report
from weather_metrics.reports.jobs import failure_reason
from weather_metrics.store.db import database, open_database
from weather_metrics.store.models import ReportJob

log = logging.getLogger("weather_metrics.reports.child")


def say(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weather_metrics.reports.child", description=__doc__)
    parser.add_argument("--database", required=True)
    parser.add_argument("--job", required=True, help="the job's id")
    parser.add_argument("--out", type=Path, required=True, help="the file to write")
    parser.add_argument("--work", type=Path, required=True, help="a folder for work files")
    parser.add_argument("--max-rows", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    open_database(args.database, max_connections=2, read_only=True)
    try:
        with database.connection_context():
            job = ReportJob.get_by_id(args.job)
            rows = build_report(job, args.out, args.max_rows, lambda percent: say({"progress": percent}), args.work)
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the runner, with its reason
        reason = failure_reason(exc)
        if reason == "internal error":
            log.exception("export job %s failed", args.job)
        say({"error": reason})
        return 1
    finally:
        database.close_all()
    say({"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
