"""Each row kind is declared once: its columns are its model's, in order, and its rollups live beside it."""

from __future__ import annotations

import sys

import pytest

from weather_metrics.store.agents import AGENTS, AgentExecution
from weather_metrics.store.events import EVENTS, Event
from weather_metrics.store.productivity import PRODUCTIVITY, ProductivityMetric

KINDS = [(EVENTS, Event), (AGENTS, AgentExecution), (PRODUCTIVITY, ProductivityMetric)]


@pytest.mark.parametrize(("kind", "model"), KINDS, ids=lambda k: getattr(k, "table", getattr(k, "__name__", "")))
def test_a_kinds_columns_are_its_models_in_order(kind, model):
    assert kind.table == model._meta.table_name
    assert kind.columns == tuple(f.column_name for f in model._meta.sorted_fields if f.column_name != "id")


@pytest.mark.parametrize(("kind", "model"), KINDS, ids=lambda k: getattr(k, "table", getattr(k, "__name__", "")))
def test_a_kinds_rollups_fold_its_rows_into_tables_declared_beside_it(kind, model):
    home = sys.modules[model.__module__]
    rollups = kind.rollups()
    assert rollups
    for query in rollups:
        target = query.model
        assert getattr(home, target.__name__, None) is target, f"{target.__name__} is not declared in {home.__name__}"
        assert model._meta.table_name in str(query.sql()[0])  # it reads this kind's rows
