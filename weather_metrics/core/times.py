"""Times: an hour and a day in seconds, the ISO 8601 form every answer uses, timestamp parsing, IANA zones."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

HOUR = 3600
DAY = 86400


def parse_timestamp(value: str) -> datetime | None:
    """An ISO 8601 date-time as an aware UTC datetime (naive means UTC), or None."""
    if not 10 <= len(value) <= 40:
        return None  # checked before the cache: it never keeps what a client sent at length
    return _parse_timestamp(value)


@lru_cache(maxsize=4096)  # a batch's events mostly share one hour
def _parse_timestamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


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


def iso(moment: datetime | int) -> str:
    """UTC time as 2025-11-12T19:45:00.000Z."""
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
