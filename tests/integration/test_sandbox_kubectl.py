"""The real kubectl against the sandbox: discovery, apply, tables, categories, delete, rejection."""

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from federation_devkit.sandbox import SandboxThread

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH"),
]

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[Kubectl]:
    with SandboxThread() as sandbox:
        kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

        def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            argv = ["kubectl", f"--cache-dir={tmp_path / 'cache'}", "--request-timeout=10s", *args]
            result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
            if check and result.returncode != 0:
                raise AssertionError(f"{argv} failed ({result.returncode}): {result.stderr}")
            return result

        yield run


def test_api_resources_lists_our_kinds_with_short_names(kubectl: Kubectl) -> None:
    out = kubectl("api-resources", "--api-group=federation.ampora.io", "-o", "wide").stdout
    peers = next(line for line in out.splitlines() if line.startswith("federationpeers"))
    assert "fpeer,fedpeer" in peers
    assert "FederationPeer" in peers
    assert "federation" in peers.split()[-1]  # CATEGORIES
    certs = next(line for line in out.splitlines() if line.startswith("federationcerts"))
    assert "fcert,fedcert" in certs


def test_apply_get_table_wide_yaml_category_and_delete(kubectl: Kubectl) -> None:
    assert "created" in kubectl("apply", "-f", str(EXAMPLES / "federationcert.yaml")).stdout
    assert "created" in kubectl("apply", "-f", str(EXAMPLES / "federationpeer.yaml")).stdout
    assert "unchanged" in kubectl("apply", "-f", str(EXAMPLES / "federationpeer.yaml")).stdout

    table = kubectl("get", "federationpeers").stdout.splitlines()
    assert table[0].split() == ["NAME", "ENDPOINT", "REACHABILITY", "LATENCY-MS", "LAST-SUCCESS", "AGE"]
    assert table[1].split()[:2] == ["us-region", "https://us.example.com"]
    wide = kubectl("get", "fpeer", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-4:] == ["REASON", "CERT", "IN-FP", "OUT-FP"]
    assert "federation-client" in wide[1]
    certs = kubectl("get", "fcert").stdout.splitlines()
    assert certs[0].split() == ["NAME", "READY", "THUMBPRINT", "NOT-AFTER", "AGE"]

    document = yaml.safe_load(kubectl("get", "fpeer", "us-region", "-o", "yaml").stdout)
    assert document["kind"] == "FederationPeer"
    assert document["spec"]["heartbeat"] == {"interval": "30s", "timeout": "10s", "slowThreshold": "1s"}
    assert document["metadata"]["uid"]

    category = kubectl("get", "federation").stdout
    assert "federationpeer.federation.ampora.io/us-region" in category
    assert "federationcert.federation.ampora.io/federation-client" in category

    assert "deleted" in kubectl("delete", "fpeer", "us-region").stdout
    gone = kubectl("get", "fpeer", "us-region", check=False)
    assert gone.returncode != 0
    assert 'federationpeers.federation.ampora.io "us-region" not found' in gone.stderr


def test_invalid_manifest_is_rejected_with_the_rule_message(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = yaml.safe_load((EXAMPLES / "federationpeer.yaml").read_text())
    manifest["spec"]["endpoint"] = "http://us.example.com"
    path = tmp_path / "invalid.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = kubectl("apply", "-f", str(path), check=False)
    assert result.returncode != 0
    assert "spec.endpoint" in result.stderr
    assert "endpoint must be an https:// URL" in result.stderr
    assert kubectl("get", "fpeer", "-o", "name").stdout == ""


def test_unknown_fields_are_rejected_by_kubectls_default_strict_validation(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    manifest = yaml.safe_load((EXAMPLES / "federationpeer.yaml").read_text())
    manifest["spec"]["endpiont"] = "https://typo.example.com"
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = kubectl("apply", "-f", str(path), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.endpiont"' in result.stderr


def test_server_side_apply_and_built_in_kinds(kubectl: Kubectl, tmp_path: Path) -> None:
    assert (
        "serverside-applied"
        in kubectl("apply", "--server-side", "-f", str(EXAMPLES / "federationcert.yaml")).stdout
    )
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "t"}}
    path = tmp_path / "secret.yaml"
    path.write_text(yaml.safe_dump(secret))
    assert "created" in kubectl("apply", "-f", str(path)).stdout
    kubectl("label", "secret", "s", "role=outbound")
    assert kubectl("get", "secrets", "-l", "role=outbound", "-o", "name").stdout.strip() == "secret/s"
