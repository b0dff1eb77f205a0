"""The statistics pages, / and /tools/<name>: the /v1/stats figures of a period, drawn as HTML."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import render_template, request, url_for
from werkzeug.exceptions import BadRequest, NotFound

from weather_metrics.query import stats
from weather_metrics.web.pages.blueprint import bp, reads
from weather_metrics.web.services import services

CHART_JS = "vendor/chart.js-4.6.1"  # under static/; where it came from: its README.md
PERIOD_NAMES = {"7d": "7 days", "30d": "30 days", "90d": "90 days"}


def when_public(view: Callable[..., str]) -> Callable[..., str]:
    """With public_pages = false the statistics are no pages (signing in still is): 404 before any query."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> str:
        if not services().settings["public_pages"]:
            raise NotFound("This service does not show its statistics as pages.")
        return view(*args, **kwargs)

    return checked


def _period() -> str:
    period = request.args.get("period", stats.DEFAULT_PERIOD)
    if period not in stats.PERIODS:
        shown = period if len(period) <= 32 else period[:32] + "…"
        raise BadRequest(f"The period must be one of {', '.join(stats.PERIODS)}, not '{shown}'.")
    return period


def _now() -> datetime:
    return datetime.now(UTC)


def calls_per_day(period: str, now: datetime, daily_data: list[dict[str, Any]]) -> dict[str, Any]:
    """The chart's data: every UTC date of the period, and its calls (0 for a date the API does not list)."""
    start, end = stats.period_window(period, now)
    calls = {entry["date"]: entry["calls"] for entry in daily_data}
    dates = [(start + timedelta(days=n)).strftime("%Y-%m-%d") for n in range((end - start).days + 1)]
    return {"label": "Calls", "labels": dates, "values": [calls.get(date, 0) for date in dates]}


def _frame(period: str, now: datetime, endpoint: str, **values: Any) -> dict[str, Any]:
    """What every statistics page shows around its figures: the period, its dates, links to the others."""
    start, end = stats.period_window(period, now)
    return {
        "chart_js": CHART_JS,
        "period": period,
        "period_name": PERIOD_NAMES[period],
        "start": start.strftime("%Y-%m-%d"),
        "end": end.strftime("%Y-%m-%d"),
        "periods": [(p, PERIOD_NAMES[p], url_for(endpoint, period=p, **values)) for p in stats.PERIODS],
    }


@bp.get("/")
@when_public
@reads(4)  # overview, performance, daily, versions_and_countries
def overview() -> str:
    """Totals, calls per day, tools, errors, response times, cache, services, versions and countries."""
    period, now = _period(), _now()
    figures = stats.page(period, now)  # the four answers, from one read of the per-tool sums
    daily = figures["daily"]["daily_data"]
    return render_template(
        "pages/overview.html",
        **_frame(period, now, "pages.overview"),
        overview=figures["overview"],
        performance=figures["performance"],
        daily=daily,
        chart=calls_per_day(period, now, daily),
        usage=figures["usage"],
        api=url_for("v1.overview", period=period),
    )


@bp.get("/tools/<tool_name>")
@when_public
@reads(1)  # tool_detail
def tool(tool_name: str) -> str:
    """One tool: calls, success rate, response-time percentiles, calls per day, versions and countries."""
    period, now = _period(), _now()
    try:
        detail = stats.tool_detail(tool_name, period, now)
    except stats.UnknownTool:
        raise NotFound(f"No calls of the tool '{tool_name}' in the last {PERIOD_NAMES[period]}.") from None
    return render_template(
        "pages/tool.html",
        **_frame(period, now, "pages.tool", tool_name=tool_name),
        detail=detail,
        chart=calls_per_day(period, now, detail["daily_data"]),
        api=url_for("v1.tool", tool_name=tool_name, period=period),
    )
