"""What the heartbeat keeps of its peer between cycles: the fields a cycle reads, nothing more."""

import json
from typing import Any

from federation_operator.controller.handlers.heartbeat import peer_view, shows_write


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


def _body(version: str, probed: str | None) -> dict[str, Any]:
    status: dict[str, Any] = {"reachability": "Reachable"}
    if probed is not None:
        status["lastProbeTime"] = probed
    return {"metadata": {"resourceVersion": version}, "status": status}


WRITTEN = _body("7", "2026-12-02T12:00:30Z")


def test_a_body_written_before_our_write_does_not_show_it_although_its_version_is_another() -> None:
    # kopf's diff-base patch (version 6) written before our status write (7), its event read after.
    assert not shows_write(_body("6", "2026-12-02T12:00:00Z"), WRITTEN)
    assert not shows_write(_body("6", None), WRITTEN)


def test_our_writes_version_or_a_later_body_with_its_probe_time_shows_it() -> None:
    assert shows_write(_body("7", "2026-12-02T12:00:30Z"), WRITTEN)
    # Another writer's change after ours (or a fresh list after the watch restarted): our probe
    # time is in it.
    assert shows_write(_body("9", "2026-12-02T12:00:30Z"), WRITTEN)


def test_a_write_without_a_probe_time_is_shown_by_its_version_only() -> None:
    written = _body("7", None)
    assert shows_write(_body("7", None), written)
    assert not shows_write(_body("8", None), written)
