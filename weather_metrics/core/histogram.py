"""Log-scale response-time histograms: percentiles within 2.5% of the exact value.

Bucket i holds values in [GROWTH**i, GROWTH**(i+1)); a percentile is reported as the
geometric middle of its bucket, so the relative error is at most sqrt(GROWTH) - 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

GROWTH = 1.05
_LOG_GROWTH = math.log(GROWTH)


# Response times of 0 ms (answered from a cache in the same tick) share one bucket.
ZERO_BUCKET = -1_000_000


def latency_bucket(value_ms: float) -> int:
    """The bucket a response time falls into."""
    if value_ms <= 0:
        return ZERO_BUCKET
    return math.floor(math.log(value_ms) / _LOG_GROWTH)


def bucket_value(bucket: int) -> float:
    """The value reported for a bucket: its geometric middle."""
    if bucket == ZERO_BUCKET:
        return 0.0
    return GROWTH ** (bucket + 0.5)


def percentile_from_histogram(counts: Iterable[tuple[int, int]], fraction: float) -> float | None:
    """The `fraction` percentile (0-1) of (bucket, count) pairs, nearest-rank like `exact_percentile`."""
    ordered = sorted((b, c) for b, c in counts if c > 0)
    total = sum(c for _, c in ordered)
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for bucket, count in ordered:
        seen += count
        if seen >= rank:
            return bucket_value(bucket)
    return bucket_value(ordered[-1][0])


def exact_percentile(values: Iterable[float], fraction: float) -> float | None:
    """Nearest-rank percentile of raw values; the reference the histogram is tested against."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
