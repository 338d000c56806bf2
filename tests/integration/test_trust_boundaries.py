"""Trust boundaries (issue #13): attacks performed against a running site.

A site here is the real thing on loopback: the sandbox API, the operator, and the federation
server answering direct mTLS and fed by its own watches. The attacker is written here from the
contract (curl for the calls, the official Kubernetes client for the objects a namespace editor
may write, certificates made with `cryptography`), never with our client code.
"""

import base64
import contextlib
import dataclasses
import hashlib
import http.client
import itertools
import json
import logging
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from federation_devkit.localsite import LocalSite
from federation_operator.server.clientcert import CertSource, CertSourceConfig, parse_networks
from federation_operator.server.main import ServerConfig
from federation_operator.server.protocol import ConnectionLimits
from tests.harness.net import free_port
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the attacker's client is curl")

GROUP, VERSION, PLURAL = "federation.ampora.io", "v1alpha1", "federationpeers"
PING = "/api/federation/ping"
NAMESPACE = "default"


@dataclass(frozen=True)
class Remote:
    """A remote site's client identity and the token it presents, made as the contract says."""

    name: str
    cert: Path
    key: Path
    pem: str
    token: str = dataclasses.field(repr=False)

    @property
    def token_hash(self) -> str:
        return hash_of(self.token)


def hash_of(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("ascii")).hexdigest()


def new_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def make_remote(directory: Path, name: str, *, expired: bool = False) -> Remote:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(tz=UTC) - (timedelta(days=2) if expired else timedelta())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_text(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Remote(name=name, cert=cert_file, key=key_file, pem=pem, token=new_token())


def ping(site: LocalSite, remote: Remote, token: str) -> tuple[int, dict[str, Any] | None]:
    """(status, JSON body) of one curl ping presenting `remote`'s certificate and `token`."""
    result = subprocess.run(
        [
            "curl", "-sS", "--max-time", "10", "--cacert", str(site.ca_file),
            "--cert", str(remote.cert), "--key", str(remote.key),
            "-H", f"Authorization: Bearer {token}",
            "-w", "\n%{http_code}", site.endpoint + PING,
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return -result.returncode, None
    body, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(body) if body.strip() else None


def answers(site: LocalSite, remote: Remote, token: str, status: int) -> bool:
    return ping(site, remote, token)[0] == status


class Namespace:
    """What someone with the built-in `edit` role may do in the namespace: Secrets and peers."""

    def __init__(self, kubeconfig: Path) -> None:
        self.api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        self.core = k8s_client.CoreV1Api(self.api)
        self.custom = k8s_client.CustomObjectsApi(self.api)

    def create_peer(
        self, remote: Remote, *, inbound_hash: str, name: str | None = None, namespace: str = NAMESPACE
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FederationPeer",
            "metadata": {"name": name or remote.name},
            "spec": {
                "endpoint": "https://127.0.0.1:9",
                "remoteCertificates": [{"pem": remote.pem}],
                "inbound": {"secretHash": inbound_hash},
            },
        }
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body
        )
        return created

    def create_generated_peer(self, remote: Remote) -> None:
        """A peer whose inbound token the operator generates (no spec.inbound)."""
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FederationPeer",
            "metadata": {"name": remote.name},
            "spec": {"endpoint": "https://127.0.0.1:9", "remoteCertificates": [{"pem": remote.pem}]},
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)

    def handed_over_token(self, peer: str) -> str | None:
        """What the remote would present: our generated inbound token, from the handoff Secret
        (`remote-outbound`, docs/credentials.md), while it is there."""
        handoff = self.secret(f"{peer}-handoff")
        encoded = ((handoff or {}).get("data") or {}).get("remote-outbound")
        return base64.b64decode(encoded).decode() if encoded else None

    def inbound_hashes(self, peer: str) -> dict[str, Any] | None:
        secret = self.secret(f"{peer}-inbound")
        encoded = ((secret or {}).get("data") or {}).get("hashes.json")
        return json.loads(base64.b64decode(encoded)) if encoded else None

    def delete_peer(self, name: str, *, namespace: str = NAMESPACE) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def set_inbound_hash(self, name: str, inbound_hash: str) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, name, {"spec": {"inbound": {"secretHash": inbound_hash}}}
        )

    def peer(self, name: str, *, namespace: str = NAMESPACE) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        return found

    def condition(self, name: str, type_: str, *, namespace: str = NAMESPACE) -> dict[str, Any]:
        for condition in (self.peer(name, namespace=namespace).get("status") or {}).get("conditions") or []:
            if condition.get("type") == type_:
                return dict(condition)
        return {}

    def secret(self, name: str) -> dict[str, Any] | None:
        """A Secret as the API returns it (plain dict), or None."""
        try:
            found = self.core.read_namespaced_secret(name, NAMESPACE)
        except k8s_client.ApiException as error:
            if error.status == 404:
                return None
            raise
        plain: dict[str, Any] = self.api.sanitize_for_serialization(found)
        return plain

    def event_reasons(self, name: str) -> set[str]:
        return {
            str(event.reason)
            for event in self.core.list_namespaced_event(NAMESPACE).items
            if event.involved_object.name == name
        }

    def close(self) -> None:
        self.api.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[LocalSite]:
    running = LocalSite(name="eu", workdir=tmp_path / "eu").start()
    yield running
    running.close()


@pytest.fixture
def namespace(site: LocalSite) -> Iterator[Namespace]:
    editor = Namespace(site.kubeconfig)
    yield editor
    editor.close()


def test_a_forged_or_copied_inbound_secret_changes_nothing_and_is_reported(
    site: LocalSite, namespace: Namespace, tmp_path: Path
) -> None:
    bravo, barrier = make_remote(tmp_path, "bravo"), make_remote(tmp_path, "barrier")
    namespace.create_peer(bravo, inbound_hash=bravo.token_hash)
    wait_for(lambda: answers(site, bravo, bravo.token, 200), timeout=30, message="bravo answers 200")
    # The barrier peer's Secret travels on the same watch stream as the forgery, after it: once
    # its token is accepted, the server has seen the forgery too.
    namespace.create_peer(barrier, inbound_hash=barrier.token_hash)
    wait_for(lambda: answers(site, barrier, barrier.token, 200), timeout=30, message="barrier 200")

    genuine = namespace.secret("bravo-inbound")
    assert genuine is not None
    attacker_token = new_token()
    document = json.dumps({"current": hash_of(attacker_token), "previous": []}).encode()
    forged = {
        "metadata": {
            "name": "bravo-inbound-copy",
            "labels": genuine["metadata"]["labels"],
            # The peer's uid is no secret: a copy can name the same owner.
            "ownerReferences": genuine["metadata"]["ownerReferences"],
        },
        "data": {"hashes.json": base64.b64encode(document).decode()},
    }
    namespace.core.create_namespaced_secret(NAMESPACE, forged)
    second = new_token()
    namespace.set_inbound_hash("barrier", hash_of(second))
    wait_for(lambda: answers(site, barrier, second, 200), timeout=30, message="barrier moved on")

    assert ping(site, bravo, bravo.token)[0] == 200
    status, body = ping(site, bravo, attacker_token)
    assert (status, body and body["factor"]) == (401, "Secret")
    reported = wait_for(
        lambda: (
            (c := namespace.condition("bravo", "CredentialsReady")).get("reason") == "ForeignInboundSecret"
            and c
        ),
        timeout=30,
        message="bravo reports the forged Secret",
    )
    assert "bravo-inbound-copy" in reported["message"]
    # kopf posts events from a queue of its own, after the status patch: wait for this reason, not
    # for any event (the peer's earlier ones are there already).
    wait_for(
        lambda: "ForeignInboundSecret" in namespace.event_reasons("bravo"),
        timeout=30,
        message="a ForeignInboundSecret event on bravo",
    )

    # Removing the forgery leaves bravo's own hash in place (today it took bravo's hash with it).
    namespace.core.delete_namespaced_secret("bravo-inbound-copy", NAMESPACE)
    third = new_token()
    namespace.set_inbound_hash("barrier", hash_of(third))
    wait_for(lambda: answers(site, barrier, third, 200), timeout=30, message="barrier moved on again")
    assert ping(site, bravo, bravo.token)[0] == 200
    wait_for(
        lambda: namespace.condition("bravo", "CredentialsReady").get("status") == "True",
        timeout=30,
        message="bravo's report cleared",
    )


def test_deleting_the_peers_own_inbound_secret_is_repaired_from_its_spec(
    site: LocalSite, namespace: Namespace, tmp_path: Path
) -> None:
    bravo = make_remote(tmp_path, "bravo")
    namespace.create_peer(bravo, inbound_hash=bravo.token_hash)
    wait_for(lambda: answers(site, bravo, bravo.token, 200), timeout=30, message="bravo answers 200")
    before = _uid_of(namespace, "bravo-inbound")
    namespace.core.delete_namespaced_secret("bravo-inbound", NAMESPACE)
    wait_for(
        lambda: _uid_of(namespace, "bravo-inbound") not in (None, before),
        timeout=30,
        message="bravo-inbound re-created from spec.inbound.secretHash",
    )
    wait_for(lambda: answers(site, bravo, bravo.token, 200), timeout=30, message="bravo answers 200 again")


def generated_link(site: LocalSite, namespace: Namespace, remote: Remote) -> str:
    """A peer with a generated inbound token, answering the remote; returns the token."""
    namespace.create_generated_peer(remote)
    token = wait_for(lambda: namespace.handed_over_token(remote.name), timeout=30, message="handoff")
    wait_for(lambda: answers(site, remote, token, 200), timeout=30, message=f"{remote.name} answers 200")
    return token


def restore_reported(namespace: Namespace, peer: str) -> dict[str, Any]:
    def reported() -> dict[str, Any] | None:
        condition = namespace.condition(peer, "CredentialsReady")
        return condition if condition.get("reason") == "InboundSecretRestored" else None

    condition = wait_for(reported, timeout=30, message="the restore is reported on the peer")
    assert condition["status"] == "True", "the link itself is whole"
    assert f"Secret {peer}-inbound was written back" in condition["message"]
    # kopf posts Events from a queue of its own: wait for this one, not for any Event.
    wait_for(
        lambda: "InboundSecretRestored" in namespace.event_reasons(peer),
        timeout=10,
        message="an InboundSecretRestored Event on the peer",
    )
    return dict(condition)


def test_a_deleted_generated_inbound_secret_is_written_back_from_status_and_reported(
    site: LocalSite, namespace: Namespace, tmp_path: Path
) -> None:
    bravo = make_remote(tmp_path, "bravo")
    token = generated_link(site, namespace, bravo)
    fingerprint = namespace.peer("bravo")["status"]["inbound"]["fingerprint"]
    before = _uid_of(namespace, "bravo-inbound")
    namespace.core.delete_namespaced_secret("bravo-inbound", NAMESPACE)
    wait_for(
        lambda: _uid_of(namespace, "bravo-inbound") not in (None, before),
        timeout=30,
        message="bravo-inbound written back",
    )
    assert (namespace.inbound_hashes("bravo") or {}).get("current") == hash_of(token)
    restore_reported(namespace, "bravo")
    assert namespace.peer("bravo")["status"]["inbound"]["fingerprint"] == fingerprint, "no new token"
    assert ping(site, bravo, token)[0] == 200


def test_our_inbound_secret_rewritten_with_an_attackers_hash_is_overwritten_from_status_and_reported(
    site: LocalSite, namespace: Namespace, tmp_path: Path
) -> None:
    bravo = make_remote(tmp_path, "bravo")
    token = generated_link(site, namespace, bravo)
    attacker_token = new_token()
    forged = json.dumps({"current": hash_of(attacker_token), "previous": []}).encode()
    # What the built-in `edit` role may do: rewrite the Secret in place, owner and labels intact
    # (deleting it and creating one with the owner uid copied ends the same way).
    namespace.core.patch_namespaced_secret(
        "bravo-inbound", NAMESPACE, {"data": {"hashes.json": base64.b64encode(forged).decode()}}
    )
    wait_for(
        lambda: (namespace.inbound_hashes("bravo") or {}).get("current") == hash_of(token),
        timeout=30,
        message="bravo-inbound overwritten back from status",
    )
    assert "Altered" in restore_reported(namespace, "bravo")["message"]
    status, body = ping(site, bravo, attacker_token)
    assert (status, body and body["factor"]) == (401, "Secret")
    assert ping(site, bravo, token)[0] == 200


def _uid_of(namespace: Namespace, name: str) -> str | None:
    secret = namespace.secret(name)
    return None if secret is None else str(secret["metadata"]["uid"])


def raw_exchange(site: LocalSite, remote: Remote, request: bytes) -> bytes:
    """Send `request` as-is over a TLS connection presenting `remote`'s certificate; read until
    the server closes (or 10 s pass: the socket's own deadline)."""
    context = ssl.create_default_context(cafile=str(site.ca_file))
    context.load_cert_chain(remote.cert, remote.key)
    with (
        socket.create_connection(("127.0.0.1", site.federation_port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(request)
        received = b""
        while chunk := tls.recv(65536):
            received += chunk
        return received


def derived_from(token: str) -> list[str]:
    """Strings that must never appear where an attacker or a log reader looks: the token and
    prefixes of its hash long enough to be a fingerprint."""
    digest = hash_of(token).removeprefix("sha256:")
    return [token, digest[:12], digest[:8]]


def server_log(site: LocalSite, caplog: pytest.LogCaptureFixture) -> str:
    """Everything the federation server's thread logged, tracebacks included. (The operator's
    log may show status fingerprints: those are public by design, in FederationPeer status.)"""
    handler = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(
        handler.format(record)
        for record in caplog.records
        if record.threadName == f"federation-server-{site.name}"
    )


MALFORMED_AUTHORIZATION = {
    "folded line": b"Authorization: Bearer %s\r\n  continued\r\n",
    "trailing DEL": b"Authorization: Bearer %s\x7f\r\n",
    "NUL inside": b"Authorization: Bearer \x00%s\r\n",
    "bare CR": b"Authorization: Bearer %s\rX-Other: 1\r\n",
}


@pytest.mark.parametrize("shape", sorted(MALFORMED_AUTHORIZATION))
def test_a_malformed_authorization_header_gets_a_fixed_400_without_the_token(
    site: LocalSite,
    namespace: Namespace,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    shape: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    bravo = make_remote(tmp_path, "bravo")
    namespace.create_peer(bravo, inbound_hash=bravo.token_hash)
    wait_for(lambda: answers(site, bravo, bravo.token, 200), timeout=30, message="bravo answers 200")
    header = MALFORMED_AUTHORIZATION[shape] % bravo.token.encode()
    reply = raw_exchange(
        site, bravo, b"GET " + PING.encode() + b" HTTP/1.1\r\nHost: eu\r\n" + header + b"\r\n"
    )
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", reply[:200]
    assert json.loads(body) == {"ok": False, "message": "malformed HTTP request"}
    audit = (
        (site.workdir / "eu-audit.jsonl").read_text() if (site.workdir / "eu-audit.jsonl").exists() else ""
    )
    logged = server_log(site, caplog)
    for secret in derived_from(bravo.token):
        assert secret.encode() not in reply
        assert secret not in logged
        assert secret not in audit
    assert "Traceback" not in logged


def test_a_wrong_token_reply_names_no_fingerprint_of_either_token(
    site: LocalSite, namespace: Namespace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bravo = make_remote(tmp_path, "bravo")
    namespace.create_peer(bravo, inbound_hash=bravo.token_hash)
    wait_for(lambda: answers(site, bravo, bravo.token, 200), timeout=30, message="bravo answers 200")
    guess = new_token()
    status, body = ping(site, bravo, guess)
    assert (status, body and body["factor"]) == (401, "Secret")
    site.stop_server()  # flushes the audit log
    audit = (site.workdir / "eu-audit.jsonl").read_text()
    logged = server_log(site, caplog)
    for secret in (*derived_from(bravo.token), *derived_from(guess)):
        assert secret not in json.dumps(body)
        assert secret not in audit
        assert secret not in logged


def test_a_peer_in_another_namespace_claiming_the_same_caller_takes_nothing_and_both_are_flagged(
    site: LocalSite, namespace: Namespace, tmp_path: Path
) -> None:
    bravo = make_remote(tmp_path, "bravo")
    namespace.create_peer(bravo, inbound_hash=bravo.token_hash)
    wait_for(lambda: answers(site, bravo, bravo.token, 200), timeout=30, message="bravo answers 200")
    # A tenant of namespace aaa copies bravo's public certificate and its git-safe hash.
    namespace.core.create_namespace({"metadata": {"name": "aaa"}})
    namespace.create_peer(bravo, inbound_hash=bravo.token_hash, name="hijack", namespace="aaa")

    def flagged(name: str, peer_namespace: str, other: str) -> bool:
        condition = namespace.condition(name, "CredentialsReady", namespace=peer_namespace)
        return condition.get("reason") == "AmbiguousPeer" and other in condition.get("message", "")

    wait_for(lambda: flagged("bravo", NAMESPACE, "aaa/hijack"), timeout=30, message="bravo flagged")
    wait_for(lambda: flagged("hijack", "aaa", "default/bravo"), timeout=30, message="hijack flagged")
    refused = wait_for(
        lambda: (reply := ping(site, bravo, bravo.token))[0] != 200 and reply, timeout=30, message="refused"
    )
    assert refused[0] == 403
    assert refused[1] is not None
    assert refused[1]["factor"] == "AmbiguousPeer"
    assert "aaa" not in refused[1]["message"]

    namespace.delete_peer("hijack", namespace="aaa")
    wait_for(
        lambda: namespace.condition("bravo", "CredentialsReady").get("status") == "True",
        timeout=30,
        message="bravo's flag cleared",
    )
    answered = wait_for(
        lambda: (reply := ping(site, bravo, bravo.token))[0] == 200 and reply, timeout=30, message="200"
    )
    assert answered[1] is not None
    assert answered[1]["peer"] == {"name": "bravo", "namespace": NAMESPACE}


@dataclasses.dataclass
class ConfiguredSite(LocalSite):
    """A site whose federation server runs with the settings a test chooses."""

    server_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    def server_config(self) -> ServerConfig:
        return dataclasses.replace(super().server_config(), **self.server_overrides)


@contextlib.contextmanager
def configured_site(directory: Path, **overrides: Any) -> Iterator[ConfiguredSite]:
    running = ConfiguredSite(name="eu", workdir=directory, server_overrides=overrides).start(operator=False)
    try:
        yield running
    finally:
        running.close()


@contextlib.contextmanager
def bounded_site(directory: Path, **limits: Any) -> Iterator[ConfiguredSite]:
    with configured_site(directory, limits=ConnectionLimits(**limits)) as site:
        yield site


def unauthenticated(site: LocalSite, *, timeout: float = 10) -> ssl.SSLSocket:
    """A TLS connection without a client certificate: what anyone on the internet can open."""
    context = ssl.create_default_context(cafile=str(site.ca_file))
    plain = socket.create_connection(("127.0.0.1", site.federation_port), timeout=timeout)
    return context.wrap_socket(plain, server_hostname="127.0.0.1")


def until_server_ends(tls: ssl.SSLSocket, payloads: Iterable[bytes] = ()) -> bytes:
    """Send `payloads`, then read until the server ends the connection; return what it said.
    A reset counts as the server ending it. The socket's timeout is the deadline: a server that
    holds the connection fails the test with TimeoutError."""
    received = b""
    try:
        for payload in payloads:
            tls.sendall(payload)
        while chunk := tls.recv(65536):
            received += chunk
    except (ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        pass
    return received


def test_maximum_headers_without_end_are_cut_at_the_request_byte_limit(tmp_path: Path) -> None:
    with bounded_site(tmp_path / "eu") as site, unauthenticated(site) as tls:
        # The review's attack: 60 headers of 32,000 bytes, never finishing the request.
        fill = (b"X-Fill-%d: %s\r\n" % (number, b"a" * 32_000) for number in range(60))
        reply = until_server_ends(tls, itertools.chain([b"GET " + PING.encode() + b" HTTP/1.1\r\n"], fill))
        assert reply == b"" or reply.split(b" ")[1] == b"431", reply[:100]


def test_headers_trickled_slower_than_the_header_timeout_are_cut(tmp_path: Path) -> None:
    with bounded_site(tmp_path / "eu", header_timeout=1.0) as site, unauthenticated(site) as tls:
        started = time.monotonic()
        reply = until_server_ends(tls, iter([b"GET " + PING.encode() + b" HTTP/1.1\r\nHost: e"]))
        assert time.monotonic() - started < 5
        assert reply == b"" or reply.split(b" ")[1] == b"408", reply[:100]


def test_an_idle_connection_is_closed_after_the_keepalive_timeout(tmp_path: Path) -> None:
    with bounded_site(tmp_path / "eu", keepalive_timeout=1.0) as site, unauthenticated(site) as tls:
        started = time.monotonic()
        assert until_server_ends(tls) == b""
        assert time.monotonic() - started < 5


def test_connections_at_the_cap_evict_the_oldest_idle_one_and_a_real_peer_still_gets_in(
    tmp_path: Path,
) -> None:
    with bounded_site(tmp_path / "eu", max_connections=4, keepalive_timeout=60.0) as site:
        bravo = make_remote(tmp_path, "bravo")
        index_peer_via_api(site, bravo)
        hostile = [unauthenticated(site, timeout=5) for _ in range(5)]
        try:
            assert until_server_ends(hostile[0]) == b"", "the oldest idle connection makes room"
            wait_for(lambda: answers(site, bravo, bravo.token, 200), timeout=30, message="bravo gets in")
        finally:
            for tls in hostile:
                tls.close()


def server_hello(site: LocalSite, *, source: str = "127.0.0.1") -> bytes:
    """Open a TCP connection from `source`, send a TLS ClientHello and return the first bytes the
    server answers (a handshake record, 0x16), or b"" when it closes without a TLS byte."""
    context = ssl.create_default_context(cafile=str(site.ca_file))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    hello = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with contextlib.suppress(ssl.SSLWantReadError):
        hello.do_handshake()
    with socket.create_connection(
        ("127.0.0.1", site.federation_port), timeout=10, source_address=(source, 0)
    ) as plain:
        try:
            plain.sendall(outgoing.read())
            return plain.recv(5)
        except ConnectionResetError:
            return b""


def test_a_tls_handshake_never_finished_is_aborted_at_the_handshake_timeout(tmp_path: Path) -> None:
    with (
        bounded_site(tmp_path / "eu", handshake_timeout=1.0) as site,
        socket.create_connection(("127.0.0.1", site.federation_port), timeout=10) as stalled,
    ):
        # Half a TLS record header, then nothing: asyncio alone would wait 60 s for the rest.
        stalled.sendall(b"\x16\x03")
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            assert stalled.recv(1024) == b""
        assert time.monotonic() - started < 5


def test_handshakes_beyond_the_cap_are_closed_before_any_tls_and_a_peer_gets_in_afterwards(
    tmp_path: Path,
) -> None:
    with bounded_site(tmp_path / "eu", max_handshakes=3, handshake_timeout=60.0) as site:
        bravo = make_remote(tmp_path, "bravo")
        index_peer_via_api(site, bravo)
        assert server_hello(site).startswith(b"\x16"), "a handshake below the cap is answered"
        stalled = [socket.create_connection(("127.0.0.1", site.federation_port)) for _ in range(3)]
        try:
            wait_for(lambda: server_hello(site) == b"", timeout=10, message="the fourth is closed unanswered")
        finally:
            for connection in stalled:
                connection.close()
        wait_for(lambda: answers(site, bravo, bravo.token, 200), timeout=30, message="bravo gets in")


def test_a_source_reconnecting_faster_than_the_connection_rate_is_refused_before_tls_and_no_other_is(
    tmp_path: Path,
) -> None:
    with bounded_site(tmp_path / "eu", connection_rate=0.2, connection_burst=5) as site:
        bravo = make_remote(tmp_path, "bravo")
        index_peer_via_api(site, bravo)
        # The attacker is 127.0.0.2 (all of 127/8 is loopback); bravo pings from 127.0.0.1.
        replies = [server_hello(site, source="127.0.0.2") for _ in range(8)]
        assert [reply[:1] for reply in replies] == [b"\x16"] * 5 + [b""] * 3
        wait_for(lambda: answers(site, bravo, bravo.token, 200), timeout=30, message="bravo gets in")


def index_peer_via_api(site: LocalSite, remote: Remote) -> None:
    """Without an operator: the peer, and the status the operator would write for it (its
    accepted inbound hash, docs/api.md), so that the server's watch indexes it."""
    editor = Namespace(site.kubeconfig)
    try:
        editor.create_peer(remote, inbound_hash=remote.token_hash)
        status = {"inbound": {"acceptedHashes": [{"hash": remote.token_hash}]}}
        editor.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, PLURAL, remote.name, {"status": status}
        )
    finally:
        editor.close()


def behind_envoy(site: ConfiguredSite) -> str:
    assert site.server_overrides["http_port"] is not None
    return f"127.0.0.1:{site.server_overrides['http_port']}"


def forward_auth(
    address: str, *, remote: Remote | None, token: str, forwarded_for: Sequence[str] = ()
) -> int:
    """One forward-auth call as Envoy's ext_authz makes it: XFCC `Hash=` of the client's
    certificate (when it presented one), its Authorization header, and whatever
    X-Forwarded-For lines reached the proxy plus the one the proxy appends."""
    connection = http.client.HTTPConnection(address, timeout=10)
    try:
        connection.putrequest("GET", "/api/federation/auth/anything")
        if remote is not None:
            der = x509.load_pem_x509_certificate(remote.pem.encode()).public_bytes(serialization.Encoding.DER)
            connection.putheader("x-forwarded-client-cert", f"Hash={hashlib.sha256(der).hexdigest()}")
        connection.putheader("Authorization", f"Bearer {token}")
        for line in forwarded_for:
            connection.putheader("X-Forwarded-For", line)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


@contextlib.contextmanager
def envoy_site(directory: Path) -> Iterator[ConfiguredSite]:
    """The federation server as behind Envoy Gateway: XFCC from a trusted 127.0.0.1."""
    sources = CertSourceConfig(
        sources=frozenset({CertSource.XFCC}), trusted_proxies=parse_networks(["127.0.0.1/32"])
    )
    with configured_site(directory, http_port=free_port(), cert_sources=sources) as site:
        yield site


def test_one_peers_failures_never_slow_another_peer_behind_a_proxy_without_x_forwarded_for(
    tmp_path: Path,
) -> None:
    with envoy_site(tmp_path / "eu") as site:
        alpha, bravo = make_remote(tmp_path, "alpha"), make_remote(tmp_path, "bravo")
        index_peer_via_api(site, alpha)
        index_peer_via_api(site, bravo)
        address = behind_envoy(site)
        wait_for(
            lambda: forward_auth(address, remote=bravo, token=bravo.token) == 200, timeout=30, message="bravo"
        )
        wait_for(
            lambda: forward_auth(address, remote=alpha, token=alpha.token) == 200, timeout=30, message="alpha"
        )
        # alpha's site misconfigured (an old token): it keeps failing, well past the burst of 20.
        stale = new_token()
        statuses = [forward_auth(address, remote=alpha, token=stale) for _ in range(25)]
        assert statuses[:20] == [401] * 20
        assert statuses[20:] == [403] * 5, "alpha's own certificate is limited"
        assert forward_auth(address, remote=bravo, token=bravo.token) == 200
        # Unauthenticated callers share the proxy's address, but never a peer's bucket.
        for _ in range(25):
            forward_auth(address, remote=None, token=stale)
        assert forward_auth(address, remote=bravo, token=bravo.token) == 200


def test_a_forged_first_x_forwarded_for_line_aims_the_limit_at_nobody_but_the_attacker(
    tmp_path: Path,
) -> None:
    victim, attacker = "198.51.100.7", "203.0.113.9"
    with envoy_site(tmp_path / "eu") as site:
        address = behind_envoy(site)
        wrong = new_token()
        # The attacker sends its own X-Forwarded-For naming the victim; the proxy appends the
        # attacker's real address on a second line.
        statuses = [
            forward_auth(address, remote=None, token=wrong, forwarded_for=[victim, attacker])
            for _ in range(22)
        ]
        assert statuses[-1] == 403, "the attacker's own address is limited"
        assert forward_auth(address, remote=None, token=wrong, forwarded_for=[victim]) == 401, (
            "the victim is not limited"
        )

        site.stop_server()  # writes what the audit log still counts
        records = [json.loads(line) for line in (site.workdir / "eu-audit.jsonl").read_text().splitlines()]
        calls = [(record["source"], record.get("repeated", 1)) for record in records]
        assert {source for source, _ in calls} == {victim, attacker}
        assert sum(count for source, count in calls if source == attacker) == 22


def test_the_tls_listener_trusts_only_its_own_handshake_not_a_header_from_a_trusted_address(
    tmp_path: Path,
) -> None:
    sources = CertSourceConfig(
        sources=frozenset({CertSource.DIRECT, CertSource.XFCC}),
        trusted_proxies=parse_networks(["127.0.0.1/32"]),
    )
    with configured_site(tmp_path / "eu", cert_sources=sources) as site:
        alpha, bravo = make_remote(tmp_path, "alpha"), make_remote(tmp_path, "bravo")
        index_peer_via_api(site, alpha)
        index_peer_via_api(site, bravo)
        wait_for(lambda: answers(site, bravo, bravo.token, 200), timeout=30, message="bravo answers 200")
        wait_for(lambda: answers(site, alpha, alpha.token, 200), timeout=30, message="alpha answers 200")
        der = x509.load_pem_x509_certificate(alpha.pem.encode()).public_bytes(serialization.Encoding.DER)
        request = (
            b"GET " + PING.encode() + b" HTTP/1.1\r\nHost: eu\r\nConnection: close\r\n"
            b"x-forwarded-client-cert: Hash=" + hashlib.sha256(der).hexdigest().encode() + b"\r\n"
            b"Authorization: Bearer " + alpha.token.encode() + b"\r\n\r\n"
        )
        # bravo's TLS connection, from 127.0.0.1 (a trusted proxy address), claims to be alpha.
        reply = raw_exchange(site, bravo, request)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"401", reply[:200]
        assert json.loads(body)["factor"] == "Secret"


def test_a_forwarded_certificate_past_its_validity_is_refused(tmp_path: Path) -> None:
    sources = CertSourceConfig(
        sources=frozenset({CertSource.NGINX}), trusted_proxies=parse_networks(["127.0.0.1/32"])
    )
    with configured_site(tmp_path / "eu", http_port=free_port(), cert_sources=sources) as site:
        old = make_remote(tmp_path, "old", expired=True)
        index_peer_via_api(site, old)
        address = behind_envoy(site)

        def nginx_forward_auth() -> int:
            connection = http.client.HTTPConnection(address, timeout=10)
            try:
                connection.request(
                    "GET",
                    "/api/federation/auth",
                    headers={"ssl-client-cert": quote(old.pem), "Authorization": f"Bearer {old.token}"},
                )
                return connection.getresponse().status
            finally:
                connection.close()

        def refused_as_expired() -> dict[str, Any] | None:
            # Until the watch has indexed the peer the refusal says "pinned by no FederationPeer".
            if nginx_forward_auth() != 401:
                return None
            audit = site.workdir / "eu-audit.jsonl"
            lines = audit.read_text().splitlines() if audit.exists() else []
            last: dict[str, Any] = json.loads(lines[-1]) if lines else {}
            return last if "expired" in last.get("message", "") else None

        refused = wait_for(refused_as_expired, timeout=30, message="expired certificate refused")
        assert refused["factor"] == "Certificate"


def test_a_flood_of_failing_calls_with_long_paths_is_aggregated_in_the_audit_log(tmp_path: Path) -> None:
    with configured_site(tmp_path / "eu") as site:
        context = ssl.create_default_context(cafile=str(site.ca_file))
        connection = http.client.HTTPSConnection(
            "127.0.0.1", site.federation_port, context=context, timeout=10
        )
        long_path = "/api/federation/auth/" + "a" * 8000
        answers: Counter[int] = Counter()
        try:
            for _ in range(200):
                connection.request("GET", long_path, headers={"Authorization": "Bearer " + new_token()})
                response = connection.getresponse()
                response.read()
                answers[response.status] += 1
        finally:
            connection.close()
        site.stop_server()
        # 403: rate limited after a burst of 20. The bucket refills one token per 3 s, so a flood
        # that takes longer (a loaded machine) has a 401 or two more: the audit log is held to
        # the answers the client got, not to a fixed split.
        assert set(answers) <= {401, 403}
        assert answers[401] >= 20
        audit = site.workdir / "eu-audit.jsonl"
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        assert audit.stat().st_size < 8 * 1024, "was 16.5 KB per call"
        assert all(len(record.get("path", "")) <= 256 for record in records)
        # A summary line stands for `repeated` calls, a full line for one.
        logged: Counter[str] = Counter()
        for record in records:
            logged[record["result"]] += record.get("repeated", 1)
        assert logged == {"denied": answers[401], "rate-limited": answers[403]}
        summarised = {record["result"] for record in records if "repeated" in record}
        assert summarised == {"denied", "rate-limited"}, "both floods were aggregated"


def test_the_audit_file_rotates_by_size(tmp_path: Path) -> None:
    sources = CertSourceConfig(
        sources=frozenset({CertSource.XFCC}), trusted_proxies=parse_networks(["127.0.0.1/32"])
    )
    with configured_site(
        tmp_path / "eu", http_port=free_port(), cert_sources=sources, audit_max_bytes=4096, audit_backups=2
    ) as site:
        address = behind_envoy(site)
        # Distinct sources: nothing to aggregate, every call is written in full.
        for number in range(60):
            assert (
                forward_auth(address, remote=None, token="x", forwarded_for=[f"198.51.100.{number}"]) == 401
            )
        site.stop_server()
    audit = site.workdir / "eu-audit.jsonl"
    kept = [audit, Path(f"{audit}.1"), Path(f"{audit}.2")]
    assert all(path.exists() for path in kept)
    assert not Path(f"{audit}.3").exists()
    assert all(path.stat().st_size <= 4096 for path in kept)


def test_metrics_and_readiness_are_not_served_on_the_internet_facing_listener(site: LocalSite) -> None:
    context = ssl.create_default_context(cafile=str(site.ca_file))
    for path in ("/metrics", "/readyz"):
        connection = http.client.HTTPSConnection(
            "127.0.0.1", site.federation_port, context=context, timeout=10
        )
        try:
            connection.request("GET", path)
            assert connection.getresponse().status == 404, path
        finally:
            connection.close()
        ops = http.client.HTTPConnection("127.0.0.1", site.metrics_port, timeout=10)
        try:
            ops.request("GET", path)
            assert ops.getresponse().status in (200, 503), path
        finally:
            ops.close()


def everything_readable(site: Any) -> str:
    """Every Secret's decoded data, every annotation and spec of Secrets and FederationPeers: what
    a reader of the remote cluster could see."""
    texts = []
    for secret in site.core.list_namespaced_secret(site.namespace).items:
        texts.append(json.dumps(secret.metadata.annotations or {}))
        texts.extend(base64.b64decode(value).decode("latin-1") for value in (secret.data or {}).values())
    peers = site.custom.list_namespaced_custom_object(GROUP, VERSION, site.namespace, PLURAL)["items"]
    texts.extend(json.dumps(peer) for peer in peers)
    return "\n".join(texts)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="the remote admin's kubectl applies the bundle")
def test_importing_an_export_keeps_the_inbound_token_only_as_a_hash_and_in_no_annotation(
    site_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from federation_operator.plugin import cli

    eu, us = site_factory("eu", peer_check_interval=0.3), site_factory("us", peer_check_interval=0.3)
    eu.create("federationcerts", "eu-client", {"subject": "eu"})
    eu.wait_condition("federationcerts", "eu-client", "Ready", "True")
    eu.create(
        PLURAL,
        "us",
        {
            "endpoint": "https://127.0.0.1:9",
            "remoteCertificates": [{"thumbprint": "sha256:" + "7a" * 32}],
            "clientCertificateRef": {"name": "eu-client"},
        },
    )
    eu.wait_condition(PLURAL, "us", "CredentialsReady", "True")
    assert (
        cli.main(
            [
                "export",
                "us",
                "--name",
                "eu",
                "--endpoint",
                "https://127.0.0.1:9",
                "--client-certificate",
                "us-client",
                "--kubeconfig",
                str(eu.kubeconfig),
            ]
        )
        == 0
    )
    bundle = tmp_path / "for-us.yaml"
    bundle.write_text(capsys.readouterr().out)
    bundle.chmod(0o600)
    secret_doc = next(
        doc for doc in yaml.safe_load_all(bundle.read_text()) if doc and doc["kind"] == "Secret"
    )
    # What EU will present to US: US's inbound token, which US needs only as a hash.
    us_inbound = base64.b64decode(secret_doc["data"]["inbound"]).decode()

    # The way the bundle was meant to be used so far: kubectl apply leaves the token readable.
    subprocess.run(
        ["kubectl", "--kubeconfig", str(us.kubeconfig), "apply", "-f", str(bundle)],
        check=True,
        capture_output=True,
    )
    assert us_inbound in everything_readable(us)

    assert cli.main(["import", str(bundle), "--kubeconfig", str(us.kubeconfig)]) == 0
    assert us_inbound not in everything_readable(us)
    us.wait_condition(PLURAL, "eu", "CredentialsReady", "True")
    peer = us.get(PLURAL, "eu") or {}
    assert peer["spec"]["inbound"] == {"secretHash": hash_of(us_inbound)}
    eu_status = (eu.get(PLURAL, "us") or {})["status"]
    assert peer["status"]["inbound"]["fingerprint"] == eu_status["outbound"]["fingerprint"]
    assert peer["status"]["outbound"]["fingerprint"] == eu_status["inbound"]["fingerprint"]
    assert us_inbound not in everything_readable(us), "nothing the operator wrote since holds it"
