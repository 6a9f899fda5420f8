"""A fixed-size latency histogram: percentiles in O(1) memory, whatever the run's size."""

from __future__ import annotations

import math
from typing import Final

__all__ = ["LatencyHistogram"]

_SMALLEST: Final = 1e-4  # 0.1 ms: anything faster lands in the first bucket
_GROWTH: Final = 1.04  # each bucket 4 % wider than the last: percentiles within ~2 %
_BUCKETS: Final = 512  # 0.1 ms * 1.04**511 is about 5 days: nothing lands past the end
_LOG_GROWTH: Final = math.log(_GROWTH)


class LatencyHistogram:
    """Counts durations in log-spaced buckets; reports approximate percentiles."""

    __slots__ = ("count", "counts")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0

    def add(self, seconds: float) -> None:
        """Record one duration."""
        if seconds <= _SMALLEST:
            index = 0
        else:
            index = min(int(math.log(seconds / _SMALLEST) / _LOG_GROWTH) + 1, _BUCKETS - 1)
        self.counts[index] += 1
        self.count += 1

    def percentile(self, fraction: float) -> float | None:
        """The duration below which ``fraction`` of the recorded ones fall, or ``None``.

        The answer is the geometric middle of the bucket holding that rank, so it is off
        by at most half a bucket (about 2 %).
        """
        if not self.count:
            return None
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for index, bucket in enumerate(self.counts):
            seen += bucket
            if seen >= rank:
                if index == 0:
                    return _SMALLEST
                low = _SMALLEST * _GROWTH ** (index - 1)
                return low * math.sqrt(_GROWTH)
        raise AssertionError("unreachable: the ranks add up to count")  # pragma: no cover
