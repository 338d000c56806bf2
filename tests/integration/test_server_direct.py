"""Direct mTLS against the real server with real clients: curl, openssl s_client, httpx."""

import json
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from federation_operator.domain import api
from tests.harness.server import AppThread, Identity, Keys, link, peer_object
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")


@pytest.fixture(scope="module")
def ids(keys: Keys) -> dict[str, Identity]:
    return {name: keys.identity(name) for name in ("a", "b", "stranger", "paused", "gone", "late")}


@pytest.fixture(scope="module")
def server(keys: Keys, ids: dict[str, Identity]) -> Iterator[AppThread]:
    thread = AppThread(keys=keys).start()
    for name in ("a", "b", "paused", "gone"):
        thread.call(link, thread.index, ids[name])
    thread.call(thread.index.upsert_peer, peer_object(ids["paused"], suspend=True))
    thread.call(thread.index.delete_peer, "default", "gone")
    thread.call(thread.index.mark_synced)
    yield thread
    thread.stop()


def curl(
    server: AppThread,
    path: str = api.PING_PATH,
    *,
    cert: Identity | None,
    token: Identity | None,
    extra: list[str] | None = None,
) -> tuple[int, dict[str, Any] | None, str]:
    """(HTTP status or -curl exit code, JSON body, headers)."""
    argv = ["curl", "-sS", "--cacert", str(server.keys.ca), "-D", "-", "--max-time", "10"]
    if cert is not None:
        argv += ["--cert", str(cert.cert), "--key", str(cert.key)]
    if token is not None:
        argv += ["-H", f"Authorization: Bearer {token.token.reveal()}"]
    result = subprocess.run(
        [*argv, *(extra or []), server.tls_url + path], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return -result.returncode, None, result.stderr
    head, _, body = result.stdout.partition("\n\n")  # text mode turned CRLF into LF
    status = int(head.split()[1])
    return status, json.loads(body) if body.strip() else None, head


def test_pinned_certificate_with_its_token_gets_a_green_ping(
    server: AppThread, ids: dict[str, Identity]
) -> None:
    status, body, headers = curl(server, cert=ids["a"], token=ids["a"])
    assert status == 200
    assert body is not None
    assert body["ok"] is True
    assert body["site"] == "eu"
    assert body["peer"] == {"name": "a", "namespace": "default"}
    assert body["link"]["reachability"] == "Reachable"
    assert body["time"].endswith("Z")
    assert "x-request-id" in headers.lower()


def test_unpinned_certificate_is_refused_in_the_handshake(
    server: AppThread, ids: dict[str, Identity]
) -> None:
    status, body, _ = curl(server, cert=ids["stranger"], token=ids["a"])
    assert status < 0, "curl must fail: the server refuses an unpinned certificate during TLS"
    assert body is None


def test_no_certificate_is_refused_with_factor_certificate(
    server: AppThread, ids: dict[str, Identity]
) -> None:
    status, body, _ = curl(server, cert=None, token=ids["a"])
    assert (status, body and body["factor"]) == (401, "Certificate")


def test_wrong_token_is_refused_with_factor_secret(server: AppThread, ids: dict[str, Identity]) -> None:
    status, body, headers = curl(
        server, cert=ids["a"], token=None, extra=["-H", "Authorization: Bearer nope"]
    )
    assert (status, body and body["factor"]) == (401, "Secret")
    assert "x-federation-factor: secret" in headers.lower()


def test_certificate_of_a_with_token_of_b_fails_with_secret(
    server: AppThread, ids: dict[str, Identity]
) -> None:
    status, body, _ = curl(server, cert=ids["a"], token=ids["b"])
    assert (status, body and body["factor"]) == (401, "Secret")
    assert ids["b"].token.reveal() not in json.dumps(body)


def test_suspended_peer_is_refused(server: AppThread, ids: dict[str, Identity]) -> None:
    status, body, _ = curl(server, cert=ids["paused"], token=ids["paused"])
    assert (status, body and body["factor"]) == (403, "Suspended")


def test_deleted_peer_is_refused_with_unknown_peer(server: AppThread, ids: dict[str, Identity]) -> None:
    status, body, _ = curl(server, cert=ids["gone"], token=ids["gone"])
    assert (status, body and body["factor"]) == (403, "UnknownPeer")


def test_forward_auth_names_the_peer_and_overrides_client_headers(
    server: AppThread, ids: dict[str, Identity]
) -> None:
    forged = ["-H", f"{api.HEADER_PEER}: forged", "-H", f"{api.HEADER_NAMESPACE}: forged", "-X", "POST"]
    status, _, headers = curl(
        server, api.FORWARD_AUTH_PATH + "/any/original/path", cert=ids["b"], token=ids["b"], extra=forged
    )
    assert status == 200
    lines = {
        line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in headers.splitlines()[1:]
    }
    assert lines[api.HEADER_PEER.lower()] == "b"
    assert lines[api.HEADER_NAMESPACE.lower()] == "default"


def test_a_newly_pinned_certificate_passes_the_handshake_without_restart(
    server: AppThread, ids: dict[str, Identity]
) -> None:
    assert curl(server, cert=ids["late"], token=ids["late"])[0] < 0
    server.call(link, server.index, ids["late"])
    assert curl(server, cert=ids["late"], token=ids["late"])[0] == 200


def test_openssl_s_client_sees_a_client_certificate_request(server: AppThread) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{server.tls_port}",
            "-msg",
            "-CAfile",
            str(server.keys.ca),
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert "CertificateRequest" in result.stdout
    # No CA names: the handshake does not list our peers' certificate subjects to strangers.
    assert "No client certificate CA names sent" in result.stdout
    assert "Verify return code: 0 (ok)" in result.stdout


def test_openssl_s_client_with_unpinned_certificate_is_cut_off(
    server: AppThread, ids: dict[str, Identity]
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{server.tls_port}",
            "-CAfile",
            str(server.keys.ca),
            "-cert",
            str(ids["stranger"].cert),
            "-key",
            str(ids["stranger"].key),
            "-ign_eof",
        ],
        input="GET /api/federation/ping HTTP/1.0\r\n\r\n",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    # TLS 1.3 checks the client certificate after the client's Finished: the server drops the
    # connection (EOF or reset; asyncio sends no alert) and no HTTP reply ever comes.
    assert "HTTP/1" not in result.stdout
    assert re.search(r"error|errno|alert", result.stderr.lower())


def test_httpx_with_ssl_context_gets_green_ping(server: AppThread, ids: dict[str, Identity]) -> None:
    context = ids["a"].ssl_context(server.keys.ca)
    with httpx.Client(verify=context) as client:
        reply = client.get(
            server.tls_url + api.PING_PATH, headers={"Authorization": f"Bearer {ids['a'].token.reveal()}"}
        )
    assert reply.status_code == 200
    assert reply.json()["peer"]["name"] == "a"


def test_httpx_cert_argument_with_verify_path_sends_no_certificate(
    server: AppThread, ids: dict[str, Identity]
) -> None:
    """The DESIGN.md warning, observed: `cert=` with `verify=<path>` reaches us without a cert."""
    with (
        pytest.warns(DeprecationWarning, match="verify=<str>"),
        httpx.Client(verify=str(server.keys.ca), cert=(str(ids["a"].cert), str(ids["a"].key))) as client,
    ):
        reply = client.get(
            server.tls_url + api.PING_PATH, headers={"Authorization": f"Bearer {ids['a'].token.reveal()}"}
        )
    assert (reply.status_code, reply.json()["factor"]) == (401, "Certificate")


def test_audit_has_one_line_per_call_and_never_a_token(server: AppThread, ids: dict[str, Identity]) -> None:
    _, _, headers = curl(server, cert=ids["a"], token=ids["b"])
    request_id = next(
        line.split(":", 1)[1].strip()
        for line in headers.splitlines()
        if line.lower().startswith("x-request-id")
    )
    records = server.audit_lines()
    [record] = [r for r in records if r["requestId"] == request_id]
    assert record["result"] == "denied"
    assert record["factor"] == "Secret"
    assert record["peer"] == "a"
    assert record["thumbprint"] == ids["a"].thumbprint
    assert record["remote"] == "127.0.0.1"
    text = server.call(server.audit.getvalue)
    for identity in ids.values():
        assert identity.token.reveal() not in text


def test_metrics_count_requests_by_route_result_and_factor(
    server: AppThread, ids: dict[str, Identity]
) -> None:
    curl(server, cert=ids["a"], token=ids["a"])
    reply = httpx.get(server.ops_url + "/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    assert 'federation_server_requests_total{factor="",result="ok",route="ping"}' in reply.text
    assert "federation_server_auth_seconds_bucket" in reply.text


def test_health_and_readiness(server: AppThread) -> None:
    assert httpx.get(server.http_url + "/healthz").status_code == 200
    verify = ssl.create_default_context(cafile=str(server.keys.ca))
    assert httpx.get(server.tls_url + "/healthz", verify=verify).status_code == 200
    assert httpx.get(server.ops_url + "/readyz").status_code == 200


def test_readyz_is_503_until_the_index_is_synced(keys: Keys) -> None:
    thread = AppThread(keys=keys).start()
    try:
        assert httpx.get(thread.ops_url + "/readyz").status_code == 503
        thread.call(thread.index.mark_synced)
        wait_for(lambda: httpx.get(thread.ops_url + "/readyz").status_code == 200, message="ready")
    finally:
        thread.stop()


def test_huge_headers_get_4xx_not_5xx(server: AppThread) -> None:
    for name, size in (("X-Big", 40_000), ("Authorization", 40_000), ("ssl-client-cert", 100_000)):
        reply = httpx.get(server.http_url + api.PING_PATH, headers={name: "A" * size})
        assert 400 <= reply.status_code < 500, (name, reply.status_code)
    many = {f"X-H{i}": "x" for i in range(200)}
    assert 400 <= httpx.get(server.http_url + api.PING_PATH, headers=many).status_code < 500


def test_rate_limit_after_repeated_failures_only_for_that_source(
    keys: Keys, ids: dict[str, Identity]
) -> None:
    thread = AppThread(keys=keys).start()
    thread.call(link, thread.index, ids["a"])
    bad = {"Authorization": "Bearer wrong"}
    try:
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as attacker:
            statuses = [
                attacker.get(thread.http_url + api.PING_PATH, headers=bad).status_code for _ in range(21)
            ]
            limited = attacker.get(thread.http_url + api.PING_PATH, headers=bad)
            limited_auth = attacker.get(thread.http_url + api.FORWARD_AUTH_PATH, headers=bad)
        assert statuses[:20] == [401] * 20
        assert statuses[20] == 429
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["factor"] == "Certificate"
        assert limited_auth.status_code == 403, "nginx auth_request understands only 401/403"
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3")) as bystander:
            assert bystander.get(thread.http_url + api.PING_PATH, headers=bad).status_code == 401
        assert any(r["result"] == "rate-limited" for r in thread.audit_lines())
    finally:
        thread.stop()
