"""Query windows and scopes of organization metrics: which hours, which periods, whose data.

Rollups are kept per UTC hour, so a window starts and ends on an hour and a period (day,
week from Monday, month) is the set of hours whose start falls in it in the organization's
time zone. Zones whose offset is not a whole number of hours put their boundaries on the
nearest hour before.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from weather_metrics.models import Team, TeamMember, User

AGGREGATIONS = ("hour", "day", "week", "month")
HOUR = 3600


class QueryError(Exception):
    """Bad request parameters (or body content that names nothing real): a message and the offending fields."""

    def __init__(self, message: str, details: dict[str, str]) -> None:
        super().__init__(message)
        self.details = details


class OutOfScope(Exception):
    """The caller may not see the data asked for (a user or team outside their scope)."""


class UnknownTarget(LookupError):
    """A user or team id that is not in the caller's organization."""


@functools.cache
def _zone_names() -> frozenset[str]:
    """IANA names, without the system's aliases for files ('localtime', 'posixrules', 'posix/...')."""
    aliases = {"localtime", "Factory", "posixrules"}
    return frozenset(n for n in available_timezones() if n not in aliases and not n.startswith(("posix/", "right/")))


def zone(name: str) -> ZoneInfo:
    """The IANA time zone of that name; ValueError when there is none (or it is a file such as 'localtime')."""
    if name != "UTC" and name not in _zone_names():
        raise ValueError(f"Unknown time zone {name!r}; use an IANA name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"Unknown time zone {name!r}; use an IANA name such as Europe/Berlin") from None


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
        return self.first_hour // 86400 * 86400

    def last_day(self) -> int:
        return self.last_hour // 86400 * 86400

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


@dataclass(frozen=True)
class Scope:
    """Whose data a caller may see inside their organization.

    `user_ids` None means every user; otherwise only rows of those users. Productivity rows
    tagged with a team in `team_ids` are visible too (None: every team).
    """

    organization_id: str
    user_ids: frozenset[str] | None
    team_ids: frozenset[str] | None


def team_member_ids(team_ids: frozenset[str] | set[str]) -> frozenset[str]:
    rows = TeamMember.select(TeamMember.user_id).where(TeamMember.team.in_(sorted(team_ids)))
    return frozenset(row.user_id for row in rows)


def scope_for(user: User) -> Scope:
    """Admins see the organization; managers their teams' members and themselves; developers themselves."""
    if user.role == "admin":
        return Scope(user.organization_id, None, None)
    if user.role == "manager":
        teams = frozenset(m.team_id for m in TeamMember.select(TeamMember.team_id).where(TeamMember.user == user.id))
        return Scope(user.organization_id, team_member_ids(teams) | {user.id}, teams)
    return Scope(user.organization_id, frozenset({user.id}), frozenset())


def narrow(scope: Scope, user_id: str | None = None, team_id: str | None = None) -> Scope:
    """The scope limited to one user and/or team of the organization.

    UnknownTarget when the id is not in the organization; OutOfScope when it is but the
    caller may not see it.
    """
    org = scope.organization_id
    if team_id is not None:
        if not Team.select().where((Team.id == team_id) & (Team.organization == org)).exists():
            raise UnknownTarget("No such team in this organization")
        if scope.team_ids is not None and team_id not in scope.team_ids:
            raise OutOfScope("This team is outside your scope")
        members = team_member_ids({team_id})
        users = members if scope.user_ids is None else members & scope.user_ids
        scope = Scope(org, users, frozenset({team_id}))
    if user_id is not None:
        if not User.select().where((User.id == user_id) & (User.organization == org)).exists():
            raise UnknownTarget("No such user in this organization")
        if scope.user_ids is not None and user_id not in scope.user_ids:
            raise OutOfScope("This user is outside your scope")
        scope = Scope(org, frozenset({user_id}), frozenset())
    return scope
