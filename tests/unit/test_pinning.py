from datetime import UTC, datetime, timedelta

import pytest

from federation_operator.domain import certs, pinning

ISSUED = certs.issue_certificate(subject="x", validity=timedelta(days=1), now=datetime.now(tz=UTC))


def test_every_spelling_of_a_thumbprint_normalises_to_one() -> None:
    hex_ = ISSUED.info.thumbprint.removeprefix("sha256:")
    colons = ":".join(hex_[i : i + 2] for i in range(0, 64, 2)).upper()
    for spelling in (ISSUED.info.thumbprint, hex_, hex_.upper(), colons, "SHA256:" + hex_):
        assert pinning.normalize_thumbprint(spelling) == ISSUED.info.thumbprint
    assert pinning.hex_digest(colons) == hex_


def test_pem_and_thumbprint_pins_of_one_certificate_are_the_same_pin() -> None:
    by_pem = pinning.pin_thumbprint({"pem": ISSUED.info.pem})
    by_print = pinning.pin_thumbprint({"thumbprint": ISSUED.info.thumbprint})
    assert by_pem == by_print
    assert pinning.pinned_thumbprints([{"pem": ISSUED.info.pem}, {"thumbprint": by_print}]) == {by_pem}


@pytest.mark.parametrize(
    "pin", [{}, {"pem": ISSUED.info.pem, "thumbprint": ISSUED.info.thumbprint}, {"thumbprint": "sha256:abc"}]
)
def test_malformed_pins_are_refused(pin: dict[str, object]) -> None:
    with pytest.raises(pinning.InvalidPin):
        pinning.pin_thumbprint(pin)
