"""`kubectl federation export --gitops DIR` between two running sites (sandbox API, operator and
TLS federation server each, on loopback).

EU generates the link's tokens and exports for US into a directory. The files meant for Git hold
no token in any form; US applies them (plus the Secret file, as its secret tool would deliver it,
and its own serverTrust and heartbeat settings) and both sides go Reachable.
"""

import base64
from pathlib import Path

import pytest
import yaml

from federation_devkit import demo
from federation_operator.plugin import cli

INTERVAL = 1.0


def secret_values(site: demo.Site, name: str) -> set[str]:
    data = (site.get(demo.SECRETS, name) or {}).get("data") or {}
    return {base64.b64decode(value).decode() for value in data.values()}


@pytest.mark.slow
def test_exported_files_hold_no_token_for_git_and_link_both_sides(tmp_path: Path) -> None:
    with demo.two_sites(tmp_path) as (eu, us):
        demo.issue_client_certificates(eu, us)
        demo.create_peer(eu, us, name="us-region", interval=INTERVAL)
        tokens = secret_values(eu, "us-region-handoff") | secret_values(eu, "us-region-outbound")
        assert len(tokens) == 2  # our inbound token (only in the handoff) and our outbound token

        repository = tmp_path / "us-repo" / "federation"
        code = cli.main(
            [
                "export",
                "us-region",
                "--name",
                "eu-region",
                "--endpoint",
                eu.local.endpoint,
                "--client-certificate",
                "us-client",
                "--server-ca",
                str(eu.local.ca_file),
                "--gitops",
                str(repository),
                "--kubeconfig",
                str(eu.local.kubeconfig),
            ]
        )
        assert code == 0
        assert not eu.get(demo.SECRETS, "us-region-handoff"), "the export consumed the handoff"

        secret_file = repository / "eu-region-outbound.secret.yaml"
        committed = sorted(path for path in repository.iterdir() if path != secret_file)
        assert [path.name for path in committed] == [".gitignore", "eu-region.federationpeer.yaml"]
        for path in committed:
            text = path.read_text()
            for token in tokens:
                assert token not in text, f"{path.name} holds a token"
                assert base64.b64encode(token.encode()).decode() not in text, f"{path.name} holds a token"
        assert (repository / ".gitignore").read_text().splitlines() == ["/eu-region-outbound.secret.yaml"]
        delivered = yaml.safe_load(secret_file.read_text())
        assert {base64.b64decode(delivered["data"]["token"]).decode()} < tokens

        # The US repository may add its own settings on top (a kustomize patch, in real life):
        # here only a short heartbeat, so that the test does not wait 30 s.
        ca_map, peer = yaml.safe_load_all((repository / "eu-region.federationpeer.yaml").read_text())
        assert ca_map["kind"] == "ConfigMap"
        peer["spec"]["heartbeat"] = demo.heartbeat(INTERVAL)
        us.apply_documents(secret_file.read_text())  # what SealedSecrets/SOPS/ESO would deliver
        us.apply_documents(yaml.safe_dump_all([ca_map, peer]))

        demo.wait_reachable([(eu, "us-region"), (us, "eu-region")], interval=INTERVAL)
        eu_status = eu.status(demo.PEERS, "us-region")
        us_status = us.status(demo.PEERS, "eu-region")
        assert eu_status["outbound"]["fingerprint"] == us_status["inbound"]["fingerprint"]
        assert us_status["outbound"]["fingerprint"] == eu_status["inbound"]["fingerprint"]
        assert us_status["inbound"]["source"] == "SecretHash"
        assert us.condition(demo.PEERS, "eu-region", "Ready") == "True"
