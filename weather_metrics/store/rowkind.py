"""What a row kind is: a table the writer appends to, and the rollups folded from each commit's rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from peewee import EXCLUDED

from weather_metrics.core.times import parse_timestamp
from weather_metrics.store.db import pyformat

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Totals:
    """One rollup's figures over a commit's rows, added up in Python: `key` columns to `figures` columns.

    The writer upserts them into `model` in one multi-row statement (a few past its
    parameter bound), in key order: each stored figure gains the new one, or for a column
    in `latest` keeps the larger of the two.

    `tally`, for a rollup whose one figure is a `latest` time, is a model of (day, count)
    rows counting the keys by the UTC day of that time: the writer moves each key whose
    day changes from its old day's count to its new one's.

    `spans`, for a span rollup (keyed span, start, ...), are its span lengths in days: `rows`
    are then keyed (day, ...) like its daily rollup's, and the writer adds them to their spans
    only for the days the spans already hold (store/folds.py); the later days are added
    once they end.
    """

    model: Any
    key: tuple[str, ...]
    figures: tuple[str, ...]
    rows: Mapping[Row, Row]
    latest: frozenset[str] = frozenset()
    tally: Any = None
    spans: tuple[int, ...] = ()


def no_rollup_queries() -> list[Any]:
    """For a kind whose rollups are all `totals`."""
    return []


@dataclass(frozen=True, eq=False)
class RowKind:
    """A table the writer appends rows to, with the rollups folded from each commit's rows.

    A rollup is declared in one of two ways. `rollups` builds INSERT ... SELECT ... ON
    CONFLICT queries over the rows with `id > SINCE AND id <= UNTIL` (`new_rows`); they
    are compiled once and bound to the ids just before and at the end of the commit's
    rows. The closed range lets PostgreSQL see, without statistics on the table, that few
    rows match: it reads them through the key. `totals` adds the rows in hand up in
    Python instead (`Totals`): no statement reads them back, and a kind without
    `rollups` needs no ids at all.
    """

    table: str
    columns: tuple[str, ...]
    rollups: Callable[[], list[Any]]
    totals: Callable[[list[Row]], list[Totals]] | None = None


def summed(model: Any, *names: str) -> dict[Any, Any]:
    """The ON CONFLICT update that adds each new value of `names` to the stored one."""
    return {getattr(model, n): getattr(model, n) + getattr(EXCLUDED, n) for n in names}


SINCE = -987_654_321  # stands for "id of the last row before this transaction"
UNTIL = -987_654_320  # stands for "id of the last row this transaction wrote"


def new_rows(key: Any) -> Any:
    """The condition that picks the commit's own rows by their id column `key`."""
    return (key > SINCE) & (key <= UNTIL)


def item_seconds(item: dict[str, Any]) -> float:
    """The Unix time of a validated item's `timestamp`."""
    moment = parse_timestamp(item["timestamp"])
    assert moment is not None  # validated before
    return moment.timestamp()


@dataclass(frozen=True)
class RawRollup:
    """A rollup statement into `model` written as SQL, for what peewee cannot build; its `?`s are SINCE and UNTIL."""

    model: Any
    text: str

    def sql(self) -> tuple[str, list[Any]]:
        """The statement in the bound database's placeholders, as peewee's `query.sql()` gives it."""
        param = self.model._meta.database.param  # noqa: SLF001 - peewee's way to reach a model's database
        return (pyformat(self.text) if param == "%s" else self.text), [SINCE, UNTIL]
