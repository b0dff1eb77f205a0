"""Query windows of organization metrics: which hours and which periods (whose data: query/scope.py).

Rollups are kept per UTC hour, so a window starts and ends on an hour and a period (day,
week from Monday, month) is the set of hours whose start falls in it in the organization's
time zone. Zones whose offset is not a whole number of hours put their boundaries on the
nearest hour before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from weather_metrics.core.errors import QueryError
from weather_metrics.core.times import DAY, HOUR
from weather_metrics.core.vocabulary import AGGREGATIONS


@dataclass(frozen=True)
class Window:
    """UTC hours [start, end) grouped into periods of `aggregation` in `zone`."""

    start: datetime
    end: datetime
    zone: ZoneInfo
    aggregation: str

    @property
    def first_hour(self) -> int:
        return int(self.start.timestamp())

    @property
    def last_hour(self) -> int:
        """The start of the last hour inside the window."""
        return int(self.end.timestamp()) - HOUR

    def first_day(self) -> int:
        """The UTC day (start, Unix seconds) holding the window's first hour."""
        return self.first_hour // DAY * DAY

    def last_day(self) -> int:
        return self.last_hour // DAY * DAY

    def period_of(self, hour: int) -> datetime:
        """The start (in the organization's zone) of the period holding a UTC hour."""
        if self.aggregation == "hour":
            return datetime.fromtimestamp(hour, self.zone)
        # By the hour's last second: the hour a local midnight falls in starts the new period.
        day = datetime.fromtimestamp(hour + HOUR - 1, self.zone).date()
        if self.aggregation == "week":
            day -= timedelta(days=day.weekday())
        elif self.aggregation == "month":
            day = day.replace(day=1)
        return _local_midnight(day, self.zone)

    def periods(self) -> list[datetime]:
        """Every period start the window touches, in order."""
        if self.aggregation == "hour":  # each hour is a period of its own: the loop below, without its cost
            return [
                datetime.fromtimestamp(hour, self.zone) for hour in range(self.first_hour, self.last_hour + 1, HOUR)
            ]
        out: list[datetime] = []
        hour = self.first_hour
        while hour <= self.last_hour:
            period = self.period_of(hour)
            # By instant: in one zone, == ignores `fold`, so a repeated local hour would merge.
            if not out or out[-1].timestamp() != period.timestamp():
                out.append(period)
            following = int(_next_period(period, self.aggregation, self.zone).timestamp())
            hour = max(hour + HOUR, following // HOUR * HOUR)
        return out

    def preceding(self) -> Window:
        """The window of equal length that ends where this one starts."""
        return Window(self.start - (self.end - self.start), self.start, self.zone, self.aggregation)


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tz)


def _next_period(start: datetime, aggregation: str, tz: ZoneInfo) -> datetime:
    if aggregation == "hour":
        # An hour of elapsed time: wall-clock arithmetic would skip the repeated hour of a DST change.
        return datetime.fromtimestamp(start.timestamp() + HOUR, tz)
    day = start.date()
    if aggregation == "day":
        day += timedelta(days=1)
    elif aggregation == "week":
        day += timedelta(days=7)
    else:
        day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return _local_midnight(day, tz)


# Dates a query may name: far enough from datetime's limits (years 1 and 9999) that windows,
# the preceding period and the same period a year earlier can always be computed.
EARLIEST_YEAR, LATEST_YEAR = 1971, 8999


BAD_MOMENT = f"Must be an ISO 8601 date or date-time in the years {EARLIEST_YEAR}-{LATEST_YEAR}"


def is_moment(value: str) -> bool:
    """Whether a query could use the value as start_date or end_date."""
    return _parse_moment(value, ZoneInfo("UTC"), end=False) is not None


def _parse_moment(value: str, tz: ZoneInfo, end: bool) -> datetime | None:
    """A date (local midnight; the next one for an end) or date-time (local unless it has an offset)."""
    value = value.strip()
    try:
        day = date.fromisoformat(value)  # any date form (2026-03-02, 20260302), not only 10 characters
    except ValueError:
        pass
    else:
        if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
            return None
        return _floor_hour(_local_midnight(day + timedelta(days=1) if end else day, tz))
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        return None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def _floor_hour(moment: datetime) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()) // HOUR * HOUR, UTC)


def _ceil_hour(moment: datetime) -> datetime:
    return datetime.fromtimestamp(-(-int(moment.timestamp()) // HOUR) * HOUR, UTC)


def parse_window(
    start_date: str | None,
    end_date: str | None,
    aggregation: str | None,
    tz: ZoneInfo,
    now: datetime,
    max_days: int,
    default_days: int = 30,
    default_aggregation: str = "day",
) -> Window:
    """The window of a query's `start_date`, `end_date` and `aggregation`; QueryError when invalid.

    Dates are whole days in the organization's zone (an end date includes its day); missing
    bounds mean the last `default_days` up to now.
    """
    problems: dict[str, str] = {}
    aggregation = aggregation or default_aggregation
    if aggregation not in AGGREGATIONS:
        problems["aggregation"] = f"Must be one of: {', '.join(AGGREGATIONS)}"
    end = _parse_moment(end_date, tz, end=True) if end_date else now
    if end is None:
        problems["end_date"] = BAD_MOMENT
    start = _parse_moment(start_date, tz, end=False) if start_date else None
    if start_date and start is None:
        problems["start_date"] = BAD_MOMENT
    if problems:
        raise QueryError("Invalid query parameters", problems)
    assert end is not None
    if start is None:
        start = end - timedelta(days=default_days)
    window = Window(_floor_hour(start), _ceil_hour(end), tz, aggregation)
    if window.start >= window.end:
        raise QueryError("Invalid date range", {"start_date": "Must be before end_date"})
    if window.end - window.start > timedelta(days=max_days, hours=1):
        raise QueryError("Invalid date range", {"end_date": f"The range must not exceed {max_days} days"})
    return window
