"""Pins are parsed once, into one value, with one error policy (domain/pinning.py's docstring):
parsing never raises, a malformed pin pins nothing and says why (naming its index), and the valid
pins beside it keep working; an expired PEM pin still names its certificate."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from federation_operator.domain import certs, pinning

NOW = datetime.now(tz=UTC)
ISSUED = certs.issue_certificate(subject="x", validity=timedelta(days=1), now=NOW)
OTHER = certs.issue_certificate(subject="y", validity=timedelta(days=1), now=NOW)
EXPIRED = certs.issue_certificate(subject="old", validity=timedelta(hours=1), now=NOW - timedelta(days=2))


def test_every_spelling_of_a_thumbprint_normalises_to_one() -> None:
    hex_ = ISSUED.info.thumbprint.removeprefix("sha256:")
    colons = ":".join(hex_[i : i + 2] for i in range(0, 64, 2)).upper()
    for spelling in (ISSUED.info.thumbprint, hex_, hex_.upper(), colons, "SHA256:" + hex_):
        assert pinning.normalize_thumbprint(spelling) == ISSUED.info.thumbprint
        assert pinning.parse_pin({"thumbprint": spelling}).hex == hex_


def test_pem_and_thumbprint_pins_of_one_certificate_are_the_same_pin() -> None:
    pins = pinning.parse_pins([{"pem": ISSUED.info.pem}, {"thumbprint": ISSUED.info.thumbprint}])
    assert pins.thumbprints == {ISSUED.info.thumbprint}
    assert pins.pems == (ISSUED.info.pem,)
    assert pins.pins[0].not_after == ISSUED.info.not_after
    assert pins.pins[1].not_after is None


@pytest.mark.parametrize(
    ("pin", "complaint"),
    [
        ({}, "exactly one of pem or thumbprint"),
        ({"pem": ISSUED.info.pem, "thumbprint": ISSUED.info.thumbprint}, "exactly one of pem or thumbprint"),
        ({"thumbprint": "sha256:abc"}, r"\.thumbprint: a thumbprint is 64 hex digits"),
        ({"pem": "not a certificate"}, r"\.pem is not exactly one PEM certificate"),
        ({"pem": ISSUED.info.pem + OTHER.info.pem}, r"\.pem is not exactly one PEM certificate"),
        ({"pem": "caf\u00e9"}, r"\.pem is not exactly one PEM certificate"),
        ("sha256:" + "0" * 64, "is not a {pem} or {thumbprint} object"),
        ({"thumbprint": 42}, "exactly one of pem or thumbprint"),
    ],
)
def test_a_malformed_pin_pins_nothing_says_why_and_leaves_the_others_working(
    pin: object, complaint: str
) -> None:
    pins = pinning.parse_pins([{"pem": OTHER.info.pem}, pin])
    assert pins.thumbprints == {OTHER.info.thumbprint}
    assert [p.index for p in pins.invalid] == [1]
    problem = pins.invalid[0].problem
    assert problem is not None
    assert problem.startswith("remoteCertificates[1]")
    assert re.search(complaint, problem)


def test_an_expired_pem_pin_still_names_its_certificate() -> None:
    pins = pinning.parse_pins([{"pem": EXPIRED.info.pem}])
    assert pins.thumbprints == {EXPIRED.info.thumbprint}
    (pin,) = pins.valid
    assert pin.not_after is not None
    assert pin.not_after < NOW


@pytest.mark.parametrize("value", [None, "x", {"pem": "y"}, 7])
def test_anything_that_is_not_a_list_is_no_pins(value: object) -> None:
    assert pinning.parse_pins(value) == pinning.PinSet()
