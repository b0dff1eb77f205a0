"""Which windows a question covers: a trend and what it is compared with, and a team comparison's range."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from weather_metrics.core.errors import QueryError
from weather_metrics.core.times import HOUR
from weather_metrics.query.windows import Window, parse_window

COMPARISONS = ("previous", "previous_year", "none")


# A length of comparison window: days, weeks or calendar months (growth then compares per-day averages).
DURATION = re.compile(r"([0-9]{1,4})(d|w|mo)")


MAX_PERIODS = 1000


BAD_QUERY = "Invalid query parameters"


@dataclass(frozen=True)
class TrendWindows:
    """A trend's window, its comparison window (None: no comparison), how to name the latter, and the basis."""

    window: Window
    comparison: Window | None
    label: str
    per_day: bool = False  # a comparison of another length: growth compares per-day averages


def default_aggregation(window: Window) -> str:
    """Days for ranges up to 31 days, weeks up to 180, months beyond."""
    days = (window.end - window.start) / timedelta(days=1)
    return "day" if days <= 31 else "week" if days <= 180 else "month"


def trend_windows(
    start_date: str | None,
    end_date: str | None,
    aggregation: str | None,
    comparison_period: str | None,
    tz: ZoneInfo,
    now: datetime,
    max_days: int,
) -> TrendWindows:
    """The analysed window, the comparison window (None for "none") and how to name the latter."""
    window = parse_window(start_date, end_date, aggregation, tz, now, max_days)
    if not aggregation:
        window = replace(window, aggregation=default_aggregation(window))
    if len(window.periods()) > MAX_PERIODS:
        raise QueryError(BAD_QUERY, {"aggregation": f"More than {MAX_PERIODS} periods; use a coarser aggregation"})
    spec = (comparison_period or "previous").strip()
    if spec == "none":
        return TrendWindows(window, None, "")
    if spec == "previous":
        return TrendWindows(window, window.preceding(), "the previous period")
    if spec == "previous_year":
        return TrendWindows(window, year_earlier(window), "the same period a year earlier")
    duration = DURATION.fullmatch(spec)
    if duration:
        before = window_before(window, int(duration[1]), duration[2], max_days)
        return TrendWindows(window, before, f"the {_spoken(duration)} before", per_day=True)
    start, _, end = spec.partition("/")
    if not start.strip() or not end.strip():
        message = f"Must be one of {', '.join(COMPARISONS)}, a length such as 7d, 2w or 3mo, or an interval START/END"
        raise QueryError(BAD_QUERY, {"comparison_period": message})
    other = _interval(start, end, window.aggregation, tz, now, max_days, "comparison_period")
    return TrendWindows(window, other, f"{start.strip()} to {end.strip()}")


def window_before(window: Window, count: int, unit: str, max_days: int) -> Window:
    """The window of `count` days, weeks or calendar months (local) that ends where `window` starts."""
    end = window.start.astimezone(window.zone)
    if unit == "mo":
        months = end.year * 12 + end.month - 1 - count
        start = end.replace(year=months // 12, month=months % 12 + 1, day=min(end.day, 28))
    else:
        start = end - timedelta(days=count * (7 if unit == "w" else 1))
    if count < 1 or (end - start) > timedelta(days=max_days, hours=1):
        raise QueryError(BAD_QUERY, {"comparison_period": f"The length must be 1 day to {max_days} days"})
    first = datetime.fromtimestamp(int(start.timestamp()) // HOUR * HOUR, UTC)
    return Window(first, window.start, window.zone, window.aggregation)


def _spoken(duration: re.Match[str]) -> str:
    count, unit = int(duration[1]), {"d": "day", "w": "week", "mo": "month"}[duration[2]]
    return f"{count} {unit}{'s' if count != 1 else ''}"


def year_earlier(window: Window) -> Window:
    """The same local dates and times one year before (29 February becomes the 28th)."""

    def back(moment: datetime) -> datetime:
        local = moment.astimezone(window.zone)
        day = 28 if (local.month, local.day) == (2, 29) else local.day
        earlier = local.replace(year=local.year - 1, day=day)
        return datetime.fromtimestamp(int(earlier.timestamp()) // HOUR * HOUR, UTC)

    return Window(back(window.start), back(window.end), window.zone, window.aggregation)


def _interval(start: str, end: str, aggregation: str, tz: ZoneInfo, now: datetime, max_days: int, name: str) -> Window:
    try:
        return parse_window(start, end, aggregation, tz, now, max_days)
    except QueryError as exc:
        raise QueryError(str(exc), {name: "; ".join(exc.details.values())}) from None


def comparison_range(
    date_range: str | None, start_date: str | None, end_date: str | None, tz: ZoneInfo, now: datetime, max_days: int
) -> Window:
    """The window of date_range ("7d", "30d", "90d", any "<N>d", or START/END) or of start_date/end_date."""
    if date_range and (start_date or end_date):
        raise QueryError(BAD_QUERY, {"date_range": "Give date_range or start_date/end_date, not both"})
    if not date_range:
        return parse_window(start_date, end_date, "day", tz, now, max_days)
    spec = date_range.strip()
    if "/" in spec:
        start, _, end = spec.partition("/")
        if start.strip() and end.strip():
            return _interval(start, end, "day", tz, now, max_days, "date_range")
    elif spec.endswith("d") and spec[:-1].isdigit() and 1 <= int(spec[:-1]) <= max_days:
        return parse_window(None, None, "day", tz, now, max_days, default_days=int(spec[:-1]))
    message = f'Must be "7d", "30d", "90d" (any number of days up to {max_days}), or START/END'
    raise QueryError(BAD_QUERY, {"date_range": message})
