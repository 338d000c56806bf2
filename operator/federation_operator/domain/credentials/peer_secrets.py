"""The Secrets a FederationPeer owns (`<peer>-inbound`, `<peer>-outbound`, `<peer>-handoff`) and the
users' Secrets it reads: their names, how they are observed, and the writes and deletes a plan
asks for.

An observed Secret is `managed` only when it carries this peer's label and is owned by this
incarnation of the peer (its uid): a same-named Secret someone else created is reported, never
adopted or overwritten.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from federation_operator.domain import api, objects

SECRET_TYPE: Final = "Opaque"

# On `<peer>-inbound`: which spec source the hashes mirror, so that a switch to generated
# credentials is seen as one (the hashes alone do not say where they came from).
ANNOTATION_INBOUND_SOURCE: Final = f"{api.GROUP}/inbound-source"


def inbound_secret_name(peer_name: str) -> str:
    return peer_name + api.INBOUND_SECRET_SUFFIX


def outbound_secret_name(peer_name: str) -> str:
    return peer_name + api.OUTBOUND_SECRET_SUFFIX


def handoff_secret_name(peer_name: str) -> str:
    return peer_name + api.HANDOFF_SECRET_SUFFIX


def own_secret_names(peer_name: str) -> tuple[str, str, str]:
    return inbound_secret_name(peer_name), outbound_secret_name(peer_name), handoff_secret_name(peer_name)


_OWN_SUFFIXES: Final = (api.INBOUND_SECRET_SUFFIX, api.OUTBOUND_SECRET_SUFFIX, api.HANDOFF_SECRET_SUFFIX)


def owner_of(secret_name: str) -> str | None:
    """The peer whose own Secret this name would be (`own_secret_names`' inverse), if any."""
    for suffix in _OWN_SUFFIXES:
        if secret_name.endswith(suffix) and len(secret_name) > len(suffix):
            return secret_name[: -len(suffix)]
    return None


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str


@dataclass(frozen=True)
class ObservedSecret:
    name: str
    exists: bool
    managed: bool = False  # labelled for this peer and owned by this incarnation of it
    data: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None


def observe_peer_secret(
    secret: Mapping[str, Any] | None, *, name: str, peer_name: str, peer_uid: str
) -> ObservedSecret:
    if secret is None:
        return ObservedSecret(name=name, exists=False)
    meta = secret.get("metadata") or {}
    managed = objects.labels_of(secret).get(api.LABEL_PEER) == peer_name and objects.is_owned_by(
        secret, peer_uid
    )
    return ObservedSecret(
        name=name,
        exists=True,
        managed=managed,
        data=objects.secret_data(secret),
        annotations=dict(meta.get("annotations") or {}),
        uid=meta.get("uid"),
        resource_version=meta.get("resourceVersion"),
    )


@dataclass(frozen=True)
class PeerIdentity:
    name: str
    namespace: str
    uid: str
    generation: int | None = None


@dataclass(frozen=True)
class ObservedSecrets:
    inbound: ObservedSecret  # <peer>-inbound
    outbound: ObservedSecret  # <peer>-outbound
    handoff: ObservedSecret  # <peer>-handoff
    inbound_ref: ObservedSecret | None = None  # the user's Secret named by spec.inbound.secretRef
    outbound_ref: ObservedSecret | None = None  # the user's Secret named by spec.outbound.secretRef
    # Other Secrets labelled as this peer's inbound hashes: the federation server ignores them
    # (only `<peer>-inbound` owned by the peer counts), and they are reported, never adopted.
    foreign_inbound: tuple[str, ...] = ()
    # Other peers (`namespace/name`) pinning one of this peer's certificates with one of its
    # accepted hashes (claims.SharedClaims): the federation server refuses such calls.
    shared_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecretWrite:
    """A whole Secret to create (no resourceVersion) or replace (ours, at the version we judged)."""

    name: str
    body: dict[str, Any] = field(repr=False)

    @property
    def replace(self) -> bool:
        return bool(self.body["metadata"].get("resourceVersion"))


@dataclass(frozen=True)
class SecretDelete:
    name: str
    uid: str | None


def build_peer_secret(
    *,
    peer: PeerIdentity,
    name: str,
    role: str,
    data: Mapping[str, bytes],
    annotations: Mapping[str, str] | None = None,
    resource_version: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": peer.namespace,
        "labels": api.managed_labels(role=role) | {api.LABEL_PEER: peer.name},
        "ownerReferences": [objects.owner_reference(kind=api.PEER_KIND, name=peer.name, uid=peer.uid)],
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": metadata,
        "data": objects.encode_secret_data(data),
    }


def foreign_inbound_names(
    secrets: Iterable[Mapping[str, Any]], *, peer_name: str, peer_uid: str
) -> tuple[str, ...]:
    """Secrets among `secrets` (listed by the inbound role and peer labels) that are not the
    peer's own `<peer>-inbound` owned by it."""
    own = inbound_secret_name(peer_name)
    found = []
    for secret in secrets:
        name = str((secret.get("metadata") or {}).get("name") or "")
        if name != own or not objects.is_owned_by(secret, peer_uid):
            found.append(name)
    return tuple(sorted(found))
