"""One heartbeat ping over the network: `GET {endpoint}/api/federation/ping` with both factors.

Why this module: it is the only heartbeat code that opens sockets, so everything a ping must
guarantee is visible in one place:
- a fresh TCP connection and a full TLS handshake on every ping (keep-alive is off and Python's
  `ssl` never resumes a session unless asked to), so a pin change on the remote shows on the
  next ping;
- our client certificate (the FederationCert named by `clientCertificateRef`) is loaded into an
  `ssl.SSLContext` and the context is passed as httpx's `verify=` (with `cert=` plus a CA path,
  httpx 0.28 silently sends no client certificate); the key goes through an anonymous memory
  file (`memfd`), or a 0600 file in a private temp dir where memfd is missing, and is gone
  right after loading;
- the remote's *server* certificate is verified per `spec.serverTrust`;
- the token travels as `Authorization: Bearer` or the raw value of the header the peer names;
- no redirects, no proxies from the environment, a bounded reply, and `asyncio.timeout` around
  the whole exchange so a ping never outlives its timeout.

The SSL context and client are reused across pings while the credentials stay the same (a
context per ping would re-parse the system CA store every 30 s for every peer); neither holds
a connection between pings.
"""

import asyncio
import contextlib
import errno
import json
import os
import ssl
import tempfile
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import httpx

from federation_operator import api
from federation_operator.certs import SecretBytes
from federation_operator.probe_classify import TransportProblem, classify_reply, classify_transport
from federation_operator.reachability import Failure
from federation_operator.server.wire import HEADER_FACTOR
from federation_operator.tokens import SecretText

MAX_REPLY_BYTES: Final = 64 * 1024
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
    reply: dict[str, Any] | None = None  # the green PingReply


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


def build_ssl_context(material: TlsMaterial) -> ssl.SSLContext:
    if material.insecure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif material.ca_pem is not None:
        context = ssl.create_default_context(cadata=material.ca_pem)
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with _key_file(material) as path:
        try:
            context.load_cert_chain(path)
        except ssl.SSLError as error:
            # OpenSSL's message names no file content; the path is an anonymous fd.
            raise ValueError(f"client certificate and key do not load: {error.reason or 'invalid'}") from None
    return context


def _describe(error: BaseException) -> TransportProblem:
    """Walk the exception chain for what OpenSSL and the OS said; keep only names, never payloads."""
    stage = "other"
    if isinstance(error, httpx.TimeoutException | TimeoutError):
        return TransportProblem(stage="timeout")
    if isinstance(error, httpx.ConnectError):
        stage = "connect"
    elif isinstance(error, httpx.ReadError):
        stage = "read"
    elif isinstance(error, httpx.WriteError):
        stage = "write"
    elif isinstance(error, httpx.RemoteProtocolError):
        stage = "read" if "disconnected" in str(error).lower() else "protocol"
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
    if errno_name is None and isinstance(error, httpx.ConnectError) and "refused" in str(error).lower():
        errno_name = "ECONNREFUSED"
    detail = (
        "closed" if stage == "read" and ssl_reason is None and errno_name is None else type(error).__name__
    )
    return TransportProblem(
        stage=stage,  # type: ignore[arg-type]
        ssl_reason=ssl_reason,
        verify_message=verify_message,
        errno_name=errno_name,
        detail=detail,
    )


def _after_handshake_without_alert(problem: TransportProblem) -> bool:
    """A reset or close after our side finished the handshake, with no TLS alert read.

    With TLS 1.3 the server checks our certificate after the client considers the handshake
    done; it sends an alert and closes, and since our request is already in its receive buffer
    the close becomes a TCP reset that can overtake the alert. The classic symptom of "the remote
    does not pin us" would then read as a network error.
    """
    return problem.stage in {"read", "write"} and problem.ssl_reason is None


async def _listen_for_alert(url: str, context: ssl.SSLContext | None) -> TransportProblem | None:
    """Handshake again and send nothing, to learn what the remote thinks of our certificate.

    An alert now arrives without a reset racing it. A remote that closes at once while we have
    sent nothing has refused the handshake after the fact (asyncio-based servers, ours included,
    close without flushing the alert), and after a TLS 1.3 client's Finished the only thing left
    to refuse is our certificate. A healthy server waits for the request instead. None when
    nothing conclusive happened.
    """
    if context is None:
        return None
    parsed = httpx.URL(url)
    try:
        reader, writer = await asyncio.open_connection(
            parsed.host, parsed.port or 443, ssl=context, server_hostname=parsed.host
        )
    except (OSError, ssl.SSLError) as error:
        described = _describe(error)
        return described if described.ssl_reason is not None else None
    try:
        data = await asyncio.wait_for(reader.read(1), timeout=ALERT_WAIT_SECONDS)
    except (OSError, ssl.SSLError) as error:
        described = _describe(error)
        if described.ssl_reason is not None:
            return described
        return TransportProblem("refused-after-handshake")
    except TimeoutError:
        return None
    finally:
        writer.close()
    return TransportProblem("refused-after-handshake") if data == b"" else None


class _TooLarge(Exception):
    pass


# One SSL context per distinct TLS material, shared by every Pinger holding it: a context with the
# system CA store costs ~0.8 MiB, and a thousand peers presenting the same FederationCert would
# otherwise hold a thousand identical ones (hack/bench_scale.py). Weak values: a context lives as
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
    """One peer's ping client. Rebuilds its SSL context only when the TLS material changes."""

    def __init__(self) -> None:
        self._identity: tuple[str, str | None, bool, int] | None = None
        self._client: httpx.AsyncClient | None = None
        self._client_context: ssl.SSLContext | None = None
        self._context: ssl.SSLContext | None = None

    def _client_for(self, material: TlsMaterial) -> httpx.AsyncClient:
        if self._client is None or self._identity != material.identity:
            old = self._client
            self._client_context = shared_ssl_context(material)
            self._client = httpx.AsyncClient(
                verify=self._client_context,
                follow_redirects=False,
                trust_env=False,
                http2=False,
                # No pooled connection survives a ping: every ping is a new TCP + TLS handshake.
                limits=httpx.Limits(max_keepalive_connections=0, max_connections=4),
            )
            self._identity = material.identity
            self._context = self._client_context
            if old is not None:
                asyncio.get_running_loop().create_task(old.aclose())
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
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
        url = endpoint.rstrip("/") + api.PING_PATH
        headers = {"Accept": "application/json", "Accept-Encoding": "identity", "Connection": "close"}
        if header:
            headers[header] = token.reveal()
        else:
            headers["Authorization"] = "Bearer " + token.reveal()
        client = self._client_for(material)
        started = time.perf_counter()
        problem: TransportProblem | None = None
        try:
            async with asyncio.timeout(time_limit):
                try:
                    status, factor_header, body = await self._exchange(client, url, headers)
                except (httpx.HTTPError, OSError, ssl.SSLError) as error:
                    problem = _describe(error)
                    if _after_handshake_without_alert(problem):
                        problem = await _listen_for_alert(url, self._context) or problem
        except (TimeoutError, httpx.TimeoutException):
            problem = problem or TransportProblem("timeout")
        except _TooLarge:
            problem = TransportProblem("too-large", detail=f"{MAX_REPLY_BYTES} bytes")
        latency = timedelta(seconds=time.perf_counter() - started)
        if problem is not None:
            return PingOutcome(False, latency, classify_transport(problem, timeout_seconds=time_limit))
        if 300 <= status < 400:
            problem = TransportProblem("redirect", detail=f"HTTP {status}")
            return PingOutcome(False, latency, classify_transport(problem, timeout_seconds=time_limit))
        failure = classify_reply(status=status, factor_header=factor_header, body=body)
        if failure is not None:
            if token.reveal() in failure.message:
                # A remote that echoes what we sent must not get our token into status or events.
                failure = Failure(failure.factor, failure.message.replace(token.reveal(), "<redacted>"))
            return PingOutcome(False, latency, failure)
        return PingOutcome(True, latency, reply=json.loads(body))

    @staticmethod
    async def _exchange(
        client: httpx.AsyncClient, url: str, headers: dict[str, str]
    ) -> tuple[int, str | None, bytes]:
        # httpx's own timeouts stay off: the caller's asyncio.timeout bounds the whole exchange.
        async with client.stream("GET", url, headers=headers, timeout=None) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise _TooLarge
                chunks.append(chunk)
            return response.status_code, response.headers.get(HEADER_FACTOR), b"".join(chunks)
