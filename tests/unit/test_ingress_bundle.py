"""The trust bundle holds exactly the enforceable pins of active peers, stably ordered."""

import datetime
import hashlib
import subprocess
from pathlib import Path

import pytest

from federation_operator.domain.ingress.bundle import (
    REASON_CERTIFICATE_EXPIRED,
    REASON_INVALID_PIN,
    REASON_PEM_REQUIRED,
    PeerPins,
    build_trust_bundle,
)
from federation_operator.domain.pinning import parse_pins
from tests.harness.ingress import ClientCert, make_client_cert

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)


def _valid(name: str) -> ClientCert:
    return make_client_cert(
        name, not_before=NOW - datetime.timedelta(days=1), not_after=NOW + datetime.timedelta(days=90)
    )


@pytest.fixture(scope="module")
def eu() -> ClientCert:
    return _valid("eu")


@pytest.fixture(scope="module")
def us() -> ClientCert:
    return _valid("us")


@pytest.fixture(scope="module")
def expired() -> ClientCert:
    return make_client_cert(
        "old", not_before=NOW - datetime.timedelta(days=100), not_after=NOW - datetime.timedelta(days=10)
    )


def _hex(cert: ClientCert) -> str:
    return hashlib.sha256(cert.der).hexdigest()


def test_a_certificate_pinned_by_two_peers_appears_once(eu: ClientCert) -> None:
    bundle = build_trust_bundle(
        [
            PeerPins(name="a", namespace="ns", pins=parse_pins([eu.pin])),
            PeerPins(
                name="b", namespace="ns", pins=parse_pins([eu.pin, {"thumbprint": f"sha256:{_hex(eu)}"}])
            ),
        ],
        now=NOW,
    )
    assert bundle.ca_crt == eu.pem
    assert bundle.thumbprints == (_hex(eu),)
    assert bundle.warnings == ()


def test_an_expired_certificate_is_left_out_with_a_warning_naming_it(
    eu: ClientCert, expired: ClientCert
) -> None:
    bundle = build_trust_bundle(
        [PeerPins(name="a", namespace="ns", pins=parse_pins([eu.pin, expired.pin]))], now=NOW
    )
    assert bundle.ca_crt == eu.pem
    assert _hex(expired) not in bundle.thumbprints
    [warning] = bundle.warnings
    assert (warning.peer, warning.namespace, warning.reason) == ("a", "ns", REASON_CERTIFICATE_EXPIRED)
    assert f"sha256:{_hex(expired)}" in warning.message
    assert (NOW - datetime.timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ") in warning.message


def test_suspended_peers_contribute_nothing(eu: ClientCert, us: ClientCert) -> None:
    bundle = build_trust_bundle(
        [
            PeerPins(name="a", namespace="ns", pins=parse_pins([eu.pin])),
            PeerPins(
                name="b",
                namespace="ns",
                pins=parse_pins([us.pin, {"thumbprint": "sha256:" + "ab" * 32}]),
                suspended=True,
            ),
        ],
        now=NOW,
    )
    assert bundle.ca_crt == eu.pem
    assert bundle.thumbprints == (_hex(eu),)


def test_no_active_peer_gives_an_empty_bundle(eu: ClientCert) -> None:
    bundle = build_trust_bundle(
        [PeerPins(name="a", namespace="ns", pins=parse_pins([eu.pin]), suspended=True)], now=NOW
    )
    assert (bundle.ca_crt, bundle.thumbprints, bundle.warnings) == ("", (), ())


def test_order_of_peers_and_pins_does_not_change_the_bundle(eu: ClientCert, us: ClientCert) -> None:
    extra = _valid("ap")
    one = build_trust_bundle(
        [
            PeerPins(name="a", namespace="ns", pins=parse_pins([eu.pin, us.pin])),
            PeerPins(name="b", namespace="ns", pins=parse_pins([extra.pin])),
        ],
        now=NOW,
    )
    other = build_trust_bundle(
        [
            PeerPins(name="b", namespace="ns", pins=parse_pins([extra.pin])),
            PeerPins(name="a", namespace="ns", pins=parse_pins([us.pin, eu.pin])),
        ],
        now=NOW,
    )
    assert one == other
    assert list(one.certificate_hashes) == sorted([_hex(eu), _hex(us), _hex(extra)])
    assert one.ca_crt == "".join(cert.pem for cert in sorted([eu, us, extra], key=_hex))


def test_pem_formatting_differences_do_not_change_the_bundle(eu: ClientCert) -> None:
    crlf = eu.pem.replace("\n", "\r\n") + "\n\n"
    one = build_trust_bundle([PeerPins(name="a", namespace="ns", pins=parse_pins([eu.pin]))], now=NOW)
    other = build_trust_bundle(
        [PeerPins(name="a", namespace="ns", pins=parse_pins([{"pem": crlf}]))], now=NOW
    )
    assert one.ca_crt == other.ca_crt == eu.pem


def test_thumbprint_only_pin_is_flagged_when_the_provider_needs_the_pem(
    eu: ClientCert, us: ClientCert
) -> None:
    peers = [
        PeerPins(
            name="a", namespace="ns", pins=parse_pins([eu.pin, {"thumbprint": f"SHA256:{_hex(us).upper()}"}])
        )
    ]
    flagged = build_trust_bundle(peers, now=NOW, needs_pem=True)
    [warning] = flagged.warnings
    assert (warning.peer, warning.reason) == ("a", REASON_PEM_REQUIRED)
    assert f"sha256:{_hex(us)}" in warning.message
    # Still listed: a hash-aware consumer can enforce it.
    assert flagged.thumbprints == tuple(sorted([_hex(eu), _hex(us)]))
    assert flagged.ca_crt == eu.pem

    assert build_trust_bundle(peers, now=NOW, needs_pem=False).warnings == ()


def test_thumbprint_pin_covered_by_another_peers_pem_is_not_flagged(us: ClientCert) -> None:
    bundle = build_trust_bundle(
        [
            PeerPins(name="a", namespace="ns", pins=parse_pins([{"thumbprint": f"sha256:{_hex(us)}"}])),
            PeerPins(name="b", namespace="ns", pins=parse_pins([us.pin])),
        ],
        now=NOW,
        needs_pem=True,
    )
    assert bundle.warnings == ()


def test_unreadable_pins_are_warned_not_raised(eu: ClientCert) -> None:
    bundle = build_trust_bundle(
        [
            PeerPins(
                name="a",
                namespace="ns",
                pins=parse_pins(
                    [{"pem": "not a certificate"}, {"pem": eu.pem + eu.pem}, {"thumbprint": "sha256:zz"}]
                ),
            )
        ],
        now=NOW,
    )
    assert [w.reason for w in bundle.warnings] == [REASON_INVALID_PIN] * 3
    assert bundle.ca_crt == ""


def test_certificate_hashes_are_what_openssl_prints_without_colons(eu: ClientCert, tmp_path: Path) -> None:
    path = tmp_path / "eu.crt"
    path.write_text(eu.pem)
    output = subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", "-fingerprint", "-sha256"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    openssl_hex = output.strip().split("=", 1)[1].replace(":", "").lower()
    bundle = build_trust_bundle([PeerPins(name="a", namespace="ns", pins=parse_pins([eu.pin]))], now=NOW)
    assert bundle.certificate_hashes == (openssl_hex,)
    assert bundle.thumbprints == (openssl_hex,)
