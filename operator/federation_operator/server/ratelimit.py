"""Token buckets per source: failed authentications (slow down guessing), and new connections
(server/admission.py: refuse a reconnect flood before its TLS handshake).

Only failures spend tokens, so a healthy peer pinging every 30 s never notices the limiter, while a
source that fails `burst` times within `window` is refused (HTTP 429 on ping, 403 on forward-auth)
until its bucket refills. The number of tracked sources is bounded (least recently failing are
forgotten first), so a flood of spoofed addresses cannot grow memory. Pure: the caller passes a
monotonic clock value.
"""

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

DEFAULT_BURST: Final = 20
DEFAULT_WINDOW_SECONDS: Final = 60.0
DEFAULT_MAX_SOURCES: Final = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    last_factor: str


class FailureLimiter:
    def __init__(
        self,
        *,
        burst: int = DEFAULT_BURST,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        max_sources: int = DEFAULT_MAX_SOURCES,
    ) -> None:
        self._burst = float(burst)
        self._rate = burst / window_seconds
        self._max_sources = max_sources
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _refill(self, bucket: _Bucket, now: float) -> None:
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now

    def blocked(self, source: str, *, now: float) -> tuple[float, str] | None:
        """(seconds until the next attempt is allowed, factor of the last failure), or None."""
        bucket = self._buckets.get(source)
        if bucket is None:
            return None
        self._refill(bucket, now)
        if bucket.tokens >= 1.0:
            return None
        return ((1.0 - bucket.tokens) / self._rate, bucket.last_factor)

    def record_failure(self, source: str, *, factor: str, now: float) -> None:
        bucket = self._buckets.pop(source, None)
        if bucket is None:
            bucket = _Bucket(tokens=self._burst, updated=now, last_factor=factor)
        self._refill(bucket, now)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)
        bucket.last_factor = factor
        self._buckets[source] = bucket
        while len(self._buckets) > self._max_sources:
            self._buckets.popitem(last=False)


class ArrivalLimiter:
    """Every arrival spends one token of its source's bucket (`burst` tokens, refilled at `rate`
    per second); an arrival finding less than one token is refused and spends nothing. As many
    sources are tracked as `FailureLimiter` tracks, least recently arrived forgotten first."""

    def __init__(self, *, rate: float, burst: int, max_sources: int = DEFAULT_MAX_SOURCES) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._max_sources = max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, updated

    def admit(self, source: str, *, now: float) -> bool:
        tokens, updated = self._buckets.pop(source, (self._burst, now))
        tokens = min(self._burst, tokens + (now - updated) * self._rate)
        admitted = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if admitted else tokens, now)
        while len(self._buckets) > self._max_sources:
            self._buckets.popitem(last=False)
        return admitted
