"""The heartbeat's status write is conditional on the status, not on the object's version.

While kopf handles a new peer it patches the peer's metadata (its finalizer, its diff-base
annotation), and under a bulk apply those patches land between the credentials' status write and
the first heartbeat's, whose view of the peer then has an old resourceVersion. A write conditional
on that version fails although nothing it was computed from changed (two in three of the first
heartbeats' writes at 2,000 peers, each retried with a GET and a PATCH: docs/benchmarks.md).

Here another client changes the peer's metadata just before every heartbeat status write reaches
the API server, as kopf's patches do at the worst moment: the heartbeat's writes must land anyway,
and carry over what the other writers wrote (the credentials' conditions) and the metadata.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from federation_devkit.sandbox import patching
from federation_devkit.sandbox.emulator import SandboxAPI
from federation_operator.domain import api
from tests.harness.heartbeat import pinging, remote_keys
from tests.harness.site import SiteFactory
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.slow

PEERS = api.PEER_PLURAL
HEARTBEAT = {"interval": "1s", "timeout": "800ms", "slowThreshold": "500ms"}
TOUCHED = "example.com/touched"


def _writes_reachability(data: Any) -> bool:
    """Whether a status patch (a merge patch or a JSON patch) sets `status.reachability`."""
    if isinstance(data, dict):
        return "reachability" in (data.get("status") or {})
    if isinstance(data, list):
        return any(
            op.get("op") in ("add", "replace") and "reachability" in (op.get("value") or {})
            for op in data
            if isinstance(op, dict) and op.get("path") == "/status"
        )
    return False


def _touch_before_heartbeat_writes(api_: SandboxAPI, touches: list[int]) -> None:
    """Before every status write that sets `reachability`, another client annotates the peer."""
    original: Callable[..., Any] = api_._patch

    def patch(target: Any, data: Any, **kwargs: Any) -> Any:
        if target.rt.plural == PEERS and target.subresource == "status" and _writes_reachability(data):
            touches.append(1)
            whole = dataclasses.replace(target, subresource=None)
            annotation = {"metadata": {"annotations": {TOUCHED: str(len(touches))}}}
            original(whole, annotation, content_type=patching.MERGE_PATCH, dry_run=False, strict=False)
        return original(target, data, **kwargs)

    api_._patch = patch  # type: ignore[method-assign]


def test_a_heartbeat_write_lands_although_the_peers_metadata_moved_just_before_it(
    site_factory: SiteFactory, tmp_path: Path
) -> None:
    site = site_factory("eu")
    remotes = remote_keys(site, tmp_path)
    pem = remotes.pem
    remote = remotes.remote()
    remote.start()
    touches: list[int] = []
    try:
        site.sandbox.call(_touch_before_heartbeat_writes, site.sandbox.api, touches)
        site.create(PEERS, "us", pinging(remote.url, pem, HEARTBEAT))

        def peer() -> dict[str, Any]:
            custom = site.custom
            got = custom.get_namespaced_custom_object(api.GROUP, api.VERSION, site.namespace, PEERS, "us")
            return dict(got)

        wait_for(
            lambda: (peer().get("status") or {}).get("reachability") == "Reachable",
            timeout=60,
            message="the first heartbeat written although the peer's version moved before it",
        )
        body = peer()
        condition_types = {c["type"] for c in body["status"]["conditions"]}
        assert {"CredentialsReady", "Reachable", "Ready"} <= condition_types, "nobody's conditions lost"
        # The annotation made just before the write that landed is still there: the write changed
        # the status only.
        assert body["metadata"]["annotations"][TOUCHED] == str(len(touches))
        assert touches, "the writes were preceded by a change of the peer's version"
    finally:
        site.stop_operator()
        remote.stop()
