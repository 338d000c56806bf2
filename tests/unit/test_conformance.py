"""The probe's judgements, without sockets: what passes, warns and fails for each point of
docs/protocol.md, and the line that names missing provider kinds."""

import json
from datetime import timedelta

import pytest

from federation_operator.adapters.k8s.resources import CLIENT_TRAFFIC_POLICIES, HTTPROUTES, SECURITY_POLICIES
from federation_operator.adapters.probe import Fetched
from federation_operator.controller.handlers.ingress import not_installed_message
from federation_operator.domain.reachability import Failure
from federation_operator.plugin import conformance
from federation_operator.plugin.check import Verdict

FAST = timedelta(milliseconds=5)


def reply(status: int, body: object = b"", header: str | None = None) -> Fetched:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Fetched((status, header, raw), FAST)


def refusal(fetched: Fetched, *, factor: str = "Secret", handshake_ok: bool = False) -> Verdict:
    return conformance.judge_refusal("x", fetched, factor=factor, handshake_refusal_ok=handshake_ok).verdict


def test_a_401_with_the_expected_factor_passes_from_the_body_or_the_header() -> None:
    assert refusal(reply(401, {"ok": False, "factor": "Secret", "message": "no"})) is Verdict.PASS
    assert refusal(reply(401, b"<html>401</html>", header="Secret")) is Verdict.PASS


@pytest.mark.parametrize(
    "fetched",
    [reply(401, b"nope"), reply(403, {"factor": "Secret"}), reply(401, {"factor": "Suspended"}), reply(500)],
)
def test_a_refusal_without_the_documented_code_or_factor_warns(fetched: Fetched) -> None:
    assert refusal(fetched) is Verdict.WARN


@pytest.mark.parametrize("status", [200, 204, 299])
def test_any_2xx_to_a_request_that_must_be_refused_fails(status: int) -> None:
    assert refusal(reply(status, b"pong")) is Verdict.FAIL


def test_a_handshake_refusal_counts_only_where_the_protocol_allows_it() -> None:
    refused = Fetched(Failure("Certificate", "the remote requires a client certificate and got none"), FAST)
    assert refusal(refused, factor="Certificate", handshake_ok=True) is Verdict.PASS
    assert refusal(refused, handshake_ok=False) is Verdict.WARN


def test_success_is_any_2xx_and_says_whether_the_optional_fields_came() -> None:
    bare = conformance.judge_success(reply(200, b"pong"))
    assert (bare.verdict, bare.message) == (Verdict.PASS, "HTTP 200; no optional reply fields")
    ours = conformance.judge_success(reply(200, {"ok": True, "site": "us", "peer": {"name": "eu"}}))
    assert ours.message == "HTTP 200; optional reply fields: peerName, site"
    assert conformance.judge_success(reply(401, {"factor": "Secret"})).verdict is Verdict.FAIL


def test_tls_versions_and_the_certificate_request() -> None:
    assert conformance.judge_tls("TLSv1.3").verdict is Verdict.PASS
    assert conformance.judge_tls("TLSv1.2").verdict is Verdict.PASS
    assert conformance.judge_tls("TLSv1.1").verdict is Verdict.FAIL
    assert (
        conformance.judge_tls(Failure("TLS", "TLS handshake failed: wrong version number")).verdict
        is Verdict.FAIL
    )
    assert conformance.judge_requested(None).verdict is Verdict.WARN
    assert conformance.judge_requested("Requested Signature Algorithms: ECDSA+SHA256").verdict is Verdict.PASS
    assert conformance.judge_requested("No client certificate CA names sent").verdict is Verdict.FAIL


def test_latency_warns_above_the_slow_threshold() -> None:
    slow = Fetched((200, None, b""), timedelta(seconds=2))
    assert conformance.judge_latency(slow, slow_threshold=timedelta(seconds=1)).verdict is Verdict.WARN
    assert conformance.judge_latency(reply(200), slow_threshold=timedelta(seconds=1)).verdict is Verdict.PASS


def test_the_missing_kinds_line_names_each_kind_its_group_and_what_to_install() -> None:
    message = not_installed_message(
        [CLIENT_TRAFFIC_POLICIES, SECURITY_POLICIES, HTTPROUTES], provider="envoy-gateway"
    )
    assert message.startswith(
        "the cluster does not serve ClientTrafficPolicy, SecurityPolicy (gateway.envoyproxy.io/v1alpha1); "
        "HTTPRoute (gateway.networking.k8s.io/v1), needed by ingress provider envoy-gateway: install "
    )
    assert "Envoy Gateway" in message
    assert "the Gateway API CRDs" in message
