"""What the heartbeat keeps of its peer between cycles: the fields a cycle reads, nothing more."""

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
    assert view["spec"] is spec, "shared with the event, not copied"
    assert view["status"] is status
    assert peer_view({"metadata": {"name": "x"}}) == {"metadata": {"name": "x"}, "spec": {}, "status": {}}
