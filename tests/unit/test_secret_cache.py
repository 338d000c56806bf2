"""The operator's Secret cache: what a credentials pass reads instead of the API."""

import json
from typing import Any

from federation_operator.controller.handlers.secret_cache import SecretCache
from federation_operator.domain import api

NS = "eu"


def secret(
    name: str, *, version: str, uid: str = "u1", role: str | None = None, peer: str | None = None
) -> dict[str, Any]:
    labels = {}
    if role:
        labels[api.LABEL_ROLE] = role
    if peer:
        labels[api.LABEL_PEER] = peer
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": uid,
            "resourceVersion": version,
            "labels": labels,
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}],
        },
        "type": "Opaque",
        "data": {"token": "dG9rZW4"},
    }


def test_after_priming_a_missing_credential_name_is_known_absent_other_names_are_not() -> None:
    cache = SecretCache()
    assert cache.lookup(NS, "us-outbound", labelled=True) == (False, None), "not primed: ask the API"
    cache.prime(NS, [secret("us-inbound", version="5", role=api.ROLE_INBOUND, peer="us")])
    assert cache.lookup(NS, "us-outbound", labelled=True) == (True, None)
    assert cache.lookup(NS, "users-token", labelled=False) == (False, None), "a user's Secret: ask the API"
    known, held = cache.lookup(NS, "us-inbound", labelled=True)
    assert known
    assert held is not None
    assert "managedFields" not in held["metadata"], "trimmed to what the readers use"
    assert held["data"] == {"token": "dG9rZW4"}


def test_events_keep_credential_and_watched_secrets_and_never_roll_a_newer_version_back() -> None:
    cache = SecretCache()
    cache.prime(None, [])
    cache.observe("ADDED", secret("unrelated", version="1"), watched=False)
    assert cache.lookup(NS, "unrelated", labelled=False) == (False, None), "nobody depends on it: not kept"
    cache.observe("ADDED", secret("users-token", version="2"), watched=True)
    assert cache.lookup(NS, "users-token", labelled=False)[0]
    cache.wrote(secret("us-outbound", version="9", role=api.ROLE_OUTBOUND, peer="us"))
    cache.observe(
        "ADDED", secret("us-outbound", version="7", role=api.ROLE_OUTBOUND, peer="us"), watched=True
    )
    held = cache.lookup(NS, "us-outbound", labelled=True)[1]
    assert held is not None
    assert held["metadata"]["resourceVersion"] == "9"
    cache.observe(
        "DELETED", secret("us-outbound", version="10", role=api.ROLE_OUTBOUND, peer="us"), watched=True
    )
    assert cache.lookup(NS, "us-outbound", labelled=True) == (True, None)


def test_only_the_versions_the_operator_wrote_or_deleted_are_its_own() -> None:
    cache = SecretCache()
    mine = secret("us-inbound", version="3", role=api.ROLE_INBOUND, peer="us")
    cache.wrote(mine)
    assert cache.own_write("ADDED", mine)
    assert not cache.own_write(
        "MODIFIED", secret("us-inbound", version="4", role=api.ROLE_INBOUND, peer="us")
    )
    assert not cache.own_write("ADDED", secret("us-inbound", version="3", uid="u2"))
    assert not cache.own_write("DELETED", mine), "someone else deleted what we wrote"
    cache.deleted(NS, "us-inbound", "u1")
    assert cache.own_write("DELETED", mine)
    assert not cache.own_write("ADDED", secret("other", version="3"))


def test_labelled_inbound_claims_answer_the_label_selector_list() -> None:
    cache = SecretCache()
    cache.prime(NS, [])
    cache.observe("ADDED", secret("us-inbound", version="1", role=api.ROLE_INBOUND, peer="us"), watched=True)
    cache.observe(
        "ADDED", secret("forged", version="2", uid="f", role=api.ROLE_INBOUND, peer="us"), watched=False
    )
    cache.observe(
        "ADDED", secret("other", version="3", uid="o", role=api.ROLE_INBOUND, peer="them"), watched=False
    )
    assert [s["metadata"]["name"] for s in cache.inbound_claims(NS, "us")] == ["forged", "us-inbound"]
    # Relabelled away from the peer: no longer a claim.
    cache.observe(
        "MODIFIED", secret("forged", version="4", uid="f", role=api.ROLE_OUTBOUND, peer="us"), watched=False
    )
    assert [s["metadata"]["name"] for s in cache.inbound_claims(NS, "us")] == ["us-inbound"]
    cache.observe(
        "DELETED", secret("us-inbound", version="5", role=api.ROLE_INBOUND, peer="us"), watched=True
    )
    assert cache.inbound_claims(NS, "us") == []


def test_held_secrets_share_their_metadata_strings_and_keep_their_data_as_it_came() -> None:
    """Each watch event decodes its own copies of the same label and key strings; the cache keeps
    one copy of each for every Secret it holds (its memory per peer), and never interns a value of
    `data` (secret material stays out of the interpreter's string table)."""

    cache = SecretCache()
    decoded = [
        json.loads(
            json.dumps(secret(f"{peer}-inbound", version="1", uid=peer, role=api.ROLE_INBOUND, peer=peer))
        )
        for peer in ("us", "ap")
    ]
    first, second = decoded
    assert first["metadata"]["namespace"] is not second["metadata"]["namespace"], "separate decodes"
    data_value = first["data"]["token"]
    cache.prime(NS, decoded)
    held = [cache.lookup(NS, f"{peer}-inbound", labelled=True)[1] for peer in ("us", "ap")]
    us, ap = (obj for obj in held if obj is not None)
    assert us["metadata"]["namespace"] is ap["metadata"]["namespace"]
    us_labels, ap_labels = us["metadata"]["labels"], ap["metadata"]["labels"]
    assert us_labels[api.LABEL_ROLE] is ap_labels[api.LABEL_ROLE]
    assert next(iter(us_labels)) is next(iter(ap_labels)), "label keys are shared"
    assert "managedFields" not in us["metadata"]
    assert us["data"] == {"token": "dG9rZW4"}
    assert us["data"]["token"] is data_value, "data values are kept as decoded, not interned"
