"""/api/reports: request a report export, follow its job, download its file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Response, jsonify
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate

from weather_metrics.core.times import HOUR
from weather_metrics.reports import builder
from weather_metrics.reports import filters as report_filters
from weather_metrics.reports import jobs as reports
from weather_metrics.web import limits
from weather_metrics.web.api.blueprint import bp
from weather_metrics.web.api.schemas import StrictSchema
from weather_metrics.web.auth import authenticated, caller_key, current_user
from weather_metrics.web.bodies import json_body
from weather_metrics.web.errors import ApiProblem
from weather_metrics.web.openapi import RATE_LIMITED, TOO_LARGE, UNAUTHORIZED, operation, path_id
from weather_metrics.web.services import services

CHUNK_BYTES = 256 * 1024


class ExportRequestSchema(StrictSchema):
    format = fields.String(required=True, validate=validate.OneOf(tuple(builder.FORMATS)))
    report_type = fields.String(required=True, validate=validate.OneOf(report_filters.REPORT_TYPES))
    filters = fields.Dict(
        keys=fields.String(),
        load_default=dict,
        metadata={
            "description": "The filters the metrics endpoints accept (user_id, team_id, start_date, ...), and"
            " include_rows (default true): false leaves the data rows out of a pdf or xlsx report"
        },
    )


# Exports have their own per-user limit (setting export_rate_limit), shared with the exports page.
export_limit = limits.export_limit(caller_key)


@bp.post("/reports/export")
@export_limit
@authenticated()
def request_export() -> ResponseReturnValue:
    """Queue a report export of the caller's scope; 202 with the job and its status URL."""
    state = services()
    body = json_body(ExportRequestSchema())
    me, now = current_user(), datetime.now(UTC)
    filters = report_filters.check_filters(
        body["report_type"], body["filters"], me, now, state.settings["metrics_max_range_days"], fmt=body["format"]
    )
    state.reports.check_free_space()
    job = reports.create_job(
        me, body["report_type"], body["format"], filters, now, state.settings["export_ttl_hours"] * HOUR
    )
    view = reports.job_view(job)
    return jsonify(view), 202, {"Location": view["status_url"]}


@bp.get("/reports/<job_id>")
@authenticated()
def export_status(job_id: str) -> ResponseReturnValue:
    """One export job: status, progress, and the download URL once done."""
    return jsonify(reports.job_view(reports.find_job(current_user(), job_id)))


@bp.get("/reports/<job_id>/download")
@authenticated()
def download_export(job_id: str) -> ResponseReturnValue:
    """The file of a finished export; 409 while it is queued or running, or when it failed."""
    job = reports.find_job(current_user(), job_id)
    if job.status != "done":
        reason = f": {job.error}" if job.error else ""
        raise ApiProblem(409, f"Export job is {job.status}{reason}", {"status": job.status})
    path = reports.stored_file(services().reports.export_dir, job)
    if path is None:  # deleted by hand, or by expiry a moment ago
        raise ApiProblem(404, f"Export job {job_id} not found")
    return file_download(job, path)


def file_download(job: Any, path: Path) -> Response:
    """A finished export's file as a download (this API's and the exports page's)."""
    headers = {
        "Content-Length": str(path.stat().st_size),
        "Content-Disposition": f'attachment; filename="{job.file_name}"',  # safe characters only
        "Cache-Control": "no-store",
    }
    return Response(_chunks(path), content_type=job.content_type, headers=headers)


def _chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes; opened on the first read and closed when the response ends, read or not."""
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk


# OpenAPI, merged into /openapi.json by web/docs.py.
class ReportJobSchema(Schema):
    """An export job, as reports/jobs.py job_view shows it."""

    id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("queued", "running", "done", "failed")))
    progress = fields.Integer(required=True, validate=validate.Range(0, 100), metadata={"description": "Percent"})
    report_type = fields.String(required=True, validate=validate.OneOf(report_filters.REPORT_TYPES))
    format = fields.String(required=True, validate=validate.OneOf(tuple(builder.FORMATS)))
    filters = fields.Dict(required=True, metadata={"description": "The filters as checked, with their defaults"})
    rows = fields.Integer(required=True, metadata={"description": "Rows written so far"})
    error = fields.String(required=True, allow_none=True, metadata={"description": "Why it failed"})
    created_at = fields.DateTime(required=True)
    started_at = fields.DateTime(required=True, allow_none=True)
    finished_at = fields.DateTime(required=True, allow_none=True)
    expires_at = fields.DateTime(required=True, metadata={"description": "The job and its file are gone after this"})
    status_url = fields.String(required=True, metadata={"example": "/api/reports/<id>"})
    download_url = fields.String(metadata={"description": "Once done", "example": "/api/reports/<id>/download"})


TAG = "Reports"
_ERRORS = {
    "404": "No such job, expired, or not yours (admins see their organization's jobs)",
    **UNAUTHORIZED,
    **RATE_LIMITED,
}
_JOB_ID = path_id("job_id", "export job")
PATHS: dict[str, dict[str, Any]] = {
    "/api/reports/export": {
        "post": operation(
            "Queue a report export of your scope (limit: export_rate_limit per user, default 10 per hour)",
            TAG,
            "202 Queued: the job; Location is its status URL",
            "ReportJob",
            {
                **_ERRORS,
                "400": "Validation failed, or bad filters: details names them",
                "403": "A filter names a user or team outside your scope",
                "404": "A filter names a user or team not in your organization",
                "503": "Exports are paused while the disk is low; retry after Retry-After",
                **TOO_LARGE,
            },
            body="ReportExportRequest",
        ),
    },
    "/api/reports/{job_id}": {
        "get": operation(
            "An export job: queued, running, done or failed, with progress",
            TAG,
            "200 The job",
            "ReportJob",
            _ERRORS,
        ),
        "parameters": [_JOB_ID],
    },
    "/api/reports/{job_id}/download": {
        "get": operation(
            "The export file, as an attachment named <organization>-<report type>-<date>.<ext>",
            TAG,
            "200 The file",
            None,
            {**_ERRORS, "409": "The job is queued, running or failed"},
            responses={
                "200": {
                    "description": "The file, in the job's format",
                    "content": {
                        content_type: {"schema": {"type": "string", "format": "binary"}}
                        for content_type, _ext in builder.FORMATS.values()
                    },
                }
            },
        ),
        "parameters": [_JOB_ID],
    },
}


COMPONENTS: dict[str, Any] = {"ReportExportRequest": ExportRequestSchema, "ReportJob": ReportJobSchema}
