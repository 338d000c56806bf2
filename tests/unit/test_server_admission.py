"""The decisions of the direct-TLS listener's admission (server/admission.py), on a clock the test
controls; the attacks themselves run in tests/integration/test_trust_boundaries.py."""

import asyncio

from federation_operator.server.admission import Admission, source_of
from federation_operator.server.protocol import ConnectionLimits
from federation_operator.server.ratelimit import ArrivalLimiter


def test_a_source_gets_its_burst_then_the_rate_and_a_refusal_spends_nothing() -> None:
    limiter = ArrivalLimiter(rate=2.0, burst=3)
    assert [limiter.admit("a", now=0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.admit("b", now=0.0), "another source has its own bucket"
    assert not limiter.admit("a", now=0.4), "0.8 of a token is not enough"
    assert limiter.admit("a", now=0.5), "refused attempts did not push the refill back"
    assert not limiter.admit("a", now=0.5)


def test_the_tracked_sources_are_bounded_least_recent_first() -> None:
    limiter = ArrivalLimiter(rate=0.001, burst=1, max_sources=2)
    assert limiter.admit("a", now=0.0)
    assert limiter.admit("b", now=0.0)
    assert limiter.admit("c", now=0.0)  # forgets a
    assert limiter.admit("a", now=0.0), "a was forgotten: a fresh bucket"
    assert not limiter.admit("c", now=0.0)


def test_sources_are_addresses_and_ipv6_hosts_are_counted_per_64() -> None:
    assert source_of(("192.0.2.7", 443)) == "192.0.2.7"
    assert source_of(("2001:db8:1:2:aaaa::1", 443, 0, 0)) == source_of(("2001:db8:1:2:bbbb::9", 1, 0, 0))
    assert source_of(("2001:db8:1:2::1", 443, 0, 0)) != source_of(("2001:db8:1:3::1", 443, 0, 0))
    assert source_of(("::ffff:192.0.2.7", 443, 0, 0)) == "192.0.2.7"


class _Transport(asyncio.Transport):
    """A handshake in progress, as far as the count goes."""


def test_admission_refuses_over_the_rate_or_the_handshake_caps_and_zero_rate_means_no_rate() -> None:
    limited = Admission(
        limits=ConnectionLimits(connection_rate=1.0, connection_burst=2),
        clock=lambda: 0.0,
        release_memory=lambda: None,
    )
    assert [limited.admit("192.0.2.1") for _ in range(3)] == [None, None, "connection rate"]
    assert limited.admit("192.0.2.2") is None
    capped = Admission(
        limits=ConnectionLimits(connection_rate=0, max_handshakes=3, max_handshakes_per_source=2),
        clock=lambda: 0.0,
        release_memory=lambda: None,
    )
    assert all(capped.admit("192.0.2.1") is None for _ in range(1000)), "no rate: no refusal yet"
    first, second, third = _Transport(), _Transport(), _Transport()
    capped.handshake_started(first, "192.0.2.1")
    capped.handshake_started(second, "192.0.2.1")
    assert capped.admit("192.0.2.1") == "handshakes in progress", "two of one source"
    assert capped.admit("192.0.2.2") is None, "another source still has room"
    capped.handshake_started(third, "192.0.2.2")
    assert capped.admit("192.0.2.3") == "handshakes in progress", "three in all"
    capped.handshake_over(first)
    capped.handshake_over(first)  # a second report of the same end changes nothing
    assert capped.admit("192.0.2.1") is None
    assert capped.admit("192.0.2.3") is None


def test_memory_is_released_once_when_connections_fall_to_a_quarter_of_their_high_water() -> None:
    released: list[int] = []
    admission = Admission(
        limits=ConnectionLimits(), clock=lambda: 0.0, release_memory=lambda: released.append(1)
    )
    for _ in range(200):
        admission.opened()
    for _ in range(149):
        admission.closed()
    assert released == []
    admission.closed()  # 50 open: a quarter of 200
    assert released == [1]
    for _ in range(50):
        admission.closed()
    assert released == [1], "the high-water mark restarts low: not worth another release"
