"""The federation server's request metrics: `federation_server_requests_total{route,result,factor}`
and the `federation_server_auth_seconds{route}` histogram, counted in plain ints and floats.

prometheus_client's Counter and Histogram take a lock on every update. Here every update and every
scrape of /metrics run on the one event-loop thread, so there is nothing to lock; prometheus_client
still writes the exposition (this is a custom collector). What differs from its Counter/Histogram:
no `_created` series. What the lock-free counting saves: docs/benchmarks.md.
"""

import bisect
from collections.abc import Iterator
from typing import Final

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
# The `le` labels as prometheus_client writes them ("0.0001", ..., "+Inf").
_BUCKET_LABELS: Final = tuple(
    floatToGoString(edge)  # type: ignore[no-untyped-call]
    for edge in (*LATENCY_BUCKETS, float("inf"))
)


class RequestMetrics(Collector):
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self._bucket_counts: dict[str, list[int]] = {}  # per route: one count per bucket, +Inf last
        self._sums: dict[str, float] = {}

    def count(self, route: str, outcome: str, factor: str) -> None:
        key = (route, outcome, factor)
        self.requests[key] = self.requests.get(key, 0) + 1

    def observe(self, route: str, seconds: float) -> None:
        counts = self._bucket_counts.get(route)
        if counts is None:
            counts = self._bucket_counts[route] = [0] * (len(LATENCY_BUCKETS) + 1)
            self._sums[route] = 0.0
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # le: seconds <= edge
        self._sums[route] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "federation_server_requests",
            "Inbound federation calls by route, result and failed factor.",
            labels=["route", "result", "factor"],
        )
        for labels, value in sorted(self.requests.items()):
            requests.add_metric(list(labels), value)
        yield requests
        latency = HistogramMetricFamily(
            "federation_server_auth_seconds",
            "Time to decide an inbound call (certificate, token, index lookup).",
            labels=["route"],
        )
        for route, counts in sorted(self._bucket_counts.items()):
            cumulative, buckets = 0, []
            for label, count in zip(_BUCKET_LABELS, counts, strict=True):
                cumulative += count
                buckets.append((label, cumulative))
            latency.add_metric([route], buckets, sum_value=self._sums[route])
        yield latency
