import contextlib
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from federation_operator.domain import certs, pinning
from federation_operator.domain.certs import Algorithm

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=list(Algorithm))
def issued(request: pytest.FixtureRequest) -> certs.IssuedCertificate:
    return certs.issue_certificate(
        subject="eu client", validity=timedelta(days=90), algorithm=request.param, now=NOW
    )


def test_certificate_is_a_backdated_client_leaf(issued: certs.IssuedCertificate) -> None:
    cert = x509.load_pem_x509_certificate(issued.info.pem.encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH
        in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    assert issued.info.not_before == NOW - certs.BACKDATE
    assert issued.info.not_after == NOW + timedelta(days=90)
    assert issued.info.subject == "eu client"


def test_key_belongs_to_certificate_and_never_prints(issued: certs.IssuedCertificate) -> None:
    assert certs.key_matches_certificate(key_pem=issued.key_pem, cert_pem=issued.info.pem)
    other = certs.issue_certificate(subject="x", validity=timedelta(days=1), now=NOW)
    assert not certs.key_matches_certificate(key_pem=other.key_pem, cert_pem=issued.info.pem)
    assert b"PRIVATE KEY" in issued.key_pem.reveal()
    assert "PRIVATE" not in repr(issued) + str(issued.key_pem)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_thumbprint_equals_what_openssl_prints(issued: certs.IssuedCertificate, tmp_path: Path) -> None:
    pem = tmp_path / "client.crt"
    pem.write_text(issued.info.pem)
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(pem)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    printed = out.strip().split("=", 1)[1]
    assert pinning.normalize_thumbprint(printed) == issued.info.thumbprint
    assert issued.info.thumbprint == "sha256:" + printed.replace(":", "").lower()


def test_renewal_defaults_to_a_third_of_the_lifetime() -> None:
    start, end = NOW, NOW + timedelta(days=90)
    assert certs.renewal_time(not_before=start, not_after=end, renew_before=None) == NOW + timedelta(days=60)
    assert certs.renewal_time(
        not_before=start, not_after=end, renew_before=timedelta(days=10)
    ) == end - timedelta(days=10)


def test_garbage_is_not_a_certificate() -> None:
    with pytest.raises(certs.InvalidCertificate):
        certs.describe_pem("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


def test_local_server_identity_verifies_for_its_hosts_with_its_ca(tmp_path: Path) -> None:
    import ssl

    identity = certs.issue_server_identity(
        common_name="eu",
        hosts=["127.0.0.1", "localhost"],
        validity=timedelta(days=1),
        now=datetime.now(tz=UTC),
    )
    (tmp_path / "ca.crt").write_text(identity.ca_pem)
    (tmp_path / "tls.crt").write_text(identity.cert_pem)
    (tmp_path / "tls.key").write_bytes(identity.key_pem.reveal())
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    server_side = server.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):
        for side in (client_side, server_side):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        server_in.write(outgoing.read())
        incoming.write(server_out.read())
    assert client_side.getpeercert()["subjectAltName"] == (("IP Address", "127.0.0.1"), ("DNS", "localhost"))
    assert "PRIVATE" not in repr(identity)
