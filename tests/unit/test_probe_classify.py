"""Failure classification: which factor a failed ping is blamed on, and the line a reader sees."""

import json

import pytest

from federation_operator.probe_classify import TransportProblem, classify_reply, classify_transport


def red(factor: str, message: str) -> bytes:
    return json.dumps({"ok": False, "factor": factor, "message": message}).encode()


def test_green_reply_is_no_failure() -> None:
    assert classify_reply(status=200, factor_header=None, body=b'{"ok": true, "site": "us"}') is None


def test_200_without_a_ping_reply_is_http() -> None:
    failure = classify_reply(status=200, factor_header=None, body=b"<html>welcome</html>")
    assert failure is not None
    assert failure.factor == "HTTP"


@pytest.mark.parametrize("factor", ["Secret", "Certificate", "UnknownPeer", "Suspended"])
def test_remote_red_json_gives_its_factor_and_message(factor: str) -> None:
    failure = classify_reply(status=401, factor_header=factor, body=red(factor, "token does not match"))
    assert failure is not None
    assert (failure.factor, failure.message) == (factor, "remote says: token does not match")


def test_factor_header_stands_in_when_a_proxy_replaced_the_body() -> None:
    failure = classify_reply(status=401, factor_header="Secret", body=b"<html>401</html>")
    assert failure is not None
    assert failure.factor == "Secret"


def test_unknown_factor_in_body_is_not_believed() -> None:
    failure = classify_reply(status=403, factor_header=None, body=red("Gremlins", "no"))
    assert failure is not None
    assert failure.factor == "HTTP"
    assert "403" in failure.message


def test_plain_http_error_is_http_with_status() -> None:
    failure = classify_reply(status=502, factor_header=None, body=b"bad gateway")
    assert failure is not None
    assert (failure.factor, failure.message) == ("HTTP", "the remote answered HTTP 502")


def test_remote_message_is_one_bounded_line() -> None:
    failure = classify_reply(
        status=401, factor_header=None, body=red("Secret", "line one\nline two " + "x" * 900)
    )
    assert failure is not None
    assert "\n" not in failure.message
    assert len(failure.message) <= 300


@pytest.mark.parametrize(
    "reason",
    [
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    ],
)
def test_remote_alert_about_our_certificate_is_certificate(reason: str) -> None:
    failure = classify_transport(TransportProblem("read", ssl_reason=reason), timeout_seconds=10)
    assert failure.factor == "Certificate"


def test_server_certificate_verification_failure_is_tls() -> None:
    problem = TransportProblem(
        "connect",
        ssl_reason="CERTIFICATE_VERIFY_FAILED",
        verify_message="unable to get local issuer certificate",
    )
    failure = classify_transport(problem, timeout_seconds=10)
    assert failure.factor == "TLS"
    assert "unable to get local issuer certificate" in failure.message


def test_other_handshake_failure_is_tls() -> None:
    failure = classify_transport(
        TransportProblem("connect", ssl_reason="WRONG_VERSION_NUMBER"), timeout_seconds=10
    )
    assert (failure.factor, failure.message) == ("TLS", "TLS handshake failed: wrong version number")


@pytest.mark.parametrize(
    ("errno_name", "message"),
    [("ECONNREFUSED", "connection refused"), ("ECONNRESET", "connection reset by the remote")],
)
def test_refused_and_reset_are_network(errno_name: str, message: str) -> None:
    failure = classify_transport(TransportProblem("connect", errno_name=errno_name), timeout_seconds=10)
    assert (failure.factor, failure.message) == ("Network", message)


def test_timeout_names_the_timeout() -> None:
    failure = classify_transport(TransportProblem("timeout"), timeout_seconds=2.5)
    assert (failure.factor, failure.message) == ("Timeout", "no complete reply within 2.5s")


def test_redirect_and_oversized_reply_are_http() -> None:
    assert (
        classify_transport(TransportProblem("redirect", detail="HTTP 302"), timeout_seconds=1).factor
        == "HTTP"
    )
    assert (
        classify_transport(TransportProblem("too-large", detail="65536 bytes"), timeout_seconds=1).factor
        == "HTTP"
    )


def test_closed_without_reply_is_network() -> None:
    failure = classify_transport(TransportProblem("read", detail="closed"), timeout_seconds=1)
    assert failure.factor == "Network"


def test_silent_refusal_right_after_the_handshake_is_certificate() -> None:
    failure = classify_transport(TransportProblem("refused-after-handshake"), timeout_seconds=1)
    assert failure.factor == "Certificate"
    assert "client certificate" in failure.message
