"""One export file built in a process of its own: the runner's side (`start_child`, `follow`) and the child's (`main`).

The runner starts a Python process running `main` for each job, so a large export neither
competes with request threads for the interpreter lock nor holds their memory. The child
only reads the database (query_only), ends with the thread that started it (Linux), and
speaks JSON lines on stdout: {"progress": percent}..., then {"rows": n} or {"error": reason};
any other line is logged and skipped. Its log lines go to the server's stderr, in the
server's log_format.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from weather_metrics.reports.builder import build_report
from weather_metrics.reports.jobs import BuildFailed, failure_reason
from weather_metrics.runtime.logs import configure_logging
from weather_metrics.store.db import database, open_database
from weather_metrics.store.models import ReportJob

log = logging.getLogger("weather_metrics.reports.child")


class ChildDied(Exception):
    """The child ended without an outcome (killed, out of memory): the attempt is lost, not failed."""


PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def follow(child: subprocess.Popen[bytes], record: Callable[[int], None], every: float) -> dict[str, Any]:
    """Read the child's JSON lines until it exits, passing progress on; its last message.

    `record` is also called without news, so a lost job or a full disk stops
    a child that is still in a long query (`every` seconds without news).
    """
    assert child.stdout is not None
    pipe, buffer, percent = child.stdout.fileno(), b"", 0
    outcome: dict[str, Any] = {"exit": None}
    with selectors.DefaultSelector() as waiting:  # not select(): descriptors past 1023 are normal here
        waiting.register(pipe, selectors.EVENT_READ)
        while True:
            if waiting.select(every):
                chunk = os.read(pipe, 65536)
                if not chunk:
                    break
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    message = _message(line)
                    if "progress" in message:
                        percent = int(message["progress"])
                    elif message:
                        outcome = message
            record(percent)
    outcome["exit"] = child.wait()
    return outcome


def _message(line: bytes) -> dict[str, Any]:
    """One line of the child as a message; {} (logged) for anything else it printed."""
    try:
        message = json.loads(line)
    except ValueError:
        message = None
    if isinstance(message, dict) and message.keys() & {"progress", "rows", "error"}:
        return message
    if line.strip():
        log.warning("export child printed a line that is not a message: %.200r", line)
    return {}


DATABASE_VARIABLE = "WEATHER_METRICS_EXPORT_DATABASE"  # the database the runner gives its child
MAIN = "import sys; from weather_metrics.reports.child import main; sys.exit(main(sys.argv[1:]))"


def start_child(
    database: str, job_id: str, out: Path, work: Path, max_rows: int, log_format: str = "text"
) -> subprocess.Popen[bytes]:
    """A child process building the job's file at `out`; read it with `follow`."""
    command = [
        *(sys.executable, "-c", MAIN, "--job", job_id),
        *("--out", str(out), "--work", str(work), "--max-rows", str(max_rows), "--log-format", log_format),
    ]
    path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    # The database by the environment: any user of the host may read a command line, which a
    # PostgreSQL URL's password must not be on; only the service's own user reads its environment.
    env = {**os.environ, "PYTHONPATH": path, DATABASE_VARIABLE: database}
    # The child counts nothing /metrics shows: without this, each one would leave its files in the
    # workers' metrics folder (prometheus_client's multiprocess mode), read by every scrape until a restart.
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env)


def rows_built(outcome: dict[str, Any]) -> int:
    """The number of rows the child wrote; BuildFailed with its reason, or ChildDied without one."""
    if "rows" in outcome:
        return int(outcome["rows"])
    if "error" in outcome:
        raise BuildFailed(str(outcome["error"]))
    code = outcome.get("exit")
    how = f"signal {signal.Signals(-code).name}" if isinstance(code, int) and code < 0 else f"exit status {code}"
    raise ChildDied(f"the process building it ended by {how}")


def _end_with_parent() -> None:
    """Ask Linux to kill this process when the thread that started it ends (a killed server leaves no child)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the child ends at its next progress message instead


def say(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weather_metrics.reports.child", description=__doc__)
    parser.add_argument("--database", default=os.environ.get(DATABASE_VARIABLE), help=f"default: ${DATABASE_VARIABLE}")
    parser.add_argument("--job", required=True, help="the job's id")
    parser.add_argument("--out", type=Path, required=True, help="the file to write")
    parser.add_argument("--work", type=Path, required=True, help="a folder for work files")
    parser.add_argument("--max-rows", type=int, required=True)
    parser.add_argument("--log-format", choices=("text", "json"), default="text", help="as the server's log_format")
    args = parser.parse_args(argv)
    if not args.database:
        parser.error(f"--database or ${DATABASE_VARIABLE} is required")
    configure_logging(args.log_format, "warning", "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    _end_with_parent()
    os.umask(0o077)  # export files hold users' emails: readable by the service's user only
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
