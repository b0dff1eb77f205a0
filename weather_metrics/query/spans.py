"""Which rollup rows cover a range: whole UTC days and spans of days where they fit, hours only at the edges.

A long range read hour by hour reads many rows; the same range read as whole days (and
its histograms as spans of 4, 16 and 64 days) reads a few. These functions only split
ranges; query/org_metrics.py reads the tables.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from weather_metrics.core.times import DAY, HOUR

Ranges = list[tuple[int, int]]  # (first, last) starts, both included


def _merge(ranges: Ranges, first: int, last: int, step: int) -> None:
    """Append [first, last], joined to the previous range when it follows on."""
    if ranges and ranges[-1][1] + step == first:
        ranges[-1] = (ranges[-1][0], last)
    else:
        ranges.append((first, last))


def whole_days(low: int, high: int, cuts: Sequence[int] = ()) -> tuple[Ranges, Ranges]:
    """The hours [low, high] split into ranges of whole UTC days, and ranges of the hours left.

    A day is whole when all its hours are in the range and none of `cuts` (sorted period
    starts) falls inside it after its first hour: its figures then belong to one period.
    """
    days: Ranges = []
    hours: Ranges = []
    hour = low
    while hour <= high:
        day_end = hour + DAY - HOUR
        inside = bisect_right(cuts, day_end) - bisect_right(cuts, hour)
        if hour % DAY == 0 and day_end <= high and not inside:
            _merge(days, hour, hour, DAY)
            hour += DAY
        else:
            _merge(hours, hour, hour, HOUR)
            hour += HOUR
    return days, hours


def day_spans(first_day: int, last_day: int, lengths: Sequence[int]) -> tuple[list[tuple[int, int]], Ranges]:
    """The UTC days [first_day, last_day] as (length in days, start) spans, and ranges of single days left.

    A span of n days starts on a multiple of n days since 1970-01-01; the longest that fits is
    taken first, so a range of D days needs at most a few spans of each length.
    """
    spans: list[tuple[int, int]] = []
    singles: Ranges = []
    day = first_day
    while day <= last_day:
        for length in sorted(lengths, reverse=True):
            if (day // DAY) % length == 0 and day + (length - 1) * DAY <= last_day:
                spans.append((length, day))
                day += length * DAY
                break
        else:
            _merge(singles, day, day, DAY)
            day += DAY
    return spans, singles


def day_spans_to_end(
    first_day: int, last_day: int, lengths: Sequence[int]
) -> tuple[list[tuple[int, int]], Ranges, Ranges]:
    """`day_spans`, but the days left at the end may be read as one span that runs past `last_day`.

    Returns the spans, the single days, and the days after `last_day` that last span holds,
    whose figures are to be taken away again. For a range that ends with the newest data (a
    period ending today) those days hold little or nothing, and a 91-day range needs about 6
    spans and days instead of 9.
    """
    spans: list[tuple[int, int]] = []
    singles: Ranges = []
    day = first_day
    while day <= last_day:
        aligned = [length for length in sorted(lengths) if (day // DAY) % length == 0]
        covering = [length for length in aligned if day + (length - 1) * DAY >= last_day]
        if covering:
            spans.append((covering[0], day))
            end = day + (covering[0] - 1) * DAY
            return spans, singles, [(last_day + DAY, end)] if end > last_day else []
        if aligned:
            spans.append((aligned[-1], day))
            day += aligned[-1] * DAY
        else:
            _merge(singles, day, day, DAY)
            day += DAY
    return spans, singles, []


def span_days(chosen: list[tuple[int, int]], last_day: int) -> Ranges:
    """The days up to `last_day` that (length in days, start) spans cover, as ranges."""
    ranges: Ranges = []
    for length, start in sorted(chosen, key=lambda pair: pair[1]):
        _merge(ranges, start, min(start + (length - 1) * DAY, last_day), DAY)
    return ranges
