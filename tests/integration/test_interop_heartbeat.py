"""The heartbeat against a remote that is not our server, and against Secrets and faults it must survive.

The remote is `federation_devkit.independent_remote` (aiohttp, written from docs/protocol.md): it answers a
green ping with a bare `200 pong`. The site is a sandbox with its operator, driven with the
official client and the plugin, as a user would.
"""

import base64
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from federation_devkit.independent_remote import IndependentRemote, sha256_hash
from federation_operator.adapters import probe
from federation_operator.domain import api, tokens
from federation_operator.plugin import cli
from tests.harness.server import Keys
from tests.harness.site import Site, SiteFactory, issued_pem
from tests.harness.waiting import wait_for

PEERS = api.PEER_PLURAL
HEARTBEAT = {"interval": "1s", "timeout": "800ms", "slowThreshold": "500ms"}
TRUST = {"caBundleRef": {"kind": "ConfigMap", "name": "federation-ca"}}


@dataclass
class Link:
    site: Site
    remote: IndependentRemote
    token: str

    def status(self) -> dict[str, Any]:
        return dict((self.site.get(PEERS, "us") or {}).get("status") or {})

    def wait_status(self, check: Any, message: str, timeout: float = 10.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            status = self.status()
            return status if check(status) else None

        return wait_for(probe, timeout=timeout, message=message)


@pytest.fixture
def link(site_factory: SiteFactory, tmp_path: Path) -> Iterator[Link]:
    keys = Keys.create(tmp_path)
    site = site_factory("eu", peer_check_interval=0.3)
    site.core.create_namespaced_config_map(
        site.namespace, {"metadata": {"name": "federation-ca"}, "data": {"ca.crt": keys.ca.read_text()}}
    )
    eu_pem = issued_pem(site, "eu-client")
    token = tokens.generate_token().reveal()
    site.core.create_namespaced_secret(
        site.namespace, {"metadata": {"name": "to-us"}, "stringData": {"token": token}}
    )
    remote = IndependentRemote(
        server_cert=keys.server_cert,
        server_key=keys.server_key,
        pinned_pems=[eu_pem],
        accepted_hashes=[sha256_hash(token)],
    ).start()
    site.create(
        PEERS,
        "us",
        {
            "endpoint": remote.url,
            "remoteCertificates": [{"pem": keys.identity("us").pem}],
            "clientCertificateRef": {"name": "eu-client"},
            "outbound": {"secretRef": {"name": "to-us", "key": "token"}},
            "heartbeat": HEARTBEAT,
            "serverTrust": TRUST,
        },
    )
    yield Link(site=site, remote=remote, token=token)
    remote.stop()


def test_a_remote_answering_a_bare_200_is_reachable_and_no_cycle_fails(
    link: Link, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    status = link.wait_status(lambda s: s.get("reachability") == "Reachable", "Reachable")
    assert "remote" not in status, "nothing of our reply extension was sent, so nothing is shown"
    wait_for(lambda: link.remote.requests >= 3, timeout=10.0, message="three pings")
    assert link.status()["reachability"] == "Reachable"
    assert not [r for r in caplog.records if "heartbeat cycle" in r.getMessage()]


def test_a_remote_answering_another_json_shape_is_reachable(link: Link) -> None:
    from aiohttp import web

    link.remote.green = lambda: web.json_response({"ok": "yes", "peer": "eu", "link": [1], "site": 7})
    status = link.wait_status(lambda s: s.get("reachability") == "Reachable", "Reachable")
    assert "remote" not in status


def test_an_error_page_is_factor_http_quoting_an_excerpt(link: Link) -> None:
    from aiohttp import web

    link.wait_status(lambda s: s.get("reachability") == "Reachable", "Reachable")
    link.remote.green = lambda: web.Response(
        status=503, text="<html><body>\x1b[31mmaintenance window\r\n</body></html>" + "x" * 2000
    )
    status = link.wait_status(lambda s: s.get("reachability") == "Degraded", "Degraded")
    failure = status["lastFailure"]
    assert failure["factor"] == "HTTP"
    assert failure["message"].startswith("the remote answered HTTP 503: <html><body>?[31mmaintenance window")
    assert len(failure["message"]) < 300


def test_an_unexpected_error_in_a_cycle_becomes_a_status_and_a_log_line_naming_it(
    link: Link, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    link.wait_status(lambda s: s.get("reachability") == "Reachable", "Reachable")
    caplog.set_level(logging.WARNING)

    async def broken(self: probe.Pinger, **kwargs: object) -> probe.PingOutcome:
        raise AttributeError("'str' object has no attribute 'get' (injected)")

    monkeypatch.setattr(probe.Pinger, "ping", broken)
    status = link.wait_status(
        lambda s: (s.get("lastFailure") or {}).get("message", "").endswith("(injected)"),
        "the fault in status",
        timeout=3.0,  # one interval (1 s) plus a status write, with room for a loaded machine
    )
    assert status["reachability"] == "Degraded"
    assert status["lastFailure"]["factor"] == "Network"
    assert status["lastFailure"]["message"] == (
        "the heartbeat failed while pinging: AttributeError: 'str' object has no attribute 'get' (injected)"
    )
    lines = [r.getMessage() for r in caplog.records if "heartbeat cycle" in r.getMessage()]
    assert lines
    assert "default/us" in lines[0]
    assert "(injected)" in lines[0]
    monkeypatch.undo()
    link.wait_status(lambda s: s.get("reachability") == "Reachable", "Reachable again")


def secret_data(site: Site, name: str) -> dict[str, bytes]:
    secret = site.secret(name)
    assert secret is not None
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}


def test_a_malformed_outbound_secret_is_a_status_and_ping_and_check_do_not_crash(
    link: Link, capsys: pytest.CaptureFixture[str]
) -> None:
    link.wait_status(lambda s: s.get("reachability") == "Reachable", "Reachable")
    # A change to spec.outbound makes the next cycle read the Secret again at once.
    link.site.core.create_namespaced_secret(
        link.site.namespace,
        {
            "metadata": {"name": "to-us-2"},
            "data": {"token": base64.b64encode(b"\xff\xfe not a token").decode()},
        },
    )
    link.site.patch(PEERS, "us", {"spec": {"outbound": {"secretRef": {"name": "to-us-2", "key": "token"}}}})
    status = link.wait_status(lambda s: (s.get("lastFailure") or {}).get("factor") == "Secret", "Secret")
    assert "is not a 43-character base64url token" in status["lastFailure"]["message"]
    capsys.readouterr()
    kubeconfig = str(link.site.kubeconfig)
    assert cli.main(["ping", "us", "--kubeconfig", kubeconfig]) == 1
    out = capsys.readouterr().out
    assert "factor:  Secret" in out
    assert "43-character" in out
    assert cli.main(["check", "--kubeconfig", kubeconfig]) == 1
    out = capsys.readouterr().out
    assert "43-character" in out
    assert "Traceback" not in out


def test_a_malformed_previous_expires_at_leaves_the_generated_outbound_token_working(
    link: Link, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case: the handler tolerated it, the heartbeat's own parser raised every cycle."""
    site = link.site
    us = site.get(PEERS, "us") or {}
    site.create(PEERS, "gen", {**us["spec"], "outbound": {}})
    site.wait_condition(PEERS, "gen", "CredentialsReady", "True")
    current = secret_data(site, "gen-outbound")[api.OUTBOUND_TOKEN_KEY].decode()
    link.remote.accepted_hashes.append(sha256_hash(current))
    wait_for(
        lambda: (site.get(PEERS, "gen") or {}).get("status", {}).get("reachability") == "Reachable",
        timeout=10.0,
        message="gen Reachable",
    )
    caplog.set_level(logging.WARNING)
    site.core.patch_namespaced_secret(
        "gen-outbound",
        site.namespace,
        {
            "data": {
                api.OUTBOUND_PREVIOUS_TOKEN_KEY: base64.b64encode(
                    tokens.generate_token().reveal().encode()
                ).decode(),
                api.OUTBOUND_PREVIOUS_EXPIRES_KEY: base64.b64encode(b"tomorrow-ish").decode(),
            }
        },
    )
    requests = link.remote.requests
    wait_for(lambda: link.remote.requests >= requests + 4, timeout=10.0, message="more pings")
    status = (site.get(PEERS, "gen") or {})["status"]
    assert status["reachability"] == "Reachable"
    assert next(c for c in status["conditions"] if c["type"] == "CredentialsReady")["status"] == "True"
    assert not [r for r in caplog.records if "heartbeat cycle" in r.getMessage()]
    capsys.readouterr()
    kubeconfig = str(site.kubeconfig)
    assert cli.main(["ping", "gen", "--kubeconfig", kubeconfig]) == 0
    assert "Reachable" in capsys.readouterr().out
    cli.main(["check", "--kubeconfig", kubeconfig])
    assert "Traceback" not in capsys.readouterr().out
