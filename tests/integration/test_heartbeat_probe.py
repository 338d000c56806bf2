"""One ping over real mTLS on 127.0.0.1: against the real federation server and a stand-in remote."""

import socket
import time
from collections.abc import Iterator

import pytest

from federation_operator.adapters.probe import MAX_REPLY_BYTES, Pinger, TlsMaterial
from federation_operator.domain import tokens
from federation_operator.domain.certs import SecretBytes
from tests.harness.heartbeat import StandInRemote
from tests.harness.server import AppThread, Identity, Keys, link


@pytest.fixture
def server(keys: Keys) -> Iterator[AppThread]:
    thread = AppThread(keys=keys, site="us").start()
    yield thread
    thread.stop()


def material(keys: Keys, identity: Identity, **overrides: object) -> TlsMaterial:
    values: dict[str, object] = {
        "cert_pem": identity.pem,
        "key_pem": SecretBytes(identity.key.read_bytes()),
        "ca_pem": keys.ca.read_text(),
    }
    values.update(overrides)
    return TlsMaterial(**values)  # type: ignore[arg-type]


async def ping(pinger: Pinger, url: str, tls: TlsMaterial, token: tokens.SecretText, **kwargs: object):  # type: ignore[no-untyped-def]
    options: dict[str, object] = {"header": None, "time_limit": 5.0}
    options.update(kwargs)
    return await pinger.ping(endpoint=url, material=tls, token=token, **options)  # type: ignore[arg-type]


async def test_green_ping_against_the_federation_server_returns_its_reply(
    keys: Keys, server: AppThread
) -> None:
    eu = keys.identity("eu")
    server.call(link, server.index, eu)
    pinger = Pinger()
    outcome = await ping(pinger, server.tls_url, material(keys, eu), eu.token)
    await pinger.aclose()
    assert outcome.ok, outcome.failure
    assert outcome.reply is not None
    assert outcome.reply.get("site") == "us"
    assert outcome.reply.get("peerName") == "eu"


async def test_wrong_token_is_factor_secret_from_the_remotes_red_reply(keys: Keys, server: AppThread) -> None:
    eu = keys.identity("eu")
    server.call(link, server.index, eu)
    pinger = Pinger()
    outcome = await ping(pinger, server.tls_url, material(keys, eu), tokens.generate_token())
    await pinger.aclose()
    assert not outcome.ok
    assert outcome.failure is not None
    assert outcome.failure.factor == "Secret"
    assert outcome.failure.message.startswith("remote says: ")


async def test_unpinned_certificate_is_factor_certificate(keys: Keys, server: AppThread) -> None:
    eu, stranger = keys.identity("eu"), keys.identity("stranger")
    server.call(link, server.index, eu)
    pinger = Pinger()
    outcome = await ping(pinger, server.tls_url, material(keys, stranger), eu.token)
    await pinger.aclose()
    assert outcome.failure is not None
    assert outcome.failure.factor == "Certificate", outcome.failure


async def test_untrusted_server_certificate_is_factor_tls(keys: Keys, server: AppThread) -> None:
    eu = keys.identity("eu")
    server.call(link, server.index, eu)
    pinger = Pinger()
    outcome = await ping(pinger, server.tls_url, material(keys, eu, ca_pem=None), eu.token)
    await pinger.aclose()
    assert outcome.failure is not None
    assert outcome.failure.factor == "TLS"
    assert "verification" in outcome.failure.message


async def test_insecure_skip_verify_reaches_a_server_we_cannot_verify(keys: Keys, server: AppThread) -> None:
    eu = keys.identity("eu")
    server.call(link, server.index, eu)
    pinger = Pinger()
    outcome = await ping(pinger, server.tls_url, material(keys, eu, ca_pem=None, insecure=True), eu.token)
    await pinger.aclose()
    assert outcome.ok, outcome.failure


async def test_closed_port_is_network_connection_refused(keys: Keys) -> None:
    eu = keys.identity("eu")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pinger = Pinger()
    outcome = await ping(pinger, f"https://127.0.0.1:{port}", material(keys, eu), eu.token)
    await pinger.aclose()
    assert outcome.failure is not None
    assert outcome.failure.factor == "Network"
    assert outcome.failure.message.startswith("connection refused: ")


@pytest.fixture
def stand_in(keys: Keys) -> Iterator[tuple[StandInRemote, Identity]]:
    eu = keys.identity("eu")
    remote = StandInRemote(
        server_cert=keys.server_cert, server_key=keys.server_key, client_pems=[eu.pem]
    ).start()
    yield remote, eu
    remote.stop()


async def test_every_ping_is_a_fresh_full_handshake_presenting_our_certificate(
    keys: Keys, stand_in: tuple[StandInRemote, Identity]
) -> None:
    remote, eu = stand_in
    pinger = Pinger()
    tls = material(keys, eu)
    for _ in range(3):
        assert (await ping(pinger, remote.url, tls, eu.token)).ok
    await pinger.aclose()
    assert len(remote.handshakes) == 3, "one connection per ping, none reused"
    assert not any(handshake.resumed for handshake in remote.handshakes)
    assert {handshake.thumbprint for handshake in remote.handshakes} == {eu.thumbprint}
    assert remote.handshakes[0].authorization == "Bearer " + eu.token.reveal()


async def test_token_goes_in_the_named_header_instead_of_authorization(
    keys: Keys, stand_in: tuple[StandInRemote, Identity]
) -> None:
    remote, eu = stand_in
    pinger = Pinger()
    assert (await ping(pinger, remote.url, material(keys, eu), eu.token, header="X-Federation-Token")).ok
    await pinger.aclose()
    assert remote.handshakes[0].authorization is None


async def test_a_ping_never_outlives_its_time_limit(
    keys: Keys, stand_in: tuple[StandInRemote, Identity]
) -> None:
    remote, eu = stand_in
    remote.delay = 5.0
    pinger = Pinger()
    started = time.monotonic()
    outcome = await ping(pinger, remote.url, material(keys, eu), eu.token, time_limit=0.3)
    elapsed = time.monotonic() - started
    await pinger.aclose()
    assert outcome.failure is not None
    assert outcome.failure.factor == "Timeout"
    assert elapsed < 1.0


async def test_redirects_are_not_followed(keys: Keys, stand_in: tuple[StandInRemote, Identity]) -> None:
    remote, eu = stand_in
    remote.reply(status=302, body=b"", headers={"Location": "https://127.0.0.1:1/elsewhere"})
    pinger = Pinger()
    outcome = await ping(pinger, remote.url, material(keys, eu), eu.token)
    await pinger.aclose()
    assert outcome.failure is not None
    assert outcome.failure.factor == "HTTP"
    assert len(remote.handshakes) == 1


async def test_oversized_reply_is_refused(keys: Keys, stand_in: tuple[StandInRemote, Identity]) -> None:
    remote, eu = stand_in
    remote.reply(body=b"x" * (MAX_REPLY_BYTES + 1))
    pinger = Pinger()
    outcome = await ping(pinger, remote.url, material(keys, eu), eu.token)
    await pinger.aclose()
    assert outcome.failure is not None
    assert outcome.failure.factor == "HTTP"
    assert "exceeded" in outcome.failure.message


async def test_red_json_from_any_remote_is_believed(
    keys: Keys, stand_in: tuple[StandInRemote, Identity]
) -> None:
    remote, eu = stand_in
    remote.reply(
        status=403, body={"ok": False, "factor": "Suspended", "message": "peer eu is suspended here"}
    )
    pinger = Pinger()
    outcome = await ping(pinger, remote.url, material(keys, eu), eu.token)
    await pinger.aclose()
    assert outcome.failure is not None
    assert (outcome.failure.factor, outcome.failure.message) == (
        "Suspended",
        "remote says: peer eu is suspended here",
    )


async def test_a_remote_echoing_our_token_does_not_get_it_into_the_failure(
    keys: Keys, stand_in: tuple[StandInRemote, Identity]
) -> None:
    remote, eu = stand_in
    remote.reply(
        status=401, body={"ok": False, "factor": "Secret", "message": f"bad token {eu.token.reveal()}"}
    )
    pinger = Pinger()
    outcome = await ping(pinger, remote.url, material(keys, eu), eu.token)
    await pinger.aclose()
    assert outcome.failure is not None
    assert eu.token.reveal() not in outcome.failure.message
    assert outcome.failure.message == "remote says: bad token <redacted>"
