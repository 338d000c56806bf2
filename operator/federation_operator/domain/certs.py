"""Client identities: the key pair and self-signed certificate behind a FederationCert.

The certificate is a leaf that is pinned by thumbprint on the other side, not chained to a CA:
CA:FALSE, KeyUsage digitalSignature, ExtendedKeyUsage clientAuth, notBefore backdated a few
minutes so that a remote whose clock runs slightly behind accepts it at once.

The private key leaves this module only as `SecretBytes`, which never prints itself.
"""

import base64
import enum
import hashlib
import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BACKDATE: Final = timedelta(minutes=5)
RSA_BITS: Final = 3072
THUMBPRINT_PREFIX: Final = "sha256:"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class Algorithm(enum.StrEnum):
    ECDSA = "ECDSA"
    RSA = "RSA"
    ED25519 = "Ed25519"


ALGORITHM_WARNINGS: Final = {
    Algorithm.ED25519: "Ed25519 client certificates are refused by Envoy's default TLS settings; "
    "use ECDSA unless every proxy on the path accepts Ed25519",
}


@dataclass(frozen=True)
class SecretBytes:
    """Private key material that does not print itself."""

    _value: bytes = field(repr=False)

    def reveal(self) -> bytes:
        return self._value

    def __str__(self) -> str:
        return "<redacted>"

    def __repr__(self) -> str:
        return "SecretBytes(<redacted>)"


@dataclass(frozen=True)
class CertificateInfo:
    """What may be published about a certificate: everything in it is public."""

    pem: str
    thumbprint: str
    spki_sha256: str
    subject: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class IssuedCertificate:
    info: CertificateInfo
    key_pem: SecretBytes


class InvalidCertificate(ValueError):
    pass


def _generate_key(algorithm: Algorithm) -> PrivateKey:
    if algorithm is Algorithm.RSA:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if algorithm is Algorithm.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def issue_certificate(
    *, subject: str, validity: timedelta, algorithm: Algorithm = Algorithm.ECDSA, now: datetime
) -> IssuedCertificate:
    """Generate a key and a self-signed client certificate valid from now - BACKDATE."""
    key = _generate_key(algorithm)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    not_before = now - BACKDATE
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signing_hash = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    certificate = builder.sign(key, signing_hash)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return IssuedCertificate(info=describe(certificate), key_pem=SecretBytes(key_pem))


def thumbprint_of_der(der: bytes) -> str:
    """`sha256:<hex>` of the DER certificate, as `openssl x509 -fingerprint -sha256` shows it."""
    return THUMBPRINT_PREFIX + hashlib.sha256(der).hexdigest()


def describe(certificate: x509.Certificate) -> CertificateInfo:
    der = certificate.public_bytes(serialization.Encoding.DER)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    subjects = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return CertificateInfo(
        pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        thumbprint=thumbprint_of_der(der),
        spki_sha256=base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii"),
        subject=str(subjects[0].value) if subjects else "",
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def load_certificate(pem: str | bytes) -> x509.Certificate:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as error:
        raise InvalidCertificate("not a PEM-encoded X.509 certificate") from error


def describe_pem(pem: str | bytes) -> CertificateInfo:
    return describe(load_certificate(pem))


def key_matches_certificate(*, key_pem: SecretBytes, cert_pem: str | bytes) -> bool:
    """Whether a stored key belongs to a stored certificate (detects a tampered Secret)."""
    try:
        key = serialization.load_pem_private_key(key_pem.reveal(), password=None)
    except (ValueError, TypeError):
        return False
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    certificate_public = (
        load_certificate(cert_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return public == certificate_public


def renewal_time(*, not_before: datetime, not_after: datetime, renew_before: timedelta | None) -> datetime:
    """When to warn: renewBefore ahead of expiry, by default a third of the lifetime."""
    before = renew_before if renew_before is not None else (not_after - not_before) / 3
    return not_after - before


def utcnow() -> datetime:
    return datetime.now(tz=UTC)


@dataclass(frozen=True)
class ServerIdentity:
    """A CA and a server certificate it signed: what a local site (sandbox, demo) serves TLS with."""

    ca_pem: str
    cert_pem: str
    key_pem: SecretBytes


def issue_server_identity(
    *, common_name: str, hosts: list[str], validity: timedelta, now: datetime
) -> ServerIdentity:
    """A throwaway CA and a server certificate for `hosts` (DNS names or IP addresses).

    Only for local sites: production federation servers sit behind the cluster's own ingress
    certificates. The CA key is discarded; nothing else can ever be signed by it.
    """
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} local CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return ServerIdentity(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        cert_pem=server.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        key_pem=SecretBytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        ),
    )
