"""Report export jobs: create, find and show them, and the runner that builds their files.

A job is a row of report_jobs. `ReportRunner.run_once` claims the oldest queued job,
builds its file into a temporary name in the export folder and renames it when done, so
a file under its final name is always complete. Jobs and files expire after a TTL.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from weather_metrics.core.errors import NotFound, OutOfScope, QueryError, UnknownTarget
from weather_metrics.core.times import iso
from weather_metrics.reports import builder
from weather_metrics.runtime.loops import StepThreads
from weather_metrics.store.db import database, write_transaction
from weather_metrics.store.models import Organization, ReportJob, User

log = logging.getLogger(__name__)


MAX_ATTEMPTS = 2  # a job interrupted by this many restarts is given up
PROGRESS_INTERVAL = 1.0  # seconds between progress writes of one job
IDLE_WAIT = 0.5  # seconds a runner thread sleeps when no job is queued
EXPIRY_INTERVAL = 60.0  # seconds between expiry steps of the first thread
EXPIRY_BATCH = 100
UNSAFE = re.compile(r"[^A-Za-z0-9._]+")


def _epoch(now: datetime) -> int:
    return int(now.timestamp())


def create_job(
    user: User, report_type: str, format: str, filters: dict[str, Any], now: datetime, ttl: int
) -> ReportJob:
    """A queued job of `user` that expires `ttl` seconds from now; filters already checked."""
    at = _epoch(now)
    return ReportJob.create(
        id=str(uuid.uuid4()),
        organization=user.organization_id,
        user=user.id,
        report_type=report_type,
        format=format,
        filters=json.dumps(filters, sort_keys=True),
        status="queued",
        progress=0,
        rows_written=0,
        attempts=0,
        created_at=at,
        expires_at=at + ttl,
    )


def find_job(user: User, job_id: str, now: datetime | None = None) -> ReportJob:
    """The user's own job, or any job of their organization for its admins; NotFound otherwise or once expired."""
    at = _epoch(now or datetime.now(UTC))
    job = ReportJob.get_or_none((ReportJob.id == job_id) & (ReportJob.organization == user.organization_id))
    if job is None or job.expires_at <= at or (job.user_id != user.id and user.role != "admin"):
        raise NotFound(f"Export job {job_id} not found")
    return job


def job_view(job: ReportJob) -> dict[str, Any]:
    """The job as the API shows it."""

    def moment(value: int | None) -> str | None:
        return None if value is None else iso(value)

    view: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "progress": job.progress,
        "report_type": job.report_type,
        "format": job.format,
        "filters": json.loads(job.filters),
        "rows": job.rows_written,
        "error": job.error,
        "created_at": moment(job.created_at),
        "started_at": moment(job.started_at),
        "finished_at": moment(job.finished_at),
        "expires_at": moment(job.expires_at),
        "status_url": f"/api/reports/{job.id}",
    }
    if job.status == "done":
        view["download_url"] = f"/api/reports/{job.id}/download"
    return view


def download_name(organization: str, report_type: str, created_at: int, extension: str) -> str:
    """`<org>-<type>-<date><ext>` with only characters that are safe in a header and a file system."""
    day = datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%d")
    parts = (UNSAFE.sub("-", part).strip("-.") for part in (organization, report_type, day))
    return "-".join(part for part in parts if part) + extension


def failure_reason(exc: Exception) -> str:
    """What a user reads in `error` when their export failed."""
    if isinstance(exc, QueryError):
        details = "; ".join(f"{field}: {text}" for field, text in exc.details.items())
        return f"{exc} ({details})" if details else str(exc)
    if isinstance(exc, (builder.ReportTooLarge, OutOfScope, UnknownTarget)):
        return str(exc)
    return "internal error"


class ReportRunner:
    """Builds queued export jobs: `run_once` steps one job; `start` runs `export_workers` threads around it."""

    def __init__(self, settings: dict[str, Any], clock: Callable[[], float] = time.time) -> None:
        self._max_rows = int(settings["export_max_rows"])
        self._workers = int(settings["export_workers"])
        folder = settings["export_dir"] or Path(settings["database"]).expanduser().resolve().parent / "exports"
        self.export_dir = Path(folder).expanduser().resolve()
        self._clock = clock
        self._threads = StepThreads("report", self._workers, self._step, IDLE_WAIT)
        self._next_expiry = time.monotonic()

    # -- paths ---------------------------------------------------------------------------------

    # Names carry the attempt: a second process that re-ran a job never shares a file with the first.
    def final_path(self, job: ReportJob) -> Path:
        return self.export_dir / f"{job.id}-{job.attempts}{builder.FORMATS[job.format][1]}"

    def partial_path(self, job: ReportJob) -> Path:
        return self.export_dir / f"{job.id}-{job.attempts}.partial{builder.FORMATS[job.format][1]}"

    def _remove_files(self, job: ReportJob) -> None:
        """Delete the job's files; a file that cannot be deleted is logged, not raised."""
        for path in (self.partial_path(job), self.final_path(job)):
            try:
                path.unlink(missing_ok=True)
            except OSError:
                log.exception("cannot delete export file %s", path)

    # -- steps ---------------------------------------------------------------------------------

    def _claim(self, now: datetime) -> ReportJob | None:
        """The oldest queued job, now 'running' and ours; None when nothing is queued."""
        with write_transaction():
            while True:
                job = (
                    ReportJob.select()
                    .where(ReportJob.status == "queued")
                    .order_by(ReportJob.created_at, ReportJob.id)
                    .first()
                )
                if job is None:
                    return None
                claimed = (
                    ReportJob.update(
                        status="running",
                        progress=0,
                        attempts=ReportJob.attempts + 1,
                        started_at=_epoch(now),
                        error=None,
                    )
                    .where((ReportJob.id == job.id) & (ReportJob.status == "queued"))
                    .execute()
                )
                if claimed:
                    return ReportJob.get_by_id(job.id)

    def _progress_recorder(self, job_id: str) -> Callable[[int], None]:
        """A callback that stores the job's progress, at most once per PROGRESS_INTERVAL."""
        last = [time.monotonic(), 0]

        def record(percent: int) -> None:
            percent = max(0, min(99, int(percent)))  # 100 only once the file is in place
            moment = time.monotonic()
            if percent > last[1] and moment - last[0] >= PROGRESS_INTERVAL:
                last[0], last[1] = moment, percent
                with write_transaction():
                    ReportJob.update(progress=percent).where(
                        (ReportJob.id == job_id) & (ReportJob.status == "running")
                    ).execute()

        return record

    def _finish(self, job: ReportJob, now: datetime, **fields: Any) -> bool:
        """Record the outcome of our attempt; False when the job is no longer ours (expired, or re-run)."""
        with write_transaction():
            return bool(
                ReportJob.update(finished_at=_epoch(now), **fields)
                .where(
                    (ReportJob.id == job.id) & (ReportJob.status == "running") & (ReportJob.attempts == job.attempts)
                )
                .execute()
            )

    def _build(self, job: ReportJob, now: datetime) -> None:
        """Build a claimed job's file and mark the job done or failed; never leaves it running."""
        content_type, extension = builder.FORMATS[job.format]
        partial, final = self.partial_path(job), self.final_path(job)
        try:
            self.export_dir.mkdir(parents=True, exist_ok=True)
            rows = builder.build_report(job, partial, self._max_rows, self._progress_recorder(job.id))
            partial.replace(final)
            organization = Organization.get_by_id(job.organization_id).name
        except Exception as exc:  # noqa: BLE001 - any failure fails the job, with a reason
            if failure_reason(exc) == "internal error":
                log.exception("export job %s failed", job.id)
            self._remove_files(job)
            self._finish(job, now, status="failed", error=failure_reason(exc))
            return
        done = self._finish(
            job,
            now,
            status="done",
            progress=100,
            rows_written=rows,
            file_path=str(final),
            file_name=download_name(organization, job.report_type, job.created_at, extension),
            content_type=content_type,
            size_bytes=final.stat().st_size,
        )
        if not done:  # expired or deleted while being built
            self._remove_files(job)

    def run_once(self, now: datetime) -> bool:
        """Build the oldest queued job; False when none was queued."""
        job = self._claim(now)
        if job is None:
            return False
        try:
            self._build(job, now)
        except Exception:  # noqa: BLE001 - the database failed while recording the outcome
            log.exception("export job %s: recording its outcome failed", job.id)
            try:
                self._finish(job, now, status="failed", error="internal error")
            except Exception:  # noqa: BLE001 - recover() settles it at the next start
                log.exception("export job %s: cannot mark it failed", job.id)
        return True

    def recover(self, now: datetime) -> int:
        """Settle jobs a crash left 'running': queue them again, or fail them after MAX_ATTEMPTS; count settled."""
        with write_transaction():
            stranded = list(ReportJob.select().where(ReportJob.status == "running"))
            for job in stranded:
                self._remove_files(job)
                if job.attempts < MAX_ATTEMPTS:
                    changes: dict[str, Any] = {"status": "queued", "progress": 0, "started_at": None}
                else:
                    changes = {
                        "status": "failed",
                        "error": "interrupted by a restart twice",
                        "finished_at": _epoch(now),
                    }
                ReportJob.update(**changes).where(ReportJob.id == job.id).execute()
        if stranded:
            log.warning("export jobs interrupted by a restart: %d settled", len(stranded))
        return len(stranded)

    def expire_step(self, now: datetime) -> bool:
        """Delete up to EXPIRY_BATCH jobs past their expiry, with their files; False when none was."""
        with write_transaction():
            jobs = list(
                ReportJob.select()
                .where((ReportJob.expires_at <= _epoch(now)) & (ReportJob.status != "running"))
                .limit(EXPIRY_BATCH)
            )
            for job in jobs:
                self._remove_files(job)
            if jobs:
                ReportJob.delete().where(ReportJob.id.in_([job.id for job in jobs])).execute()
        return bool(jobs)

    # -- threads -------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def start(self, recover: bool = True) -> None:
        """Settle what a crash left behind (unless gunicorn did, before its workers), then start the threads."""
        if recover:
            with database.connection_context():
                self.recover(self._now())
        self._threads.start()

    def _step(self, number: int) -> bool:
        """One thread's step: the first thread also expires old jobs now and then."""
        if number == 0 and time.monotonic() >= self._next_expiry:
            try:
                more = self.expire_step(self._now())
            except Exception:  # noqa: BLE001 - retried at the next interval; exports go on
                log.exception("expiring export jobs failed")
                more = False
            self._next_expiry = time.monotonic() + (0 if more else EXPIRY_INTERVAL)
        return self.run_once(self._now())

    def close(self, timeout: float = 30.0) -> None:
        """Stop the threads after the job each is building; idempotent."""
        self._threads.close(timeout)
