"""A caller whose pin was removed is refused at once, while the large trust store is rebuilt beside.

Direct mTLS with more pinned PEMs than `INLINE_ANCHORS`: a change of the pins rebuilds the trust
store in a thread, and handshakes keep the previous store meanwhile (server/tls.py). The previous
store still holds the removed certificate, so its handshake passes; the pin check on the request
(the index, which the change reached at once) is what must refuse it. A real server on real
sockets, a real client presenting its certificate and token.
"""

import json
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from federation_operator.domain import api
from federation_operator.domain.certs import issue_certificate
from federation_operator.server.tls import INLINE_ANCHORS
from tests.harness.server import AppThread, Identity, Keys, peer_object
from tests.harness.waiting import wait_for

FILLERS = INLINE_ANCHORS + 16  # peers pinning a PEM each, besides the caller's


def call(server: AppThread, identity: Identity) -> tuple[int, dict[str, Any]] | None:
    """One ping on a new connection with the identity's certificate and token: (status, JSON
    body), or None if the server refused the certificate in the handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(server.keys.ca)
    context.load_cert_chain(identity.cert, identity.key)
    request = (
        f"GET {api.PING_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {identity.token.reveal()}\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    reply = b""
    try:
        with (
            socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(request)
            while chunk := tls.recv(65536):
                reply += chunk
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        # TLS 1.3: the server judges the client's certificate after the client finished its
        # handshake; a refusal reaches the client as an alert on its first read or write.
        return None
    if not reply:
        return None  # the alert lost to the connection's close: a refusal all the same
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


@pytest.fixture
def server(keys: Keys) -> Iterator[AppThread]:
    thread = AppThread(keys=keys).start()
    yield thread
    thread.stop()


def test_a_removed_pin_is_refused_by_the_next_request_while_the_trust_store_is_rebuilt(
    server: AppThread, keys: Keys
) -> None:
    caller, other = keys.identity("unpinned-caller"), keys.identity("unpinned-other")
    now = datetime.now(UTC)
    for number in range(FILLERS):
        pem = issue_certificate(subject=f"filler-{number}", validity=timedelta(days=1), now=now).info.pem
        filler = peer_object(caller, name=f"filler-{number}")
        filler["spec"]["remoteCertificates"] = [{"pem": pem}]
        server.call(server.index.upsert_peer, filler)
    both = peer_object(caller)
    both["spec"]["remoteCertificates"] = [{"pem": caller.pem}, {"pem": other.pem}]
    server.call(server.index.upsert_peer, both)
    server.call(server.index.mark_synced)
    assert len(server.call(server.index.trust_anchors, now=now)) > INLINE_ANCHORS, "a store rebuilt beside"
    reply = call(server, caller)
    assert reply is not None
    assert reply[0] == 200

    # The caller's pin removed; the peer, its token and every other pin stay.
    only_other = peer_object(caller)
    only_other["spec"]["remoteCertificates"] = [{"pem": other.pem}]
    server.call(server.index.upsert_peer, only_other)

    reply = call(server, caller)
    # An HTTP reply at all: the handshake passed, so the store in use still held the certificate
    # (this handshake is the one that starts the new store's build).
    assert reply is not None, "the previous trust store serves while the new one is built"
    status, body = reply
    assert (status, body.get("factor")) == (401, "Certificate")  # docs/protocol.md: one no peer pins
    assert body["ok"] is False
    # And once the new store is in use, the certificate does not pass the handshake either.
    wait_for(lambda: call(server, caller) is None, timeout=60, message="the rebuilt trust store")
