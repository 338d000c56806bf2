"""What the heartbeat keeps of its peer between cycles: the fields a cycle reads, nothing more."""

import json
from typing import Any

from federation_operator.controller.handlers.heartbeat import peer_view


def test_the_heartbeat_keeps_the_peers_identity_spec_and_status_and_drops_the_rest() -> None:
    spec: dict[str, Any] = {"endpoint": "https://us.example", "heartbeat": {"interval": "30s"}}
    status: dict[str, Any] = {"reachability": "Reachable", "outbound": {"fingerprint": "0123456789ab"}}
    body = {
        "apiVersion": "federation.ampora.io/v1alpha1",
        "kind": "FederationPeer",
        "metadata": {
            "name": "us",
            "namespace": "eu",
            "uid": "u-1",
            "generation": 3,
            "resourceVersion": "42",
            "annotations": {"kopf.federation.ampora.io/last-handled-configuration": '{"spec": {}}'},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            "labels": {"team": "a"},
            "finalizers": ["federation.ampora.io/finalizer"],
        },
        "spec": spec,
        "status": status,
    }
    view = peer_view(body)
    assert view["metadata"] == {
        "name": "us",
        "namespace": "eu",
        "uid": "u-1",
        "generation": 3,
        "resourceVersion": "42",
    }
    assert view["spec"] == spec
    assert view["status"] == status
    assert peer_view({"metadata": {"name": "x"}}) == {"metadata": {"name": "x"}, "spec": {}, "status": {}}


def test_two_peers_views_share_their_repeated_strings() -> None:
    """Every watch event decodes its own strings; the views of many peers share one copy of each."""

    def decoded(name: str) -> dict[str, Any]:
        status = {"conditions": [{"type": "Reachable", "status": "False", "reason": "Degraded"}]}
        return json.loads(json.dumps({"metadata": {"name": name, "namespace": "eu"}, "status": status}))

    first, second = decoded("us"), decoded("ap")
    assert first["status"]["conditions"][0]["reason"] is not second["status"]["conditions"][0]["reason"]
    one, two = peer_view(first), peer_view(second)
    assert one["status"]["conditions"][0]["reason"] is two["status"]["conditions"][0]["reason"]
    assert one["metadata"]["namespace"] is two["metadata"]["namespace"]
