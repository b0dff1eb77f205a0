"""weather_metrics.reports.figures: how numbers read in a printed report, and chart axes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from weather_metrics.core.times import zone
from weather_metrics.query.windows import Window
from weather_metrics.reports.builder import period_labels
from weather_metrics.reports.contents import COUNT, MS, NUMBER, RATE, TEXT
from weather_metrics.reports.figures import axis_title, figure_text, scale_for, value_axis


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.876, RATE, "87.6 %"),
        (1.0, RATE, "100.0 %"),
        (0, RATE, "0.0 %"),
        (None, RATE, "–"),
        (2641.6, MS, "2,642 ms"),
        (9999.0, MS, "9,999 ms"),
        (12_345.0, MS, "12.3 s"),
        (3.26, MS, "3.3 ms"),
        (1668.0, NUMBER, "1,668"),
        (22.626, NUMBER, "22.63"),
        (-0.001, NUMBER, "0.00"),
        (1_234_567, COUNT, "1,234,567"),
        (True, TEXT, "yes"),
        (datetime(2026, 11, 4, 9, 5, tzinfo=UTC), TEXT, "2026-11-04 09:05:00"),
        ("Zürich ✓", TEXT, "Zürich ✓"),
    ],
)
def test_a_figure_reads_in_its_unit(value, unit, text):
    assert figure_text(value, unit) == text


def test_a_duration_column_is_in_one_unit_chosen_by_its_longest_value():
    assert [scale_for(MS, [3400.0, 800.0]).text(v) for v in (3400.0, 800.0)] == ["3,400 ms", "800 ms"]
    assert [scale_for(MS, [3400.0, 12_000.0]).text(v) for v in (3400.0, 12_000.0)] == ["3.4 s", "12.0 s"]


@pytest.mark.parametrize(
    ("unit", "values", "labels", "title"),
    [
        (COUNT, [12, 89, 40], ["0", "20", "40", "60", "80", "100"], "calls"),
        (COUNT, [1, 3, 2], ["0", "1", "2", "3"], "calls"),
        (COUNT, [0, 0], ["0", "1", "2", "3", "4", "5"], "calls"),
        (NUMBER, [0.2, 1.3], ["0.0", "0.5", "1.0", "1.5"], "calls"),
        (NUMBER, [-3.0, 7.0], ["-4", "-2", "0", "2", "4", "6", "8"], "calls"),
        (RATE, [0.5, 0.876, None], ["0", "20", "40", "60", "80", "100"], "calls (%)"),
        (MS, [2500.0, 48_000.0], ["0", "10", "20", "30", "40", "50"], "calls (s)"),
        (MS, [120.0, 730.0], ["0", "200", "400", "600", "800"], "calls (ms)"),
    ],
)
def test_a_value_axis_has_round_ticks_from_zero_in_its_unit(unit, values, labels, title):
    axis = value_axis(unit, values)
    assert axis.labels() == labels
    assert axis.low <= min([0.0, *(v for v in values if v is not None)])
    assert axis.high >= max(v for v in values if v is not None)
    assert axis_title("calls", axis) == title


def window(aggregation: str, start: datetime, end: datetime, name: str = "UTC") -> Window:
    return Window(start, end, zone(name), aggregation)


def test_periods_are_labelled_as_a_reader_writes_dates():
    days = window("day", datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC))
    assert period_labels(days, ["2026-11-03T00:00:00+00:00", "2026-11-04T00:00:00+00:00"]) == ["3 Nov", "4 Nov"]
    hours = window("hour", datetime(2026, 11, 4, 8, tzinfo=UTC), datetime(2026, 11, 4, 10, tzinfo=UTC), "Europe/Berlin")
    assert period_labels(hours, ["2026-11-04T09:00:00+01:00"]) == ["4 Nov 09:00"]
    months = window("month", datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert period_labels(months, ["2025-12-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"]) == ["Dec 2025", "Jan 2026"]
    weeks = window("week", datetime(2025, 12, 29, tzinfo=UTC), datetime(2026, 1, 12, tzinfo=UTC))
    labels = period_labels(weeks, ["2025-12-29T00:00:00+00:00", "2026-01-05T00:00:00+00:00"])
    assert labels == ["29 Dec 2025", "5 Jan 2026"]  # the year, when the window spans two
