"""Status writers that lose a race rebase onto what the winner wrote (no clobbered conditions)."""

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from federation_devkit.sandbox.server import Sandbox
from federation_operator.adapters.k8s.client import Invalid, Kube
from federation_operator.adapters.k8s.resources import FEDERATION_PEERS
from federation_operator.adapters.k8s.status import merged, patch_status, status_guarded_patch
from federation_operator.domain import api, conditions
from federation_operator.domain.condition_types import Owner


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[Kube]:
    async with Sandbox() as sandbox:
        path = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        client = Kube.from_kubeconfig(path)
        yield client
        client.close()


def condition(type_: str, reason: str, *, owner: Owner) -> list[Any]:
    from federation_operator.domain.certs import utcnow

    return list(
        conditions.set_condition(
            [],
            kind=api.PEER_KIND,
            owner=owner,
            type_=type_,
            status="True",
            reason=reason,
            message="",
            generation=1,
            now=utcnow(),
        )
    )


async def test_a_stale_writer_rebases_instead_of_clobbering(kube: Kube) -> None:
    body = {
        "apiVersion": api.API_VERSION,
        "kind": api.PEER_KIND,
        "metadata": {"name": "us"},
        "spec": {
            "endpoint": "https://us.example.com",
            "remoteCertificates": [{"thumbprint": "sha256:" + "a" * 64}],
        },
    }
    stale = await kube.create(FEDERATION_PEERS, "default", body)
    # Another handler writes its condition after we read.
    await kube.patch(
        FEDERATION_PEERS,
        "default",
        "us",
        {"status": {"conditions": condition("Reachable", "Reachable", owner="heartbeat")}},
        subresource="status",
    )
    calls = 0

    def compute(fresh: Mapping[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        mine = condition("CredentialsReady", "CredentialsReady", owner="credentials")
        return {
            "conditions": conditions.merge_owned(
                list(fresh.get("conditions") or []), mine, types={"CredentialsReady"}
            )
        }

    await patch_status(kube, FEDERATION_PEERS, stale, compute)
    final = await kube.get(FEDERATION_PEERS, "default", "us")
    assert final is not None
    assert {c["type"] for c in final["status"]["conditions"]} == {"Reachable", "CredentialsReady"}
    assert calls == 2  # the first attempt hit 409 and was recomputed from the fresh status


async def test_nothing_to_write_makes_no_call(kube: Kube) -> None:
    before = kube.writes
    result = await patch_status(
        kube,
        FEDERATION_PEERS,
        {"metadata": {"name": "x", "namespace": "default", "resourceVersion": "1"}},
        lambda _: {},
    )
    assert result is None
    assert kube.writes == before


async def _peer(kube: Kube, name: str) -> Mapping[str, Any]:
    body = {
        "apiVersion": api.API_VERSION,
        "kind": api.PEER_KIND,
        "metadata": {"name": name},
        "spec": {
            "endpoint": "https://us.example.com",
            "remoteCertificates": [{"thumbprint": "sha256:" + "a" * 64}],
        },
    }
    await kube.create(FEDERATION_PEERS, "default", body)
    return await kube.patch(
        FEDERATION_PEERS,
        "default",
        name,
        {"status": {"conditions": condition("CredentialsReady", "CredentialsReady", owner="credentials")}},
        subresource="status",
    )


async def test_a_tested_status_write_lands_over_a_change_outside_the_status(kube: Kube) -> None:
    seen = await _peer(kube, "us")
    # kopf's kind of change, after our read: metadata only.
    await kube.patch(FEDERATION_PEERS, "default", "us", {"metadata": {"annotations": {"example.com/a": "1"}}})
    patch = status_guarded_patch(seen["status"], {"reachability": "Reachable", "remote": {"site": "x"}})
    written = await kube.patch(FEDERATION_PEERS, "default", "us", patch, kind="json", subresource="status")
    assert written["status"]["reachability"] == "Reachable"
    assert written["status"]["remote"] == {"site": "x"}
    assert written["status"]["conditions"] == seen["status"]["conditions"]
    assert written["metadata"]["annotations"]["example.com/a"] == "1"


async def test_a_tested_status_write_is_refused_when_the_status_moved(kube: Kube) -> None:
    seen = await _peer(kube, "us")
    theirs = condition("Reachable", "Reachable", owner="heartbeat")
    await kube.patch(
        FEDERATION_PEERS,
        "default",
        "us",
        {"status": {"conditions": [*seen["status"]["conditions"], *theirs]}},
        subresource="status",
    )
    patch = status_guarded_patch(seen["status"], {"latencyMilliseconds": 5})
    with pytest.raises(Invalid):
        await kube.patch(FEDERATION_PEERS, "default", "us", patch, kind="json", subresource="status")
    final = await kube.get(FEDERATION_PEERS, "default", "us")
    assert final is not None
    assert {c["type"] for c in final["status"]["conditions"]} == {"CredentialsReady", "Reachable"}
    assert "latencyMilliseconds" not in final["status"]


def test_merged_follows_rfc_7386() -> None:
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    patch = {"a": None, "b": {"c": None, "f": 4}, "e": [3], "g": {"h": None, "i": 5}}
    assert merged(target, patch) == {"b": {"d": 3, "f": 4}, "e": [3], "g": {"i": 5}}
    assert target == {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}, "the target is not changed"
