"""The runner that builds export files: worker threads, and a keeper thread that holds their leases.

A worker claims the oldest queued job and has a child process (reports/child.py) build its
file under a temporary name in the export folder, then renames it, so a file under its final
name is always complete. The child has its own interpreter lock and memory, so a large export
neither slows request threads nor is slowed by them, and it only reads the database. The
worker never writes while the child builds: the keeper does, from its own connection,
once a second for every job this runner holds (`heartbeat_at` and `progress`). A job whose
heartbeat is older than LEASE_SECONDS lost its runner (a crash, a stopped process, another
host) and is queued again by whichever runner sees it first; after MAX_ATTEMPTS it fails.
The keeper also expires old jobs, queued, running or finished.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from peewee import OperationalError

from weather_metrics.reports import builder
from weather_metrics.reports.child import ChildDied, follow, rows_built, start_child
from weather_metrics.reports.held import HeldJobs, JobLost
from weather_metrics.reports.jobs import (
    MIB,
    BuildFailed,
    LowDiskSpace,
    download_name,
    failure_reason,
    free_space_problem,
)
from weather_metrics.runtime.loops import StepThreads
from weather_metrics.runtime.prometheus import exports_total
from weather_metrics.store.backup import data_folder
from weather_metrics.store.db import database, resolved, write_transaction
from weather_metrics.store.models import Organization, ReportJob

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a job whose runner stopped this many times is given up
RUNNER_STOPPED = "its runner stopped {} times (a restart or a crash)"  # why such a job failed
LEASE_SECONDS = 30  # a running job without a heartbeat for this long is queued again
BEAT_INTERVAL = 1.0  # seconds between the keeper's heartbeats
RECLAIM_INTERVAL = 5.0  # seconds between the keeper's looks for jobs that lost their runner
EXPIRY_INTERVAL = 60.0  # seconds between expiry steps
EXPIRY_BATCH = 100
SPACE_CHECK_INTERVAL = 1.0  # seconds between free-space checks of a job being built
FINISH_TRIES = 5  # tries at recording a job's outcome before leaving it to its lease
IDLE_WAIT = 0.5  # seconds a worker sleeps when no job is queued
CLAIM_CANDIDATES = 8  # queued jobs read at once; another process may claim some of them first
# Files of a job: <id>-<attempt>.<ext>, <id>-<attempt>.partial.<ext> and the <id>-<attempt>.work folder.
JOB_FILE = re.compile(r"(?P<id>[0-9a-f-]{36})-(?P<attempt>\d+)(?P<kind>\.partial|\.work)?(\.[a-z]+)?")


class Interrupted(Exception):
    """The runner is closing: the job goes back to the queue."""


def _epoch(now: datetime) -> int:
    return int(now.timestamp())


class ReportRunner:
    """Builds queued export jobs: `run_once` builds one; `start` runs `export_workers` threads and the keeper."""

    def __init__(self, settings: dict[str, Any], clock: Callable[[], float] = time.time) -> None:
        self._max_rows = int(settings["export_max_rows"])
        self._log_format = str(settings["log_format"])  # the child's lines, like the server's
        self._database = resolved(settings["database"])
        self._children: set[subprocess.Popen[bytes]] = set()
        self._interrupted: set[subprocess.Popen[bytes]] = set()  # children that close() ended
        self._stopping = False  # while close() runs, a child that starts is ended at once
        self._lock = threading.Lock()
        self._min_free = int(settings["export_min_free_mib"]) * MIB
        folder = settings["export_dir"] or data_folder(settings["database"]) / "exports"
        self.export_dir = Path(folder).expanduser().resolve()
        self._clock = clock
        self._held = HeldJobs()
        self._workers = StepThreads(
            "report", int(settings["export_workers"]), lambda _n: self.run_once(self._now()), IDLE_WAIT
        )
        self._keeper = StepThreads("report-keeper", 1, self._keep, BEAT_INTERVAL)
        self._next_reclaim = self._next_expiry = 0.0

    # -- files ---------------------------------------------------------------------------------

    # Names carry the attempt: a runner that re-ran a job never shares a file with an earlier one.
    def final_path(self, job: ReportJob) -> Path:
        return self.export_dir / f"{job.id}-{job.attempts}{builder.FORMATS[job.format][1]}"

    def partial_path(self, job: ReportJob) -> Path:
        return self.export_dir / f"{job.id}-{job.attempts}.partial{builder.FORMATS[job.format][1]}"

    def work_dir(self, job: ReportJob) -> Path:
        """Where the XLSX writer keeps its row files until the workbook is zipped."""
        return self.export_dir / f"{job.id}-{job.attempts}.work"

    def _remove_files(self, job: ReportJob, final: bool = True) -> None:
        """Delete the job's files; a file that cannot be deleted is logged, not raised."""
        for path in (self.partial_path(job), self.work_dir(job), *([self.final_path(job)] if final else [])):
            _remove(path)

    def sweep(self, now: datetime) -> int:
        """Remove partial files and work folders of attempts no runner holds (left by a crash); count removed."""
        if not self.export_dir.is_dir():
            return 0
        # The folder first, then the leases: a file is created only after its job is claimed, so an
        # attempt claimed in between is among the leases and its files are not in the list.
        listed = [(path, JOB_FILE.fullmatch(path.name)) for path in self.export_dir.iterdir()]
        live = {(job.id, job.attempts) for job in ReportJob.select().where(self._leased(now))}
        stale = [
            path
            for path, match in listed
            if match and match["kind"] and (match["id"], int(match["attempt"])) not in live
        ]
        return sum(_remove(path) for path in stale)

    def check_free_space(self) -> None:
        """LowDiskSpace when the disk holding the export folder is below its floor."""
        problem = free_space_problem(self.export_dir, self._min_free)
        if problem:
            raise LowDiskSpace(problem)

    # -- a worker's steps ------------------------------------------------------------------------

    def _claim(self, now: datetime) -> ReportJob | None:
        """The oldest queued job that we could claim, now 'running', leased and ours; None when none is queued.

        Candidates are read without the write lock (an idle poll never takes it). Each claim is
        one UPDATE that holds only while the job is still queued: of several processes or hosts,
        one builds each job (docs/scaling.md).
        """
        oldest = (ReportJob.created_at, ReportJob.id)
        candidates = ReportJob.select().where(ReportJob.status == "queued").order_by(*oldest).limit(CLAIM_CANDIDATES)
        for job in list(candidates):
            with write_transaction():
                claimed = (
                    ReportJob.update(
                        status="running",
                        progress=0,
                        attempts=ReportJob.attempts + 1,
                        started_at=_epoch(now),
                        heartbeat_at=int(self._clock()),
                        error=None,
                    )
                    .where((ReportJob.id == job.id) & (ReportJob.status == "queued"))
                    .execute()
                )
                fresh: ReportJob | None = ReportJob.get_by_id(job.id) if claimed else None
            if fresh is not None:
                self._held.hold(fresh)
                return fresh
        return None

    def _progress(self, job: ReportJob) -> Callable[[int], None]:
        """The builder's progress callback: notes the percentage, and stops a job that is lost or out of disk."""
        next_check = [time.monotonic() + SPACE_CHECK_INTERVAL]

        def record(percent: int) -> None:
            self._held.progress(job, max(0, min(99, int(percent))))  # 100 only once the file is in place
            if time.monotonic() >= next_check[0]:
                next_check[0] = time.monotonic() + SPACE_CHECK_INTERVAL
                self.check_free_space()

        return record

    def _finish(self, job: ReportJob, now: datetime, **fields: Any) -> bool:
        """Record the outcome of our attempt; False when the job is no longer ours (expired, or re-run).

        A busy database is tried again a few times; after that the error is raised and the
        job's lease, no longer renewed, settles it.
        """
        ours = (ReportJob.id == job.id) & (ReportJob.status == "running") & (ReportJob.attempts == job.attempts)
        for attempt in range(FINISH_TRIES):
            try:
                with write_transaction():
                    recorded = bool(ReportJob.update(finished_at=_epoch(now), **fields).where(ours).execute())
                if recorded:
                    exports_total.labels(job.format, fields["status"]).inc()
                return recorded
            except OperationalError:
                if attempt == FINISH_TRIES - 1:
                    raise
                log.warning("export job %s: recording its outcome failed, trying again", job.id, exc_info=True)
                time.sleep(0.5 * 2**attempt)
        return False  # not reached

    def _build(self, job: ReportJob, now: datetime) -> None:
        """Build a claimed job's file and mark the job done or failed."""
        content_type, extension = builder.FORMATS[job.format]
        partial, final, work = self.partial_path(job), self.final_path(job), self.work_dir(job)
        try:
            self.check_free_space()
            self.export_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            work.mkdir(mode=0o700, exist_ok=True)
            rows = self._build_in_child(job, partial, work)
            partial.replace(final)
            organization = Organization.get_by_id(job.organization_id).name
        except (Interrupted, JobLost, ChildDied) as exc:
            self._remove_files(job)
            self._stopped(job, exc, now)
            return
        except Exception as exc:  # noqa: BLE001 - any failure fails the job, with a reason
            reason = failure_reason(exc)
            _log_failed(job, reason, internal=reason == "internal error" and not isinstance(exc, BuildFailed))
            self._remove_files(job)
            self._finish(job, now, status="failed", error=reason)
            return
        _remove(work)
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
        if not done:  # expired, deleted or re-run elsewhere while being built
            self._remove_files(job)

    def _stopped(self, job: ReportJob, exc: Exception, now: datetime) -> None:
        """Settle an attempt that ended without an outcome: a stop gives it back, a dead child spends it."""
        why = exc.args[0] if exc.args else exc.__doc__
        if isinstance(exc, ChildDied) and job.attempts >= MAX_ATTEMPTS:
            reason = f"{why} ({job.attempts} attempts)"
            _log_failed(job, reason)
            self._finish(job, now, status="failed", error=reason)
            return
        log.log(logging.WARNING if isinstance(exc, ChildDied) else logging.INFO, "export job %s stops: %s", job.id, why)
        if isinstance(exc, JobLost):
            return
        with write_transaction():
            ReportJob.update(
                status="queued", progress=0, started_at=None, attempts=job.attempts - isinstance(exc, Interrupted)
            ).where(
                (ReportJob.id == job.id) & (ReportJob.status == "running") & (ReportJob.attempts == job.attempts)
            ).execute()

    def _build_in_child(self, job: ReportJob, partial: Path, work: Path) -> int:
        """Build the file in a child process, relaying its progress; the number of rows, or BuildFailed."""
        with start_child(self._database, job.id, partial, work, self._max_rows, self._log_format) as child:
            with self._lock:
                self._children.add(child)
                if self._stopping:
                    self._interrupted.add(child)
                    child.kill()
            try:
                outcome = follow(child, self._progress(job), BEAT_INTERVAL)
            except BaseException:
                child.kill()
                raise
            finally:
                with self._lock:
                    self._children.discard(child)
                    interrupted = child in self._interrupted
                    self._interrupted.discard(child)
        if interrupted:
            raise Interrupted
        return rows_built(outcome)

    def run_once(self, now: datetime) -> bool:
        """Build the oldest queued job; False when none was queued."""
        job = self._claim(now)
        if job is None:
            return False
        try:
            self._build(job, now)
        except Exception:  # noqa: BLE001 - the database failed while recording the outcome
            log.exception("export job %s: recording its outcome failed; its lease will settle it", job.id)
        finally:
            self._held.release(job)
        return True

    # -- the keeper's steps ----------------------------------------------------------------------

    def beat(self) -> int:
        """Renew the lease and store the progress of every job this runner holds; count renewed."""
        held = self._held.snapshot()
        if not held:
            return 0
        at, renewed = int(self._clock()), 0
        with write_transaction():
            for job_id, (attempt, percent) in held.items():
                count = (
                    ReportJob.update(heartbeat_at=at, progress=percent)
                    .where((ReportJob.id == job_id) & (ReportJob.status == "running") & (ReportJob.attempts == attempt))
                    .execute()
                )
                if count:
                    renewed += 1
                else:
                    self._held.lose(job_id)
        return renewed

    def _leased(self, now: datetime) -> Any:
        return (ReportJob.status == "running") & (ReportJob.heartbeat_at >= _epoch(now) - LEASE_SECONDS)

    def reclaim(self, now: datetime) -> int:
        """Queue again (or fail, after MAX_ATTEMPTS) running jobs whose lease ran out; count settled."""
        stranded: list[ReportJob] = []  # the jobs settled here (another runner may settle some first)
        with write_transaction():
            expired = ReportJob.select().where(
                (ReportJob.status == "running")
                & (ReportJob.heartbeat_at.is_null() | (ReportJob.heartbeat_at < _epoch(now) - LEASE_SECONDS))
            )
            for job in list(expired):
                if job.attempts < MAX_ATTEMPTS:
                    changes: dict[str, Any] = {"status": "queued", "progress": 0, "started_at": None}
                else:
                    error = RUNNER_STOPPED.format(job.attempts)
                    changes = {"status": "failed", "error": error, "finished_at": _epoch(now)}
                ours = (ReportJob.id == job.id) & (ReportJob.attempts == job.attempts) & (ReportJob.status == "running")
                if ReportJob.update(**changes).where(ours).execute():
                    stranded.append(job)
        # Once committed: the write lock is not held while a shared folder (NFS) takes its time, or hangs.
        # A later attempt names its files after its own number, so these are the stopped attempt's alone.
        for job in stranded:
            self._remove_files(job)
            if job.attempts < MAX_ATTEMPTS:
                log.warning("export job %s lost its runner (attempt %d): queued again", job.id, job.attempts)
            else:
                _log_failed(job, RUNNER_STOPPED.format(job.attempts))
                exports_total.labels(job.format, "failed").inc()
        return len(stranded)

    def expire_step(self, now: datetime) -> bool:
        """Delete up to EXPIRY_BATCH jobs past their expiry, in any state, with their files; False when none was."""
        with write_transaction():
            jobs = list(ReportJob.select().where(ReportJob.expires_at <= _epoch(now)).limit(EXPIRY_BATCH))
            if jobs:
                ReportJob.delete().where(ReportJob.id.in_([job.id for job in jobs])).execute()
        for job in jobs:
            self._held.lose(job.id)  # a worker of ours stops at its next progress; others, at their heartbeat
            self._remove_files(job)
        return bool(jobs)

    # -- threads ---------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def start(self) -> None:
        """Settle what a stopped runner left behind, then start the workers and the keeper."""
        with database.connection_context():
            self.reclaim(self._now())
            self.sweep(self._now())
        self._workers.start()
        self._keeper.start()

    def _keep(self, _number: int) -> bool:
        """Heartbeats every step; now and then, leases that ran out and expired jobs."""
        for name, task in (("heartbeat", self.beat), ("reclaim", self._reclaim_due), ("expiry", self._expire_due)):
            try:
                task()
            except Exception:  # noqa: BLE001 - tried again at the next step; the lease allows a few misses
                log.exception("export %s failed", name)
        return False

    def _reclaim_due(self) -> None:
        if time.monotonic() >= self._next_reclaim:
            self._next_reclaim = time.monotonic() + RECLAIM_INTERVAL
            self.reclaim(self._now())

    def _expire_due(self) -> None:
        if time.monotonic() >= self._next_expiry:
            more = self.expire_step(self._now())
            self._next_expiry = time.monotonic() + (0 if more else EXPIRY_INTERVAL)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the workers, ending the exports they build (queued again at once), then the keeper."""
        self._workers.stop()
        with self._lock:
            self._stopping = True
            self._interrupted.update(self._children)
            for child in self._children:
                child.kill()
        self._workers.close(timeout)
        self._keeper.close(timeout)
        with self._lock:
            self._stopping = False  # run_once may still be called directly (tests step jobs so)


def _remove(path: Path) -> int:
    """Delete a file or folder; 1 when something was deleted; a failure is logged, not raised."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return 1
    except FileNotFoundError:
        return 0
    except OSError:
        log.exception("cannot delete export file %s", path)
        return 0


def _log_failed(job: ReportJob, reason: str, internal: bool = False) -> None:
    """A failed export at WARNING; at ERROR, with the traceback, when it failed unexpectedly in this process."""
    fields = {"event": "export_failed", "job_id": job.id, "organization_id": job.organization_id, "reason": reason}
    level = logging.ERROR if internal else logging.WARNING
    log.log(
        level, "export job %s failed (attempt %d): %s", job.id, job.attempts, reason, exc_info=internal, extra=fields
    )
