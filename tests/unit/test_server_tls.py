"""The direct-TLS trust store follows the pins: rebuilt in the handshake when small, beside the
handshakes when large (issue 17: 7.1 s of CPU at 10,000 PEMs would stall every call).

Real OpenSSL handshakes over memory BIOs: a client presenting a pinned certificate passes the
server's handshake, one missing from the store in use fails it."""

import ssl
from typing import Any

import pytest

from federation_operator.server.index import PeerIndex
from federation_operator.server.tls import PinnedTLS
from tests.harness.server import Identity, Keys
from tests.harness.waiting import wait_for


def _peer(identity: Identity) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "default", "name": identity.name},
        "spec": {"remoteCertificates": [{"pem": identity.pem}]},
    }


def _pump(source: ssl.MemoryBIO, target: ssl.MemoryBIO) -> bool:
    data = source.read()
    target.write(data)
    return bool(data)


def handshake(tls: PinnedTLS, identity: Identity) -> bool:
    """Whether the server's handshake accepts this client certificate."""
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE  # the server's identity is not under test
    client_context.load_cert_chain(identity.cert, identity.key)
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    from_server, from_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(from_server, from_client, server_hostname="localhost")
    server = tls.context.wrap_bio(to_server, to_client, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                except ssl.SSLError:
                    return False
        moved = _pump(from_client, to_server) | _pump(to_client, from_server)
        if all(done.values()) and not moved:
            break
    if not all(done.values()):
        return False
    # TLS 1.3: the server judges the client's certificate after the client has finished; a
    # refusal reaches the client as an alert on its first read.
    client.write(b"ping")
    _pump(from_client, to_server)
    try:
        server.read(4)
    except ssl.SSLError:
        return False
    return True


@pytest.fixture
def identities(keys: Keys) -> dict[str, Identity]:
    return {name: keys.identity(name) for name in ("tls-a", "tls-b", "tls-c")}


def test_a_small_store_is_rebuilt_in_the_handshake_that_needs_it(
    keys: Keys, identities: dict[str, Identity]
) -> None:
    index = PeerIndex()
    index.upsert_peer(_peer(identities["tls-a"]))
    tls = PinnedTLS(index=index, cert_file=keys.server_cert, key_file=keys.server_key)
    assert handshake(tls, identities["tls-a"])
    assert not handshake(tls, identities["tls-b"])
    index.upsert_peer(_peer(identities["tls-b"]))
    assert handshake(tls, identities["tls-b"])


def test_a_large_store_is_rebuilt_beside_the_handshakes_which_keep_the_old_one_meanwhile(
    keys: Keys, identities: dict[str, Identity]
) -> None:
    index = PeerIndex()
    # As the server starts: the listener before the initial list is in.
    tls = PinnedTLS(index=index, cert_file=keys.server_cert, key_file=keys.server_key, inline_anchors=0)
    index.upsert_peer(_peer(identities["tls-a"]))
    index.mark_synced()
    # The first store after the list is built in the handshake, whatever its size.
    assert handshake(tls, identities["tls-a"])
    index.upsert_peer(_peer(identities["tls-b"]))
    # The handshake that notices the change starts the build and is judged by the old store.
    assert not handshake(tls, identities["tls-b"])
    wait_for(lambda: handshake(tls, identities["tls-b"]), timeout=30, message="the rebuilt store")
    assert handshake(tls, identities["tls-a"])
    index.upsert_peer(_peer(identities["tls-c"]))
    index.delete_peer("default", "tls-a")
    wait_for(lambda: handshake(tls, identities["tls-c"]), timeout=30, message="the next rebuild")
    # A deleted peer's certificate stays in the store while its tombstone lasts (UnknownPeer).
    assert handshake(tls, identities["tls-a"])
