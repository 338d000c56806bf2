"""Failure classification: which factor a failed ping is blamed on, and the line a reader sees."""

import json

import pytest

from federation_operator.domain.probe_classify import (
    EXCERPT_LIMIT,
    TransportProblem,
    classify_reply,
    classify_transport,
    read_ping_reply,
    unexpected,
)


def red(factor: str, message: str) -> bytes:
    return json.dumps({"ok": False, "factor": factor, "message": message}).encode()


def test_green_reply_is_no_failure() -> None:
    assert classify_reply(status=200, factor_header=None, body=b'{"ok": true, "site": "us"}') is None


@pytest.mark.parametrize("status", [200, 201, 204, 299])
@pytest.mark.parametrize(
    "body",
    [b"", b"pong", b"<html>welcome</html>", b"[1, 2]", b'{"ok": false}', b'{"status": "up"}', b"\xff\xfe"],
)
def test_any_2xx_is_green_whatever_the_body(status: int, body: bytes) -> None:
    assert classify_reply(status=status, factor_header=None, body=body) is None


def test_our_reply_fields_become_the_remote_view() -> None:
    body = json.dumps(
        {
            "ok": True,
            "site": "us",
            "time": "2026-12-01T10:00:00Z",
            "peer": {"name": "eu", "namespace": "fed"},
            "link": {"reachability": "Reachable", "latencyMilliseconds": 12, "inboundFingerprint": "abc"},
        }
    ).encode()
    assert read_ping_reply(body) == {
        "site": "us",
        "time": "2026-12-01T10:00:00Z",
        "peerName": "eu",
        "peerNamespace": "fed",
        "reachability": "Reachable",
        "latencyMilliseconds": 12,
        "inboundFingerprint": "abc",
    }


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"text"',
        b'{"ok": true}',
        b'{"site": 5, "peer": "eu", "link": []}',
        b'{"peer": {"name": null, "namespace": 3}, "link": {"latencyMilliseconds": true}}',
        b'{"link": {"latencyMilliseconds": -1, "reachability": ["Reachable"]}}',
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_reply_fields_of_another_shape_are_ignored(body: bytes) -> None:
    assert read_ping_reply(body) is None


def test_well_formed_fields_are_kept_when_others_are_not() -> None:
    view = read_ping_reply(b'{"site": "us", "peer": 7, "link": {"latencyMilliseconds": "12"}}')
    assert view == {"site": "us"}


@pytest.mark.parametrize("factor", ["Secret", "Certificate", "UnknownPeer", "Suspended", "AmbiguousPeer"])
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


def test_plain_http_error_is_http_with_status_and_an_excerpt() -> None:
    failure = classify_reply(status=502, factor_header=None, body=b"bad gateway")
    assert failure is not None
    assert (failure.factor, failure.message) == ("HTTP", "the remote answered HTTP 502: bad gateway")


def test_an_error_page_excerpt_is_one_bounded_printable_line() -> None:
    page = b"<html>\r\n<title>503</title>\x1b[31m\x00" + "é".encode() + b"\xff" + b"y" * 5000
    failure = classify_reply(status=503, factor_header=None, body=page)
    assert failure is not None
    assert failure.factor == "HTTP"
    assert failure.message.startswith("the remote answered HTTP 503: <html> <title>503</title>?[31m?é")
    assert len(failure.message) <= len("the remote answered HTTP 503: ") + EXCERPT_LIMIT
    assert all(char.isprintable() for char in failure.message)


def test_an_empty_error_reply_is_its_status_alone() -> None:
    failure = classify_reply(status=500, factor_header=None, body=b"")
    assert failure is not None
    assert (failure.factor, failure.message) == ("HTTP", "the remote answered HTTP 500")


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
    assert failure.factor == "TLS"
    assert failure.message == (
        "the TLS handshake failed (wrong version number): is the endpoint an HTTPS federation server?"
    )


@pytest.mark.parametrize(
    ("errno_name", "message"),
    [
        ("ECONNREFUSED", "connection refused: nothing listens at the endpoint's host and port"),
        ("ECONNRESET", "the connection was reset: the remote, or a firewall or proxy on the way, dropped it"),
        ("EHOSTUNREACH", "no route to the remote host: check the network path"),
    ],
)
def test_refused_reset_and_unreachable_say_where_to_look(errno_name: str, message: str) -> None:
    failure = classify_transport(TransportProblem("connect", errno_name=errno_name), timeout_seconds=10)
    assert failure.factor == "Network"
    assert failure.message.startswith(message)


def test_a_name_that_does_not_resolve_is_named_as_dns() -> None:
    failure = classify_transport(TransportProblem("connect", detail="gaierror"), timeout_seconds=10)
    assert (failure.factor, failure.message) == (
        "Network",
        "the endpoint's host name does not resolve (DNS): check spec.endpoint",
    )


def test_timeout_names_the_timeout() -> None:
    failure = classify_transport(TransportProblem("timeout"), timeout_seconds=2.5)
    assert failure.factor == "Timeout"
    assert failure.message.startswith("no complete reply within 2.5s: ")


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


def test_an_unexpected_error_is_named_with_its_message_in_one_bounded_line() -> None:
    assert unexpected(AttributeError("'str' object has no attribute 'get'")) == (
        "AttributeError: 'str' object has no attribute 'get'"
    )
    assert unexpected(KeyError()) == "KeyError"
    long = unexpected(ValueError("a\nb\x1b" + "z" * 1000))
    assert long.startswith("ValueError: a b?z")
    assert len(long) <= len("ValueError: ") + 200
