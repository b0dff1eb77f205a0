"""The alert rule form of the pages: its fields read into the body POST /api/alerts/rules takes, checked by the
API's own schema and rules, and each problem put beside the field it names; how rules and alerts read on a page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from weather_metrics.alerts.rules import COMPARISONS, METRICS, SCOPE_TYPES, SEVERITIES
from weather_metrics.web.api.alert_schemas import RuleCreateSchema

METRIC_NAMES = {
    "error_rate": "Error rate",
    "p95_latency_ms": "95th percentile duration",
    "call_volume": "Calls",
    "productivity": "Productivity",
}
SCOPE_NAMES = {"organization": "The organization", "team": "A team", "agent": "An agent", "tool": "A tool"}
SYMBOLS = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤"}
COMPARISON_NAMES = {"gt": "above", "gte": "at or above", "lt": "below", "lte": "at or below"}
TEXT_FIELDS = ("name", "metric", "comparison", "severity")
NUMBER_FIELDS = ("threshold", "window_minutes", "cooldown_minutes")
FORM_FIELDS = (*TEXT_FIELDS, *NUMBER_FIELDS, "metric_type", "scope_type", "scope_team", "scope_name", "enabled")
MAX_FIELD = 1000  # longer than any field the schema accepts: kept to this on the page sent back

# Where each of the API's error paths shows on the form (the form's field names, without "scope.").
FIELD_OF = {"scope.type": "scope_type", "scope.id": "scope_team", "scope.name": "scope_name", "scope": "scope_type"}
CHOICES = {
    "metric": METRICS,
    "scope_type": SCOPE_TYPES,
    "comparison": tuple(COMPARISONS),
    "severity": SEVERITIES,
}


@dataclass
class RuleForm:
    """What the form shows: the values as typed, and a problem per field (empty when it was not sent yet)."""

    values: dict[str, Any]
    problems: dict[str, str] = field(default_factory=dict)


def blank_form() -> RuleForm:
    """A new rule's form: errors above 20 % of the organization's calls over 15 minutes, quiet for an hour after."""
    values: dict[str, Any] = {
        "name": "",
        "metric": "error_rate",
        "metric_type": "",
        "scope_type": "organization",
        "scope_team": "",
    }
    values.update(scope_name="", comparison="gt", threshold="20", window_minutes="15", severity="high")
    values.update(cooldown_minutes="60", enabled=True)
    return RuleForm(values)


def form_of(rule: dict[str, Any]) -> RuleForm:
    """A rule as the API shows it (rule_view), as the form's values."""
    scope = rule["scope"]
    values = {name: rule[name] for name in TEXT_FIELDS}
    values.update({name: _number_text(rule[name]) for name in NUMBER_FIELDS})
    values.update(metric_type=rule["metric_type"] or "", scope_type=scope["type"], enabled=rule["enabled"])
    values.update(scope_team=scope.get("id", ""), scope_name=scope.get("name", ""))
    return RuleForm(values)


def _number_text(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) and abs(value) < 1e15 else str(value)


def sent_form(form: MultiDict[str, str]) -> RuleForm:
    """The values of a sent form, as typed (cut to MAX_FIELD characters)."""
    values: dict[str, Any] = {name: form.get(name, "")[:MAX_FIELD] for name in FORM_FIELDS}
    values["enabled"] = form.get("enabled") == "on"
    return RuleForm(values)


def _number(text: str) -> int | float | str:
    """A typed number as the JSON number it names; anything else stays text, which the schema refuses."""
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _body(values: dict[str, Any]) -> dict[str, Any]:
    """The body POST /api/alerts/rules would get from these values; an empty field is left out (Required)."""
    body: dict[str, Any] = {name: values[name] for name in TEXT_FIELDS if values[name] != ""}
    body.update({name: _number(values[name]) for name in NUMBER_FIELDS if values[name].strip() != ""})
    body["metric_type"] = values["metric_type"].strip() or None
    body["enabled"] = values["enabled"]
    kind = values["scope_type"]
    scope: dict[str, Any] = {"type": kind}
    if kind == "team":
        scope["id"] = values["scope_team"]
    elif kind in ("agent", "tool"):
        scope["name"] = values["scope_name"].strip()
    body["scope"] = {key: value for key, value in scope.items() if value != ""}
    return body


def _shown(messages: dict[str, Any]) -> dict[str, str]:
    """The API's messages by path (scope.id) as one sentence beside each form field; others above the form."""
    problems: dict[str, str] = {}
    for path, message in messages.items():
        text = message[0] if isinstance(message, list) and message else message
        name = FIELD_OF.get(path, path)
        sentence = str(text).rstrip(".") + "." if isinstance(text, str) else "Not valid."
        problems.setdefault(name if name in FORM_FIELDS else "_form", sentence)
    return problems


def checked_body(form: RuleForm) -> dict[str, Any] | None:
    """The validated body of a sent form, as the API's schema loads a new rule; None with form.problems filled when
    refused. An edit sends the whole rule too, so a field emptied there is refused, not left as it was."""
    try:
        return RuleCreateSchema().load(_body(form.values))  # type: ignore[no-any-return]
    except ValidationError as exc:
        form.problems = _shown(exc.messages if isinstance(exc.messages, dict) else {"_form": exc.messages})
        return None


def refused(form: RuleForm, details: dict[str, str], message: str) -> RuleForm:
    """The domain's reasons (InvalidRule's details, or one message for the scope) beside their fields."""
    form.problems = _shown(details) if details else {"_form": message.rstrip(".") + "."}
    return form


def threshold_text(metric: str, value: float | None) -> str:
    """A value or threshold of `metric` as the pages print it: 12.5 %, 840 ms, 1,200."""
    if value is None:
        return "–"
    if metric == "error_rate":
        return f"{value:,.1f} %"
    if metric == "p95_latency_ms":
        return f"{value:,.0f} ms"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
