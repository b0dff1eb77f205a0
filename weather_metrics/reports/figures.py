"""How numbers read in a printed report: "1,829", "87.6 %", "2,642 ms", "12.4 s", and chart axis ticks.

A column (or a chart axis) is written in one scale, chosen from all its values, so its
figures line up and compare at a glance: durations are milliseconds until the longest
reaches 10 s, then seconds; values with fractions get two decimals, whole values none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from weather_metrics.reports.contents import COUNT, MS, RATE, Cell

SECONDS_FROM_MS = 10_000.0
NO_VALUE = "–"
AXIS_INTERVALS = 5  # about this many steps between a value axis' ticks


@dataclass(frozen=True)
class Scale:
    """One way of writing numbers: multiplied by `factor`, with `decimals`, followed by `suffix`.

    `decimals` None: none for a whole value, two for others (values as sent, where one column
    holds commits and scores alike).
    """

    factor: float = 1.0
    decimals: int | None = 0
    suffix: str = ""
    unit_name: str = ""  # what an axis title adds in brackets: "%", "ms", "s"

    def text(self, value: Cell, suffix: bool = True) -> str:
        """The value as printed; text, dates and booleans as they read, numbers in this scale."""
        if value is None:
            return NO_VALUE
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, datetime):
            return f"{value:%Y-%m-%d %H:%M:%S}"
        if isinstance(value, str):
            return value
        number = value * self.factor
        decimals = self.decimals if self.decimals is not None else 0 if float(number).is_integer() else 2
        written = f"{number:,.{decimals}f}"
        if written.lstrip("-").strip("0.,") == "":  # no "-0" for a tiny negative
            written = written.lstrip("-")
        return written + (self.suffix if suffix else "")


PLAIN = Scale()


def numbers(values: Iterable[Cell]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def scale_for(unit: str, values: Iterable[Cell]) -> Scale:
    """The scale that writes all these values of one unit alike."""
    found = numbers(values)
    if unit == RATE:
        return Scale(100.0, 1, " %", "%")
    if unit == MS:
        longest = max((abs(v) for v in found), default=0.0)
        if longest >= SECONDS_FROM_MS:
            return Scale(0.001, 1, " s", "s")
        return Scale(1.0, 1 if 0 < longest < 10 else 0, " ms", "ms")
    return PLAIN if unit == COUNT else Scale(decimals=None)


def figure_text(value: Cell, unit: str) -> str:
    """A single figure as printed."""
    return scale_for(unit, [value]).text(value)


@dataclass(frozen=True)
class Axis:
    """A value axis: its ticks (in the values' own unit), and how their labels are written."""

    ticks: list[float]
    scale: Scale

    @property
    def low(self) -> float:
        return self.ticks[0]

    @property
    def high(self) -> float:
        return self.ticks[-1]

    def labels(self) -> list[str]:
        return [self.scale.text(tick, suffix=False) for tick in self.ticks]


def _nice_step(span: float, whole: bool) -> float:
    """A step of 1, 2 or 5 times a power of ten giving about AXIS_INTERVALS steps over `span`."""
    raw = span / AXIS_INTERVALS
    power = 10 ** math.floor(math.log10(raw))
    step = next(power * m for m in (1, 2, 5, 10) if power * m >= raw * 0.999)
    return max(1.0, round(step)) if whole else step


def value_axis(unit: str, values: Iterable[float | None]) -> Axis:
    """Ticks from zero (or below, for negative values) past the largest value; whole numbers for counts."""
    found = numbers(values)
    low, high = min([0.0, *found]), max([0.0, *found])
    whole = unit == COUNT or (unit not in (RATE, MS) and all(v.is_integer() for v in found))
    if unit == RATE and high <= 1.0:
        high = 1.0  # rates on the full scale, 0 to 100 %
    if high == low:
        high = low + (5.0 if whole else 1.0)
    step = _nice_step(high - low, whole)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = [round(i * step, 12) for i in range(first, last + 1)]
    scale = scale_for(unit, found)
    shown = step * scale.factor
    decimals = next((d for d in range(4) if abs(round(shown, d) - shown) < 1e-9 * max(1.0, shown)), 4)
    return Axis(ticks, Scale(scale.factor, decimals, scale.suffix, scale.unit_name))


def axis_title(measure: str, axis: Axis) -> str:
    """The value axis' title, with the unit its labels are in: "calls", "duration (s)", "success rate (%)"."""
    return f"{measure} ({axis.scale.unit_name})" if axis.scale.unit_name else measure
