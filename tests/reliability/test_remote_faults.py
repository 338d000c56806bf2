"""Misbehaving remotes against the real probe: each ping ends in bounded time and memory, with the
right failure factor.

Every remote is a few lines of asyncio on 127.0.0.1 with real sockets (and real TLS where the
misbehaviour comes after the handshake), so that what the probe meets is what a broken or hostile
server would send.
"""

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from federation_operator.adapters.probe import Pinger, PingOutcome, TlsMaterial, shared_ssl_context
from federation_operator.domain import certs, tokens

TIME_LIMIT = 1.0
# A ping may overrun its limit by the cleanup of one connection, never by another round trip.
SLACK = 0.5
TEN_MB = 10 * 1024 * 1024
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True)
class ServerIdentity:
    ca_pem: str
    context: ssl.SSLContext


def server_identity(directory: Path, name: str) -> ServerIdentity:
    identity = certs.issue_server_identity(
        common_name=f"{name} remote",
        hosts=["127.0.0.1"],
        validity=timedelta(days=1),
        now=certs.utcnow(),
    )
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    cert.write_text(identity.cert_pem)
    key.write_bytes(identity.key_pem.reveal())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return ServerIdentity(ca_pem=identity.ca_pem, context=context)


@pytest.fixture
def trusted(tmp_path: Path) -> ServerIdentity:
    return server_identity(tmp_path, "trusted")


@pytest.fixture
def material(trusted: ServerIdentity) -> TlsMaterial:
    issued = certs.issue_certificate(subject="eu", validity=timedelta(days=1), now=certs.utcnow())
    return TlsMaterial(cert_pem=issued.info.pem, key_pem=issued.key_pem, ca_pem=trusted.ca_pem)


@contextlib.asynccontextmanager
async def remote(handler: Handler, *, tls: ssl.SSLContext | None) -> AsyncIterator[str]:
    """Serve `handler` on 127.0.0.1; yields the endpoint URL (always https://: the probe's view)."""
    connections: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            connections.discard(task)
            writer.close()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def timed_ping(endpoint: str, material: TlsMaterial) -> tuple[PingOutcome, float]:
    """One ping, and how long it took less how late this machine ran a reference timer set for
    the time limit. On a loaded machine every timer fires late (a trickling remote's ping was
    measured at 1.57 s under the 1.5 s bound); that is the machine's lateness, not an overrun of
    the probe. The reference runs in a thread of its own, so a probe that held the event loop
    would not excuse itself."""
    pinger = Pinger()
    fired: list[float] = []
    reference = threading.Timer(TIME_LIMIT, lambda: fired.append(time.monotonic()))
    started = time.monotonic()
    reference.start()
    try:
        outcome = await pinger.ping(
            endpoint=endpoint,
            material=material,
            token=tokens.generate_token(),
            header=None,
            time_limit=TIME_LIMIT,
        )
    finally:
        await pinger.aclose()
    ended = time.monotonic()
    reference.cancel()
    late = max(0.0, fired[0] - started - TIME_LIMIT) if fired else 0.0
    return outcome, ended - started - late


def factor_of(outcome: PingOutcome) -> str:
    assert not outcome.ok
    assert outcome.failure is not None
    assert outcome.failure.message, "a failure always says what happened"
    return outcome.failure.factor


async def test_a_remote_that_hangs_after_the_handshake_is_a_timeout(
    trusted: ServerIdentity, material: TlsMaterial
) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.Event().wait()

    async with remote(hang, tls=trusted.context) as endpoint:
        outcome, elapsed = await timed_ping(endpoint, material)
    assert factor_of(outcome) == "Timeout"
    assert elapsed < TIME_LIMIT + SLACK


async def test_a_remote_that_sends_headers_slowly_is_a_timeout(
    trusted: ServerIdentity, material: TlsMaterial
) -> None:
    """Each byte comes well within any per-read timeout; only a limit on the whole exchange holds."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"a" * 1000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    async with remote(trickle, tls=trusted.context) as endpoint:
        outcome, elapsed = await timed_ping(endpoint, material)
    assert factor_of(outcome) == "Timeout"
    assert elapsed < TIME_LIMIT + SLACK


async def test_a_remote_that_resets_the_connection_is_a_network_failure(material: TlsMaterial) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        # SO_LINGER 0: close() sends RST instead of FIN, as a crashing or filtering remote does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async with remote(reset, tls=None) as endpoint:
        outcome, elapsed = await timed_ping(endpoint, material)
    assert factor_of(outcome) == "Network"
    assert outcome.failure is not None
    assert "reset" in outcome.failure.message or "closed" in outcome.failure.message
    assert elapsed < TIME_LIMIT + SLACK


async def test_a_ten_megabyte_reply_is_cut_off_as_http_and_memory_stays_low(
    trusted: ServerIdentity, material: TlsMaterial
) -> None:
    chunk = b"x" * 65536

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n" % TEN_MB)
        for _ in range(TEN_MB // len(chunk)):
            writer.write(chunk)
            await writer.drain()

    async with remote(flood, tls=trusted.context) as endpoint:
        tracemalloc.start()
        try:
            outcome, elapsed = await timed_ping(endpoint, material)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert factor_of(outcome) == "HTTP"
    assert outcome.failure is not None
    assert "exceeded" in outcome.failure.message
    # Peak of everything this process allocated meanwhile (the remote included): far below 10 MB.
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"
    assert elapsed < TIME_LIMIT + SLACK


async def reply_with(status_line: bytes, body: bytes, *extra_headers: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        headers = [status_line, b"Content-Length: %d" % len(body), b"Connection: close", *extra_headers]
        writer.write(b"\r\n".join(headers) + b"\r\n\r\n" + body)
        await writer.drain()

    return handler


async def test_invalid_json_in_a_200_is_green_without_a_remote_view(
    trusted: ServerIdentity, material: TlsMaterial
) -> None:
    """Any 2xx is green (DESIGN.md); the reply's fields are an optional extension."""
    handler = await reply_with(b"HTTP/1.1 200 OK", b'{"ok": tru', b"Content-Type: application/json")
    async with remote(handler, tls=trusted.context) as endpoint:
        outcome, elapsed = await timed_ping(endpoint, material)
    assert outcome.ok, outcome.failure
    assert outcome.reply is None
    assert elapsed < TIME_LIMIT + SLACK


async def test_a_redirect_is_not_followed_and_is_an_http_failure(
    trusted: ServerIdentity, material: TlsMaterial
) -> None:
    followed = asyncio.Event()

    async def target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        followed.set()

    async with remote(target, tls=trusted.context) as elsewhere:
        handler = await reply_with(
            b"HTTP/1.1 307 Temporary Redirect",
            b"",
            b"Location: " + elsewhere.encode() + b"/api/federation/ping",
        )
        async with remote(handler, tls=trusted.context) as endpoint:
            outcome, elapsed = await timed_ping(endpoint, material)
    assert factor_of(outcome) == "HTTP"
    assert outcome.failure is not None
    assert "not followed" in outcome.failure.message
    assert not followed.is_set()
    assert elapsed < TIME_LIMIT + SLACK


async def test_plain_http_on_the_tls_port_is_a_tls_failure(material: TlsMaterial) -> None:
    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # What nginx or any HTTP/1.1 server does with a ClientHello: no request line, so 400.
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()

    async with remote(plain_http, tls=None) as endpoint:
        outcome, elapsed = await timed_ping(endpoint, material)
    assert factor_of(outcome) == "TLS"
    assert elapsed < TIME_LIMIT + SLACK


async def test_an_untrusted_server_certificate_is_a_tls_failure(
    tmp_path: Path, material: TlsMaterial
) -> None:
    stranger = server_identity(tmp_path, "stranger")
    handler = await reply_with(b"HTTP/1.1 200 OK", b'{"ok": true}')
    async with remote(handler, tls=stranger.context) as endpoint:
        outcome, elapsed = await timed_ping(endpoint, material)
    assert factor_of(outcome) == "TLS"
    assert outcome.failure is not None
    assert "verification" in outcome.failure.message
    assert elapsed < TIME_LIMIT + SLACK


def test_pingers_presenting_the_same_certificate_share_one_ssl_context(material: TlsMaterial) -> None:
    """Found by hack/bench_scale.py: a context per peer cost ~0.8 MiB each (GiBs at 10k peers)."""
    first, second = shared_ssl_context(material), shared_ssl_context(material)
    assert first is second
    other = certs.issue_certificate(subject="us", validity=timedelta(days=1), now=certs.utcnow())
    different = TlsMaterial(cert_pem=other.info.pem, key_pem=other.key_pem, ca_pem=material.ca_pem)
    assert shared_ssl_context(different) is not first
