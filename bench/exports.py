"""Report exports of 1 million rows in each format: time and peak memory; and exports beside ingestion.

Builds (once, into bench/results/) a database of 1M agent executions over 30 days, then
runs one export per format in a fresh process each, so peak memory (ru_maxrss) belongs
to that export alone. The idle figure is the same process before it exports anything.

Then, on a real server with 100k executions, the same XLSX export is timed on the idle
server and while /v1/events ingestion runs at full speed (target: at most 3x the idle time,
and no "database is locked" in the server's log).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.ingest import encode, make_batches
from bench.load import LoadPlan, drive, http_post
from bench.org import RESULTS, build, fingerprint, reusable
from tests.support import TEST_JWT_SECRET, Server
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
                heartbeat_at=now + 86400,  # leased: the app's own runner must not reclaim and build it too
            )
            idle = peak_mb()
            out = path.with_name(f"export-bench.{fmt}")
            started, cpu = time.perf_counter(), time.process_time()
            rows = build_report(job, out, max_rows, lambda _done: None)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            size = out.stat().st_size
            out.unlink()
            ReportJob.delete().where(ReportJob.id == job.id).execute()
    finally:
        app.extensions["weather_metrics"].close()
        database.close_all()
    return {"seconds": seconds, "cpu": cpu, "rows": rows, "mb": size / 1e6, "peak_mb": peak_mb(), "idle_mb": idle}


def call(url: str, token: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def timed_export(server: Server, token: str) -> tuple[float, str]:
    """Seconds from the request of an XLSX agents export to its 'done' (or 'failed'), and that status."""
    start = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 40 * 86400))
    began = time.monotonic()
    job = call(
        server.url + "/api/reports/export",
        token,
        {"format": "xlsx", "report_type": "agents", "filters": {"start_date": start}},
    )
    while (status := call(server.url + job["status_url"], token))["status"] in ("queued", "running"):
        time.sleep(0.05)
    return time.monotonic() - began, status["status"]


def events_stored(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


def under_ingestion(source: Path, rounds: int, connections: int) -> None:
    """An XLSX export's time on the idle server and while ingestion runs flat out, alternating."""
    with tempfile.TemporaryDirectory(prefix="bench-exports-") as tmp:
        path = Path(tmp) / "server.db"
        shutil.copyfile(source, path)
        app = create_app({"database": str(path), "jwt_secret": TEST_JWT_SECRET, "log_level": "warning"})
        with app.app_context():
            admin = User.get(User.role == "admin")
            token = app.extensions["weather_metrics"].tokens.start_session(admin).as_dict()["access_token"]
        app.extensions["weather_metrics"].close()
        database.close_all()
        server = Server(path, export_rate_limit="1000000 per hour", api_rate_limit="1000000 per hour").start()
        requests = [http_post("127.0.0.1", server.port, "/v1/events", encode(batch)) for batch in make_batches(1)]
        idle: list[float] = []
        loaded: list[float] = []
        rates: list[float] = []
        try:
            for _ in range(rounds):
                idle.append(timed_export(server, token)[0])
                plan = LoadPlan("127.0.0.1", server.port, requests, connections, 0.0, 3600.0)
                ours, theirs = multiprocessing.get_context("spawn").Pipe()
                load = multiprocessing.get_context("spawn").Process(target=drive, args=(plan, theirs), daemon=True)
                load.start()
                time.sleep(3)  # ingestion at full speed before the export starts
                before, began = events_stored(path), time.monotonic()
                seconds, status = timed_export(server, token)
                rates.append((events_stored(path) - before) / (time.monotonic() - began))
                load.terminate()
                load.join()
                loaded.append(seconds if status == "done" else float("inf"))
        finally:
            server.stop()
        log = server.log.read_text(errors="replace").splitlines()
        locked = [n for n, line in enumerate(log) if "database is locked" in line]
        for n in locked[:3]:
            print("\n".join(log[max(0, n - 12) : n + 1]), "\n--")
    ratio = statistics.median(loaded) / statistics.median(idle)
    print(f"\n== one XLSX export of {source.stem.split('-')[-1]} rows on a real server, idle and beside ingestion")
    print(f"{'':<28} {'median s':>9} {'runs':>30}")
    print(f"{'idle server':<28} {statistics.median(idle):>9.2f} {', '.join(f'{v:.2f}' for v in idle):>30}")
    print(f"{'while ingesting':<28} {statistics.median(loaded):>9.2f} {', '.join(f'{v:.2f}' for v in loaded):>30}")
    print(f"ingestion during the export: {statistics.median(rates):,.0f} events/s (median, {connections} connections)")
    print(
        f"ratio {ratio:.2f} (target at most 3.00: {'met' if ratio <= 3 else 'NOT met'});"
        f" 'database is locked' in the server log: {len(locked)} (target 0)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.exports", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--load-rows", type=int, default=100_000, help="rows of the export timed beside ingestion")
    parser.add_argument("--rounds", type=int, default=3, help="idle and loaded exports, alternating")
    parser.add_argument("--connections", type=int, default=32, help="ingestion connections")
    parser.add_argument("--only-load", action="store_true", help="skip the per-format table")
    parser.add_argument(
        "--baseline", type=Path, help="only XLSX: this checkout against another (e.g. the previous main), alternating"
    )
    parser.add_argument("--one", choices=FORMATS, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--database", type=Path)
    args = parser.parse_args(argv)
    path = args.database or RESULTS / f"exports-{args.rows}.db"
    if args.one:
        print(json.dumps(export_once(path, args.one, args.rows)))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if args.baseline:
        xlsx_against(path, args.rows, args.baseline.resolve(), args.rounds)
        return
    if not args.only_load:
        formats_table(path, args.rows)
    loaded = RESULTS / f"exports-{args.load_rows}.db"
    if not reusable(loaded, fingerprint(args.load_rows, 30, 7)):
        build(loaded, args.load_rows, 30, 7)
    under_ingestion(loaded, args.rounds, args.connections)


def one_export(path: Path, fmt: str, rows: int, checkout: Path | None = None) -> dict[str, float] | str:
    """One export in a fresh process, of this checkout's code or `checkout`'s; its figures, or why it failed."""
    argv = ["--one", fmt, "--rows", str(rows), "--database", str(path)]
    if checkout is None:
        command = [sys.executable, "-m", "bench.exports", *argv]
    else:  # this harness, that checkout's package
        run = (
            "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = sys.argv.pop(1); "
            "runpy.run_path(sys.argv[0], run_name='__main__')"
        )
        command = [sys.executable, "-c", run, str(checkout), __file__, *argv]
    child = subprocess.run(command, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        return child.stderr.strip().splitlines()[-1] if child.stderr.strip() else "?"
    return json.loads(child.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def formats_table(path: Path, rows: int) -> None:
    """One export per format, each in a fresh process."""
    wanted = fingerprint(rows, 30, 7)
    if not reusable(path, wanted):
        build(path, rows, 30, 7)
    print(f"\n== report exports of the 'agents' report, {rows:,} executions, each in a fresh process")
    print(f"{'format':<7} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'file MB':>8} {'peak MB':>8} {'idle MB':>8}")
    for fmt in FORMATS:
        r = one_export(path, fmt, rows)
        if isinstance(r, str):
            print(f"{fmt:<7} failed: {r}")
            continue
        print(
            f"{fmt:<7} {r['rows']:>10,} {r['seconds']:>8.1f} {r['rows'] / r['seconds']:>9,.0f} {r['mb']:>8.1f} "
            f"{r['peak_mb']:>8.0f} {r['idle_mb']:>8.0f}"
        )


# Issue 16: openpyxl's write-only mode wrote 10,600 rows/s on this machine; the target is twice that.
OPENPYXL_ROWS_PER_SECOND = 10_600
TARGET_XLSX_SPEEDUP = 2.0


def xlsx_against(path: Path, rows: int, baseline: Path, rounds: int) -> None:
    """XLSX exports of this checkout and of `baseline`, alternating; medians beside the target."""
    if not reusable(path, fingerprint(rows, 30, 7)):
        build(path, rows, 30, 7)
    rates: dict[str, list[float]] = {"this": [], "baseline": []}
    per_cpu: dict[str, list[float]] = {"this": [], "baseline": []}  # steadier than wall time on a busy machine
    print(f"\n== XLSX export of the 'agents' report, {rows:,} executions, this checkout and {baseline}, alternating")
    for round_ in range(rounds):
        order = [("this", None), ("baseline", baseline)]
        for label, checkout in order if round_ % 2 == 0 else order[::-1]:
            r = one_export(path, "xlsx", rows, checkout)
            if isinstance(r, str):
                raise RuntimeError(f"the {label} export failed: {r}")
            rates[label].append(r["rows"] / r["seconds"])
            per_cpu[label].append(r["rows"] / r["cpu"])
            print(
                f"{label:<9} {rates[label][-1]:>9,.0f} rows/s ({r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MB), "
                f"{per_cpu[label][-1]:,.0f} rows per CPU second"
            )
    cpu_ours, cpu_theirs = statistics.median(per_cpu["this"]), statistics.median(per_cpu["baseline"])
    print(f"per CPU   {cpu_ours:>9,.0f} rows/s, baseline {cpu_theirs:,.0f} rows/s: {cpu_ours / cpu_theirs:.2f}x")
    ours, theirs = statistics.median(rates["this"]), statistics.median(rates["baseline"])
    target = OPENPYXL_ROWS_PER_SECOND * TARGET_XLSX_SPEEDUP
    print(f"median    {ours:>9,.0f} rows/s, baseline {theirs:,.0f} rows/s: {ours / theirs:.2f}x the baseline")
    print(
        f"          {ours / OPENPYXL_ROWS_PER_SECOND:.2f}x openpyxl's {OPENPYXL_ROWS_PER_SECOND:,} rows/s "
        f"(target >= {TARGET_XLSX_SPEEDUP:.0f}x, {target:,.0f} rows/s): {'PASS' if ours >= target else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
