"""`kubectl federation status | check | ping` against two linked sites over real mTLS on loopback.

One EU/US pair (linked as the demo links them) serves the module. Tests that break something add
their own objects (a spare certificate, a peer with a broken reference) and remove them, or put
the link back and wait for it to turn green again, so the order of the tests does not matter.
"""

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from federation_devkit.demo import (
    CERTS,
    PEERS,
    Site,
    has_condition,
    heartbeat,
    is_gone,
    is_state,
)
from federation_operator.adapters.k8s.resources import SECRETS
from federation_operator.domain import api, objects, tokens
from federation_operator.domain.credentials import inbound_hashes, peer_secrets
from federation_operator.domain.times import human_duration
from federation_operator.plugin import check, status
from tests.harness.plugin import Output, linked_sites, run_plugin, secrets_of
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\033\[[0-9;]*m")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site]]:
    with linked_sites(Path(tmp_path_factory.mktemp("plugin"))) as sites:
        yield sites


@pytest.fixture
def eu(pair: tuple[Site, Site]) -> Site:
    return pair[0]


@pytest.fixture
def us(pair: tuple[Site, Site]) -> Site:
    return pair[1]


def table_rows(text: str) -> list[dict[str, str]]:
    """kubectl-style columns: split on runs of 2+ spaces (no cell holds two spaces)."""
    lines = text.strip().splitlines()
    headers = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(headers, re.split(r"\s{2,}", line.strip()), strict=True)) for line in lines[1:]]


def line_of(output: Output, fragment: str) -> str:
    matches = [line for line in output.stdout.splitlines() if fragment in line]
    assert matches, f"no line with {fragment!r} in:\n{output.stdout}"
    return matches[0]


# ---- status ------------------------------------------------------------------------------------


def test_status_shows_each_link_with_state_latency_cert_expiry_and_fingerprints(eu: Site, us: Site) -> None:
    output = run_plugin(eu, "status")

    assert output.code == 0, output.stderr
    [row] = table_rows(output.stdout)
    peer_status = eu.status(PEERS, "us-region")
    assert row["NAME"] == "us-region"
    assert "NAMESPACE" not in row
    assert row["ENDPOINT"] == us.local.endpoint
    assert row["REACHABILITY"] in {"Reachable", "Slow"}
    assert re.fullmatch(r"\d+ms", row["LATENCY"])
    assert re.fullmatch(r"\d+s", row["LAST-SUCCESS"])
    assert row["FACTOR"] == "-"
    assert row["CERT"] in {"eu-client (89d)", "eu-client (90d)"}  # 90 days, minus the backdating
    assert row["IN-FP"] == peer_status["inbound"]["fingerprint"]
    assert row["OUT-FP"] == peer_status["outbound"]["fingerprint"]
    assert "\033[" not in output.stdout, "no colour when stdout is not a terminal"


def test_status_all_namespaces_adds_the_namespace_column(us: Site) -> None:
    output = run_plugin(us, "status", "-A")

    assert output.code == 0, output.stderr
    [row] = table_rows(output.stdout)
    assert row["NAMESPACE"] == "default"
    assert row["NAME"] == "eu-region"
    assert row["CERT"].startswith("us-client (")


def test_status_shows_the_factor_of_a_red_link_and_a_missing_cert(eu: Site) -> None:
    eu.apply(
        PEERS,
        "nowhere",
        {
            "endpoint": "https://127.0.0.1:9",  # discard port: nothing listens
            "remoteCertificates": [{"thumbprint": "sha256:" + "ab" * 32}],
            "clientCertificateRef": {"name": "no-such-cert"},
            "heartbeat": heartbeat(1.0),
        },
    )
    try:
        wait_for(
            lambda: eu.status(PEERS, "nowhere").get("lastFailure"),
            timeout=30,
            interval=0.1,
            message="a failed ping on nowhere",
        )
        rows = {row["NAME"]: row for row in table_rows(run_plugin(eu, "status").stdout)}
        assert rows["nowhere"]["REACHABILITY"] in {"Degraded", "Unreachable"}
        assert rows["nowhere"]["FACTOR"] == "Certificate"
        assert rows["nowhere"]["CERT"] == "no-such-cert (missing)"
        assert rows["nowhere"]["LAST-SUCCESS"] == "-"
    finally:
        eu.delete(PEERS, "nowhere")
        wait_for(
            functools.partial(is_gone, eu, PEERS, "nowhere"),
            timeout=30,
            interval=0.1,
            message="nowhere deleted",
        )


def test_status_colours_states_only_for_a_terminal_without_no_color() -> None:
    rows = [
        status.Row("ns", name, "https://x", state, "-", "-", "-", "-", "-", "-")
        for name, state in (("a", "Reachable"), ("b", "Slow"), ("c", "Unreachable"), ("d", "Unknown"))
    ]
    coloured = status.render_table(rows, all_namespaces=False, colour=True)
    plain = status.render_table(rows, all_namespaces=False, colour=False)

    assert "\033[32mReachable" in coloured
    assert "\033[33mSlow" in coloured
    assert "\033[31mUnreachable" in coloured
    assert "\033[2mUnknown" in coloured
    assert ANSI.sub("", coloured) == plain, "escape codes must not shift the columns"


def test_status_relative_ages_read_like_kubectl() -> None:
    cases = {
        0: "0s",
        45: "45s",
        119: "119s",
        330: "5m30s",
        600: "10m",
        4 * 3600 + 60: "4h1m",
        3 * 86400: "3d",
    }
    for seconds, expected in cases.items():
        assert human_duration(seconds) == expected
    assert human_duration(timedelta(days=400).total_seconds()) == "400d"


def test_no_colour_when_no_color_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert status.use_colour(Terminal())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not status.use_colour(Terminal())  # type: ignore[arg-type]


# ---- check -------------------------------------------------------------------------------------


def test_check_passes_on_a_healthy_linked_pair(eu: Site, us: Site) -> None:
    for site in (eu, us):
        output = run_plugin(site, "check", "--ping")

        assert output.code == 0, output.stdout
        assert "[FAIL]" not in output.stdout
        assert "checks passed" in output.stdout
        assert line_of(output, "live ping from here").startswith("[ok]")
        assert line_of(output, "status fingerprints match the Secrets").startswith("[ok]")


def test_check_fails_when_a_certificate_secret_is_deleted(eu: Site) -> None:
    eu.apply(CERTS, "spare", {"subject": "spare"})
    try:
        wait_for(
            functools.partial(has_condition, eu, CERTS, "spare", "Ready"),
            timeout=30,
            interval=0.1,
            message="spare Ready",
        )
        assert run_plugin(eu, "check").code == 0
        eu.delete(SECRETS, "spare-tls")

        output = run_plugin(eu, "check")

        assert output.code == 1
        failure = line_of(output, "Secret spare-tls holds the issued certificate")
        assert failure.startswith("[FAIL]")
        assert "Secret spare-tls not found" in failure
        assert "see: the operator never re-issues" in output.stdout
        assert "checks failed" in output.stdout.splitlines()[-1]
    finally:
        eu.delete(CERTS, "spare")
        wait_for(
            functools.partial(is_gone, eu, CERTS, "spare"), timeout=30, interval=0.1, message="spare deleted"
        )


def test_check_fails_when_a_peer_references_a_missing_certificate(eu: Site) -> None:
    eu.apply(
        PEERS,
        "orphan",
        {
            "endpoint": "https://127.0.0.1:9",
            "remoteCertificates": [{"thumbprint": "sha256:" + "cd" * 32}],
            "clientCertificateRef": {"name": "gone-cert"},
        },
    )
    try:
        output = run_plugin(eu, "check", "-n", "default")

        assert output.code == 1
        failure = line_of(output, "client certificate FederationCert gone-cert")
        assert failure.startswith("[FAIL]")
        assert "FederationCert gone-cert (spec.clientCertificateRef) not found in default" in failure
        # The healthy peer's checks still pass: one broken peer does not hide the others.
        us_region = output.stdout.split("FederationPeer default/us-region")[1].split("\n\n")[0]
        assert "[FAIL]" not in us_region
    finally:
        eu.delete(PEERS, "orphan")
        wait_for(
            functools.partial(is_gone, eu, PEERS, "orphan"),
            timeout=30,
            interval=0.1,
            message="orphan deleted",
        )


def test_check_fails_on_malformed_user_secrets_naming_secret_and_key(eu: Site) -> None:
    garbage = "not a token, and not a hash either"
    for name in ("byo-out", "byo-in"):
        eu.call(
            eu.kube.create(
                SECRETS,
                "default",
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": name},
                    "stringData": {"token": garbage},
                },
            )
        )
    eu.apply(
        PEERS,
        "byo",
        {
            "endpoint": "https://127.0.0.1:9",
            "remoteCertificates": [{"thumbprint": "sha256:" + "ef" * 32}],
            "clientCertificateRef": {"name": "eu-client"},
            "inbound": {"secretRef": {"name": "byo-in", "key": "token"}},
            "outbound": {"secretRef": {"name": "byo-out", "key": "token"}},
        },
    )
    try:
        wait_for(
            lambda: eu.condition(PEERS, "byo", "CredentialsReady") == "False",
            timeout=30,
            interval=0.1,
            message="byo judged",
        )
        output = run_plugin(eu, "check")

        assert output.code == 1
        assert line_of(output, "[FAIL] CredentialsReady").count("SecretMalformed") == 1
        outbound = line_of(output, "outbound token present: Secret byo-out")
        assert outbound.startswith("[FAIL]")
        assert "key token is not a 43-character base64url token" in outbound
        # The same reader, so the same words as the CredentialsReady condition's message.
        inbound = line_of(output, "inbound source readable: Secret byo-in (spec.inbound.secretRef) key token")
        assert inbound.startswith("[FAIL]")
        assert garbage not in output.stdout + output.stderr
    finally:
        eu.delete(PEERS, "byo")
        wait_for(
            functools.partial(is_gone, eu, PEERS, "byo"), timeout=30, interval=0.1, message="byo deleted"
        )
        for name in ("byo-out", "byo-in"):
            eu.delete(SECRETS, name)


def test_check_prints_linkerd_symbols_on_a_terminal() -> None:
    sections = [
        check.Section(
            "FederationPeer default/x",
            [
                check.passed("a"),
                check.warned("b", "soon", "do this"),
                check.failed("c", "broken", "fix that"),
            ],
        )
    ]
    text = check.render(sections, tty=True, colour=False)

    assert "√ a\n‼ b: soon\n    see: do this\n× c: broken\n    see: fix that\n" in text
    assert text.splitlines()[-1] == "Status check results are ×: 1 of 3 checks failed"
    assert check.failed_any(sections)


# ---- ping --------------------------------------------------------------------------------------


def test_ping_green_prints_latency_and_the_remotes_view(eu: Site) -> None:
    output = run_plugin(eu, "ping", "us-region")

    assert output.code == 0, output.stdout
    first = output.stdout.splitlines()[0]
    assert re.fullmatch(r"PING us-region \(https://127\.0\.0\.1:\d+\): (Reachable|Slow), \d+ ms", first)
    assert "presented FederationCert eu-client (sha256:" in output.stdout
    assert "remote site: us; it knows us as default/eu-region" in output.stdout
    peer_status = eu.status(PEERS, "us-region")
    assert f"in-fp {peer_status['outbound']['fingerprint']}" in output.stdout


def test_ping_red_with_factor_secret_when_the_remote_hash_does_not_match(eu: Site, us: Site) -> None:
    original = us.get(PEERS, "eu-region")["spec"]
    wrong = tokens.hash_token(tokens.generate_token())
    # No overlap: the remote accepts only the new (wrong) hash at once.
    us.patch(
        PEERS,
        "eu-region",
        {
            "spec": {
                "credentials": {"rotationOverlap": "0s"},
                "inbound": {"secretHash": wrong, "secretRef": None},
            }
        },
    )
    try:
        wait_for(
            lambda: inbound_current(us, "eu-region") == wrong,
            timeout=30,
            interval=0.1,
            message="US mirrors the wrong hash",
        )

        def red() -> Output | None:
            output = run_plugin(eu, "ping", "us-region")
            return output if output.code == 1 else None

        output = wait_for(red, timeout=15, interval=0.2, message="US refuses EU's token")

        assert "FAILED" in output.stdout.splitlines()[0]
        assert line_of(output, "factor:").split() == ["factor:", "Secret"]
        assert "message:" in output.stdout
    finally:
        us.patch(
            PEERS,
            "eu-region",
            {"spec": {"inbound": {"secretHash": None, "secretRef": original["inbound"]["secretRef"]}}},
        )
        wait_for(
            lambda: run_plugin(eu, "ping", "us-region").code == 0,
            timeout=30,
            interval=0.1,
            message="link restored",
        )
        wait_for(
            functools.partial(is_state, eu, "us-region", "Reachable"),
            timeout=30,
            interval=0.1,
            message="EU Reachable again",
        )


def inbound_current(site: Site, peer: str) -> str | None:
    secret = site.get(SECRETS, peer_secrets.inbound_secret_name(peer))
    raw = objects.secret_data(secret).get(api.INBOUND_HASHES_KEY) if secret else None
    return inbound_hashes.parse_hashes(raw).current if raw else None


# ---- the leak rule -----------------------------------------------------------------------------


def test_no_token_or_key_in_any_plugin_output(eu: Site, us: Site) -> None:
    outputs = []
    for site, peer in ((eu, "us-region"), (us, "eu-region")):
        for args in (
            ("status",),
            ("status", "-A"),
            ("check",),
            ("check", "-A", "--ping"),
            ("ping", peer),
            ("ping", peer, "--timeout", "0.000001"),  # a red ping prints its failure too
            ("ping", "no-such-peer"),
        ):
            outputs.append(run_plugin(site, *args))
    secrets = secrets_of(eu) + secrets_of(us)

    # Both tokens of the link (each held on both sides), and both private keys.
    assert len({value for value in secrets if tokens.is_token(value)}) == 2
    text = "\n".join(output.stdout + output.stderr for output in outputs)
    assert any("FAILED" in output.stdout for output in outputs), "the red ping was exercised"
    for value in secrets:
        assert value not in text


# ---- through kubectl ---------------------------------------------------------------------------


def plugin_path() -> str:
    """kubectl finds plugins on PATH; the package installs `kubectl-federation` next to python."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("command", ["status", "check", "ping"])
def test_each_subcommand_has_help_through_kubectl(command: str) -> None:
    result = subprocess.run(
        ["kubectl", "federation", command, "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": plugin_path()},
    )

    assert result.returncode == 0, result.stderr
    assert f"usage: kubectl federation {command}" in result.stdout
    assert "--kubeconfig" in result.stdout
    assert "--context" in result.stdout


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_federation_status_reads_the_kubeconfig_kubectl_uses(eu: Site) -> None:
    result = subprocess.run(
        ["kubectl", "federation", "status"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": plugin_path(), "KUBECONFIG": str(eu.local.kubeconfig)},
    )

    assert result.returncode == 0, result.stderr
    assert [row["NAME"] for row in table_rows(result.stdout)] == ["us-region"]
