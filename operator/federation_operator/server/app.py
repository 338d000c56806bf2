"""The federation server's HTTP surface (aiohttp): ping, forward-auth, health, readiness, metrics.

Every inbound call goes through one function, `_decide`: find the presented certificate
(clientcert), read the bearer token, ask the index (pure, in memory), then answer, count and audit.
Status codes, chosen so that every proxy's forward-auth understands them (nginx `auth_request`
accepts only 2xx, 401 and 403) and kept the same on ping:

- 200: both factors passed (forward-auth adds `X-Federation-Peer` / `X-Federation-Namespace`);
- 401: factor `Certificate` or `Secret` (the credentials are missing or wrong);
- 403: factor `UnknownPeer`, `Suspended` or `AmbiguousPeer` (we know the caller and refuse it),
  and forward-auth
  when the source is rate limited;
- 429 (ping only): the source failed too often; `Retry-After` says when to try again.
"""

import asyncio
import bisect
import collections
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Final, TextIO

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from federation_operator.domain import api
from federation_operator.domain.factors import Factor
from federation_operator.domain.times import rfc3339
from federation_operator.domain.wire import HEADER_FACTOR, HEADER_REQUEST_ID, DeniedReply, PingReply
from federation_operator.server.clientcert import CertSource, CertSourceConfig, Presented, resolve
from federation_operator.server.index import AuthResult, PeerIndex, parse_bearer
from federation_operator.server.protocol import BoundedAppRunner, ConnectionLimits
from federation_operator.server.ratelimit import FailureLimiter
from federation_operator.server.repeats import DEFAULT_INTERVAL_SECONDS, Repeats, Summary

HEALTH_PATH: Final = "/healthz"
READY_PATH: Final = "/readyz"
METRICS_PATH: Final = "/metrics"
# aiohttp's request-parser limits: a forwarded PEM (XFCC, ssl-client-cert) of an RSA-3072 leaf is
# ~3 KiB URL-encoded; anything beyond these gets a 4xx from the parser, never reaches us.
MAX_LINE_SIZE: Final = 8190
MAX_FIELD_SIZE: Final = 32768
MAX_HEADERS: Final = 64
logger = logging.getLogger(__name__)

STATUS_OF_FACTOR: Final[Mapping[str, int]] = {
    Factor.CERTIFICATE: 401,
    Factor.SECRET: 401,
    Factor.UNKNOWN_PEER: 403,
    Factor.SUSPENDED: 403,
    Factor.AMBIGUOUS_PEER: 403,
}
# An X-Forwarded-For hop is an address; anything longer is cut before it keys a bucket or an audit line.
_MAX_SOURCE: Final = 64
# Audit fields a caller chooses are cut to these lengths (a path can be 8 KiB).
_MAX_PATH: Final = 256
_MAX_METHOD: Final = 16
_ROUTE_PING: Final = "ping"
_ROUTE_AUTH: Final = "auth"
_JSON: Final = "application/json"
# Random bytes for request ids are fetched this many ids at a time (one getrandom call).
_ID_BATCH: Final = 256
# The RFC 4122 variant bits (10xx) applied to the first hex digit of a uuid's fourth group.
_UUID_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
# The default clock, called per request: a partial is one Python frame less than a lambda.
_utc_now: Final = functools.partial(datetime.now, UTC)


class AuditLog:
    """One JSON line per inbound call. Lines are built by the caller; a token is never in one.

    A stream with a file descriptor (a file, stdout) is written by a background thread: a write
    to a file can block for tens of milliseconds on disk writeback (measured on the project's
    machine), which on the event loop stalls every request in flight. The request path only
    appends to a deque (thread-safe without a lock). The thread writes at most every
    `flush_interval` seconds: at once when it has been idle that long (a lone call is in the file
    right away, as before), else at the end of the interval; a crash loses at most that interval
    of lines. An in-memory stream never blocks, so it is written in place (flushed at most every
    `flush_interval`).
    """

    def __init__(self, stream: TextIO, *, flush_interval: float = 0.5) -> None:
        self._stream = stream
        self._flush_interval = flush_interval
        self._flushed = time.monotonic() - flush_interval  # the first line is due at once
        self._pending: collections.deque[str] = collections.deque()
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        if _has_descriptor(stream):
            self._writer = threading.Thread(target=self._write_periodically, name="audit-log", daemon=True)
            self._writer.start()

    def write_line(self, line: str) -> None:
        """`line` is one complete JSON document ending in a newline."""
        now = time.monotonic()
        due = now - self._flushed >= self._flush_interval
        if due:
            self._flushed = now
        if self._writer is not None:
            self._pending.append(line)
            if due:
                self._wake.set()
            return
        self._stream.write(line)
        if due:
            self._stream.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._stopped.set()
            self._wake.set()
            self._writer.join()
        self._stream.flush()

    def _write_periodically(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            self._write_pending()
        self._write_pending()

    def _write_pending(self) -> None:
        pending = self._pending
        # Only the lines present now: the request path keeps appending meanwhile.
        lines = [pending.popleft() for _ in range(len(pending))]
        if not lines:
            return
        try:
            self._stream.write("".join(lines))
            self._stream.flush()
        except (OSError, ValueError):
            logger.exception("audit log: %d lines could not be written", len(lines))


def _has_descriptor(stream: TextIO) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError):
        return False
    return True


class _RequestIds:
    """Random uuid4 strings, as `str(uuid.uuid4())` gives, at a fraction of its cost.

    `uuid.uuid4()` is a getrandom syscall plus a Python-level UUID object per request (~2 us on
    the hot path); here the randomness is read in batches and formatted by hand.
    """

    def __init__(self) -> None:
        self._pool = b""
        self._offset = 0

    def next(self) -> str:
        if self._offset >= len(self._pool):
            self._pool = os.urandom(16 * _ID_BATCH)
            self._offset = 0
        digits = self._pool[self._offset : self._offset + 16].hex()
        self._offset += 16
        return (
            f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-"
            f"{_UUID_VARIANT[digits[16]]}{digits[17:20]}-{digits[20:]}"
        )


# ".000Z" to ".999Z": the end of every audit time, looked up instead of formatted.
_MILLISECONDS: Final = tuple(f".{millisecond:03d}Z" for millisecond in range(1000))


class _AuditTime:
    """The audit `time` field (UTC, milliseconds, `Z`); the part up to the second is reused.

    The second is recognised by (date ordinal, hour, minute, second), a few attribute reads,
    rather than by formatting or a timestamp: this runs on every request.
    """

    def __init__(self) -> None:
        self._second: tuple[int, int, int, int] | None = None
        self._prefix = ""

    def format(self, moment: datetime) -> str:
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
        second = (moment.toordinal(), moment.hour, moment.minute, moment.second)
        if second != self._second:
            self._prefix = moment.isoformat(timespec="seconds")[:19]
            self._second = second
        return self._prefix + _MILLISECONDS[moment.microsecond // 1000]


@dataclass(frozen=True)
class AppConfig:
    site: str
    cert_sources: CertSourceConfig = field(default_factory=CertSourceConfig)
    rate_limit_burst: int = 20
    rate_limit_window_seconds: float = 60.0
    # Repeated failures of one kind from one source are written once per interval, then counted.
    audit_repeat_interval_seconds: float = DEFAULT_INTERVAL_SECONDS


_LATENCY_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
# The `le` labels as prometheus_client writes them ("0.0001", ..., "+Inf").
_BUCKET_LABELS: Final = tuple(
    floatToGoString(edge)  # type: ignore[no-untyped-call]
    for edge in (*_LATENCY_BUCKETS, float("inf"))
)


class _RequestMetrics(Collector):
    """`federation_server_requests_total{route,result,factor}` and the
    `federation_server_auth_seconds{route}` histogram, counted in plain ints and floats.

    prometheus_client's Counter and Histogram take a lock on every update (~1 us a request on the
    hot path together). Here every update and every scrape of /metrics run on the one event-loop
    thread, so there is nothing to lock; prometheus_client still writes the exposition (this is a
    custom collector). What differs from its Counter/Histogram: no `_created` series.
    """

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
            counts = self._bucket_counts[route] = [0] * (len(_LATENCY_BUCKETS) + 1)
            self._sums[route] = 0.0
        counts[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1  # le: seconds <= edge
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


class _Server:
    """Handlers sharing the index, config, limiter, metrics and audit of one application."""

    def __init__(
        self,
        *,
        index: PeerIndex,
        config: AppConfig,
        audit: AuditLog | None,
        registry: CollectorRegistry,
        clock: Callable[[], datetime],
    ) -> None:
        self.index = index
        self.config = config
        self.audit = audit
        self.registry = registry
        self.metrics = _RequestMetrics()
        registry.register(self.metrics)
        self.clock = clock
        self.limiter = FailureLimiter(
            burst=config.rate_limit_burst, window_seconds=config.rate_limit_window_seconds
        )
        self.header_names = config.cert_sources.header_names
        # Behind a proxy only (no direct mode) our own handshake's certificate is never used.
        self._direct = CertSource.DIRECT in config.cert_sources.sources
        self._request_ids = _RequestIds()
        self._audit_time = _AuditTime()
        self.repeats = Repeats(interval=config.audit_repeat_interval_seconds)

    def _source(self, request: web.Request, remote: str) -> str:
        """The real client address: the TCP peer, or behind a trusted proxy the right-most
        `X-Forwarded-For` hop that is not itself a trusted proxy, across every line of the header
        (each proxy appends; anything left of the last trusted hop is the client's to forge)."""
        trusts = self.config.cert_sources.trusts
        if not trusts(remote):
            return remote
        hops = [
            hop.strip() for line in request.headers.getall("X-Forwarded-For", ()) for hop in line.split(",")
        ]
        for hop in reversed(hops):
            if hop and not trusts(hop):
                return hop[:_MAX_SOURCE]
        return (hops[0] if hops and hops[0] else remote)[:_MAX_SOURCE]

    def _presented(self, request: web.Request, remote: str, now: datetime) -> Presented:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
        tls_der = None
        if self._direct and ssl_object is not None:
            tls_der = ssl_object.getpeercert(binary_form=True)
        headers = {name: request.headers.getall(name, []) for name in self.header_names}
        return resolve(
            config=self.config.cert_sources,
            remote=remote,
            headers=headers,
            over_tls=ssl_object is not None,
            tls_der=tls_der,
            now=now,
        )

    def _limit_key(self, presented: Presented, source: str) -> str:
        """Whose failures these are: a pinned certificate's (only its key holder can present it,
        so no one can spend another peer's bucket), else the real client address."""
        thumbprint = presented.thumbprint
        if thumbprint is not None and presented.refusal is None and self.index.pins(thumbprint):
            return "certificate " + thumbprint
        return "address " + source

    def _authenticate(self, request: web.Request, presented: Presented, *, now: datetime) -> AuthResult:
        if presented.refusal is not None:
            return AuthResult(ok=False, factor=Factor.CERTIFICATE, message=presented.refusal)
        token = parse_bearer(request.headers.get("Authorization"))
        return self.index.authenticate(thumbprint=presented.thumbprint, token=token, now=now)

    async def _decide(self, request: web.Request, route: str) -> web.Response:
        started = time.perf_counter()
        now = self.clock()
        request_id = self._request_ids.next()
        remote = request.remote or ""
        source = self._source(request, remote)
        presented = self._presented(request, remote, now)
        limit_key = self._limit_key(presented, source)
        limited = self.limiter.blocked(limit_key, now=time.monotonic())
        if limited is not None:
            retry_after, last_factor = limited
            result = AuthResult(
                ok=False,
                factor=last_factor,
                message="too many failed attempts from this certificate or address; retry later",
            )
            response = self._denied(
                result,
                status=429 if route == _ROUTE_PING else 403,
                request_id=request_id,
                retry_after=retry_after,
            )
            outcome = "rate-limited"
        else:
            result = self._authenticate(request, presented, now=now)
            if result.ok:
                response = self._accepted(result, route=route, now=now, request_id=request_id)
                outcome = "ok"
            else:
                self.limiter.record_failure(limit_key, factor=result.factor or "", now=time.monotonic())
                response = self._denied(
                    result, status=STATUS_OF_FACTOR.get(result.factor or "", 401), request_id=request_id
                )
                outcome = "denied"
        self.metrics.count(route, outcome, result.factor or "")
        self.metrics.observe(route, time.perf_counter() - started)
        if self.audit is not None and not (
            outcome != "ok"
            and self.repeats.hold(
                (source, presented.thumbprint, route, outcome, result.factor or ""), now=time.monotonic()
            )
        ):
            # The same line json.dumps(record, separators=(",", ":")) writes, without building
            # the dict: time, requestId, route and result are ours (digits, hex, fixed words) and
            # need no escaping; every other value goes through json's own string escaper
            # (`null` for None), inline because a helper call per field costs as much again.
            esc = encode_basestring_ascii
            factor, name, namespace, thumbprint = (
                result.factor,
                result.name,
                result.namespace,
                result.thumbprint,
            )
            self.audit.write_line(
                f'{{"time":"{self._audit_time.format(now)}","requestId":"{request_id}",'
                f'"route":"{route}","result":"{outcome}",'
                f'"factor":{"null" if factor is None else esc(factor)},'
                f'"message":{esc(result.message)},'
                f'"peer":{"null" if name is None else esc(name)},'
                f'"namespace":{"null" if namespace is None else esc(namespace)},'
                f'"thumbprint":{"null" if thumbprint is None else esc(thumbprint)},'
                f'"remote":{esc(remote)},"source":{esc(source)},'
                f'"method":{esc(request.method[:_MAX_METHOD])},"path":{esc(request.path[:_MAX_PATH])}}}\n'
            )
        return response

    def write_repeats(self, summaries: list[Summary]) -> None:
        """One line per kind of failure that repeated within its interval, with the count."""
        if self.audit is None:
            return
        esc = encode_basestring_ascii
        moment = self._audit_time.format(self.clock())
        for summary in summaries:
            source, thumbprint, route, outcome, factor = summary.kind
            self.audit.write_line(
                f'{{"time":"{moment}","route":"{route}","result":"{outcome}",'
                f'"factor":{esc(factor)},"thumbprint":{"null" if thumbprint is None else esc(thumbprint)},'
                f'"source":{esc(source)},"repeated":{summary.count},'
                f'"seconds":{round(summary.seconds, 3)}}}\n'
            )

    async def summarise_repeats(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: write due summaries every interval; the rest at shutdown."""

        async def every_interval() -> None:
            while True:
                await asyncio.sleep(self.config.audit_repeat_interval_seconds)
                self.write_repeats(self.repeats.due(now=time.monotonic()))

        task = asyncio.create_task(every_interval(), name="audit-repeats")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self.write_repeats(self.repeats.drain(now=time.monotonic()))

    def _accepted(self, result: AuthResult, *, route: str, now: datetime, request_id: str) -> web.Response:
        namespace, name = result.namespace or "", result.name or ""
        if route == _ROUTE_AUTH:
            return web.Response(
                status=200,
                headers={
                    api.HEADER_PEER: name,
                    api.HEADER_NAMESPACE: namespace,
                    HEADER_REQUEST_ID: request_id,
                },
            )
        reply = PingReply(
            ok=True,
            site=self.config.site,
            peer={"name": name, "namespace": namespace},
            time=rfc3339(now),
            link=self.index.link_view(namespace, name),
        )
        return web.json_response(reply, headers={HEADER_REQUEST_ID: request_id})

    def _denied(
        self, result: AuthResult, *, status: int, request_id: str, retry_after: float | None = None
    ) -> web.Response:
        factor = result.factor or Factor.CERTIFICATE
        reply = DeniedReply(ok=False, factor=factor, message=result.message)
        headers = {HEADER_FACTOR: factor, HEADER_REQUEST_ID: request_id}
        if retry_after is not None:
            seconds = max(1, round(retry_after + 0.5))
            reply["retryAfterSeconds"] = seconds
            headers["Retry-After"] = str(seconds)
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="federation"'
        return web.json_response(reply, status=status, headers=headers)

    async def ping(self, request: web.Request) -> web.Response:
        return await self._decide(request, _ROUTE_PING)

    async def forward_auth(self, request: web.Request) -> web.Response:
        return await self._decide(request, _ROUTE_AUTH)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.index.synced:
            return web.json_response({"ok": True})
        return web.json_response({"ok": False, "message": "peer index not synced yet"}, status=503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


# The public app's handlers object, for the ops app that serves its metrics and readiness.
_SERVER: Final = web.AppKey("federation-server", _Server)


def create_app(
    *,
    index: PeerIndex,
    config: AppConfig,
    audit: AuditLog | None = None,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], datetime] = _utc_now,
) -> web.Application:
    server = _Server(
        index=index, config=config, audit=audit, registry=registry or CollectorRegistry(), clock=clock
    )
    app = web.Application()
    app.router.add_get(api.PING_PATH, server.ping)
    # Envoy's ext_authz appends the original path to the auth path; any method, any tail.
    app.router.add_route("*", api.FORWARD_AUTH_PATH, server.forward_auth)
    app.router.add_route("*", api.FORWARD_AUTH_PATH + "/{tail:.*}", server.forward_auth)
    app.router.add_get(HEALTH_PATH, server.healthz)
    app.cleanup_ctx.append(server.summarise_repeats)
    app[_SERVER] = server
    return app


def create_ops_app(public: web.Application) -> web.Application:
    """/metrics, /readyz and /healthz of the server behind `public`, for a port of their own that
    the NetworkPolicy keeps in-cluster: request counts by factor and readiness are nobody's
    business on the internet-facing listeners (issue #13)."""
    server = public[_SERVER]
    app = web.Application()
    app.router.add_get(HEALTH_PATH, server.healthz)
    app.router.add_get(READY_PATH, server.readyz)
    app.router.add_get(METRICS_PATH, server.metrics_page)
    return app


def make_ops_runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(app, access_log=None)


def make_runner(app: web.Application, *, limits: ConnectionLimits | None = None) -> web.AppRunner:
    """A runner with our header and connection limits (server/protocol.py) and without aiohttp's
    access log (the audit log is ours)."""
    return BoundedAppRunner(
        app,
        limits=limits or ConnectionLimits(),
        access_log=None,
        max_line_size=MAX_LINE_SIZE,
        max_field_size=MAX_FIELD_SIZE,
        max_headers=MAX_HEADERS,
    )
