"""/exports: request a report export, follow its progress, download its file, as /api/reports does for the same person.

Everyone signed in may export their own scope, as on the API; a job belongs to whoever asked and to their
organization's admins (weather_metrics.reports.jobs decides, for both). The form goes through the API's schema
and filter checks; the list polls /exports/jobs (static/exports.js) every two seconds while a job is queued or
running, because the runner tells no one when a job moves on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Conflict, NotFound, ServiceUnavailable

from weather_metrics.accounts.logins import BrowserLogin
from weather_metrics.core import errors
from weather_metrics.core.times import HOUR
from weather_metrics.query.scope import scope_for
from weather_metrics.reports import builder
from weather_metrics.reports import jobs as reports
from weather_metrics.store.models import Team, User
from weather_metrics.web import limits
from weather_metrics.web.api.reports import file_download
from weather_metrics.web.auth import client_ip
from weather_metrics.web.pages import export_form
from weather_metrics.web.pages.alerts import HTML, SEEN, SENT, _doc
from weather_metrics.web.pages.blueprint import bp
from weather_metrics.web.pages.dashboards import per_person
from weather_metrics.web.pages.export_form import ExportForm
from weather_metrics.web.pages.sessions import current_viewer, signed_in, viewer
from weather_metrics.web.services import services

GONE = "No export of yours has this address: it expired, or is not one you may download."
REQUESTED = "The export is queued: its progress shows below, and its Download link once it is done."
STATUS_NAMES = {"queued": "Queued", "running": "Running", "done": "Done", "failed": "Failed"}


def _export_key() -> str:
    """The API's key for the same person (web/auth.py caller_key): one allowance of exports for both."""
    login = viewer()
    return "user:" + login.user.id if login is not None else "ip:" + client_ip()


export_limit = limits.export_limit(_export_key)


def _choices(login: BrowserLogin) -> dict[str, dict[str, str]]:
    """The users and teams this person may narrow an export to, by id: their scope, as the API's filters allow."""
    scope = scope_for(login.user)
    users = User.select().where(User.organization == login.organization.id).order_by(User.email)
    teams = Team.select().where(Team.organization == login.organization.id).order_by(Team.name)
    if scope.user_ids is not None:
        users = users.where(User.id.in_(sorted(scope.user_ids)))
    if scope.team_ids is not None:
        teams = teams.where(Team.id.in_(sorted(scope.team_ids)))
    return {"users": {user.id: user.email for user in users}, "teams": {team.id: team.name for team in teams}}


def job_views(login: BrowserLogin) -> list[dict[str, Any]]:
    """The jobs this person may follow and download, as GET /api/reports/<id> shows each, newest first."""
    return [reports.job_view(job) for job in reports.list_jobs(login.user, datetime.now(UTC))]


def _page(form: ExportForm, status: int = 200, done: str | None = None) -> ResponseReturnValue:
    login = current_viewer()
    page = render_template(
        "pages/exports.html",
        form=form,
        jobs=job_views(login),
        report_type_names=export_form.REPORT_TYPE_NAMES,
        format_names=export_form.FORMAT_NAMES,
        status_names=STATUS_NAMES,
        done=done,
        **_choices(login),
    )
    return page, status


@bp.get("/exports")
@signed_in()
@per_person
def export_list() -> ResponseReturnValue:
    """The export form, and the jobs this person may download with their progress."""
    return _page(export_form.blank_form(), done=REQUESTED if request.args.get("done") == "requested" else None)


@bp.post("/exports")
@signed_in()
@export_limit
@per_person
def request_export() -> ResponseReturnValue:
    """Queue an export as POST /api/reports/export does; the form again, with its problems, when refused."""
    login, now, state = current_viewer(), datetime.now(UTC), services()
    form = export_form.sent_form(request.form)
    try:
        body = export_form.checked_request(form, login.user, now, state.settings["metrics_max_range_days"])
    except errors.OutOfScope as exc:
        return _page(export_form.refused(form, exc), 403)
    except errors.UnknownTarget as exc:
        return _page(export_form.refused(form, exc), 404)
    if body is None:
        return _page(form, 400)
    try:
        state.reports.check_free_space()
    except reports.LowDiskSpace as exc:
        raise ServiceUnavailable(str(exc), retry_after=60) from None
    ttl = state.settings["export_ttl_hours"] * HOUR
    reports.create_job(login.user, body["report_type"], body["format"], body["filters"], now, ttl)
    return redirect(url_for("pages.export_list", done="requested"), 303)


@bp.get("/exports/jobs")
@signed_in()
@per_person
def export_jobs() -> ResponseReturnValue:
    """The same jobs as /exports lists, as JSON: what its script polls while one is queued or running."""
    jobs = job_views(current_viewer())
    for job in jobs:
        if job["status"] == "done":
            job["page_download_url"] = url_for("pages.download_export", job_id=job["id"])
    return jsonify({"jobs": jobs})


@bp.get("/exports/<job_id>/download")
@signed_in()
@per_person
def download_export(job_id: str) -> ResponseReturnValue:
    """The file GET /api/reports/<id>/download serves, under the same rules: 404 when not yours, 409 until done."""
    try:
        job = reports.find_job(current_viewer().user, job_id)
    except errors.NotFound:
        raise NotFound(GONE) from None
    if job.status != "done":
        raise Conflict(f"This export is {job.status}{': ' + job.error if job.error else ''}: nothing to download yet.")
    path = reports.stored_file(services().reports.export_dir, job)
    if path is None:
        raise NotFound(GONE)
    return file_download(job, path)


# OpenAPI, merged into /openapi.json by web/docs.py: pages answer HTML, their errors too.
SEEN_ALL = {code: why for code, why in SEEN.items() if code != "403"}  # every role may export
JOBS = {
    "type": "object",
    "required": ["jobs"],
    "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/ReportJob"}}},
}
DOWNLOAD = {"404": "No export of yours", "409": "Queued, running or failed", **SEEN_ALL}


def _download_doc() -> dict[str, Any]:
    operation = _doc("The file GET /api/reports/<id>/download serves, under the same rules", DOWNLOAD)
    binary = {"schema": {"type": "string", "format": "binary"}}
    files = {content_type: binary for content_type, _ext in builder.FORMATS.values()}
    operation["responses"] = {
        "200": {"description": "The file, in the job's format", "content": files},
        **operation["responses"],
    }
    return operation


JOB_ID = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]
PATHS: dict[str, dict[str, Any]] = {
    "/exports": {
        "get": _doc("The export form and the exports GET /api/reports/<id> shows you", {"200": "The page", **SEEN_ALL}),
        "post": _doc(
            "Queue an export as POST /api/reports/export does",
            {
                "303": "Queued: on to /exports",
                "400": "A field refused, as the API refuses it: the form again, the problem beside the field",
                **SENT,
                "403": "A user or team outside your scope, or a form without this browser's token (a page)",
                "404": "A user or team not in your organization (a page)",
                "429": "More than export_rate_limit exports",
                "503": "Exports are paused while the disk is low (a page)",
            },
            form=True,
        ),
    },
    "/exports/jobs": {
        "get": {
            **_doc("The same exports as JSON, polled by the page while one is running", SEEN_ALL),
            "responses": {
                "200": {
                    "description": "The jobs, each as GET /api/reports/<id> shows it, with page_download_url once done",
                    "content": {"application/json": {"schema": JOBS}},
                },
                **{code: {"description": why, "content": HTML} for code, why in SEEN_ALL.items()},
            },
        }
    },
    "/exports/{job_id}/download": {
        "get": _download_doc(),
        "parameters": JOB_ID,
    },
}
