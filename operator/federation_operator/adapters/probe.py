"""One heartbeat ping over the network: `GET {endpoint}/api/federation/ping` with both factors.

Why this module: it is the only heartbeat code that opens sockets, so everything a ping must
guarantee is visible in one place:
- a fresh TCP connection and a full TLS handshake on every ping (`Connection: close`, and
  Python's `ssl` never resumes a session unless asked to), so a pin change on the remote shows on
  the next ping;
- our client certificate (the FederationCert named by `clientCertificateRef`) is loaded into an
  `ssl.SSLContext`; the key goes through an anonymous memory file (`memfd`), or a 0600 file in a
  private temp dir where memfd is missing, and is gone right after loading;
- the remote's *server* certificate is verified per `spec.serverTrust`;
- the token travels as `Authorization: Bearer` or the raw value of the header the peer names;
- no redirects, no proxies from the environment, a bounded reply (headers and body), and
  `asyncio.timeout` around the whole exchange so a ping never outlives its timeout.

Why asyncio streams and h11 rather than an HTTP client library: a ping is one GET on a connection
used once, and with many peers the client's own bookkeeping (pools, locks, cancel scopes,
request and URL models) cost more CPU than the handshake (docs/benchmarks.md, the heartbeat). h11
is the HTTP/1.1 state machine httpx itself is built on: it writes the request (rejecting a header
that would break it) and parses the reply (Content-Length, chunked, or until close), so nothing
here parses HTTP by hand.

The SSL context is shared by every peer presenting the same material and reused across pings (a
context per ping would re-parse the system CA store every 30 s for every peer); no connection
outlives a ping.
"""

import asyncio
import contextlib
import errno
import os
import ssl
import tempfile
import time
import urllib.parse
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

import h11

from federation_operator import __version__
from federation_operator.domain import api
from federation_operator.domain.certs import SecretBytes
from federation_operator.domain.factors import Factor
from federation_operator.domain.probe_classify import (
    RemoteView,
    Stage,
    TransportProblem,
    classify_reply,
    classify_transport,
    read_ping_reply,
)
from federation_operator.domain.reachability import Failure
from federation_operator.domain.tokens import SecretText
from federation_operator.domain.wire import HEADER_FACTOR

MAX_REPLY_BYTES: Final = 64 * 1024
# The status line and headers of a reply; h11 refuses more (factor HTTP).
MAX_HEADER_BYTES: Final = 16 * 1024
READ_BYTES: Final = 16 * 1024
# How long closing a connection may wait for the remote's TLS close_notify, in the background.
SHUTDOWN_SECONDS: Final = 5.0
USER_AGENT: Final = f"federation-operator/{__version__}"
_FACTOR_HEADER: Final = HEADER_FACTOR.lower().encode("ascii")
# How long the follow-up handshake waits for an alert (see `_listen_for_alert`); on loopback or a
# WAN the alert follows the handshake within one round trip.
ALERT_WAIT_SECONDS: Final = 1.0


@dataclass(frozen=True)
class TlsMaterial:
    """What shapes the SSL context. `identity` changes whenever any of it does."""

    cert_pem: str
    key_pem: SecretBytes
    ca_pem: str | None = None  # None: the system CAs
    insecure: bool = False

    @property
    def identity(self) -> tuple[str, str | None, bool, int]:
        # The key is identified by a hash of itself only inside this process, never shown.
        return (self.cert_pem, self.ca_pem, self.insecure, hash(self.key_pem.reveal()))


@dataclass(frozen=True)
class PingOutcome:
    ok: bool
    latency: timedelta
    failure: Failure | None = None
    # What a green reply's optional fields said about the link (`status.remote`); None when the
    # remote sent none we can use (another implementation owes us no body).
    reply: RemoteView | None = None


@contextlib.contextmanager
def _key_file(material: TlsMaterial) -> Iterator[str]:
    """A path OpenSSL can read the certificate and key from, that exists only inside this block."""
    payload = material.cert_pem.encode("ascii").rstrip(b"\n") + b"\n" + material.key_pem.reveal()
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd = memfd_create("federation-client-cert", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, payload)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="federation-") as directory:  # created 0700
        path = Path(directory) / "client.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, payload)
        finally:
            os.close(fd)
        yield str(path)


def trust_context(*, ca_pem: str | None, insecure: bool) -> ssl.SSLContext:
    """A client context that verifies the remote's server certificate (and presents nothing yet)."""
    if insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_pem is not None:
        context = ssl.create_default_context(cadata=ca_pem)
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def build_ssl_context(material: TlsMaterial) -> ssl.SSLContext:
    context = trust_context(ca_pem=material.ca_pem, insecure=material.insecure)
    with _key_file(material) as path:
        try:
            context.load_cert_chain(path)
        except ssl.SSLError as error:
            # OpenSSL's message names no file content; the path is an anonymous fd.
            raise ValueError(f"client certificate and key do not load: {error.reason or 'invalid'}") from None
    return context


def _describe(error: BaseException, stage: Stage = "other") -> TransportProblem:
    """Walk the exception chain for what OpenSSL and the OS said; keep only names, never payloads."""
    if isinstance(error, TimeoutError):
        return TransportProblem(stage="timeout")
    if isinstance(error, h11.RemoteProtocolError):
        return TransportProblem(stage="protocol", detail="malformed or incomplete HTTP reply")
    ssl_reason: str | None = None
    verify_message: str | None = None
    errno_name: str | None = None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            verify_message = str(current.verify_message or current.reason or "verification failed")
        elif isinstance(current, ssl.SSLError) and current.reason:
            ssl_reason = ssl_reason or str(current.reason)
        elif isinstance(current, OSError) and current.errno:
            errno_name = errno_name or errno.errorcode.get(current.errno)
        current = current.__cause__ or current.__context__
    return TransportProblem(
        stage=stage,
        ssl_reason=ssl_reason,
        verify_message=verify_message,
        errno_name=errno_name,
        detail=type(error).__name__,
    )


def _after_handshake_without_alert(problem: TransportProblem) -> bool:
    """A reset or close after our side finished the handshake, with no TLS alert read.

    With TLS 1.3 the server checks our certificate after the client considers the handshake
    done; it sends an alert and closes, and since our request is already in its receive buffer
    the close becomes a TCP reset that can overtake the alert. The classic symptom of "the remote
    does not pin us" would then read as a network error.
    """
    return problem.stage in {"read", "write"} and problem.ssl_reason is None


async def _listen_for_alert(target: "Target", context: ssl.SSLContext) -> TransportProblem | None:
    """Handshake again and send nothing, to learn what the remote thinks of our certificate.

    An alert now arrives without a reset racing it. A remote that closes at once while we have
    sent nothing has refused the handshake after the fact (asyncio-based servers, ours included,
    close without flushing the alert), and after a TLS 1.3 client's Finished the only thing left
    to refuse is our certificate. A healthy server waits for the request instead. None when
    nothing conclusive happened.
    """
    try:
        reader, writer = await target.connect(context)
    except (OSError, ssl.SSLError) as error:
        described = _describe(error, "connect")
        return described if described.ssl_reason is not None else None
    try:
        data = await asyncio.wait_for(reader.read(1), timeout=ALERT_WAIT_SECONDS)
    except (OSError, ssl.SSLError) as error:
        described = _describe(error, "read")
        if described.ssl_reason is not None:
            return described
        return TransportProblem("refused-after-handshake")
    except TimeoutError:
        return None
    finally:
        writer.transport.abort()
    return TransportProblem("refused-after-handshake") if data == b"" else None


@dataclass(frozen=True)
class Target:
    """Where a ping goes: `spec.endpoint` split once into what the socket and the request need."""

    host: str
    port: int
    authority: str  # the Host header: host[:port] as written in the endpoint
    path: str  # the ping path under the endpoint's path

    @classmethod
    def of(cls, endpoint: str) -> "Target":
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the endpoint must be an https:// URL with a host")
        return cls(
            host=parts.hostname,
            port=parts.port or 443,
            authority=parts.netloc.rpartition("@")[2],
            path=parts.path.rstrip("/") + api.PING_PATH,
        )

    async def connect(self, context: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A new TCP connection and a full TLS handshake (Python never resumes a session unasked)."""
        return await asyncio.open_connection(
            self.host,
            self.port,
            ssl=context,
            server_hostname=self.host,
            ssl_shutdown_timeout=SHUTDOWN_SECONDS,
        )


class _TooLarge(Exception):
    pass


# One SSL context per distinct TLS material, shared by every Pinger holding it: a context holds
# the system CA store, and a thousand peers presenting the same FederationCert would otherwise
# hold a thousand identical ones (docs/benchmarks.md, the scale findings). Weak values: a context lives as
# long as some Pinger uses it.
_SHARED_CONTEXTS: "weakref.WeakValueDictionary[tuple[str, str | None, bool, int], ssl.SSLContext]" = (
    weakref.WeakValueDictionary()
)


def shared_ssl_context(material: TlsMaterial) -> ssl.SSLContext:
    context = _SHARED_CONTEXTS.get(material.identity)
    if context is None:
        context = build_ssl_context(material)
        _SHARED_CONTEXTS[material.identity] = context
    return context


class Pinger:
    """One peer's ping client. Looks up its SSL context again only when the TLS material changes."""

    def __init__(self) -> None:
        self._identity: tuple[str, str | None, bool, int] | None = None
        self._context: ssl.SSLContext | None = None

    def _context_for(self, material: TlsMaterial) -> ssl.SSLContext:
        if self._context is None or self._identity != material.identity:
            self._context = shared_ssl_context(material)
            self._identity = material.identity
        return self._context

    async def aclose(self) -> None:
        """Nothing to release between pings (no connection outlives one); drops the context."""
        self._context = None
        self._identity = None

    async def ping(
        self,
        *,
        endpoint: str,
        material: TlsMaterial,
        token: SecretText,
        header: str | None,
        time_limit: float,
    ) -> PingOutcome:
        """One ping that never outlives `time_limit` seconds, connect to last byte."""
        try:
            target = Target.of(endpoint)
        except ValueError as error:
            bad = TransportProblem("connect", detail=str(error))
            return PingOutcome(False, timedelta(), classify_transport(bad, timeout_seconds=time_limit))
        try:
            context = self._context_for(material)
        except ValueError as error:  # build_ssl_context's message names no key material
            return PingOutcome(False, timedelta(), Failure(Factor.CERTIFICATE, str(error)))
        authorization = (header, token.reveal()) if header else ("Authorization", "Bearer " + token.reveal())
        fetched = await fetch_once(
            target, context=context, extra_headers=[authorization], time_limit=time_limit
        )
        if isinstance(fetched.result, Failure):
            return PingOutcome(False, fetched.latency, fetched.result)
        status, factor_header, body = fetched.result
        failure = classify_reply(status=status, factor_header=factor_header, body=body)
        if failure is not None:
            if token.reveal() in failure.message:
                # A remote that echoes what we sent must not get our token into status or events.
                failure = Failure(failure.factor, failure.message.replace(token.reveal(), "<redacted>"))
            return PingOutcome(False, fetched.latency, failure)
        return PingOutcome(True, fetched.latency, reply=read_ping_reply(body))


async def negotiated_version(target: Target, context: ssl.SSLContext, *, time_limit: float) -> str | Failure:
    """The TLS version of one handshake (nothing sent), or why the handshake failed.

    With TLS 1.3 a refusal of our certificate may come only after this returns; a request shows it.
    """
    try:
        async with asyncio.timeout(time_limit):
            _, writer = await target.connect(context)
    except TimeoutError:
        return classify_transport(TransportProblem("timeout"), timeout_seconds=time_limit)
    except (OSError, ssl.SSLError) as error:
        return classify_transport(_describe(error, "connect"), timeout_seconds=time_limit)
    ssl_object = writer.get_extra_info("ssl_object")
    version = ssl_object.version() if ssl_object is not None else None
    writer.transport.abort()
    return str(version)


@dataclass(frozen=True)
class Fetched:
    """One GET's end: the reply (status, `X-Federation-Factor`, body) or why there was none."""

    result: tuple[int, str | None, bytes] | Failure
    latency: timedelta


async def fetch_once(
    target: Target,
    *,
    context: ssl.SSLContext,
    extra_headers: list[tuple[str, str]],
    time_limit: float,
) -> Fetched:
    """One GET of the ping path on a new connection, bounded by `time_limit` (connect to last
    byte). A transport failure or a redirect comes back classified; any other reply as it is.
    The heartbeat's ping and the conformance probe (which also sends no token or no certificate)
    both go through here."""
    started = time.perf_counter()
    headers = [
        ("Host", target.authority),
        ("User-Agent", USER_AGENT),
        ("Accept", "application/json"),
        ("Accept-Encoding", "identity"),
        ("Connection", "close"),
        *extra_headers,
    ]
    problem: TransportProblem | None = None
    try:
        async with asyncio.timeout(time_limit):
            try:
                status, factor_header, body = await _exchange(target, headers, context)
            except _Failed as failed:
                problem = failed.problem
                if _after_handshake_without_alert(problem):
                    problem = await _listen_for_alert(target, context) or problem
    except TimeoutError:
        problem = problem or TransportProblem("timeout")
    latency = timedelta(seconds=time.perf_counter() - started)
    if problem is None and 300 <= status < 400:
        problem = TransportProblem("redirect", detail=f"HTTP {status}")
    if problem is not None:
        return Fetched(classify_transport(problem, timeout_seconds=time_limit), latency)
    return Fetched((status, factor_header, body), latency)


class _Failed(Exception):
    """The exchange ended without a complete reply; `problem` says how (names only, no payload)."""

    def __init__(self, problem: TransportProblem) -> None:
        super().__init__(problem.stage)
        self.problem = problem


async def _exchange(
    target: Target, headers: list[tuple[str, str]], context: ssl.SSLContext
) -> tuple[int, str | None, bytes]:
    """One HTTP/1.1 GET on a new connection: h11 writes the request and parses the reply (status
    line, headers, Content-Length or chunked or until close), at most MAX_REPLY_BYTES of body.

    The caller's `asyncio.timeout` bounds it; on any exit the connection is closed (a complete
    reply with TLS close_notify, anything else aborted).
    """
    try:
        reader, writer = await target.connect(context)
    except (OSError, ssl.SSLError) as error:
        raise _Failed(_describe(error, "connect")) from None
    complete = False
    try:
        connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        try:
            request = connection.send(h11.Request(method="GET", target=target.path, headers=headers))
            ending = connection.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            raise _Failed(TransportProblem("other", detail="invalid request header")) from None
        try:
            writer.write(request + ending)
            await writer.drain()
        except (OSError, ssl.SSLError) as error:
            raise _Failed(_describe(error, "write")) from None
        status, factor, chunks, size = 0, None, [], 0
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as error:
                raise _Failed(_describe(error, "protocol")) from None
            if event is h11.NEED_DATA:
                try:
                    data = await reader.read(READ_BYTES)
                except (OSError, ssl.SSLError) as error:
                    raise _Failed(_describe(error, "read")) from None
                if not data and status == 0:
                    raise _Failed(TransportProblem("read", detail="closed"))
                connection.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    if name == _FACTOR_HEADER:
                        factor = value.decode("latin-1")
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_REPLY_BYTES:
                    raise _Failed(TransportProblem("too-large", detail=f"{MAX_REPLY_BYTES} bytes"))
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                complete = True
                return status, factor, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise _Failed(TransportProblem("read", detail="closed"))
            # h11.InformationalResponse (1xx): the final response follows.
    finally:
        if complete:
            writer.close()
        else:
            writer.transport.abort()
