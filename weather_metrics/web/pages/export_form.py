"""The export form of the pages: its fields read into the body POST /api/reports/export takes, checked by the API's
own schema and filter rules, and each problem put beside the field it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from weather_metrics.core import errors
from weather_metrics.reports import filters as report_filters
from weather_metrics.store.models import User
from weather_metrics.web.api.reports import ExportRequestSchema

REPORT_TYPE_NAMES = {"productivity": "Productivity", "agents": "Agent executions", "teams": "Team comparison"}
FORMAT_NAMES = {"csv": "CSV", "xlsx": "Excel (XLSX)", "pdf": "PDF"}
DATE_FIELDS = ("start_date", "end_date", "aggregation")
TEXT_FIELDS = ("report_type", "format", *DATE_FIELDS, "user_id", "team_id", "agent_name", "metric_type", "metric_types")
CHECKS = ("success_only", "include_rows")
FORM_FIELDS = (*TEXT_FIELDS, *CHECKS, "team_ids")
MAX_FIELD = 1000  # longer than any field the API accepts: kept to this on the page sent back


@dataclass
class ExportForm:
    """What the form shows: the values as typed, and a problem per field (empty when it was not sent yet)."""

    values: dict[str, Any]
    problems: dict[str, str] = field(default_factory=dict)


def blank_form() -> ExportForm:
    """A CSV of the productivity metrics of the last 30 days, by day, with its rows."""
    values: dict[str, Any] = dict.fromkeys(TEXT_FIELDS, "")
    values.update(report_type="productivity", format="csv", aggregation="day", include_rows=True)
    values.update(success_only=False, team_ids=[])
    return ExportForm(values)


def sent_form(form: MultiDict[str, str]) -> ExportForm:
    """The values of a sent form, as typed (cut to MAX_FIELD characters)."""
    values: dict[str, Any] = {name: form.get(name, "")[:MAX_FIELD] for name in TEXT_FIELDS}
    values.update({name: form.get(name) == "on" for name in CHECKS})
    values["team_ids"] = [team[:MAX_FIELD] for team in form.getlist("team_ids")[:100]]
    return ExportForm(values)


def _filters(values: dict[str, Any]) -> dict[str, Any]:
    """The filters of the chosen report type that the form gives (blank ones are left out, as the API drops them)."""
    allowed = report_filters.FILTERS.get(values["report_type"], {})
    sent: dict[str, Any] = {name: values[name].strip() for name in TEXT_FIELDS if values[name].strip()}
    sent.pop("report_type", None)
    sent.pop("format", None)
    if "metric_types" in sent:
        sent["metric_types"] = [item.strip() for item in sent["metric_types"].split(",") if item.strip()]
    if values["team_ids"]:
        sent["team_ids"] = values["team_ids"]
    sent.update({name: values[name] for name in CHECKS})
    return {name: value for name, value in sent.items() if name in allowed}


def _shown(messages: dict[str, Any]) -> dict[str, str]:
    """The API's messages by path (filters.start_date) as one sentence beside each field; others above the form."""
    problems: dict[str, str] = {}
    for path, message in messages.items():
        text = message[0] if isinstance(message, list) and message else message
        name = path.removeprefix("filters.")
        sentence = str(text).rstrip(".") + "." if isinstance(text, str) else "Not valid."
        problems.setdefault(name if name in FORM_FIELDS else "_form", sentence)
    return problems


def checked_request(form: ExportForm, user: User, now: datetime, max_days: int) -> dict[str, Any] | None:
    """The body POST /api/reports/export would accept, its filters checked as the API checks them; None with
    form.problems filled when refused. OutOfScope and UnknownTarget are left to the caller (403 and 404 there)."""
    body = {"report_type": form.values["report_type"], "format": form.values["format"]}
    try:
        loaded: dict[str, Any] = ExportRequestSchema().load({**body, "filters": _filters(form.values)})
        loaded["filters"] = report_filters.check_filters(
            loaded["report_type"], loaded["filters"], user, now, max_days, fmt=loaded["format"]
        )
    except ValidationError as exc:
        form.problems = _shown(exc.messages if isinstance(exc.messages, dict) else {"_form": exc.messages})
        return None
    except errors.QueryError as exc:
        form.problems = _shown(exc.details) if exc.details else {"_form": str(exc).rstrip(".") + "."}
        return None
    return loaded


def refused(form: ExportForm, exc: Exception) -> ExportForm:
    """A user or team the person may not name (or that is not in the organization), above the form."""
    form.problems = {"_form": str(exc).rstrip(".") + "."}
    return form
