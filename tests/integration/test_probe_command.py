"""`kubectl federation probe URL`: the protocol's points against our server and against an
independent endpoint written from docs/protocol.md (federation_devkit/independent_remote.py),
conforming or not."""

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from federation_devkit.independent_remote import IndependentRemote, sha256_hash
from federation_operator.domain import certs, tokens
from federation_operator.plugin import cli
from tests.harness.server import AppThread, Identity, Keys, link
from tests.harness.site import Site, issued_pem


@dataclass
class Local:
    site: Site
    keys: Keys
    pem: str
    identity: Identity  # the FederationCert's certificate and key, with the token we hold
    token_file: Path

    def probe(self, capsys: pytest.CaptureFixture[str], url: str, *extra: str) -> tuple[int, str]:
        capsys.readouterr()
        code = cli.main(
            [
                "probe",
                url,
                "--certificate",
                "eu-client",
                "--token-file",
                str(self.token_file),
                "--ca-file",
                str(self.keys.ca),
                "--kubeconfig",
                str(self.site.kubeconfig),
                "--timeout",
                "5",
                *extra,
            ]
        )
        return code, capsys.readouterr().out

    def remote(
        self, *, require_certificate: bool = False, request_certificate: bool = True
    ) -> IndependentRemote:
        """An independent endpoint that pins our certificate and accepts our token, started."""
        return IndependentRemote(
            server_cert=self.keys.server_cert,
            server_key=self.keys.server_key,
            pinned_pems=[self.pem],
            accepted_hashes=[sha256_hash(self.identity.token.reveal())],
            require_certificate=require_certificate,
            request_certificate=request_certificate,
        ).start()


@pytest.fixture
def local(site: Site, tmp_path: Path) -> Local:
    keys = Keys.create(tmp_path)
    pem = issued_pem(site, "eu-client")
    secret = site.secret("eu-client-tls")
    assert secret is not None
    key_path, cert_path = tmp_path / "eu-client.key", tmp_path / "eu-client.crt"
    key_path.write_bytes(base64.b64decode(secret.data["tls.key"]))
    cert_path.write_text(pem)
    token = tokens.generate_token()
    token_file = tmp_path / "token"
    token_file.write_text(token.reveal() + "\n")
    identity = Identity(
        name="eu",
        cert=cert_path,
        key=key_path,
        pem=pem,
        thumbprint=certs.describe_pem(pem).thumbprint,
        token=token,
    )
    return Local(site=site, keys=keys, pem=pem, identity=identity, token_file=token_file)


def lines(output: str) -> dict[str, str]:
    """check name -> its printed line."""
    found = {}
    for line in output.splitlines():
        for name in (
            "TLS version",
            "client certificate requested",
            "refusal without a client certificate",
            "refusal without a token",
            "refusal with a wrong token",
            "success with the right token",
            "latency",
        ):
            if line.split(" ", 1)[-1].startswith(name):
                found[name] = line
    return found


def test_our_server_conforms_point_by_point(local: Local, capsys: pytest.CaptureFixture[str]) -> None:
    server = AppThread(keys=local.keys, site="us").start()
    try:
        server.call(link, server.index, local.identity)
        code, out = local.probe(capsys, server.tls_url)
    finally:
        server.stop()
    assert code == 0, out
    found = lines(out)
    assert len(found) == 7, out
    assert all(line.startswith("[ok]") for line in found.values()), out
    assert "TLSv1.3" in found["TLS version"]
    assert "401, factor Certificate" in found["refusal without a client certificate"]
    assert "401, factor Secret" in found["refusal with a wrong token"]
    assert "optional reply fields: " in found["success with the right token"]
    assert "peerName" in found["success with the right token"]
    assert local.identity.token.reveal() not in out


@pytest.fixture
def independent(local: Local) -> Iterator[IndependentRemote]:
    remote = local.remote()
    yield remote
    remote.stop()


def test_an_independent_endpoint_from_the_contract_conforms(
    local: Local, independent: IndependentRemote, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = local.probe(capsys, independent.url)
    assert code == 0, out
    found = lines(out)
    assert all(line.startswith("[ok]") for line in found.values()), out
    assert "no optional reply fields" in found["success with the right token"]


def test_a_handshake_refusal_without_a_certificate_conforms(
    local: Local, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = local.remote(require_certificate=True)
    try:
        code, out = local.probe(capsys, remote.url)
    finally:
        remote.stop()
    assert code == 0, out
    assert "refused in the TLS handshake" in lines(out)["refusal without a client certificate"]


def test_an_endpoint_that_lets_any_token_in_fails_and_says_which_point(
    local: Local, independent: IndependentRemote, capsys: pytest.CaptureFixture[str]
) -> None:
    independent.check_token = False
    code, out = local.probe(capsys, independent.url)
    assert code == 1, out
    found = lines(out)
    for name in ("refusal without a token", "refusal with a wrong token"):
        assert found[name].startswith("[FAIL]"), out
        assert "let in a caller it must refuse" in found[name]
    assert found["success with the right token"].startswith("[ok]")


def test_a_slow_threshold_below_the_latency_warns(
    local: Local, independent: IndependentRemote, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = local.probe(capsys, independent.url, "--slow-threshold", "1ms")
    assert code == 0, out
    assert lines(out)["latency"].startswith("[warn]")
    assert "Slow (threshold 1 ms)" in lines(out)["latency"]


def test_an_endpoint_that_never_requests_a_certificate_fails_that_point(
    local: Local, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = local.remote(request_certificate=False)
    try:
        code, out = local.probe(capsys, remote.url)
    finally:
        remote.stop()
    assert code == 1, out
    found = lines(out)
    assert found["client certificate requested"].startswith("[FAIL]"), out
    assert "sent no CertificateRequest" in found["client certificate requested"]
    # Without a certificate it cannot let us in either: every ping is refused (factor Certificate).
    assert found["success with the right token"].startswith("[FAIL]"), out
