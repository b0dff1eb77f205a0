"""The /v1 statistics two databases answer, compared: the last check after moving a database (store/transfer.py).

Each database is opened read-only in turn and asked the same questions at the same moments
(today, and the day of the newest event, so an old database is asked about its own data).
The two engines add reals in different orders, so a sum may differ in its last bits, and an
answer rounded to a few decimals (an average of 457.85 ms shown as 457.8 or 457.9) in its last
decimal: numbers compare equal within a relative 1e-9, or one unit of the last decimal shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from weather_metrics.query import stats
from weather_metrics.store import db
from weather_metrics.store.transfer import Difference

QUESTIONS: dict[str, Callable[[str, datetime], dict[str, Any]]] = {
    "overview": stats.overview,
    "tools": stats.tools,
    "performance": stats.performance,
    "errors": stats.errors,
}
PERIODS = ("7d", "90d")
RELATIVE_TOLERANCE = 1e-9


def answer_differences(source: Path, target: str, now: datetime) -> list[Difference]:
    """Each /v1/stats question the SQLite file and the PostgreSQL database answer differently."""
    db.open_database(str(source.resolve()), max_connections=2, read_only=True)
    with db.database.connection_context():
        moments = _moments(now)
        theirs = _answers(moments)
    db.open_database(target, max_connections=2, read_only=True)
    with db.database.connection_context():
        ours = _answers(moments)
    return [
        Difference(f"/v1/stats/{question}", "the target answers otherwise than the source")
        for question, answer in theirs.items()
        if not same(answer, ours[question])
    ]


def _moments(now: datetime) -> list[datetime]:
    """Now, and the hour of the newest event when that is another day."""
    newest = db.execute("SELECT MAX(hour) FROM tool_hourly").fetchone()[0]  # every event's hour is there
    moments = [now]
    if newest is not None:
        last = datetime.fromtimestamp(int(newest), UTC)
        if last.date() != now.astimezone(UTC).date():
            moments.append(last)
    return moments


def _answers(moments: list[datetime]) -> dict[str, Any]:
    return {
        f"{name}?period={period} on {moment:%Y-%m-%d}": ask(period, moment)
        for moment in moments
        for period in PERIODS
        for name, ask in QUESTIONS.items()
    }


def same(left: Any, right: Any) -> bool:
    """Equal JSON answers, numbers within RELATIVE_TOLERANCE (integers exactly)."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, float) or isinstance(right, float):
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (left, right))
        return numbers and (math.isclose(left, right, rel_tol=RELATIVE_TOLERANCE) or _last_decimal(left, right))
    return type(left) is type(right) and bool(left == right)


def _last_decimal(left: float, right: float) -> bool:
    """Numbers rounded to a few decimals that differ by at most one unit of the last one."""
    decimals = max(len(repr(float(x)).partition(".")[2]) for x in (left, right))
    return decimals <= 3 and abs(left - right) <= 10**-decimals * (1 + RELATIVE_TOLERANCE)
