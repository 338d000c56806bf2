"""The federation server's HTTP surface (aiohttp): ping, forward-auth, health, readiness, metrics.

Every inbound call goes through `_Server._answer`: read the request (the real client address,
the presented certificate, the Authorization header), let `decision.decide` judge it, then
answer, count (`metrics`) and audit (`audit`). The status codes are the decision's.
"""

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from federation_operator.domain import api
from federation_operator.domain.factors import Factor
from federation_operator.domain.times import rfc3339
from federation_operator.domain.wire import HEADER_FACTOR, HEADER_REQUEST_ID, DeniedReply, PingReply
from federation_operator.server.audit import AuditLog, audit_time, decision_line, repeat_line
from federation_operator.server.clientcert import CertSource, CertSourceConfig, Presented, resolve
from federation_operator.server.decision import ROUTE_AUTH, ROUTE_PING, decide
from federation_operator.server.index import AuthResult, PeerIndex
from federation_operator.server.metrics import RequestMetrics
from federation_operator.server.protocol import BoundedAppRunner, ConnectionLimits
from federation_operator.server.ratelimit import FailureLimiter
from federation_operator.server.repeats import DEFAULT_INTERVAL_SECONDS, Repeats, Summary
from federation_operator.server.request_ids import RequestIds

HEALTH_PATH: Final = "/healthz"
READY_PATH: Final = "/readyz"
METRICS_PATH: Final = "/metrics"
# aiohttp's request-parser limits: a forwarded PEM (XFCC, ssl-client-cert) of an RSA-3072 leaf is
# ~3 KiB URL-encoded; anything beyond these gets a 4xx from the parser, never reaches us.
MAX_LINE_SIZE: Final = 8190
MAX_FIELD_SIZE: Final = 32768
MAX_HEADERS: Final = 64

# An X-Forwarded-For hop is an address; anything longer is cut before it keys a bucket or an audit line.
_MAX_SOURCE: Final = 64
# The default clock, called per request: a partial is one Python frame less than a lambda.
_utc_now: Final = functools.partial(datetime.now, UTC)


@dataclass(frozen=True)
class AppConfig:
    site: str
    cert_sources: CertSourceConfig = field(default_factory=CertSourceConfig)
    rate_limit_burst: int = 20
    rate_limit_window_seconds: float = 60.0
    # Repeated failures of one kind from one source are written once per interval, then counted.
    audit_repeat_interval_seconds: float = DEFAULT_INTERVAL_SECONDS


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
        self.metrics = RequestMetrics()
        registry.register(self.metrics)
        self.clock = clock
        self.limiter = FailureLimiter(
            burst=config.rate_limit_burst, window_seconds=config.rate_limit_window_seconds
        )
        self.header_names = config.cert_sources.header_names
        # Behind a proxy only (no direct mode) our own handshake's certificate is never used.
        self._direct = CertSource.DIRECT in config.cert_sources.sources
        self._request_ids = RequestIds()
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

    async def _answer(self, request: web.Request, route: str) -> web.Response:
        started = time.perf_counter()
        now = self.clock()
        request_id = self._request_ids.next()
        remote = request.remote or ""
        source = self._source(request, remote)
        presented = self._presented(request, remote, now)
        monotonic = time.monotonic()
        decision = decide(
            index=self.index,
            limiter=self.limiter,
            presented=presented,
            authorization=request.headers.get("Authorization"),
            source=source,
            route=route,
            now=now,
            monotonic=monotonic,
        )
        result, outcome = decision.result, decision.outcome
        if outcome == "ok":
            response = self._accepted(result, route=route, now=now, request_id=request_id)
        else:
            response = self._denied(
                result, status=decision.status, request_id=request_id, retry_after=decision.retry_after
            )
        factor = result.factor or ""
        self.metrics.count(route, outcome, factor)
        self.metrics.observe(route, time.perf_counter() - started)
        if self.audit is not None and not (
            outcome != "ok"
            and self.repeats.hold((source, presented.thumbprint, route, outcome, factor), now=monotonic)
        ):
            self.audit.write_line(
                decision_line(
                    time=audit_time(now),
                    request_id=request_id,
                    route=route,
                    outcome=outcome,
                    result=result,
                    remote=remote,
                    source=source,
                    method=request.method,
                    path=request.path,
                )
            )
        return response

    def write_repeats(self, summaries: list[Summary]) -> None:
        """One line per kind of failure that repeated within its interval, with the count."""
        if self.audit is None:
            return
        moment = audit_time(self.clock())
        for summary in summaries:
            self.audit.write_line(repeat_line(time=moment, summary=summary))

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
        if route == ROUTE_AUTH:
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
        return await self._answer(request, ROUTE_PING)

    async def forward_auth(self, request: web.Request) -> web.Response:
        return await self._answer(request, ROUTE_AUTH)

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
