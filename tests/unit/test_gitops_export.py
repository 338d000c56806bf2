"""`export --gitops`: the committed file carries no token, the Secret file carries exactly one.

The hash written for the remote's `inbound` is checked against the design's definition
(`sha256:` + hex SHA-256 of the token's ASCII text), computed here with hashlib, not our code.
"""

import base64
import hashlib
import stat
from pathlib import Path

import yaml

from federation_operator.domain import tokens
from federation_operator.domain.tokens import SecretText
from federation_operator.plugin.gitops_export import build_gitops_files, write_gitops_files

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
OURS_OUT = tokens.generate_token()  # what we present: the remote checks it inbound
OURS_IN = tokens.generate_token()  # what we check: the remote presents it outbound


def _files(remote_outbound: SecretText | None = OURS_IN, **extra: object):  # type: ignore[no-untyped-def]
    return build_gitops_files(
        remote_name="eu-region",
        endpoint="https://eu.example.com",
        certificate_pem=PEM,
        remote_inbound=OURS_OUT,
        remote_outbound=remote_outbound,
        **extra,
    )


def _leaks(text: str) -> list[str]:
    found = []
    for token in (OURS_OUT.reveal(), OURS_IN.reveal()):
        for form in (token, base64.b64encode(token.encode()).decode()):
            if form in text:
                found.append(form)
    return found


def test_the_peer_file_holds_the_hash_and_a_reference_and_no_token() -> None:
    files = _files(client_certificate="us-client", remote_namespace="federation")
    name, text = files.peer
    assert name == "eu-region.federationpeer.yaml"
    assert _leaks(text) == []
    peer = yaml.safe_load(text)
    assert peer["metadata"] == {"name": "eu-region", "namespace": "federation"}
    spec = peer["spec"]
    assert spec["inbound"] == {
        "secretHash": "sha256:" + hashlib.sha256(OURS_OUT.reveal().encode()).hexdigest()
    }
    assert spec["outbound"] == {"secretRef": {"name": "eu-region-outbound", "key": "token"}}
    assert spec["remoteCertificates"] == [{"pem": PEM}]
    assert spec["clientCertificateRef"] == {"name": "us-client"}


def test_the_secret_file_holds_only_our_inbound_token_as_the_remotes_outbound() -> None:
    files = _files(remote_namespace="federation")
    assert files.secret is not None
    name, text = files.secret
    assert name == "eu-region-outbound.secret.yaml"
    assert text.startswith("# NOT FOR GIT")
    secret = yaml.safe_load(text)
    assert secret["metadata"] == {"name": "eu-region-outbound", "namespace": "federation"}
    assert base64.b64decode(secret["data"]["token"]).decode() == OURS_IN.reveal()
    assert OURS_OUT.reveal() not in text
    assert base64.b64encode(OURS_OUT.reveal().encode()).decode() not in text


def test_without_our_inbound_plaintext_there_is_no_secret_file() -> None:
    assert _files(remote_outbound=None).secret is None


def test_files_are_written_with_the_secret_0600_and_git_ignored(tmp_path: Path) -> None:
    directory = tmp_path / "repo" / "federation"
    written = write_gitops_files(directory, _files())
    assert sorted(path.name for path in written) == [
        ".gitignore",
        "eu-region-outbound.secret.yaml",
        "eu-region.federationpeer.yaml",
    ]
    assert stat.S_IMODE((directory / "eu-region-outbound.secret.yaml").stat().st_mode) == 0o600
    write_gitops_files(directory, _files())  # a second export: no duplicate ignore line
    assert (directory / ".gitignore").read_text().splitlines() == ["/eu-region-outbound.secret.yaml"]
    committed = [path for path in directory.iterdir() if path.name != "eu-region-outbound.secret.yaml"]
    for path in committed:
        assert _leaks(path.read_text()) == [], path.name


def test_the_server_ca_goes_with_the_peer_file_and_its_server_trust_names_it() -> None:
    ca = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
    files = _files(server_ca=("eu-region-server-ca", "ca.crt", ca))
    config_map, peer = yaml.safe_load_all(files.peer[1])
    assert config_map["kind"] == "ConfigMap"
    assert config_map["data"] == {"ca.crt": ca}
    assert peer["spec"]["serverTrust"] == {
        "caBundleRef": {"kind": "ConfigMap", "name": "eu-region-server-ca", "key": "ca.crt"}
    }
    assert _leaks(files.peer[1]) == []
