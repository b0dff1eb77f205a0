"""Report export jobs: create, find and show them (reports/runner.py builds their files).

A job is a row of report_jobs: queued, then running while a runner holds its lease, then
done (with a file) or failed (with a reason). Jobs and files expire after a TTL.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from weather_metrics.core.errors import NotFound, OutOfScope, QueryError, Unavailable, UnknownTarget
from weather_metrics.core.times import iso
from weather_metrics.reports import builder
from weather_metrics.store.models import ReportJob, User

MIB = 1024 * 1024
UNSAFE = re.compile(r"[^A-Za-z0-9._]+")


class LowDiskSpace(Unavailable):
    """The disk holding export files has less free space than `export_min_free_mib`: ingestion comes first."""


class BuildFailed(Exception):
    """The process building an export gave up, with the reason it read from failure_reason (already logged)."""


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


def list_jobs(user: User, now: datetime, limit: int = 50) -> list[ReportJob]:
    """The unexpired jobs find_job would give `user` (theirs; an admin's organization's), newest first."""
    query = ReportJob.select().where(
        (ReportJob.organization == user.organization_id) & (ReportJob.expires_at > _epoch(now))
    )
    if user.role != "admin":
        query = query.where(ReportJob.user == user.id)
    return list(query.order_by(ReportJob.created_at.desc(), ReportJob.id).limit(limit))


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


def stored_file(export_dir: Path, job: ReportJob) -> Path | None:
    """A finished job's file, looked up by name in this host's export folder; None when it is gone.

    A shared folder (docs/scaling.md) may be mounted elsewhere than on the host that built it.
    """
    path = export_dir / Path(job.file_path or "").name
    return path if job.file_path and path.is_file() else None


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
    if isinstance(exc, (builder.ReportTooLarge, OutOfScope, UnknownTarget, LowDiskSpace, BuildFailed)):
        return str(exc)
    return "internal error"


def free_space_problem(folder: Path, min_free: int) -> str | None:
    """Why no export may start now: the disk holding `folder` has less than `min_free` bytes free (0: no floor)."""
    if not min_free:
        return None
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free >= min_free:
        return None
    return (
        f"Exports are paused: the disk holding the export folder has {free // MIB} MiB free,"
        f" less than export_min_free_mib ({min_free // MIB} MiB). Retry later"
    )
