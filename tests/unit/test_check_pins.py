"""`kubectl federation check` on pins: a pin the server cannot enforce fails, with the fix."""

import datetime
from typing import Any

from federation_operator.domain import certs
from federation_operator.plugin.check import Verdict, check_pins

NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
REMOTE = certs.issue_certificate(subject="us", validity=datetime.timedelta(days=90), now=NOW).info


def peer(pins: list[dict[str, str]], *, pins_usable: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if pins_usable is not None:
        status["conditions"] = [{"type": "PinsUsable", "status": pins_usable, "reason": "r", "message": "m"}]
    return {
        "metadata": {"name": "us-region", "namespace": "fed"},
        "spec": {"remoteCertificates": pins},
        "status": status,
    }


def test_a_pem_pin_passes() -> None:
    assert check_pins(peer([{"pem": REMOTE.pem}]), now=NOW).verdict is Verdict.PASS


def test_a_thumbprint_only_pin_fails_with_the_command_that_pins_the_pem() -> None:
    result = check_pins(peer([{"thumbprint": REMOTE.thumbprint}]), now=NOW)
    assert result.verdict is Verdict.FAIL
    assert "remoteCertificates[0]: a thumbprint alone" in result.message
    assert "kubectl federation pin us-region --certificate FILE -n fed" in result.hint


def test_a_thumbprint_pin_beside_the_pem_of_the_same_certificate_passes() -> None:
    pins = [{"thumbprint": REMOTE.thumbprint}, {"pem": REMOTE.pem}]
    assert check_pins(peer(pins), now=NOW).verdict is Verdict.PASS


def test_a_thumbprint_pin_the_operator_says_the_edge_enforces_passes() -> None:
    result = check_pins(peer([{"thumbprint": REMOTE.thumbprint}], pins_usable="True"), now=NOW)
    assert result.verdict is Verdict.PASS


def test_a_thumbprint_pin_the_edge_cannot_enforce_fails() -> None:
    result = check_pins(peer([{"thumbprint": REMOTE.thumbprint}], pins_usable="False"), now=NOW)
    assert result.verdict is Verdict.FAIL
