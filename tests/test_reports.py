"""Report exports: POST /api/reports/export, the job's status and download, and the runner behind them.

The app's runner threads are stopped at the start of each test (`app` fixture), and jobs are
stepped with `run_once(now)`, so each test decides when a job runs.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from openpyxl import load_workbook
from pypdf import PdfReader

from tests import databases
from tests.support import Member, assert_api_error, make_event, scraped, seed_org, seeded_database
from tests.test_org_queries import add_executions, execution
from weather_metrics.reports import builder as report_builder
from weather_metrics.reports import formats
from weather_metrics.reports import jobs as reports
from weather_metrics.reports import runner as runner_module
from weather_metrics.reports.runner import LEASE_SECONDS, JobLost, ReportRunner
from weather_metrics.store.db import database, execute, write_transaction
from weather_metrics.store.models import ReportJob

Org = dict[str, Member]


def _hours_ago(hours: int) -> str:
    moment = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seed(app: Flask) -> dict[str, Org]:
    """Two organizations; Acme has productivity metrics and agent executions over the last days."""
    acme, globex = seed_org(app, "Acme"), seed_org(app, "Globex")
    client = app.test_client()
    productivity = [
        {"type": kind, "value": 3 + n, "timestamp": _hours_ago(n * 7), "user_id": acme[role].user.id}
        for n in range(12)
        for kind, role in (("commits", "developer"), ("reviews", "manager"))
    ]
    executions = [
        {
            "agent_name": f"agent-{n % 3}",
            "command": "run",
            "execution_time_ms": 100 + n,
            "success": n % 4 != 0,
            "timestamp": _hours_ago(n * 5),
            "user_id": acme["developer"].user.id,
        }
        for n in range(12)
    ]
    for path, items in (("/api/metrics/productivity", productivity), ("/api/metrics/agents", executions)):
        response = client.post(path, json=items, headers=acme["admin"].headers)
        assert response.status_code == 201, response.get_json()
    return {"acme": acme, "globex": globex}


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Org]]:
    path = tmp_path_factory.mktemp("seeded") / "metrics.db"
    return path, seeded_database(path, _seed)


def stopped(app: Flask) -> Flask:
    """The app with its runner threads stopped: the test steps jobs itself."""
    app.extensions["weather_metrics"].reports.close()
    return app


@pytest.fixture
def app(service: Callable[..., Flask]) -> Flask:
    return stopped(service())


@pytest.fixture
def acme(seeded_db) -> Org:
    return seeded_db[1]["acme"]  # type: ignore[no-any-return]


@pytest.fixture
def globex(seeded_db) -> Org:
    return seeded_db[1]["globex"]  # type: ignore[no-any-return]


def runner(app: Flask) -> ReportRunner:
    return app.extensions["weather_metrics"].reports  # type: ignore[no-any-return]


def step_all(app: Flask, now: datetime | None = None) -> int:
    """Run every queued job; how many ran."""
    ran = 0
    with app.app_context():
        while runner(app).run_once(now or datetime.now(UTC)):
            ran += 1
    return ran


def export(client: Any, member: Member, fmt: str = "csv", report_type: str = "productivity", **filters: Any) -> Any:
    body = {"format": fmt, "report_type": report_type, "filters": filters}
    return client.post("/api/reports/export", json=body, headers=member.headers)


def queued(client: Any, member: Member, fmt: str = "csv", report_type: str = "productivity") -> dict[str, Any]:
    response = export(client, member, fmt, report_type)
    assert response.status_code == 202, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def job_row(app: Flask, job_id: str) -> ReportJob | None:
    with app.app_context():
        return ReportJob.get_or_none(ReportJob.id == job_id)


def set_job(app: Flask, job_id: str, **columns: Any) -> None:
    """Change a job's row behind the service's back, as a crash would leave it."""
    assignments = ", ".join(f"{name} = ?" for name in columns)
    with app.app_context(), database.connection_context():
        execute(f"UPDATE report_jobs SET {assignments} WHERE id = ?", (*columns.values(), job_id))


# --- requesting an export ----------------------------------------------------------------------


def test_an_export_is_queued_with_202_a_location_and_the_job(client, acme):
    response = export(client, acme["developer"])
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert response.headers["Location"] == f"/api/reports/{job['id']}" == job["status_url"]
    assert job["status"] == "queued" and job["progress"] == 0 and job["rows"] == 0
    assert (job["report_type"], job["format"], job["error"]) == ("productivity", "csv", None)
    assert isinstance(job["filters"], dict)
    assert job["started_at"] is None and job["finished_at"] is None
    assert "download_url" not in job
    created, expires = (datetime.fromisoformat(job[k]) for k in ("created_at", "expires_at"))
    assert expires - created == timedelta(hours=24)  # export_ttl_hours
    status = client.get(job["status_url"], headers=acme["developer"].headers)
    assert status.status_code == 200 and status.get_json() == job


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"format": "docx", "report_type": "productivity"}, "format"),
        ({"format": "csv", "report_type": "weather"}, "report_type"),
        ({"report_type": "productivity"}, "format"),
        ({"format": "csv", "report_type": "productivity", "colour": "red"}, "colour"),
        ({"format": "csv", "report_type": "productivity", "filters": ["user_id"]}, "filters"),
        ({"format": 3, "report_type": "productivity"}, "format"),
    ],
)
def test_a_malformed_request_is_a_400_naming_the_field(client, acme, body, field):
    response = client.post("/api/reports/export", json=body, headers=acme["admin"].headers)
    assert field in assert_api_error(response, 400)["details"]


def test_bad_filters_are_refused_at_once_with_details(app, client, acme, globex):
    error = assert_api_error(export(client, acme["admin"], start_date="yesterday-ish"), 400)
    assert "start_date" in str(error["details"]), error
    error = assert_api_error(export(client, acme["admin"], start_date="2025-03-10", end_date="2025-03-01"), 400)
    assert error["details"], error
    assert_api_error(export(client, acme["admin"], user_id=globex["developer"].user.id), 404)
    assert_api_error(export(client, acme["developer"], user_id=acme["manager"].user.id), 403)
    with app.app_context():
        assert ReportJob.select().count() == 0  # no job for any of them


def test_a_pdf_can_leave_out_its_data_rows_and_a_csv_cannot(app, client, acme):
    error = assert_api_error(export(client, acme["admin"], "csv", include_rows=False), 400)
    assert "filters.include_rows" in error["details"], error
    assert (
        "filters.include_rows"
        in assert_api_error(export(client, acme["admin"], "pdf", include_rows="no"), 400)["details"]
    )
    response = export(client, acme["admin"], "pdf", include_rows=False)
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["filters"]["include_rows"] is False
    step_all(app)
    done = client.get(response.get_json()["status_url"], headers=acme["admin"].headers).get_json()
    assert done["status"] == "done" and done["rows"] == 0, done
    pdf = client.get(done["download_url"], headers=acme["admin"].headers).get_data()
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Summary" in text and "data rows: no" in text and "Data rows" not in text


def test_an_empty_body_and_a_non_object_are_400(client, acme):
    headers = acme["admin"].headers
    assert_api_error(client.post("/api/reports/export", headers=headers), 400)
    assert_api_error(client.post("/api/reports/export", json=[1], headers=headers), 400)
    assert_api_error(client.post("/api/reports/export", json={"format": "csv"}), 401)


# --- running and downloading -------------------------------------------------------------------


def test_a_job_runs_to_done_with_progress_rows_and_a_download_url(app, client, acme):
    job = queued(client, acme["admin"])
    assert step_all(app) == 1
    done = client.get(job["status_url"], headers=acme["admin"].headers).get_json()
    assert done["status"] == "done" and done["progress"] == 100 and done["error"] is None
    assert done["rows"] > 0
    assert done["started_at"] and done["finished_at"] >= done["started_at"]
    assert done["download_url"] == f"/api/reports/{job['id']}/download"
    assert step_all(app) == 0  # nothing left


EXPORTS = "weather_metrics_exports_total"


# xlsx and pdf read their rows by the query csv reads them by: on PostgreSQL the csv case covers it.
FORMATS = ["csv", *(pytest.param(fmt, marks=databases.sqlite_only) for fmt in ("xlsx", "pdf"))]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_finished_export_is_counted_on_metrics_by_format(app, client, acme, fmt):
    done, failed = ({"format": fmt, "outcome": outcome} for outcome in ("done", "failed"))
    before = scraped(client, EXPORTS, done), scraped(client, EXPORTS, failed)
    queued(client, acme["admin"], fmt)
    assert scraped(client, EXPORTS, done) == before[0]  # queued is not finished
    assert step_all(app) == 1
    assert (scraped(client, EXPORTS, done), scraped(client, EXPORTS, failed)) == (before[0] + 1, before[1])


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_download_has_its_content_type_and_file_name(app, client, acme, fmt):
    job = queued(client, acme["manager"], fmt)
    step_all(app)
    response = client.get(f"/api/reports/{job['id']}/download", headers=acme["manager"].headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.headers["Content-Type"] == report_builder.FORMATS[fmt][0]
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="Acme-productivity-{day}.{fmt}"', disposition
    data = response.get_data()
    assert int(response.headers["Content-Length"]) == len(data) > 0
    magic = {"csv": None, "xlsx": b"PK\x03\x04", "pdf": b"%PDF-"}[fmt]
    if magic:
        assert data.startswith(magic)
    else:
        rows = [row for row in csv.reader(io.StringIO(data.decode("utf-8-sig"))) if row]
        assert len(rows) >= 2, rows  # a header and data
        assert len({len(row) for row in rows[-job_rows(app, job["id"]) :]}) == 1  # data rows are one shape


def job_rows(app: Flask, job_id: str) -> int:
    row = job_row(app, job_id)
    assert row is not None
    return int(row.rows_written)


def test_the_file_name_keeps_only_safe_characters():
    created = int(datetime(2025, 3, 9, 12, tzinfo=UTC).timestamp())
    name = reports.download_name('Ac"me; Inc/\\ Ünïcode\r\n', "agents", created, ".xlsx")
    assert name == "Ac-me-Inc-n-code-agents-2025-03-09.xlsx"
    assert reports.download_name("...", "teams", created, ".csv") == "teams-2025-03-09.csv"


@pytest.mark.parametrize("report_type", ["agents", "teams"])
def test_the_other_report_types_are_built(app, client, acme, report_type):
    job = queued(client, acme["admin"], "csv", report_type)
    step_all(app)
    done = client.get(job["status_url"], headers=acme["admin"].headers).get_json()
    assert done["status"] == "done", done
    response = client.get(done["download_url"], headers=acme["admin"].headers)
    assert response.status_code == 200
    assert f"Acme-{report_type}-" in response.headers["Content-Disposition"]


def test_a_download_before_the_job_is_done_is_409(app, client, acme):
    job = queued(client, acme["developer"])
    response = client.get(f"/api/reports/{job['id']}/download", headers=acme["developer"].headers)
    assert assert_api_error(response, 409)["details"] == {"status": "queued"}


# --- who may see a job -------------------------------------------------------------------------


def test_jobs_belong_to_their_requester_and_the_organization_admins(app, client, acme, globex):
    admin_job = queued(client, acme["admin"])
    developer_job = queued(client, acme["developer"])
    step_all(app)
    for job_id in (admin_job["id"], developer_job["id"]):
        for suffix in ("", "/download"):
            assert_api_error(client.get(f"/api/reports/{job_id}{suffix}", headers=globex["admin"].headers), 404)
    for suffix in ("", "/download"):
        url = f"/api/reports/{admin_job['id']}{suffix}"
        assert_api_error(client.get(url, headers=acme["developer"].headers), 404)
        assert_api_error(client.get(url, headers=acme["manager"].headers), 404)
        mine = client.get(f"/api/reports/{developer_job['id']}{suffix}", headers=acme["developer"].headers)
        assert mine.status_code == 200
        theirs = client.get(f"/api/reports/{developer_job['id']}{suffix}", headers=acme["admin"].headers)
        assert theirs.status_code == 200  # admins see their organization's jobs
    assert_api_error(client.get("/api/reports/no-such-job", headers=acme["admin"].headers), 404)


# --- rate limit --------------------------------------------------------------------------------


def test_the_eleventh_export_in_an_hour_is_429_and_other_routes_still_work(client, acme):
    for n in range(10):
        response = export(client, acme["developer"])
        assert response.status_code == 202, n
        assert response.headers["X-RateLimit-Limit"] == "10"
        assert response.headers["X-RateLimit-Remaining"] == str(9 - n)
    refused = export(client, acme["developer"])
    assert_api_error(refused, 429)
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert int(refused.headers["X-RateLimit-Reset"]) > datetime.now(UTC).timestamp()
    assert int(refused.headers["Retry-After"]) > 0
    other = client.get("/api/users", headers=acme["developer"].headers)
    assert other.status_code == 200
    assert other.headers["X-RateLimit-Limit"] == "1000"  # the /api limit, not spent by exports
    assert export(client, acme["manager"]).status_code == 202  # per user


# --- expiry ------------------------------------------------------------------------------------


def test_an_expired_job_is_404_and_expiry_deletes_its_file_and_row(app, client, acme):
    now = datetime.now(UTC)
    with app.app_context():
        job = reports.create_job(acme["admin"].user, "productivity", "csv", {}, now - timedelta(hours=2), 3600)
        fresh = reports.create_job(acme["admin"].user, "productivity", "csv", {}, now, 3600)
    step_all(app)
    expired, kept = job_row(app, job.id), job_row(app, fresh.id)
    assert expired is not None and kept is not None and expired.status == kept.status == "done"
    assert Path(expired.file_path).is_file()
    for suffix in ("", "/download"):
        assert_api_error(client.get(f"/api/reports/{job.id}{suffix}", headers=acme["admin"].headers), 404)
    with app.app_context():
        assert runner(app).expire_step(now) is True
        assert runner(app).expire_step(now) is False
    assert job_row(app, job.id) is None and not Path(expired.file_path).exists()
    assert Path(kept.file_path).is_file()  # not expired yet
    assert client.get(f"/api/reports/{fresh.id}/download", headers=acme["admin"].headers).status_code == 200
    with app.app_context():
        assert runner(app).expire_step(now + timedelta(hours=1)) is True
    assert job_row(app, fresh.id) is None and not Path(kept.file_path).exists()


# --- failures ----------------------------------------------------------------------------------


def test_too_many_rows_fail_the_job_with_a_readable_reason(app, client, acme):
    job = queued(client, acme["admin"])
    small = ReportRunner({**app.extensions["weather_metrics"].settings, "export_max_rows": 1})
    before = scraped(client, EXPORTS, {"format": "csv", "outcome": "failed"})
    with app.app_context():
        assert small.run_once(datetime.now(UTC)) is True
    assert scraped(client, EXPORTS, {"format": "csv", "outcome": "failed"}) == before + 1
    failed = client.get(job["status_url"], headers=acme["admin"].headers).get_json()
    assert failed["status"] == "failed" and failed["error"] and failed["error"] != "internal error"
    assert "1" in failed["error"], failed["error"]  # names the limit
    assert "download_url" not in failed
    assert list(small.export_dir.glob(f"{job['id']}*")) == []  # no partial file left
    response = client.get(f"/api/reports/{job['id']}/download", headers=acme["admin"].headers)
    error = assert_api_error(response, 409)
    assert failed["error"] in error["message"] and error["details"] == {"status": "failed"}


def test_a_failed_export_is_logged_at_warning_with_its_job_and_reason(app, client, acme, caplog):
    job = queued(client, acme["admin"])
    small = ReportRunner({**app.extensions["weather_metrics"].settings, "export_max_rows": 1})
    with caplog.at_level(logging.INFO, logger="weather_metrics.reports.runner"), app.app_context():
        assert small.run_once(datetime.now(UTC)) is True
    reason = client.get(job["status_url"], headers=acme["admin"].headers).get_json()["error"]
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "export_failed"]
    assert (record.levelno, record.event, record.job_id, record.reason) == (
        logging.WARNING,
        "export_failed",
        job["id"],
        reason,
    )
    assert record.organization_id == acme["admin"].user.organization_id and not record.exc_info
    assert record.getMessage() == f"export job {job['id']} failed (attempt 1): {reason}"


def test_an_unexpected_error_fails_the_job_and_never_leaves_it_running(app, client, acme, tmp_path, caplog):
    job = queued(client, acme["admin"])
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the export folder should be")
    broken = ReportRunner({**app.extensions["weather_metrics"].settings, "export_dir": str(blocker / "exports")})
    with app.app_context():
        assert broken.run_once(datetime.now(UTC)) is True
    failed = client.get(job["status_url"], headers=acme["admin"].headers).get_json()
    assert (failed["status"], failed["error"]) == ("failed", "internal error")
    assert failed["finished_at"] is not None
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "export_failed"]
    assert (record.levelno, record.job_id, record.reason) == (logging.ERROR, job["id"], "internal error")
    assert record.exc_info is not None  # the traceback, for a failure nobody foresaw


# --- restarts ----------------------------------------------------------------------------------


def test_a_job_running_at_a_crash_is_queued_again_and_completes(make_app, service, acme):
    first = stopped(service())
    job = queued(first.test_client(), acme["admin"])
    set_job(first, job["id"], status="running", attempts=1, progress=40, started_at=1)
    partial = runner(first).partial_path(job_row(first, job["id"]))
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half a report")
    status = first.test_client().get(job["status_url"], headers=acme["admin"].headers).get_json()
    assert (status["status"], status["progress"]) == ("running", 40)
    first.extensions["weather_metrics"].close()

    second = stopped(make_app())  # a restart on the same database file
    assert not partial.exists()
    step_all(second)  # its threads may have built it already; either way it completes
    row = job_row(second, job["id"])
    assert row is not None and (row.status, row.progress, row.attempts) == ("done", 100, 2)
    response = second.test_client().get(f"/api/reports/{job['id']}/download", headers=acme["admin"].headers)
    assert response.status_code == 200


def test_a_job_interrupted_twice_fails_with_the_reason(make_app, service, acme, caplog):
    first = stopped(service())
    job = queued(first.test_client(), acme["admin"])
    set_job(first, job["id"], status="running", attempts=2, started_at=1)
    failed = {"format": "csv", "outcome": "failed"}
    before = scraped(first.test_client(), EXPORTS, failed)
    first.extensions["weather_metrics"].close()

    second = stopped(make_app())
    status = second.test_client().get(job["status_url"], headers=acme["admin"].headers).get_json()
    assert (status["status"], status["error"]) == ("failed", "its runner stopped 2 times (a restart or a crash)")
    assert step_all(second) == 0
    failures = [r for r in caplog.records if getattr(r, "event", None) == "export_failed"]
    assert [(r.levelno, r.job_id, r.reason) for r in failures] == [(logging.WARNING, job["id"], status["error"])]
    assert scraped(second.test_client(), EXPORTS, failed) == before + 1


def test_the_runner_threads_build_jobs_on_their_own(service, acme):
    app = service()  # threads running
    client = app.test_client()
    job = queued(client, acme["developer"])
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while client.get(job["status_url"], headers=acme["developer"].headers).get_json()["status"] != "done":
        assert datetime.now(UTC) < deadline, "the runner threads did not build the job"
        time.sleep(0.05)
    app.extensions["weather_metrics"].close()
    assert client.get(job["status_url"], headers=acme["developer"].headers).get_json()["status"] == "done"


def test_a_job_re_run_elsewhere_is_not_overwritten_by_the_first_attempt(app, client, acme):
    """Two processes on one file (a graceful reload): the first attempt's late outcome must not win."""
    job = queued(client, acme["admin"])
    with app.app_context():
        first = runner(app)._claim(datetime.now(UTC))  # attempt 1, then "the other process" re-runs it
    assert first is not None and first.attempts == 1
    set_job(app, job["id"], status="queued")
    step_all(app)  # attempt 2: done, with its own file
    second = job_row(app, job["id"])
    assert second is not None and second.status == "done" and second.attempts == 2
    with app.app_context():
        runner(app)._build(first, datetime.now(UTC))  # attempt 1 finishes late
    after = job_row(app, job["id"])
    assert after is not None and after.file_path == second.file_path and Path(after.file_path).is_file()
    assert sorted(p.name for p in runner(app).export_dir.glob(f"{job['id']}*")) == [Path(second.file_path).name]
    assert client.get(f"/api/reports/{job['id']}/download", headers=acme["admin"].headers).status_code == 200


def test_a_file_expiry_cannot_delete_does_not_stop_exports(service, acme):
    """An expired job whose file cannot be removed is logged; its row goes and new jobs are still built."""
    app = service(export_workers=1)
    client = app.test_client()
    stopped(app)
    now = datetime.now(UTC)
    with app.app_context():
        old = reports.create_job(acme["admin"].user, "productivity", "csv", {}, now - timedelta(hours=2), 3600)
    step_all(app)
    done = job_row(app, old.id)
    assert done is not None and done.status == "done"
    path = Path(done.file_path)
    path.unlink()
    path.mkdir()  # a directory: unlink() fails as it would on a permission error
    with app.app_context():
        assert runner(app).expire_step(now) is True
    assert job_row(app, old.id) is None
    fresh = queued(client, acme["admin"])
    assert step_all(app) == 1
    assert client.get(fresh["status_url"], headers=acme["admin"].headers).get_json()["status"] == "done"


# --- concurrency: other writers, leases, work files, the disk floor --------------------------------

ROWS = 40_000  # under a second of XLSX now: a test that needs heartbeats within a build sets them closer


def wait_for(condition: Any, timeout: float = 60.0, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_a_job_built_while_others_commit_finishes_with_every_row(service, acme, caplog, monkeypatch):
    """Before, progress was written on the connection whose cursor held a read snapshot: as others
    committed, that write failed with "database is locked" and the job stayed running."""
    monkeypatch.setattr(runner_module, "BEAT_INTERVAL", 0.2)  # several heartbeats within the build, however fast it is
    app = service(export_workers=1)  # threads running: the keeper records progress
    org_id = acme["admin"].user.organization_id
    developer = acme["developer"].user
    add_executions(app, org_id, *(execution(_hours_ago(1 + n % 200), user=developer) for n in range(ROWS)))
    stop, commits = threading.Event(), [0]

    def other_writer() -> None:  # as the event writer does, from its own connection
        with database.connection_context():
            while not stop.is_set():
                with write_transaction():
                    execute(
                        "INSERT INTO sessions (session_id, last_seen) VALUES ('w', ?) "
                        "ON CONFLICT (session_id) DO UPDATE SET last_seen = excluded.last_seen",
                        (int(time.time()),),
                    )
                commits[0] += 1
                time.sleep(0.005)

    writer = threading.Thread(target=other_writer)
    writer.start()
    client, headers = app.test_client(), acme["admin"].headers
    try:
        response = export(client, acme["admin"], "xlsx", "agents")
        assert response.status_code == 202, response.get_json()
        job = response.get_json()
        seen: list[int] = []

        def finished() -> bool:
            status = client.get(job["status_url"], headers=headers).get_json()
            if status["status"] == "running":
                seen.append(status["progress"])
            return status["status"] in ("done", "failed")

        wait_for(finished, what="the export")
    finally:
        stop.set()
        writer.join()
    status = client.get(job["status_url"], headers=headers).get_json()
    assert status["status"] == "done", status
    assert status["rows"] >= ROWS and commits[0] > 20
    assert any(0 < percent < 100 for percent in seen), seen  # progress was recorded while it ran
    assert "database is locked" not in caplog.text
    download = client.get(status["download_url"], headers=headers)
    assert download.status_code == 200
    data = load_workbook(io.BytesIO(download.data), read_only=True)["Data"]
    assert data.max_row == status["rows"] + 1


def test_a_job_whose_runner_stopped_beating_is_queued_again_and_the_first_runner_stops(app, client, acme):
    """Two runners on one database (two processes or hosts): the lease decides who builds."""
    job = queued(client, acme["admin"], "xlsx", "agents")
    first, second = runner(app), ReportRunner(app.extensions["weather_metrics"].settings)
    now = datetime.now(UTC)
    with app.app_context():
        claimed = first._claim(now)
        assert claimed is not None and claimed.attempts == 1
        assert second.reclaim(now + timedelta(seconds=LEASE_SECONDS - 5)) == 0  # still leased
        assert first.beat() == 1
        assert second.reclaim(now + timedelta(seconds=LEASE_SECONDS + 5)) == 1  # no heartbeat since
    row = job_row(app, job["id"])
    assert row is not None and (row.status, row.attempts) == ("queued", 1)
    with app.app_context():
        assert first.beat() == 0  # the first runner learns the job is no longer its own...
        with pytest.raises(JobLost):
            first._progress(claimed)(10)  # ...and its build stops at the next progress step
        assert second.run_once(now) is True
        first._build(claimed, now)  # the stopped attempt ends without touching the job or its files
    row = job_row(app, job["id"])
    assert row is not None and (row.status, row.attempts) == ("done", 2)
    assert [path.name for path in first.export_dir.glob(f"{job['id']}*")] == [f"{job['id']}-2.xlsx"]
    assert client.get(f"/api/reports/{job['id']}/download", headers=acme["admin"].headers).status_code == 200


def test_a_hung_export_folder_holds_no_write_lock_while_a_stranded_job_is_settled(app, client, acme, monkeypatch):
    """The shared export folder (NFS) that stops answering stops exports only: ingestion goes on meanwhile."""
    job = queued(client, acme["admin"], "xlsx", "agents")
    first, second = runner(app), ReportRunner(app.extensions["weather_metrics"].settings)
    now = datetime.now(UTC)
    with app.app_context():
        assert first._claim(now) is not None  # then its host went away
    remove, entered, hung = runner_module._remove, threading.Event(), threading.Event()

    def on_a_hung_mount(path: Path) -> int:
        entered.set()
        hung.wait(30)
        return remove(path)

    monkeypatch.setattr(runner_module, "_remove", on_a_hung_mount)

    def settle() -> None:
        with app.app_context():
            second.reclaim(now + timedelta(seconds=LEASE_SECONDS + 5))

    settling = threading.Thread(target=settle)
    settling.start()
    try:
        assert entered.wait(10)
        answered: list[int] = []
        posting = threading.Thread(
            target=lambda: answered.append(client.post("/v1/events", json={"events": [make_event()]}).status_code)
        )
        posting.start()
        posting.join(10)
        assert answered == [200]  # committed while the folder still hangs
    finally:
        hung.set()
        settling.join(30)
    posting.join(30)
    row = job_row(app, job["id"])
    assert row is not None and (row.status, row.attempts) == ("queued", 1)


def test_expiry_also_removes_a_job_stuck_running(app, client, acme):
    job = queued(client, acme["admin"], "xlsx")
    now = datetime.now(UTC)
    with app.app_context():
        claimed = runner(app)._claim(now)
    assert claimed is not None
    work = runner(app).work_dir(claimed)
    work.mkdir(parents=True)
    (work / "rows").write_text("half")
    runner(app).partial_path(claimed).write_text("half")
    with app.app_context():
        assert runner(app).expire_step(now + timedelta(hours=25)) is True
    assert job_row(app, job["id"]) is None
    assert list(runner(app).export_dir.glob(f"{job['id']}*")) == []


def test_xlsx_work_files_live_in_the_work_folder_given(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    seen: list[list[str]] = []

    def rows() -> Any:
        for n in range(3):
            if n == 2:  # the first rows were written: the row file exists by now
                seen.append([path.name for path in work.iterdir()])
            yield (n, "text")

    sheet = formats.Sheet("Data", ("n", "text"), rows())
    assert formats.write_xlsx(tmp_path / "out.xlsx", [sheet], None, work) == 3
    assert seen and seen[0], "XlsxWriter kept its row file elsewhere (such as /tmp)"
    assert list(work.iterdir()) == []  # removed once the workbook is zipped


@databases.sqlite_only  # the export folder's files; the row limit is counted as on SQLite: not the database's
def test_a_failed_xlsx_export_leaves_nothing_in_the_export_folder(app, client, acme):
    job = queued(client, acme["admin"], "xlsx", "agents")
    small = ReportRunner({**app.extensions["weather_metrics"].settings, "export_max_rows": 1})
    with app.app_context():
        assert small.run_once(datetime.now(UTC)) is True
    status = client.get(job["status_url"], headers=acme["admin"].headers).get_json()
    assert status["status"] == "failed" and "more than 1 rows" in status["error"]
    assert list(small.export_dir.iterdir()) == []  # no partial file, no work folder


def test_starting_removes_what_a_stopped_runner_left_but_not_a_live_jobs_files(make_app, service, acme):
    first = stopped(service())
    client = first.test_client()
    stale, live = queued(client, acme["admin"], "xlsx"), queued(client, acme["admin"], "xlsx")
    set_job(first, stale["id"], status="running", attempts=1, heartbeat_at=1)
    set_job(first, live["id"], status="running", attempts=1, heartbeat_at=int(time.time()) + 3600)
    folder = runner(first).export_dir
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{job['id']}-1{suffix}" for job in (stale, live) for suffix in (".partial.xlsx", ".work")]
    for name in names:
        (folder / name).mkdir() if name.endswith(".work") else (folder / name).write_text("half")
    (folder / "notes.txt").write_text("not ours: never removed")
    first.extensions["weather_metrics"].close()

    second = stopped(make_app())  # a restart on the same database file
    left = {path.name for path in runner(second).export_dir.iterdir()}
    assert not left & set(names[:2])  # the stale attempt's files are gone
    assert left >= {*names[2:], "notes.txt"}  # the live attempt's are kept, and what is not an export's
    row = job_row(second, stale["id"])
    assert row is not None and row.status in ("queued", "running", "done") and row.attempts <= 2


def nearly_full(monkeypatch: pytest.MonkeyPatch, after_calls: int = 0) -> None:
    """The export disk reports 10 MiB free, after `after_calls` checks that see it as it is."""
    real, calls = shutil.disk_usage, [0]

    def usage(path: Any) -> Any:
        calls[0] += 1
        found = real(path)
        return found if calls[0] <= after_calls else found._replace(free=10 * 1024 * 1024)

    monkeypatch.setattr(reports.shutil, "disk_usage", usage)


def test_exports_refuse_to_start_below_the_free_disk_floor_and_spend_no_quota(service, acme, monkeypatch):
    app = stopped(service(export_min_free_mib=1024, export_rate_limit="3 per hour"))
    client = app.test_client()
    job = queued(client, acme["admin"])
    nearly_full(monkeypatch)
    for _ in range(5):  # more than the user's exports: a refusal spends none
        response = export(client, acme["admin"])
        error = assert_api_error(response, 503)
        assert "10 MiB free" in error["message"] and "export_min_free_mib (1024 MiB)" in error["message"]
        assert int(response.headers["Retry-After"]) > 0
    assert step_all(app) == 1  # a job queued earlier fails saying why, and writes nothing
    status = client.get(job["status_url"], headers=acme["admin"].headers).get_json()
    assert status["status"] == "failed" and "export_min_free_mib" in status["error"]
    assert list(runner(app).export_dir.glob(f"{job['id']}*")) == []
    monkeypatch.undo()
    assert export(client, acme["admin"]).status_code == 202  # space again: the user's quota is intact


@databases.sqlite_only  # the export disk's free space (faked): not the database's
def test_a_job_fails_when_the_disk_runs_low_while_it_is_built(service, acme, monkeypatch):
    app = stopped(service(export_workers=1))
    developer = acme["developer"].user
    add_executions(
        app, developer.organization_id, *(execution(_hours_ago(1 + n % 200), user=developer) for n in range(ROWS))
    )
    job = queued(app.test_client(), acme["admin"], "xlsx", "agents")
    nearly_full(monkeypatch, after_calls=2)  # the claim's check passes; a check during the build does not
    # Checked at every progress report, not once a second: a fast build may finish within the second.
    monkeypatch.setattr("weather_metrics.reports.runner.SPACE_CHECK_INTERVAL", 0.0)
    assert step_all(app) == 1
    row = job_row(app, job["id"])
    assert row is not None and row.status == "failed" and "export_min_free_mib" in (row.error or "")
    assert list(runner(app).export_dir.iterdir()) == []


def test_a_job_being_built_when_the_service_stops_goes_back_to_the_queue(service, acme):
    app = service(export_workers=1)
    org_id = acme["admin"].user.organization_id
    add_executions(app, org_id, *(execution(_hours_ago(1 + n % 200), user=acme["developer"].user) for n in range(ROWS)))
    client, headers = app.test_client(), acme["admin"].headers
    job = queued(client, acme["admin"], "xlsx", "agents")
    wait_for(lambda: client.get(job["status_url"], headers=headers).get_json()["status"] == "running", what="a start")
    began = time.monotonic()
    runner(app).close()
    assert time.monotonic() - began < 10  # the child is stopped, not waited for
    row = job_row(app, job["id"])
    assert row is not None and (row.status, row.attempts, row.progress) == ("queued", 0, 0)
    assert list(runner(app).export_dir.glob(f"{job['id']}*")) == []
    assert step_all(app) == 1  # and the next runner builds it
    row = job_row(app, job["id"])
    assert row is not None and (row.status, row.attempts) == ("done", 1)


@databases.sqlite_only  # file modes in the export folder: not the database's
def test_export_files_and_their_folder_are_readable_by_the_service_s_user_only(app, client, acme):
    job = queued(client, acme["admin"], "xlsx")
    step_all(app)
    row = job_row(app, job["id"])
    assert row is not None and row.status == "done"
    assert Path(row.file_path).stat().st_mode & 0o077 == 0  # it holds users' emails
    assert runner(app).export_dir.stat().st_mode & 0o077 == 0


# --- the child process ------------------------------------------------------------------------------


@databases.sqlite_only  # the child's pipe descriptors: not the database's
def test_an_export_is_built_when_the_server_holds_more_than_1023_descriptors(app, client, acme, capfd):
    """A server with many client connections gives the child's pipe a descriptor past select()'s limit."""
    job = queued(client, acme["admin"], "csv", "agents")
    held = []
    while not held or held[-1] < 1100:
        held.append(os.dup(0))
    try:
        assert step_all(app) == 1
    finally:
        for fd in held:
            os.close(fd)
    row = job_row(app, job["id"])
    assert row is not None and (row.status, row.error) == ("done", None)
    assert "RuntimeWarning" not in capfd.readouterr().err  # the child's stderr is the server's


@databases.sqlite_only  # what the child prints on its output: not the database's
def test_a_stray_line_on_the_child_s_output_is_skipped(app, client, acme, tmp_path, monkeypatch, caplog):
    (tmp_path / "sitecustomize.py").write_text("print('hello from sitecustomize')\nprint('[1, 2]')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    job = queued(client, acme["admin"], "csv", "agents")
    assert step_all(app) == 1
    row = job_row(app, job["id"])
    assert row is not None and (row.status, row.error) == ("done", None)
    assert "hello from sitecustomize" in caplog.text  # logged, not taken for an outcome


def test_the_childs_command_line_names_no_database_password(make_app, tmp_path, monkeypatch):
    """Any user of the host can read a process's command line (ps, /proc): the URL goes by the environment."""
    server = databases.SERVER.replace("://postgres@", "://postgres:hunter2-secret@")  # trust auth ignores it
    url = databases.postgresql_location(tmp_path / "pg.db", fresh=True).replace(databases.SERVER, server, 1)
    app = stopped(make_app(database=url, export_dir=str(tmp_path / "exports")))
    admin = seed_org(app, "Acme")["admin"]
    job = queued(app.test_client(), admin, "csv", "agents")
    start, seen = runner_module.start_child, []

    def watched(*args: Any) -> Any:
        child = start(*args)
        deadline = time.monotonic() + 10
        while b"--job" not in (line := Path(f"/proc/{child.pid}/cmdline").read_bytes()):  # until it has run exec
            assert time.monotonic() < deadline, line
        seen.append(line)  # long before it exits: it starts Python and imports the service first
        return child

    monkeypatch.setattr(runner_module, "start_child", watched)
    assert step_all(app) == 1
    row = job_row(app, job["id"])
    assert row is not None and (row.status, row.error) == ("done", None)  # the child reached the database
    assert len(seen) == 1 and b"--job" in seen[0] and b"hunter2" not in seen[0]


def test_a_child_leaves_nothing_in_the_servers_metrics_folder(app, client, acme, tmp_path, monkeypatch):
    """Under gunicorn every worker's metrics are files in one folder, read at each scrape; no child's are."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))  # as gunicorn_conf.py sets it for the workers
    job = queued(client, acme["admin"], "csv", "agents")
    assert step_all(app) == 1
    row = job_row(app, job["id"])
    assert row is not None and row.status == "done"
    assert sorted(path.name for path in folder.iterdir()) == []


def test_a_child_killed_from_outside_spends_an_attempt_then_fails_saying_so(service, acme, monkeypatch, caplog):
    """The out-of-memory killer, or a signal to the child alone: retried once, then failed with the signal."""
    app = stopped(service())
    developer = acme["developer"].user
    add_executions(
        app, developer.organization_id, *(execution(_hours_ago(1 + n % 200), user=developer) for n in range(ROWS))
    )
    job = queued(app.test_client(), acme["admin"], "xlsx", "agents")
    start = runner_module.start_child

    def killed_soon(*args: Any) -> Any:
        child = start(*args)
        threading.Timer(0.5, child.kill).start()
        return child

    monkeypatch.setattr(runner_module, "start_child", killed_soon)
    with app.app_context():
        assert runner(app).run_once(datetime.now(UTC)) is True
    row = job_row(app, job["id"])
    assert row is not None and (row.status, row.attempts) == ("queued", 1)  # queued again, the attempt spent
    assert step_all(app) == 1
    row = job_row(app, job["id"])
    assert row is not None and row.status == "failed" and "SIGKILL" in (row.error or "") and "2 attempts" in row.error
    assert "signal SIGKILL" in caplog.text and list(runner(app).export_dir.iterdir()) == []
    failures = [r for r in caplog.records if getattr(r, "event", None) == "export_failed"]
    assert [(r.levelno, r.job_id, r.reason) for r in failures] == [(logging.WARNING, job["id"], row.error)]


def test_the_start_sweep_keeps_the_files_of_an_attempt_claimed_while_it_runs(app, client, acme, monkeypatch):
    """Process B starts while process A claims a job and creates its work folder."""
    job = queued(client, acme["admin"], "xlsx", "agents")
    a, b = runner(app), ReportRunner(app.extensions["weather_metrics"].settings)
    a.export_dir.mkdir(parents=True, exist_ok=True)
    go, outcome = threading.Event(), {}
    start = runner_module.start_child

    def held_back(*args: Any) -> Any:  # A's worker is about to start its child
        go.wait(10)
        return start(*args)

    monkeypatch.setattr(runner_module, "start_child", held_back)

    class Watched(type(b.export_dir)):  # type: ignore[misc]
        def iterdir(self) -> Any:  # the sweep lists the folder: A claims and creates its work folder now
            def build() -> None:
                with app.app_context():
                    a.run_once(datetime.now(UTC))

            outcome["thread"] = threading.Thread(target=build)
            outcome["thread"].start()
            wait_for(lambda: any(p.name.endswith(".work") for p in super(Watched, self).iterdir()), 10, "A's folder")
            return super().iterdir()

    b.export_dir = Watched(b.export_dir)
    with app.app_context():
        removed = b.sweep(datetime.now(UTC))
    go.set()
    outcome["thread"].join(60)
    row = job_row(app, job["id"])
    assert removed == 0 and row is not None and (row.status, row.error) == ("done", None)
