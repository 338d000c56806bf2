"""The ingress-nginx profile, run in real nginx with real curl: only pinned certificates pass.

nginx is configured from the Ingress and the trust-bundle Secret our code generates (see
tests/harness/nginx_profile.py). Behind it runs the real federation server (`server.app.create_app`,
plain HTTP, certificate taken from nginx's `ssl-client-cert`), its index fed with both peers.
"""

import asyncio
import datetime
import io
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from federation_operator.domain import api, certs
from federation_operator.domain.ingress.bundle import PeerPins, build_trust_bundle, build_trust_bundle_objects
from federation_operator.domain.ingress.config import IngressConfig
from federation_operator.domain.ingress.providers import PROVIDERS
from federation_operator.domain.pinning import parse_pins
from federation_operator.domain.tokens import SecretText, generate_token, hash_token
from federation_operator.server.app import AppConfig, create_app, make_runner
from federation_operator.server.audit import AuditLog
from federation_operator.server.clientcert import CertSource, CertSourceConfig, parse_networks
from federation_operator.server.index import PeerIndex
from tests.harness.ingress import ClientCert, make_client_cert
from tests.harness.net import free_port
from tests.harness.nginx_profile import Nginx, render_nginx_conf, write_ca_file

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx not installed (CI installs nginx-light)"),
]

HOST = "federation.eu.example.com"
NAMESPACE = "federation"
NOW = datetime.datetime.now(datetime.UTC)


def _peer_cert(name: str) -> ClientCert:
    return make_client_cert(
        name, not_before=NOW - datetime.timedelta(minutes=5), not_after=NOW + datetime.timedelta(days=90)
    )


@dataclass
class Identities:
    """us-east: issued by the product's own `certs.issue_certificate`; ap-south and stranger: fixtures."""

    us_east: ClientCert
    ap_south: ClientCert
    stranger: ClientCert
    files: dict[str, tuple[Path, Path]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> Identities:
    issued = certs.issue_certificate(subject="us-east", validity=datetime.timedelta(days=90), now=NOW)
    us_east = ClientCert(
        pem=issued.info.pem,
        key_pem=issued.key_pem.reveal().decode("ascii"),
        der=x509.load_pem_x509_certificate(issued.info.pem.encode()).public_bytes(serialization.Encoding.DER),
    )
    result = Identities(us_east=us_east, ap_south=_peer_cert("ap-south"), stranger=_peer_cert("stranger"))
    directory = tmp_path_factory.mktemp("client-certs")
    for name, cert in (
        ("us-east", result.us_east),
        ("ap-south", result.ap_south),
        ("stranger", result.stranger),
    ):
        crt, key = directory / f"{name}.crt", directory / f"{name}.key"
        crt.write_text(cert.pem)
        key.write_text(cert.key_pem)
        key.chmod(0o600)
        result.files[name] = (crt, key)
    return result


def _server_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(minutes=5))
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    crt, key_path = directory / "server.crt", directory / "server.key"
    crt.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return crt, key_path


@dataclass
class Upstream:
    """The real federation server (plain HTTP, certificate from nginx's `ssl-client-cert`)."""

    port: int
    tokens: dict[str, SecretText]
    audit: io.StringIO

    def audited(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.getvalue().splitlines()]


def _peer_object(name: str, cert: ClientCert, token: SecretText) -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.PEER_KIND,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"endpoint": f"https://{name}.example.com", "remoteCertificates": [cert.pin]},
        "status": {"inbound": {"acceptedHashes": [{"hash": hash_token(token)}]}},
    }


@pytest.fixture
async def upstream(identities: Identities) -> AsyncIterator[Upstream]:
    # The server's index knows both peers for the whole test: what refuses a removed peer below
    # is the edge alone.
    index = PeerIndex()
    state = Upstream(port=free_port(), tokens={}, audit=io.StringIO())
    for name, cert in (("us-east", identities.us_east), ("ap-south", identities.ap_south)):
        state.tokens[name] = generate_token()
        index.upsert_peer(_peer_object(name, cert, state.tokens[name]))
    index.mark_synced()
    config = AppConfig(
        site="eu",
        cert_sources=CertSourceConfig(
            sources=frozenset({CertSource.NGINX}), trusted_proxies=parse_networks(["127.0.0.1/32"])
        ),
    )
    runner = make_runner(create_app(index=index, config=config, audit=AuditLog(state.audit)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", state.port).start()
    try:
        yield state
    finally:
        await runner.cleanup()


@dataclass
class Edge:
    """nginx plus what regenerating its profile needs."""

    nginx: Nginx
    ca_file: Path
    server_cert: Path

    def publish(self, peers: list[PeerPins]) -> None:
        """Regenerate the trust bundle, write the Secret's ca.crt where nginx reads it."""
        bundle = build_trust_bundle(peers, now=datetime.datetime.now(datetime.UTC), needs_pem=True)
        objects = build_trust_bundle_objects(
            namespace=NAMESPACE, bundle=bundle, labels=api.managed_labels(role=api.ROLE_TRUST_BUNDLE)
        )
        [secret] = [obj for obj in objects if obj["kind"] == "Secret"]
        write_ca_file(secret, self.ca_file)


def _peers(identities: Identities, *, with_ap_south: bool = True) -> list[PeerPins]:
    peers = [PeerPins(name="us-east", namespace=NAMESPACE, pins=parse_pins([identities.us_east.pin]))]
    if with_ap_south:
        peers.append(
            PeerPins(name="ap-south", namespace=NAMESPACE, pins=parse_pins([identities.ap_south.pin]))
        )
    return peers


@pytest.fixture
def edge(identities: Identities, upstream: Upstream, tmp_path: Path) -> Iterator[Edge]:
    server_cert, server_key = _server_certificate(tmp_path)
    config = IngressConfig(host=HOST, labels=api.managed_labels(role=api.ROLE_INGRESS))
    probe_bundle = build_trust_bundle(_peers(identities), now=NOW, needs_pem=True)
    [ingress] = PROVIDERS["ingress-nginx"].build_objects(
        namespace=NAMESPACE, bundle=probe_bundle, config=config
    )
    nginx = Nginx(
        binary=shutil.which("nginx") or "nginx",
        prefix=tmp_path,
        conf=tmp_path / "nginx.conf",
        port=free_port(),
    )
    result = Edge(
        nginx=nginx, ca_file=tmp_path / "ca-federation-federation-trust-bundle.pem", server_cert=server_cert
    )
    result.publish(_peers(identities))
    nginx.conf.write_text(
        render_nginx_conf(
            ingress=ingress,
            prefix=tmp_path,
            listen_port=nginx.port,
            upstream_port=upstream.port,
            ca_file=result.ca_file,
            server_cert=server_cert,
            server_key=server_key,
        )
    )
    nginx.start()
    try:
        yield result
    finally:
        nginx.stop()


@dataclass
class CurlResult:
    exit_code: int
    status: int
    body: str


async def _curl(
    edge: Edge,
    identities: Identities,
    who: str | None,
    *,
    token: SecretText | None = None,
    extra_headers: tuple[str, ...] = (),
) -> CurlResult:
    argv = [
        "curl",
        "--silent",
        "--show-error",
        "--max-time",
        "10",
        "--cacert",
        str(edge.server_cert),
        "--resolve",
        f"{HOST}:{edge.nginx.port}:127.0.0.1",
        "--write-out",
        "\n%{http_code}",
    ]
    if who is not None:
        crt, key = identities.files[who]
        argv += ["--cert", str(crt), "--key", str(key)]
    if token is not None:
        # From a file, so the token is not on curl's command line.
        header_file = edge.nginx.prefix / "authorization.header"
        header_file.write_text(f"Authorization: Bearer {token.reveal()}\n")
        argv += ["--header", f"@{header_file}"]
    for header in extra_headers:
        argv += ["--header", header]
    argv.append(f"https://{HOST}:{edge.nginx.port}{api.PING_PATH}")
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    body, _, status = stdout.decode().rpartition("\n")
    assert process.returncode is not None
    return CurlResult(exit_code=process.returncode, status=int(status or 0), body=body)


async def _ping(edge: Edge, identities: Identities, upstream: Upstream, who: str) -> CurlResult:
    return await _curl(edge, identities, who, token=upstream.tokens.get(who))


async def test_a_pinned_certificate_passes_forward_auth_and_reaches_the_server_as_its_peer(
    edge: Edge, identities: Identities, upstream: Upstream
) -> None:
    result = await _ping(edge, identities, upstream, "us-east")
    assert (result.exit_code, result.status) == (0, 200), result.body
    reply = json.loads(result.body)
    assert reply["peer"] == {"name": "us-east", "namespace": NAMESPACE}
    # The server saw the certificate nginx forwarded, first in the auth subrequest, then proxied.
    thumbprint = certs.describe_pem(identities.us_east.pem).thumbprint
    assert [(r["route"], r["result"], r["thumbprint"]) for r in upstream.audited()] == [
        ("auth", "ok", thumbprint),
        ("ping", "ok", thumbprint),
    ]


async def test_a_pinned_certificate_with_the_wrong_secret_is_stopped_by_forward_auth(
    edge: Edge, identities: Identities, upstream: Upstream
) -> None:
    result = await _curl(edge, identities, "us-east", token=upstream.tokens["ap-south"])
    assert result.status == 401
    assert [(r["route"], r["factor"]) for r in upstream.audited()] == [("auth", "Secret")]


async def test_a_client_sent_ssl_client_cert_is_replaced_by_the_one_nginx_verified(
    edge: Edge, identities: Identities, upstream: Upstream
) -> None:
    # us-east presents its own certificate but also writes ap-south's into the header the
    # profile sets, with ap-south's token: nginx must overwrite the header, so the server judges
    # us-east's certificate (factor Secret), never ap-south's.
    forged = quote(identities.ap_south.pem)
    result = await _curl(
        edge,
        identities,
        "us-east",
        token=upstream.tokens["ap-south"],
        extra_headers=(f"ssl-client-cert: {forged}",),
    )
    assert result.status == 401
    thumbprint = certs.describe_pem(identities.us_east.pem).thumbprint
    assert [(r["route"], r["factor"], r["thumbprint"]) for r in upstream.audited()] == [
        ("auth", "Secret", thumbprint)
    ]


async def test_an_unpinned_certificate_is_refused_before_anything_reaches_the_server(
    edge: Edge, identities: Identities, upstream: Upstream
) -> None:
    # nginx completes the handshake and answers 400 itself (its verify callback defers the
    # verdict to the HTTP layer): no auth subrequest, no proxied request.
    result = await _curl(edge, identities, "stranger", token=upstream.tokens["us-east"])
    assert (result.exit_code, result.status) == (0, 400)
    assert "The SSL certificate error" in result.body
    assert "client SSL certificate verify error" in edge.nginx.error_log()

    no_cert = await _curl(edge, identities, None, token=upstream.tokens["us-east"])
    assert no_cert.status == 400
    assert "No required SSL certificate was sent" in no_cert.body
    assert upstream.audited() == []


async def test_a_removed_peer_is_refused_once_the_bundle_is_updated_and_nginx_reloaded(
    edge: Edge, identities: Identities, upstream: Upstream
) -> None:
    assert (await _ping(edge, identities, upstream, "ap-south")).status == 200

    edge.publish(_peers(identities, with_ap_south=False))
    edge.nginx.reload()
    reached = len(upstream.audited())
    for _ in range(5):
        assert (await _ping(edge, identities, upstream, "ap-south")).status == 400
    assert len(upstream.audited()) == reached
    assert (await _ping(edge, identities, upstream, "us-east")).status == 200
