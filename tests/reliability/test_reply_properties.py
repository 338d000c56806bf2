"""Property: whatever bytes a remote sends after a good handshake, the pinger ends with an outcome.

The remote is a raw TLS socket in a thread that replays a script of bytes (status line, headers,
body, in arbitrary pieces, then a clean close, an abortive reset, or a truncation), so nothing of
our HTTP stack is on the other side. For every script: no exception escapes `Pinger.ping`; a green
outcome comes only from a 2xx status line; a red one has a factor of ours and a printable, bounded
message without our token; and a well-formed 2xx is always green, whatever its body.
"""

import asyncio
import re
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation_operator.adapters.probe import Pinger, TlsMaterial
from federation_operator.domain import certs, tokens
from federation_operator.domain.factors import Factor

TIME_LIMIT = 2.0
MESSAGE_LIMIT = 1024  # the CRD's maxLength for lastFailure.message


@dataclass
class Script:
    pieces: list[bytes] = field(default_factory=list)
    ending: str = "close"  # close | reset


class ScriptedRemote:
    """A TLS server that requests a client certificate, reads one request head and replays `script`."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.script = Script()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, name="scripted-remote", daemon=True)
        self.closing = False

    def _serve(self) -> None:
        while not self.closing:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(raw, self.script), daemon=True).start()

    def _answer(self, raw: socket.socket, script: Script) -> None:
        raw.settimeout(TIME_LIMIT * 2)
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            for piece in script.pieces:
                conn.sendall(piece)
            if script.ending == "reset":
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def __enter__(self) -> "ScriptedRemote":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing = True
        # close() alone does not wake a thread blocked in accept(); shutdown() does, at once.
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, TlsMaterial]:
    directory: Path = tmp_path_factory.mktemp("scripted")
    now = certs.utcnow()
    server = certs.issue_server_identity(
        common_name="scripted remote", hosts=["127.0.0.1"], validity=timedelta(days=1), now=now
    )
    client = certs.issue_certificate(subject="eu", validity=timedelta(days=1), now=now)
    (directory / "server.crt").write_text(server.cert_pem)
    (directory / "server.key").write_bytes(server.key_pem.reveal())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.crt", directory / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=client.info.pem)
    return context, TlsMaterial(cert_pem=client.info.pem, key_pem=client.key_pem, ca_pem=server.ca_pem)


@pytest.fixture(scope="module")
def remote(identities: tuple[ssl.SSLContext, TlsMaterial]) -> Iterator[ScriptedRemote]:
    with ScriptedRemote(identities[0]) as running:
        yield running


TOKEN = tokens.generate_token()

status_codes = st.one_of(
    st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 503]), st.integers(100, 599)
)
header_names = st.from_regex(rb"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z").filter(
    lambda name: name.lower() not in {b"content-length", b"transfer-encoding"}
)
# What RFC 9110 allows in a field value (h11 enforces it); anything else makes the reply malformed.
_CLEAN_VALUE = re.compile(rb"\A(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?\Z")
header_values = st.one_of(
    st.from_regex(rb"\A[ -~]{0,40}\Z"), st.binary(max_size=40), st.just(TOKEN.reveal().encode())
)
bodies = st.one_of(
    st.binary(max_size=600),
    st.just(b""),
    st.just(b'{"ok": true}'),
    st.just(b'{"ok": false, "factor": "Secret", "message": "no"}'),
    st.just(b'{"ok": true, "peer": "x", "link": [], "site": 3}'),
    st.just(("echo " + TOKEN.reveal()).encode()),
    st.just(b'{"factor": "Suspended"}'),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    ).map(lambda value: repr(value).encode()),
)


@st.composite
def replies(draw: st.DrawFn) -> tuple[bytes, bool, int]:
    """(reply bytes, well-formed?, status)."""
    status = draw(status_codes)
    reason = draw(st.sampled_from([b"OK", b"", b"X", b"Whatever Reason"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"ICY", b""]))
    status_line = draw(
        st.one_of(
            st.just(version + b" " + str(status).encode() + (b" " + reason if reason else b"")),
            st.binary(max_size=30),
        )
    )
    extra = draw(st.lists(st.tuples(header_names, header_values), max_size=4))
    body = draw(bodies)
    framing = draw(st.sampled_from(["length", "wrong-length", "chunked", "bad-chunked", "until-close"]))
    headers = [name + b": " + value for name, value in extra]
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing == "wrong-length":
        headers.append(b"Content-Length: %d" % (len(body) + draw(st.integers(1, 100))))
        payload = body
    elif framing in {"chunked", "bad-chunked"}:
        headers.append(b"Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if body[a:b]]
        payload = b"".join(b"%x\r\n" % len(part) + part + b"\r\n" for part in parts) + b"0\r\n\r\n"
        if framing == "bad-chunked":
            payload = b"zz\r\n" + payload
    else:
        payload = body
    message = status_line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + payload
    truncate = draw(st.booleans()) and draw(st.integers(0, len(message)))
    if truncate is not False:
        message = message[:truncate]
    well_formed = (
        status_line.startswith(b"HTTP/1.")
        and 200 <= status < 300
        and framing in {"length", "chunked", "until-close"}
        and truncate is False
        and all(_CLEAN_VALUE.match(value) for _, value in extra)
    )
    return message, well_formed, status


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply=replies(), splits=st.lists(st.integers(1, 64), max_size=5), reset=st.booleans())
def test_no_reply_escapes_the_pinger_and_every_2xx_is_green(
    remote: ScriptedRemote,
    identities: tuple[ssl.SSLContext, TlsMaterial],
    reply: tuple[bytes, bool, int],
    splits: list[int],
    reset: bool,
) -> None:
    message, well_formed, status = reply
    pieces, rest = [], message
    for size in splits:
        pieces.append(rest[:size])
        rest = rest[size:]
    pieces.append(rest)
    remote.script = Script(pieces=[piece for piece in pieces if piece], ending="reset" if reset else "close")

    async def ping() -> object:
        pinger = Pinger()
        try:
            return await pinger.ping(
                endpoint=f"https://127.0.0.1:{remote.port}",
                material=identities[1],
                token=TOKEN,
                header=None,
                time_limit=TIME_LIMIT,
            )
        finally:
            await pinger.aclose()

    outcome = asyncio.run(ping())
    assert outcome.ok in (True, False)  # type: ignore[attr-defined]
    if outcome.ok:  # type: ignore[attr-defined]
        assert 200 <= status < 300, "green only from a 2xx status"
        assert message.startswith(b"HTTP/1."), "green only from an HTTP/1.x status line"
        return
    failure = outcome.failure  # type: ignore[attr-defined]
    assert failure is not None
    assert failure.factor in frozenset(Factor)
    assert failure.message
    assert len(failure.message) <= MESSAGE_LIMIT
    assert failure.message.isprintable(), failure.message
    assert TOKEN.reveal() not in failure.message
    # A complete, well-formed 2xx is green however it is framed; a reset after the last byte of a
    # length-framed reply may still cut it, so the property is claimed for clean closes only.
    assert not (well_formed and not reset), f"a well-formed {status} was refused: {failure}"
