"""Helpers for the federation server's integration tests (this module holds no tests).

A `Keys` directory holds a test CA, a server certificate it signed for 127.0.0.1, and client
identities issued the way FederationCert issues them. `AppThread` runs the real app (direct mTLS
listener + plain HTTP listener) in its own thread and loop on 127.0.0.1, with an index the test
feeds through `call`, so that real clients (curl, openssl, nginx, httpx) can be pointed at it.
"""

import asyncio
import concurrent.futures
import io
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self, TypeVar

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from federation_operator.domain import api, tokens
from federation_operator.domain.certs import issue_certificate
from federation_operator.domain.tokens import SecretText
from federation_operator.server.app import (
    AppConfig,
    create_app,
    create_ops_app,
    make_ops_runner,
    make_runner,
)
from federation_operator.server.audit import AuditLog
from federation_operator.server.clientcert import CertSourceConfig
from federation_operator.server.index import PeerIndex
from federation_operator.server.tls import PinnedTLS

T = TypeVar("T")
NOW = datetime.now(tz=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class Identity:
    name: str
    cert: Path
    key: Path
    pem: str
    thumbprint: str
    token: SecretText

    def ssl_context(self, ca: Path) -> ssl.SSLContext:
        """What httpx needs: an SSLContext with our cert loaded, passed as `verify=`."""
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True)
class Keys:
    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def create(cls, directory: Path) -> Self:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("federation test CA"))
            .issuer_name(_name("federation test CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(minutes=5))
            .not_valid_after(NOW + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(ca_cert.subject)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(minutes=5))
            .not_valid_after(NOW + timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        keys = cls(
            directory=directory,
            ca=directory / "ca.crt",
            server_cert=directory / "server.crt",
            server_key=directory / "server.key",
        )
        keys.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        keys.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
        keys.server_key.write_bytes(_pem_key(server_key))
        return keys

    def identity(self, name: str) -> Identity:
        issued = issue_certificate(subject=name, validity=timedelta(days=1), now=NOW)
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert.write_text(issued.info.pem)
        key.write_bytes(issued.key_pem.reveal())
        return Identity(
            name=name,
            cert=cert,
            key=key,
            pem=issued.info.pem,
            thumbprint=issued.info.thumbprint,
            token=tokens.generate_token(),
        )


def peer_object(
    identity: Identity, *, namespace: str = "default", suspend: bool = False, name: str | None = None
) -> dict[str, Any]:
    """A FederationPeer as the watch delivers it, with the status the operator writes: its
    accepted inbound hash (the token of `identity`) in `status.inbound.acceptedHashes`."""
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.PEER_KIND,
        "metadata": {"name": name or identity.name, "namespace": namespace},
        "spec": {
            "endpoint": "https://remote.invalid",
            "remoteCertificates": [{"pem": identity.pem}],
            "suspend": suspend,
        },
        "status": {
            "reachability": "Reachable",
            "inbound": {
                "fingerprint": "0123456789ab",
                "acceptedHashes": [{"hash": tokens.hash_token(identity.token)}],
            },
        },
    }


def link(index: PeerIndex, identity: Identity, **options: Any) -> None:
    index.upsert_peer(peer_object(identity, **options))


def _listen() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class AppThread:
    """The federation app on 127.0.0.1 (TLS + plain) in its own thread and event loop."""

    def __init__(
        self,
        *,
        keys: Keys,
        cert_sources: CertSourceConfig | None = None,
        site: str = "eu",
        rate_limit_burst: int = 20,
    ) -> None:
        self.index = PeerIndex()
        self.keys = keys
        self.audit = io.StringIO()
        self._config = AppConfig(
            site=site, cert_sources=cert_sources or CertSourceConfig(), rate_limit_burst=rate_limit_burst
        )
        self._tls_sock, self._http_sock, self._ops_sock = _listen(), _listen(), _listen()
        self.tls_port = self._tls_sock.getsockname()[1]
        self.http_port = self._http_sock.getsockname()[1]
        self.ops_port = self._ops_sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="federation-server", daemon=True)

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ops_url(self) -> str:
        """/metrics, /readyz (the in-cluster port)."""
        return f"http://127.0.0.1:{self.ops_port}"

    def audit_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.call(self.audit.getvalue).splitlines()]

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` in the server's loop: the index is only touched from there."""

        async def invoke() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        app = create_app(index=self.index, config=self._config, audit=AuditLog(self.audit))
        runner = make_runner(app)
        await runner.setup()
        tls = PinnedTLS(index=self.index, cert_file=self.keys.server_cert, key_file=self.keys.server_key)
        await web.SockSite(runner, self._tls_sock, ssl_context=tls.context).start()
        await web.SockSite(runner, self._http_sock).start()
        ops_runner = make_ops_runner(create_ops_app(app))
        await ops_runner.setup()
        await web.SockSite(ops_runner, self._ops_sock).start()
        self._started.set_result(None)
        await self._stop.wait()
        await runner.cleanup()
        await ops_runner.cleanup()

    def start(self) -> Self:
        self._thread.start()
        self._started.result(timeout=10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        self._loop.close()
