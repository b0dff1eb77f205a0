"""Each row kind is declared once: its columns are its model's, in order, and its rollups live beside it."""

from __future__ import annotations

import sys

import pytest

from weather_metrics.store import team_rollups
from weather_metrics.store.agents import AGENTS, AgentExecution
from weather_metrics.store.events import EVENTS, Event, event_row
from weather_metrics.store.productivity import PRODUCTIVITY, ProductivityMetric

# One row of each kind that declares totals: every optional column filled in.
SAMPLE_ROWS = {
    "events": [
        event_row(
            {
                "version": "1.0.0",
                "tool": "search",
                "status": "error",
                "timestamp_hour": "2025-11-12T20:00:00Z",
                "analytics_level": "detailed",
                "response_time_ms": 120.5,
                "service": "api",
                "cache_hit": True,
                "retry_count": 1,
                "country": "DE",
                "error_type": "NetworkError",
                "session_id": "a" * 16,
                "sequence_number": 3,
                "parameters": {"limit": 10},
            },
            0,
        )
    ]
}
KINDS = [(EVENTS, Event), (AGENTS, AgentExecution), (PRODUCTIVITY, ProductivityMetric)]


@pytest.mark.parametrize(("kind", "model"), KINDS, ids=lambda k: getattr(k, "table", getattr(k, "__name__", "")))
def test_a_kinds_columns_are_its_models_in_order(kind, model):
    assert kind.table == model._meta.table_name
    assert kind.columns == tuple(f.column_name for f in model._meta.sorted_fields if f.column_name != "id")


@pytest.mark.parametrize(("kind", "model"), KINDS, ids=lambda k: getattr(k, "table", getattr(k, "__name__", "")))
def test_a_kinds_rollups_fold_its_rows_into_tables_declared_beside_it(app, kind, model):
    """`app`: a query renders its SQL for the bound database."""
    homes = [sys.modules[model.__module__]]
    if kind is AGENTS:
        homes.append(team_rollups)  # a team's rollups have a module of their own (membership changes)
    rollups = kind.rollups()
    for query in rollups:
        assert model._meta.table_name in str(query.sql()[0])  # it reads this kind's rows
    totals = kind.totals(SAMPLE_ROWS[kind.table]) if kind.totals else []
    assert rollups or totals
    for target in [query.model for query in rollups] + [figures.model for figures in totals]:
        declared = [home for home in homes if getattr(home, target.__name__, None) is target]
        assert declared, f"{target.__name__} is not declared in {[home.__name__ for home in homes]}"


def test_totals_name_their_tables_columns():
    """Each rollup added up in Python upserts into its table's own key and figure columns."""
    for figures in EVENTS.totals(SAMPLE_ROWS["events"]):
        columns = [f.column_name for f in figures.model._meta.sorted_fields]
        assert set(figures.key) | set(figures.figures) == set(columns), figures.model
        assert figures.latest <= set(figures.figures)
        # A span rollup's rows are keyed by day like its daily table's: (day, ...) for (span, start, ...).
        width = len(figures.key) - 1 if figures.spans else len(figures.key)
        assert all(len(key) == width for key in figures.rows), figures.model
        assert all(len(values) == len(figures.figures) for values in figures.rows.values()), figures.model
