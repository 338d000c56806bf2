"""The federation server's HTTP connections: terse refusals and bounds for callers nobody vetted.

Anyone on the internet reaches the listener before any factor is checked, so what a connection
may cost us is bounded here, below the application:

- a request aiohttp's parser cannot read (a folded header line, a 0x7f in a value, an oversized
  field) gets one fixed JSON 400 and a one-line log naming the error class. aiohttp's own reply
  and its ERROR traceback quote the offending header line, which may be `Authorization: Bearer
  <token>` (issue #13: the token came back in the body and in the log);
- the bytes of one request (request line, headers, any body) are capped, a request's headers must
  arrive within `header_timeout` of its first byte (slowloris), an idle keep-alive connection is
  closed after `keepalive_timeout` (aiohttp's own timer, which also runs before the first
  request), and at most `max_connections` are open at once: a connection arriving at the cap
  closes the oldest one that has no request in progress (so idle or stalled connections cannot
  hold every slot and lock real peers out), or itself if every other one is busy.

So the memory unauthenticated callers can pin is at most about max_connections x max_request_bytes.

aiohttp builds one `RequestHandler` per connection inside `web.Server.__call__`; the only way to
give it other behaviour is a subclass made there. That reaches into `Server._kwargs` and
`Server._loop` (aiohttp 3.14, pinned in requirements/): tests/integration/test_trust_boundaries.py
fails if an upgrade changes what these hooks see.
"""

import asyncio
import asyncio.sslproto
import logging
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

logger = logging.getLogger(__name__)

_FIXED_400: Final = b'{"ok":false,"message":"malformed HTTP request"}'


def _raw_reply(status: int, reason: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_TOO_LARGE: Final = _raw_reply(
    431, "Request Header Fields Too Large", b'{"ok":false,"message":"request too large"}'
)
_TOO_SLOW: Final = _raw_reply(408, "Request Timeout", b'{"ok":false,"message":"request headers too slow"}')


@dataclass(frozen=True)
class ConnectionLimits:
    """What one caller may cost before any factor is checked; defaults are safe on the internet.

    A forwarded client certificate (XFCC, `ssl-client-cert`) of an RSA-3072 leaf is ~3 KiB
    URL-encoded, and a real ping's headers are a few hundred bytes: 64 KiB leaves a wide margin.
    """

    max_request_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    max_connections: int = 1024
    # Before the TLS handshake (direct-TLS listener only, server/admission.py). A remote site
    # pings once per link every 30 s: 20 new connections per second per address is 600 links
    # behind one address. No one address may hold more than an eighth of the handshake slots.
    handshake_timeout: float = 10.0
    max_handshakes: int = 128
    max_handshakes_per_source: int = 16
    connection_rate: float = 20.0  # per second per source address; 0 = no per-source limit
    connection_burst: int = 40


# asyncio gives every TLS connection a 256 KiB read buffer (`SSLProtocol.max_size`), so idle TLS
# connections cost memory before a byte of HTTP. Reads of 32 KiB are plenty for requests
# capped at 64 KiB (docs/benchmarks.md, hostile callers).
TLS_READ_BUFFER: Final = 32 * 1024


def limit_tls_read_buffer() -> None:
    """Shrink asyncio's per-connection TLS read buffer for this process (the `serve` command:
    a process-wide stdlib setting, so only the process that is the federation server sets it)."""
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


class _BoundedHandler(RequestHandler):
    def __init__(self, manager: "_BoundedServer", **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = manager.limits
        self._request_bytes = 0  # of the request being received, before its headers are parsed
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        manager = self._manager
        super().connection_made(transport)
        if isinstance(manager, _BoundedServer) and len(manager.connections) > self._limits.max_connections:
            manager.refused += 1
            victim = next(
                (
                    handler
                    for handler in manager.connections  # oldest first (insertion order)
                    if handler is not self and isinstance(handler, _BoundedHandler) and handler.idle
                ),
                self,
            )
            victim.drop()

    @property
    def idle(self) -> bool:
        """No request being handled: waiting for one, or still receiving its headers."""
        return self._current_request is None

    def drop(self) -> None:
        self._cancel_header_deadline()
        self.force_close()
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._force_close or self._close:
            return
        if self._request_bytes == 0 and self._header_deadline is None:
            self._header_deadline = self._loop.call_later(self._limits.header_timeout, self._too_slow)
        self._request_bytes += len(data)
        if self._request_bytes > self._limits.max_request_bytes:
            self._refuse(_TOO_LARGE, "request over %d bytes", self._limits.max_request_bytes)
            return
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:
            # A request's headers are complete: the next request starts its own count and clock.
            self._request_bytes = 0
            self._cancel_header_deadline()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # Neither `message` nor `exc` is logged or sent: both quote the raw header line.
        logger.info("refused a request from %s: HTTP %d (%s)", request.remote, status, type(exc).__name__)
        response = web.Response(status=status, body=_FIXED_400 if status < 500 else b'{"ok":false}')
        response.content_type = "application/json"
        response.force_close()
        return response

    def _too_slow(self) -> None:
        self._header_deadline = None
        self._refuse(_TOO_SLOW, "request headers not complete within %.0f s", self._limits.header_timeout)

    def _refuse(self, reply: bytes, why: str, limit: float) -> None:
        self._cancel_header_deadline()
        logger.info("closed a connection: " + why, limit)
        if self.transport is not None:
            self.transport.write(reply)
        self.drop()

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None


class _BoundedServer(web.Server):
    """aiohttp's per-listener connection factory, building `_BoundedHandler`s."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.refused = 0

    def __call__(self) -> RequestHandler:
        return _BoundedHandler(self, loop=self._loop, **self._kwargs)


class BoundedAppRunner(web.AppRunner):
    """An AppRunner whose connections are `_BoundedHandler`s with `limits`."""

    def __init__(self, app: web.Application, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=limits.keepalive_timeout, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return _BoundedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            limits=self._limits,
            **plain._kwargs,
        )
