"""Productivity trends with growth and insights, and team comparisons.

Figures come from query/org_metrics.py, so a scope means what it means on /api/metrics:
the whole organization when `scope.user_ids` is None; otherwise productivity rows of those
users or tagged with one of `scope.team_ids`, and agent executions matched to those users.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from weather_metrics.core.errors import OutOfScope, QueryError, UnknownTarget
from weather_metrics.core.times import HOUR, iso
from weather_metrics.core.vocabulary import METRIC_TYPE
from weather_metrics.query import org_metrics
from weather_metrics.query.periods import BAD_QUERY
from weather_metrics.query.scope import Scope, narrow
from weather_metrics.query.windows import Window
from weather_metrics.store.models import Team, TeamMember

AGENT_EXECUTIONS = "agent_executions"


AGENT_METRICS = (AGENT_EXECUTIONS, "agent_success_rate", "agent_avg_duration_ms")


LOWER_IS_BETTER = frozenset({"agent_avg_duration_ms"})


MAX_TEAMS = 20


MAX_METRIC_TYPES = 50


MAX_ID_LENGTH = 64


ANOMALY_MIN_PERIODS = 6


ANOMALY_Z = 3.5  # Iglewicz and Hoaglin's cut-off for the modified z-score


ANOMALY_MIN_SHARE = 0.5


MAD_TO_SIGMA = 1.4826


def period_totals(scope: Scope, window: Window) -> dict[str, list[float]]:
    """Each metric type with data in the window (agent executions too), with its total per period."""
    count = len(window.periods())
    productivity = org_metrics.productivity_metrics(scope, window, limit=count)
    out = {
        kind: [entry["metrics"].get(kind, {}).get("sum", 0.0) for entry in productivity["series"]]
        for kind in (total["metric_type"] for total in productivity["totals"])
    }
    agents = org_metrics.agent_metrics(scope, window, limit=count, percentiles=False)
    if agents["totals"]["calls"]:
        out[AGENT_EXECUTIONS] = [entry["calls"] for entry in agents["series"]]
    return out


def window_figures(scope: Scope, window: Window) -> dict[str, float | None]:
    """Every productivity type with data, and the three agent metrics (rates None without executions)."""
    productivity = org_metrics.productivity_metrics(scope, window, limit=1)
    figures: dict[str, float | None] = {total["metric_type"]: total["sum"] for total in productivity["totals"]}
    agents = org_metrics.agent_metrics(scope, window, limit=1, percentiles=False)["totals"]
    figures[AGENT_EXECUTIONS] = agents["calls"]
    figures["agent_success_rate"] = agents["success_rate"]
    figures["agent_avg_duration_ms"] = agents["avg_duration_ms"]
    return figures


def window_totals(scope: Scope, window: Window) -> dict[str, float]:
    """The total of each productivity type with data in the window, and of agent_executions when any."""
    figures = window_figures(scope, window)
    out = {kind: value for kind, value in figures.items() if kind not in AGENT_METRICS and value is not None}
    return {**out, AGENT_EXECUTIONS: figures[AGENT_EXECUTIONS] or 0} if figures[AGENT_EXECUTIONS] else out


def _round(value: float) -> float:
    return round(value, 6)


def _span(window: Window) -> dict[str, str]:
    return {"start": iso(window.start), "end": iso(window.end)}


def _comparison_view(comparison: Window | None, per_day: bool) -> dict[str, str] | None:
    """The comparison window; `basis: per_day` when growth compares per-day averages."""
    if comparison is None:
        return None
    return {**_span(comparison), "basis": "per_day"} if per_day else _span(comparison)


def _days(window: Window) -> float:
    return (window.end - window.start) / timedelta(days=1)


def complete_periods(window: Window, periods: list[datetime]) -> list[bool]:
    """Whether each period lies wholly inside the window (the first and last may be cut)."""
    flags = [True] * len(periods)
    if window.period_of(window.first_hour - HOUR).timestamp() == periods[0].timestamp():
        flags[0] = False
    if window.period_of(window.last_hour + HOUR).timestamp() == periods[-1].timestamp():
        flags[-1] = False
    return flags


def metric_trend(
    metric_type: str, totals: list[float], before: float | None, days: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Total, comparison total, change and growth of one metric.

    growth_rate is the change over |previous total|, None without a comparison or from a total of 0.
    With `days` (of the window and of the comparison), growth compares per-day averages.
    """
    total = _round(sum(totals))
    change = None if before is None else _round(total - before)
    growth = round(change / abs(before), 4) if change is not None and before else None
    if days is not None and before:
        now_rate, then_rate = total / days[0], before / days[1]
        growth = round((now_rate - then_rate) / abs(then_rate), 4)
    return {
        "metric_type": metric_type,
        "total": total,
        "previous_total": before,
        "growth_rate": growth,
        "change": change,
    }


def productivity_trends(
    scope: Scope, window: Window, comparison: Window | None, label: str, per_day: bool = False
) -> dict[str, Any]:
    """Totals, growth against the comparison window, per-period series and insights of every metric.

    `per_day`: growth compares per-day averages (windows of different lengths).
    """
    days = (_days(window), _days(comparison)) if per_day and comparison else None
    current = period_totals(scope, window)
    previous = window_totals(scope, comparison) if comparison else {}
    periods = window.periods()
    complete = complete_periods(window, periods)
    names = sorted(set(current) | set(previous), key=lambda name: (name == AGENT_EXECUTIONS, name))
    metrics: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    for name in names:
        totals = current.get(name, [0.0] * len(periods))
        metric = metric_trend(name, totals, previous.get(name, 0.0) if comparison else None, days)
        metric["series"] = [{"period": p.isoformat(), "total": t} for p, t in zip(periods, totals, strict=True)]
        metrics.append(metric)
        kept = [(p, t) for p, t, whole in zip(periods, totals, complete, strict=True) if whole]
        values = [t for _, t in kept]
        found += [anomaly(name, *kept[i], values, window.aggregation) for i in find_anomalies(values)]
    insights = ([] if current else [no_data(window, bool(previous), label)]) + growth_insights(metrics, label) + found
    return {
        "period": org_metrics.window_view(window),
        "comparison": _comparison_view(comparison, per_day=days is not None),
        "metrics": metrics,
        "insights": insights,
    }


def number(value: float) -> str:
    """120.0 -> "120", 2.5 -> "2.5"."""
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


def percent(rate: float) -> str:
    """0.4167 -> "42%"; below 1%, one decimal ("0.4%")."""
    shown = abs(rate) * 100
    return f"{shown:.0f}%" if round(shown) >= 1 else f"{shown:.1f}%"


def no_data(window: Window, previous_had_data: bool, label: str) -> dict[str, Any]:
    """The insight of a window without any productivity metric or agent execution."""
    first = window.start.astimezone(window.zone).date()
    last = (window.end - timedelta(seconds=1)).astimezone(window.zone).date()
    message = f"No productivity metrics or agent executions were recorded from {first} to {last}"
    message += f", although {label} had some." if previous_had_data else "."
    return {"kind": "no_data", "metric_type": None, "message": message, "start": str(first), "end": str(last)}


def growth_insights(metrics: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    """The largest increase and decrease (by growth rate; ties go to the first metric type by name),
    then one "new" insight per metric that went from a total of 0 to more."""
    rated = [m for m in metrics if m["growth_rate"] is not None]
    out = []
    rising = [m for m in rated if m["growth_rate"] > 0]
    if rising:
        top = min(rising, key=lambda m: (-m["growth_rate"], m["metric_type"]))
        out.append(_growth("largest_increase", "rose", top, label))
    falling = [m for m in rated if m["growth_rate"] < 0]
    if falling:
        bottom = min(falling, key=lambda m: (m["growth_rate"], m["metric_type"]))
        out.append(_growth("largest_decrease", "fell", bottom, label))
    for m in metrics:
        if m["previous_total"] == 0 and m["total"] > 0:
            message = f"{m['metric_type']} is new: {number(m['total'])} against 0 in {label}."
            out.append({"kind": "new", **_numbers(m), "message": message})
    return out


def _numbers(metric: dict[str, Any]) -> dict[str, Any]:
    return {k: metric[k] for k in ("metric_type", "total", "previous_total", "growth_rate", "change")}


def _growth(kind: str, verb: str, metric: dict[str, Any], label: str) -> dict[str, Any]:
    before, after = number(metric["previous_total"]), number(metric["total"])
    message = f"{metric['metric_type']} {verb} {percent(metric['growth_rate'])} ({before} → {after}) against {label}."
    return {"kind": kind, **_numbers(metric), "message": message}


def find_anomalies(values: list[float]) -> list[int]:
    """Indexes of periods whose total deviates strongly from the others.

    With at least 6 periods, a total x is an anomaly when both hold:
    - its modified z-score |x - median| / (1.4826 * MAD) exceeds 3.5 (MAD: the median absolute
      deviation from the median; when MAD is 0, more than half the periods equal the median and
      every other value passes this test);
    - it differs from the median by more than half the median's size.
    A median of 0 (a metric idle in most periods) reports nothing: bursts of a sparse metric are
    its normal shape. Incomplete first and last periods are left out by the caller.
    """
    if len(values) < ANOMALY_MIN_PERIODS:
        return []
    middle = statistics.median(values)
    if middle == 0:
        return []
    scale = MAD_TO_SIGMA * statistics.median(abs(v - middle) for v in values)
    return [
        i
        for i, v in enumerate(values)
        if abs(v - middle) > ANOMALY_Z * scale and abs(v - middle) > ANOMALY_MIN_SHARE * abs(middle)
    ]


def _when(period: datetime, aggregation: str) -> str:
    if aggregation == "hour":
        return f"at {period:%Y-%m-%d %H:%M}"
    if aggregation == "week":
        return f"in the week of {period.date()}"
    return f"in {period:%Y-%m}" if aggregation == "month" else f"on {period.date()}"


def anomaly(metric_type: str, period: datetime, value: float, values: list[float], aggregation: str) -> dict[str, Any]:
    """The insight of one anomalous period."""
    middle = _round(statistics.median(values))
    direction, verb = ("spike", "spiked") if value > middle else ("drop", "dropped")
    typical = f"against a typical {number(middle)} per {aggregation}"
    message = f"{metric_type} {verb} {_when(period, aggregation)}: {number(value)} {typical}."
    return {
        "kind": "anomaly",
        "metric_type": metric_type,
        "period": period.isoformat(),
        "value": value,
        "median": middle,
        "direction": direction,
        "message": message,
    }


def metric_type_list(names: list[str]) -> list[str] | None:
    """The requested metric types (None: the default); QueryError for a malformed one."""
    if len(names) > MAX_METRIC_TYPES:
        raise QueryError(BAD_QUERY, {"metric_types": f"At most {MAX_METRIC_TYPES} metric types"})
    for name in names:
        if name not in AGENT_METRICS and not METRIC_TYPE.fullmatch(name):
            message = f"{name[:80]!r} is not a metric type: use [a-z][a-z0-9_.-]{{0,63}} or {', '.join(AGENT_METRICS)}"
            raise QueryError(BAD_QUERY, {"metric_types": message})
    return names or None


def teams_to_compare(scope: Scope, ids: list[str]) -> list[Team]:
    """The requested teams, in order (default: every team the caller sees, by name, at most 20).

    QueryError for too many or malformed ids, UnknownTarget for an id outside the organization,
    OutOfScope for a team of the organization the caller may not see.
    """
    org = Team.organization == scope.organization_id
    if not ids:
        visible = org if scope.team_ids is None else org & Team.id.in_(sorted(scope.team_ids))
        return list(Team.select().where(visible).order_by(Team.name, Team.id).limit(MAX_TEAMS))
    if len(ids) > MAX_TEAMS:
        raise QueryError(BAD_QUERY, {"team_ids": f"At most {MAX_TEAMS} teams"})
    if any(len(i) > MAX_ID_LENGTH for i in ids):
        raise QueryError(BAD_QUERY, {"team_ids": f"Team ids have at most {MAX_ID_LENGTH} characters"})
    found = {team.id: team for team in Team.select().where(org & Team.id.in_(ids))}
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise UnknownTarget(f"No such team in this organization: {', '.join(unknown)}")
    hidden = [i for i in ids if scope.team_ids is not None and i not in scope.team_ids]
    if hidden:
        raise OutOfScope(f"These teams are outside your scope: {', '.join(hidden)}")
    return [found[i] for i in ids]


def rank(values: dict[str, float | None], lower_is_better: bool = False) -> dict[str, int | None]:
    """Competition ranks (1, 1, 3): 1 is the highest value, or the lowest when lower is better; None unranked."""
    ordered = sorted((v for v in values.values() if v is not None), reverse=not lower_is_better)
    return {key: None if v is None else 1 + ordered.index(v) for key, v in values.items()}


def team_comparison(scope: Scope, teams: list[Team], metric_types: list[str] | None, window: Window) -> dict[str, Any]:
    """Each team's figures, ranks and per-metric rankings over the window.

    A team's figures come from productivity rows tagged with it or sent by its current members,
    and from its members' agent executions.
    """
    figures = {team.id: window_figures(narrow(scope, team_id=team.id), window) for team in teams}
    if metric_types is None:
        found = {t for f in figures.values() for t in f if t not in AGENT_METRICS}
        metric_types = [*sorted(found), AGENT_EXECUTIONS]
    values = {t: {team.id: figures[team.id].get(t, 0) for team in teams} for t in metric_types}
    ranks = {t: rank(values[t], t in LOWER_IS_BETTER) for t in metric_types}
    names = {team.id: team.name for team in teams}
    rankings = {
        t: sorted(
            ({"team_id": i, "name": names[i], "value": values[t][i], "rank": ranks[t][i]} for i in names),
            key=lambda row: (row["rank"] is None, row["rank"] or 0, row["name"], row["team_id"]),
        )
        for t in metric_types
    }
    rows = [
        {
            "team_id": team.id,
            "name": team.name,
            "member_count": TeamMember.select().where(TeamMember.team == team.id).count(),
            "metrics": {t: values[t][team.id] for t in metric_types},
            "ranks": {t: ranks[t][team.id] for t in metric_types},
        }
        for team in teams
    ]
    span = {**_span(window), "time_zone": str(window.zone)}
    return {"date_range": span, "metric_types": metric_types, "teams": rows, "rankings": rankings}
