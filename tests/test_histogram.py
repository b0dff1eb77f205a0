"""Log-scale latency histograms: percentiles stay within 2.5% of the exact nearest-rank value."""

from __future__ import annotations

import math
import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from weather_metrics.core.histogram import (
    GROWTH,
    ZERO_BUCKET,
    bucket_value,
    exact_percentile,
    latency_bucket,
    percentile_from_histogram,
)

# The documented bound: a value is reported as the geometric middle of its bucket, so a value
# on a bucket's lower edge is off by exactly sqrt(GROWTH) - 1 (plus floating-point noise).
MAX_RELATIVE_ERROR = math.sqrt(GROWTH) - 1
TOLERANCE = MAX_RELATIVE_ERROR + 1e-12
FRACTIONS = (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0)
quick = settings(max_examples=150, deadline=None, database=None)


def histogram(values: list[float]) -> list[tuple[int, int]]:
    return list(Counter(latency_bucket(v) for v in values).items())


def nearest_rank(values: list[float], fraction: float) -> float:
    """Written out here so the reference does not depend on the module under test."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def assert_close(estimate: float | None, exact: float) -> None:
    assert estimate is not None
    if exact == 0:
        assert estimate == 0
    else:
        assert abs(estimate - exact) / exact <= TOLERANCE, (estimate, exact)


def test_bound_is_under_two_and_a_half_percent():
    assert TOLERANCE <= 0.025


@quick
@given(
    seed=st.integers(0, 2**32 - 1),
    mu=st.floats(0.0, 8.0),
    sigma=st.floats(0.05, 2.5),
    size=st.integers(1, 400),
)
def test_lognormal_percentiles_within_bound(seed, mu, sigma, size):
    rng = random.Random(seed)
    values = [min(rng.lognormvariate(mu, sigma), 3_600_000.0) for _ in range(size)]
    counts = histogram(values)
    for fraction in FRACTIONS:
        exact = nearest_rank(values, fraction)
        assert exact_percentile(values, fraction) == exact
        assert_close(percentile_from_histogram(counts, fraction), exact)


@quick
@given(
    values=st.lists(st.floats(0.0, 3_600_000.0, allow_nan=False), min_size=1, max_size=200),
    fraction=st.floats(0.0, 1.0),
)
def test_any_response_times_and_fraction_within_bound(values, fraction):
    exact = nearest_rank(values, fraction)
    assert_close(percentile_from_histogram(histogram(values), fraction), exact)


@quick
@given(exponent=st.integers(-200, 320))
def test_values_on_bucket_edges_within_bound(exponent):
    # Powers of GROWTH sit on bucket boundaries, where floating-point log may round either way.
    value = GROWTH**exponent
    assert_close(percentile_from_histogram([(latency_bucket(value), 1)], 0.5), value)


def test_large_sample_p50_p95_p99():
    rng = random.Random(20251112)
    values = [rng.lognormvariate(5.0, 0.8) for _ in range(20_000)]
    counts = histogram(values)
    for fraction in (0.5, 0.95, 0.99):
        assert_close(percentile_from_histogram(counts, fraction), nearest_rank(values, fraction))


def test_empty_input_has_no_percentile():
    assert percentile_from_histogram([], 0.5) is None
    assert exact_percentile([], 0.5) is None


def test_buckets_without_calls_have_no_percentile():
    assert percentile_from_histogram([(10, 0), (20, 0)], 0.99) is None


def test_zero_response_times_report_zero():
    assert latency_bucket(0) == ZERO_BUCKET
    assert bucket_value(ZERO_BUCKET) == 0.0
    values = [0.0] * 60 + [100.0] * 40
    counts = histogram(values)
    assert percentile_from_histogram(counts, 0.5) == 0.0
    assert percentile_from_histogram(counts, 0.6) == 0.0
    assert_close(percentile_from_histogram(counts, 0.61), 100.0)
    assert_close(percentile_from_histogram(counts, 0.99), 100.0)


def test_all_zero_values():
    assert percentile_from_histogram(histogram([0.0, 0.0, 0]), 0.99) == 0.0


def test_sub_millisecond_values_are_not_reported_as_zero():
    counts = histogram([0.25, 0.5, 0.75])
    assert_close(percentile_from_histogram(counts, 0.5), 0.5)
    assert_close(percentile_from_histogram(counts, 0.0), 0.25)


def test_order_of_pairs_does_not_matter():
    values = [5.0, 50.0, 500.0, 5000.0, 5.5]
    counts = histogram(values)
    for fraction in FRACTIONS:
        assert percentile_from_histogram(list(reversed(counts)), fraction) == percentile_from_histogram(
            counts, fraction
        )


def test_counts_of_the_same_bucket_add_up():
    # Daily rows of the same bucket arrive as separate pairs when a period spans days.
    split = [(latency_bucket(10.0), 3), (latency_bucket(1000.0), 2), (latency_bucket(10.0), 3)]
    # 6 of 8 calls are ~10 ms: p75 is 10 ms, p80 is 1000 ms.
    assert_close(percentile_from_histogram(split, 0.75), 10.0)
    assert_close(percentile_from_histogram(split, 0.80), 1000.0)
