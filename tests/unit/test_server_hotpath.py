"""The forward-auth fast paths give the same answers as the plain code they replace.

Request ids stay random uuid4 strings, audit lines stay byte-for-byte what `json.dumps` writes
(hostile paths and forwarded addresses included), the audit time keeps its format across second
boundaries, remembered header parses and trust decisions answer like fresh ones, and an audit file
written by the background thread holds every line, in order.
"""

import io
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry, Counter, Histogram

from federation_operator.domain import api, tokens
from federation_operator.domain.certs import issue_certificate
from federation_operator.server.app import AppConfig, create_app
from federation_operator.server.audit import AuditLog
from federation_operator.server.clientcert import (
    CertSource,
    CertSourceConfig,
    is_trusted,
    parse_networks,
    resolve,
)
from federation_operator.server.index import PeerIndex
from federation_operator.server.metrics import LATENCY_BUCKETS, RequestMetrics
from tests.harness.clock import Clock
from tests.harness.waiting import wait_for

NOW = datetime(2026, 3, 1, 12, 0, 0, 999_999, tzinfo=UTC)
TOKEN = tokens.generate_token()
THUMBPRINT = issue_certificate(subject="hot", validity=timedelta(days=1), now=NOW).info.thumbprint
XFCC = "Hash=" + THUMBPRINT.removeprefix("sha256:")


class _Transport:
    """Just enough of an asyncio transport for `request.remote`."""

    def __init__(self, remote: str) -> None:
        self._remote = remote

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self._remote, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


def _index() -> PeerIndex:
    index = PeerIndex()
    index.upsert_peer(
        {
            "metadata": {"namespace": "ns", "name": "hot"},
            "spec": {"remoteCertificates": [{"thumbprint": THUMBPRINT}]},
            "status": {"inbound": {"acceptedHashes": [{"hash": tokens.hash_token(TOKEN)}]}},
        }
    )
    index.mark_synced()
    return index


def _app(clock: Clock) -> tuple[web.Application, io.StringIO]:
    audit = io.StringIO()
    sources = CertSourceConfig(
        sources=frozenset({CertSource.XFCC}), trusted_proxies=parse_networks(["127.0.0.1"])
    )
    app = create_app(
        index=_index(),
        config=AppConfig(site="hot", cert_sources=sources),
        audit=AuditLog(audit),
        clock=clock,
    )
    return app, audit


async def _call(
    app: web.Application, *, path: str = api.FORWARD_AUTH_PATH, headers: dict[str, str] | None = None
) -> web.Response:
    request = make_mocked_request(
        "GET",
        path,
        headers={
            "x-forwarded-client-cert": XFCC,
            "Authorization": f"Bearer {TOKEN.reveal()}",
            **(headers or {}),
        },
        transport=_Transport("127.0.0.1"),
        app=app,
    )
    match = await app.router.resolve(request)
    response = await match.handler(request)
    assert isinstance(response, web.Response)
    return response


def _lines(audit: io.StringIO) -> list[str]:
    return audit.getvalue().splitlines(keepends=True)


async def test_request_ids_are_distinct_random_uuid4_strings_across_batches() -> None:
    app, _ = _app(Clock(NOW))
    ids = [(await _call(app)).headers["X-Request-Id"] for _ in range(600)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


async def test_audit_lines_are_what_json_dumps_writes_even_for_hostile_values() -> None:
    app, audit = _app(Clock(NOW))
    hostile_path = api.FORWARD_AUTH_PATH + '/a"b\\c%00\u00e9\u2028'
    green = await _call(app, path=hostile_path, headers={"X-Forwarded-For": '10.0.0.1, x"y\\\t\u00ffz'})
    red = await _call(app, headers={"Authorization": "Bearer nope"})
    assert (green.status, red.status) == (200, 401)
    lines = _lines(audit)
    assert len(lines) == 2
    for line in lines:
        record: dict[str, Any] = json.loads(line)
        assert line == json.dumps(record, separators=(",", ":")) + "\n"
    green_record, red_record = (json.loads(line) for line in lines)
    assert green_record == {
        "time": "2026-03-01T12:00:00.999Z",
        "requestId": green.headers["X-Request-Id"],
        "route": "auth",
        "result": "ok",
        "factor": None,
        "message": "certificate and secret accepted",
        "peer": "hot",
        "namespace": "ns",
        "thumbprint": THUMBPRINT,
        "remote": "127.0.0.1",
        "source": 'x"y\\\t\u00ffz',  # the last hop, from the trusted proxy
        "method": "GET",
        "path": '/api/federation/auth/a"b\\c\x00\u00e9\u2028',
    }
    assert (red_record["result"], red_record["factor"], red_record["peer"]) == ("denied", "Secret", "hot")


async def test_audit_time_is_utc_milliseconds_across_seconds_and_zones() -> None:
    clock = Clock(NOW)
    app, audit = _app(clock)
    moments = [
        NOW,
        NOW + timedelta(microseconds=1),  # the next second
        NOW + timedelta(seconds=1, microseconds=1),  # same second again
        (NOW + timedelta(hours=5)).astimezone(timezone(timedelta(hours=-3, minutes=-30))),
    ]
    for moment in moments:
        clock.set(moment)
        await _call(app)
    assert [json.loads(line)["time"] for line in _lines(audit)] == [
        moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") for moment in moments
    ]


def test_remembered_header_parses_answer_like_fresh_ones() -> None:
    config = CertSourceConfig(
        sources=frozenset({CertSource.XFCC}), trusted_proxies=parse_networks(["127.0.0.1"])
    )
    big = XFCC + ";" + ";".join(f"k{number}=v" for number in range(3000))  # beyond the cached size
    for value in (XFCC, XFCC, big, big):
        presented = resolve(
            config=config,
            remote="127.0.0.1",
            headers={"x-forwarded-client-cert": [value]},
            over_tls=False,
            tls_der=None,
            now=datetime.now(tz=UTC),
        )
        assert (presented.thumbprint, presented.refusal) == (THUMBPRINT, None)
    for _ in range(2):
        refused = resolve(
            config=config,
            remote="127.0.0.1",
            headers={"x-forwarded-client-cert": ["Hash=zz"]},
            over_tls=False,
            tls_der=None,
            now=datetime.now(tz=UTC),
        )
        assert (refused.thumbprint, refused.refusal) == (
            None,
            "x-forwarded-client-cert Hash is not a SHA-256 hex digest",
        )


def test_remembered_trust_is_per_config() -> None:
    trusting = CertSourceConfig(trusted_proxies=parse_networks(["10.0.0.0/8"]))
    other = CertSourceConfig(trusted_proxies=parse_networks(["192.0.2.0/24"]))
    for remote in ("10.1.2.3", "10.1.2.3", "192.0.2.7", None, "not an address"):
        assert trusting.trusts(remote) is is_trusted(remote, trusting.trusted_proxies)
        assert other.trusts(remote) is is_trusted(remote, other.trusted_proxies)
    assert trusting.trusts("10.1.2.3")
    assert not other.trusts("10.1.2.3")
    assert trusting == CertSourceConfig(trusted_proxies=parse_networks(["10.0.0.0/8"]))


def test_audit_to_a_file_is_written_off_the_caller_every_interval_in_order(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with path.open("a", encoding="utf-8") as stream:
        audit = AuditLog(stream, flush_interval=0.05)
        lines = [json.dumps({"n": number}) + "\n" for number in range(20_000)]
        for line in lines[:10_000]:
            audit.write_line(line)
        wait_for(lambda: path.read_text(encoding="utf-8") == "".join(lines[:10_000]), timeout=5)
        for line in lines[10_000:]:
            audit.write_line(line)
        audit.close()
        assert path.read_text(encoding="utf-8") == "".join(lines)


def test_a_lone_audit_line_reaches_the_file_without_waiting_for_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with path.open("a", encoding="utf-8") as stream:
        audit = AuditLog(stream, flush_interval=60)
        audit.write_line('{"n":1}\n')
        wait_for(lambda: path.read_text(encoding="utf-8") == '{"n":1}\n', timeout=5)
        audit.write_line('{"n":2}\n')  # within the interval: written on close at the latest
        audit.close()
        assert path.read_text(encoding="utf-8") == '{"n":1}\n{"n":2}\n'


def test_request_metrics_expose_what_prometheus_clients_counter_and_histogram_would() -> None:
    """The lock-free request metrics write the same samples as prometheus_client's own Counter and
    Histogram fed the same calls (minus their `_created` series), bucket edges included."""
    rng = random.Random(3)
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = RequestMetrics()
    ours_registry.register(ours)
    counter = Counter(
        "federation_server_requests", "x", ["route", "result", "factor"], registry=theirs_registry
    )
    histogram = Histogram(
        "federation_server_auth_seconds", "x", ["route"], registry=theirs_registry, buckets=LATENCY_BUCKETS
    )
    edges = [*LATENCY_BUCKETS, 0.0]
    for _ in range(2000):
        route = rng.choice(["ping", "auth"])
        outcome, factor = rng.choice([("ok", ""), ("denied", "Secret"), ("rate-limited", "Certificate")])
        seconds = rng.choice(edges) if rng.random() < 0.3 else rng.uniform(0, 0.2)
        ours.count(route, outcome, factor)
        ours.observe(route, seconds)
        counter.labels(route, outcome, factor).inc()
        histogram.labels(route).observe(seconds)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in registry.collect()
            for sample in family.samples
            if not sample.name.endswith("_created")
        }

    theirs = samples(theirs_registry)
    assert samples(ours_registry).keys() == theirs.keys()
    for key, value in samples(ours_registry).items():
        assert value == pytest.approx(theirs[key]), key
