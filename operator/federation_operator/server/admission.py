"""Admission on the direct-TLS listener: which accepted TCP connections may start a TLS handshake.

A TLS handshake is the most expensive thing an unauthenticated caller can make us do (a key
exchange and a signature), and a caller reconnecting in a tight loop makes hundreds per second
(hack/bench_hostile.py, the flood variant; figures in docs/benchmarks.md). asyncio starts the
handshake inside `create_server` as soon as it accepts, before any code of ours sees the
connection, so the listener here accepts plain TCP and decides first, per connection:

- a source address that opened more than `connection_burst` connections, refilling at
  `connection_rate` per second, is closed at once: no TLS byte is read or written (IPv6 sources
  are counted per /64, which one host can hold whole);
- at most `max_handshakes` handshakes are in progress at once, and at most
  `max_handshakes_per_source` of one source (so one address cannot fill every slot and lock real
  peers out); a connection beyond either is closed at once too (like a full listen backlog: the
  caller may retry);
- a handshake not finished within `handshake_timeout` is aborted (asyncio's default is 60 s).

Only then does it hand the connection to asyncio's TLS protocol and aiohttp's request handler
(server/protocol.py bounds what follows). The per-source limit belongs on this listener only:
behind a proxy (the plain-HTTP listener) every connection comes from the proxy.

When many connections have come and gone, glibc keeps the freed memory in its heap, and the
process stays above its baseline long after an attack (docs/benchmarks.md); once the open
connections have fallen to a quarter of their high-water mark, `malloc_trim` hands it back.

This builds `asyncio.sslproto.SSLProtocol` itself (what `loop.create_server(ssl=...)` does
inside, Python 3.11-3.13); tests/integration/test_trust_boundaries.py fails if that stops working.
"""

import asyncio
import asyncio.sslproto
import ctypes
import ctypes.util
import ipaddress
import logging
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

from federation_operator.server.protocol import ConnectionLimits
from federation_operator.server.ratelimit import ArrivalLimiter

logger = logging.getLogger(__name__)

# Below this many open connections at the high-water mark, a trim is not worth a syscall.
_TRIM_HIGH_WATER = 64


def source_of(peername: Any) -> str:
    """The key a connection's arrivals are counted under: the IPv4 address, or the IPv6 /64."""
    host = peername[0] if isinstance(peername, tuple) and peername else str(peername)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return str(host)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _malloc_trim() -> Callable[[], None]:
    """glibc's `malloc_trim(0)`, or a no-op where the C library has none (musl)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> None:
        trim(0)

    return release


class Admission:
    """The decisions and counts of one listener (one per process and port)."""

    def __init__(
        self,
        *,
        limits: ConnectionLimits,
        clock: Callable[[], float],
        release_memory: Callable[[], None] | None = None,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._arrivals = (
            ArrivalLimiter(rate=limits.connection_rate, burst=limits.connection_burst)
            if limits.connection_rate > 0
            else None
        )
        self._release_memory = release_memory or _malloc_trim()
        self.handshaking: dict[asyncio.Transport, str] = {}  # -> source
        self._handshakes_by_source: dict[str, int] = {}
        self.open = 0
        self._high_water = 0
        self.refused_rate = 0
        self.refused_handshakes = 0

    def admit(self, source: str) -> str | None:
        """None to go ahead, else why the connection is refused (for the log)."""
        if self._arrivals is not None and not self._arrivals.admit(source, now=self._clock()):
            self.refused_rate += 1
            return "connection rate"
        if (
            len(self.handshaking) >= self.limits.max_handshakes
            or self._handshakes_by_source.get(source, 0) >= self.limits.max_handshakes_per_source
        ):
            self.refused_handshakes += 1
            return "handshakes in progress"
        return None

    def handshake_started(self, transport: asyncio.Transport, source: str) -> None:
        self.handshaking[transport] = source
        self._handshakes_by_source[source] = self._handshakes_by_source.get(source, 0) + 1

    def handshake_over(self, transport: asyncio.Transport) -> None:
        source = self.handshaking.pop(transport, None)
        if source is None:
            return
        left = self._handshakes_by_source.pop(source) - 1
        if left:
            self._handshakes_by_source[source] = left

    def opened(self) -> None:
        self.open += 1
        self._high_water = max(self._high_water, self.open)

    def closed(self) -> None:
        self.open -= 1
        if self._high_water >= _TRIM_HIGH_WATER and self.open * 4 <= self._high_water:
            self._high_water = self.open
            self._release_memory()

    def close(self) -> None:
        for transport in list(self.handshaking):
            transport.abort()


class _CountedTLS(asyncio.sslproto.SSLProtocol):
    def __init__(self, *args: Any, admission: Admission, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._admission = admission

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._admission.closed()


class _Gate(asyncio.Protocol):
    """The first protocol of every accepted connection: refuse it, or hand it to TLS + HTTP."""

    def __init__(
        self, *, admission: Admission, context: ssl.SSLContext, app_factory: Callable[[], asyncio.Protocol]
    ) -> None:
        self._admission = admission
        self._context = context
        self._app_factory = app_factory

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        source = source_of(transport.get_extra_info("peername"))
        refused = self._admission.admit(source)
        if refused is not None:
            logger.debug("refused a connection before TLS (%s)", refused)
            transport.abort()
            return
        loop = asyncio.get_running_loop()
        handshake: asyncio.Future[None] = loop.create_future()
        admission = self._admission
        admission.handshake_started(transport, source)
        admission.opened()

        def handshake_over(future: asyncio.Future[None]) -> None:
            admission.handshake_over(transport)
            if not future.cancelled():
                future.exception()  # retrieved: a failed handshake is the caller's problem, not ours

        handshake.add_done_callback(handshake_over)
        tls = _CountedTLS(
            loop,
            self._app_factory(),
            self._context,
            handshake,
            server_side=True,
            ssl_handshake_timeout=admission.limits.handshake_timeout,
            admission=admission,
        )
        transport.set_protocol(tls)
        tls.connection_made(transport)


class AdmittedTLSSite(web.TCPSite):
    """aiohttp's TCPSite with `Admission` in front of the TLS handshake."""

    __slots__ = ("admission",)

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        limits: ConnectionLimits,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=backlog)
        self.admission = Admission(limits=limits, clock=asyncio.get_running_loop().time)

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site; TCPSite.start would listen with TLS
        loop = asyncio.get_running_loop()
        app_factory = self._runner.server
        context = self._ssl_context
        assert app_factory is not None
        assert context is not None
        self._server = await loop.create_server(
            lambda: _Gate(admission=self.admission, context=context, app_factory=app_factory),
            self._host,
            self._port,
            backlog=self._backlog,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await super().stop()
        self.admission.close()
