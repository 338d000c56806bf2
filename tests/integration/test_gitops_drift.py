"""No drift: a GitOps tool that applies the same manifests again finds nothing to change.

A directory of manifests (a FederationCert, peers in every credential mode, the user's Secrets)
is applied with the real kubectl, the way each GitOps tool applies (client-side apply with its
last-applied annotation, as Argo CD does by default; server-side apply, as Flux and Argo CD's
`ServerSideApply=true` do), the operator reconciles everything, and then:

- `kubectl diff` (server-side dry run of the same apply, compared with the live objects) is empty;
- the server-side dry-run apply of the same files returns objects equal to the live ones. The
  sandbox applies a server-side apply as a merge patch, without field managers (docs/sandbox.md),
  so this proves that no field the manifests set was changed by the operator, not that field
  ownership would be kept; `kubectl diff` is the faithful check;
- applying again reports every object unchanged;
- no object's `metadata.generation` moved: the operator never wrote a spec.
"""

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from federation_operator.domain import api
from tests.harness.site import Site, SiteFactory
from tests.harness.waiting import wait_for

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH"),
]

PIN = {"thumbprint": "sha256:" + "4f" * 32}
# Refused at once: the first ping fails fast, and the state then holds for 5 minutes (Degraded).
ENDPOINT = "https://127.0.0.1:9"
HEARTBEAT = {"interval": "2s", "timeout": "1s", "slowThreshold": "500ms"}
INBOUND_TOKEN = "q3Zx0b1HkP2m9TnV6yWc4sLdAeRf8gUj7iKo5NpQrS0"
OUTBOUND_TOKEN = "Zm9vYmFyYmF6cXV4MDEyMzQ1Njc4OWFiY2RlZmdoaWo"


def _secret(name: str, token: str) -> dict[str, Any]:
    # `data`, not `stringData`: stringData is write-only, so every apply of it is a change.
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "data": {"token": base64.b64encode(token.encode()).decode()},
    }


def _peer(name: str, pin: dict[str, str] = PIN, **credentials: Any) -> dict[str, Any]:
    spec = {
        "endpoint": ENDPOINT,
        "remoteCertificates": [pin],
        "clientCertificateRef": {"name": "eu-client"},
        "heartbeat": HEARTBEAT,
        **credentials,
    }
    return {"apiVersion": api.API_VERSION, "kind": api.PEER_KIND, "metadata": {"name": name}, "spec": spec}


def manifests() -> dict[str, list[dict[str, Any]]]:
    """File name -> documents: what a GitOps repository for one site holds."""
    token_hash = "sha256:" + __import__("hashlib").sha256(INBOUND_TOKEN.encode()).hexdigest()
    return {
        "certs.yaml": [
            {
                "apiVersion": api.API_VERSION,
                "kind": api.CERT_KIND,
                "metadata": {"name": "eu-client"},
                "spec": {"subject": "eu.example.com"},
            }
        ],
        "secrets.yaml": [
            _secret("us-inbound-token", INBOUND_TOKEN),
            _secret("us-outbound-token", OUTBOUND_TOKEN),
        ],
        "peers.yaml": [
            _peer("generated"),
            _peer(
                "hashed",
                inbound={"secretHash": token_hash},
                outbound={"secretRef": {"name": "us-outbound-token", "key": "token"}},
            ),
            # Another pin: with "hashed"'s pin and the same token both peers would claim one
            # caller, which the operator reports (CredentialsReady=False, AmbiguousPeer).
            _peer(
                "referenced",
                pin={"thumbprint": "sha256:" + "5e" * 32},
                inbound={"secretRef": {"name": "us-inbound-token", "key": "token"}},
                outbound={"secretRef": {"name": "us-outbound-token", "key": "token"}},
            ),
        ],
    }


def kubectl(site: Site, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(site.kubeconfig), "--request-timeout=20s", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def live(site: Site, kind: str, name: str) -> dict[str, Any]:
    resource = {"Secret": "secrets", api.CERT_KIND: api.CERT_PLURAL, api.PEER_KIND: api.PEER_PLURAL}[kind]
    obj: dict[str, Any] = json.loads(kubectl(site, "get", resource, name, "-o", "json").stdout)
    return obj


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what every write moves (resourceVersion), what this sandbox lacks, and
    status: an apply to the main resource never writes the status subresource, and the heartbeat
    may write it between the dry run and the read."""
    copy = json.loads(json.dumps(obj))
    copy["metadata"].pop("resourceVersion", None)
    copy["metadata"].pop("managedFields", None)
    copy.pop("status", None)
    return copy


def reconciled(site: Site) -> bool:
    cert = site.condition(api.CERT_PLURAL, "eu-client", "Ready")
    if not cert or cert["status"] != "True":
        return False
    for peer in ("generated", "hashed", "referenced"):
        credentials = site.condition(api.PEER_PLURAL, peer, "CredentialsReady")
        reachable = site.condition(api.PEER_PLURAL, peer, "Reachable")
        # The first ping has failed and been written: the heartbeat holds still for 5 minutes.
        if (
            not credentials
            or credentials["status"] != "True"
            or not reachable
            or reachable["status"] != "False"
        ):
            return False
        obj = site.get(api.PEER_PLURAL, peer) or {}
        if api.FINALIZER not in (obj.get("metadata") or {}).get("finalizers", []):
            return False
    return True


@pytest.mark.parametrize("server_side", [False, True], ids=["client-side-apply", "server-side-apply"])
def test_applying_the_same_manifests_again_changes_nothing(
    site_factory: SiteFactory, tmp_path: Path, server_side: bool
) -> None:
    site = site_factory("eu", peer_check_interval=0.5)
    repository = tmp_path / "clusters" / "eu"
    repository.mkdir(parents=True)
    for name, documents in manifests().items():
        (repository / name).write_text(yaml.safe_dump_all(documents, sort_keys=False))
    mode = ["--server-side", "--field-manager=gitops"] if server_side else []

    kubectl(site, "apply", *mode, "-f", str(repository))
    wait_for(lambda: reconciled(site), timeout=60, interval=0.2, message="every object reconciled")

    documents = [document for documents in manifests().values() for document in documents]
    before = {
        (d["kind"], d["metadata"]["name"]): live(site, d["kind"], d["metadata"]["name"]) for d in documents
    }
    for (kind, name), obj in before.items():
        assert obj["metadata"].get("generation", 1) == 1, f"{kind}/{name}: the operator wrote its spec"

    diff = kubectl(site, "diff", *mode, "-f", str(repository), check=False)
    assert diff.returncode == 0, f"kubectl diff found drift:\n{diff.stdout}{diff.stderr}"
    assert diff.stdout == ""

    if server_side:
        dry = kubectl(site, "apply", *mode, "--dry-run=server", "-f", str(repository), "-o", "json")
        result = json.loads(dry.stdout)
        applied = result["items"] if result.get("kind") == "List" else [result]
        assert len(applied) == len(documents)
        for obj in applied:
            key = (obj["kind"], obj["metadata"]["name"])
            assert comparable(obj) == comparable(live(site, *key)), f"a server-side apply would change {key}"

    again = kubectl(site, "apply", *mode, "-f", str(repository))
    lines = again.stdout.strip().splitlines()
    assert len(lines) == len(documents)
    # kubectl says "unchanged" after a client-side apply and "serverside-applied" after a server-side
    # one whatever happened: there, the objects themselves are compared.
    if not server_side:
        assert all(line.endswith(" unchanged") for line in lines), again.stdout
    for (kind, name), obj in before.items():
        now = live(site, kind, name)
        assert now["metadata"].get("generation", 1) == 1, f"{kind}/{name}: the operator wrote its spec"
        field = "data" if kind == "Secret" else "spec"
        assert now[field] == obj[field]
        assert now["metadata"].get("annotations") == obj["metadata"].get("annotations")


def test_a_changed_field_is_drift_the_checks_see(site_factory: SiteFactory, tmp_path: Path) -> None:
    """The checks above can fail: an edit behind Git's back shows in both."""
    site = site_factory("eu", operator=False)
    repository = tmp_path / "repo"
    repository.mkdir()
    (repository / "certs.yaml").write_text(yaml.safe_dump_all(manifests()["certs.yaml"]))
    kubectl(site, "apply", "--server-side", "--field-manager=gitops", "-f", str(repository))
    site.patch(api.CERT_PLURAL, "eu-client", {"spec": {"subject": "edited.example.com"}})

    for mode in ([], ["--server-side", "--field-manager=gitops"]):
        diff = kubectl(site, "diff", *mode, "-f", str(repository), check=False)
        assert diff.returncode == 1
        assert "edited.example.com" in diff.stdout
    dry = json.loads(
        kubectl(
            site, "apply", "--server-side", "--dry-run=server", "-f", str(repository), "-o", "json"
        ).stdout
    )
    (obj,) = dry["items"] if dry.get("kind") == "List" else [dry]
    assert comparable(obj) != comparable(live(site, api.CERT_KIND, "eu-client"))
