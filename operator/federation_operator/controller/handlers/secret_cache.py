"""The credential Secrets as the operator's own watch shows them: reads without an API call per peer.

Each peer's credentials pass used to GET its three own Secrets and LIST the namespace's Secrets
labelled as its inbound hashes: ~4 reads per pass, and every Secret the pass wrote woke the peer
again through the Secret event handler for another ~4 (docs/benchmarks.md: ~2.4 passes per peer
at startup, 18-26 API calls per peer). The operator already watches Secrets, so it keeps here:

- every Secret labelled with a credential role (inbound, outbound, handoff; ours or a forgery),
  primed by one LIST per watched scope at startup and then kept by the Secret events; a name
  missing here after priming is absent (a Secret under one of our names without our labels is
  found by the create's 409, which re-reads that one name: `refresh`);
- any other Secret a peer depends on (a user's `secretRef`), once a peer watches its name: a miss
  there is only "not seen yet" and falls back to a GET;
- which versions the operator itself wrote or deleted, so that the events of its own writes do
  not wake the peer again (`own_write`): the pass that wrote them already judged that state.

Entries are trimmed to what the credential readers use (no managedFields), their metadata's
strings shared (`objects.kept_for_reading`). A Secret deleted while
kopf's watch was down is not announced on its re-list, so the periodic safety-net read bypasses
this cache (`fresh=True` in `handlers.peers`) and corrects it. Single event loop: no locking.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from federation_operator.domain import api, objects

Key = tuple[str, str]
Obj = dict[str, Any]

CREDENTIAL_ROLES = frozenset({api.ROLE_INBOUND, api.ROLE_OUTBOUND, api.ROLE_HANDOFF})
ROLE_SELECTOR = f"{api.LABEL_ROLE} in ({','.join(sorted(CREDENTIAL_ROLES))})"
_META_KEPT = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "labels",
    "annotations",
    "ownerReferences",
    "deletionTimestamp",
)


def _trimmed(secret: Mapping[str, Any]) -> Obj:
    return objects.kept_for_reading(secret, metadata=_META_KEPT, fields=("type", "data", "stringData"))


def _key(secret: Mapping[str, Any]) -> Key:
    meta = secret.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))


def _version(secret: Mapping[str, Any]) -> tuple[str, str]:
    meta = secret.get("metadata") or {}
    return str(meta.get("uid")), str(meta.get("resourceVersion"))


def _older(incoming: str, held: str) -> bool:
    """Whether `incoming` is an older resourceVersion than `held` (only when both are numbers:
    the API calls them opaque, but etcd's and the sandbox's are, and an event delivered after
    our own write of a later version must not roll the entry back)."""
    return incoming.isdigit() and held.isdigit() and int(incoming) < int(held)


def is_credential(secret: Mapping[str, Any]) -> bool:
    labels = (secret.get("metadata") or {}).get("labels") or {}
    return labels.get(api.LABEL_ROLE) in CREDENTIAL_ROLES


class SecretCache:
    def __init__(self) -> None:
        self._objects: dict[Key, Obj] = {}
        # Labelled inbound Secrets per (namespace, peer label): the per-peer LIST, answered here.
        self._inbound: dict[Key, set[str]] = {}
        # (uid, resourceVersion) the operator wrote last per Secret; a deletion leaves its uid.
        self._ours: dict[Key, tuple[str, str]] = {}
        self._primed: set[str | None] = set()

    def prime(self, namespace: str | None, secrets: Iterable[Mapping[str, Any]]) -> None:
        """What one LIST of the credential-labelled Secrets in a scope (None: all) returned."""
        for secret in secrets:
            self._put(_key(secret), secret)
        self._primed.add(namespace)

    def primed(self, namespace: str) -> bool:
        return None in self._primed or namespace in self._primed

    def observe(self, event_type: str | None, secret: Mapping[str, Any], *, watched: bool) -> None:
        """A Secret event: kept if credential-labelled or a peer watches its name."""
        key = _key(secret)
        if event_type == "DELETED":
            self._drop(key)
        elif is_credential(secret) or watched or key in self._objects:
            self._put(key, secret)

    def refresh(self, namespace: str, name: str, secret: Mapping[str, Any] | None) -> None:
        """What a GET of one Secret returned just now (None: absent)."""
        if secret is None:
            self._drop((namespace, name))
        else:
            self._put((namespace, name), secret)

    def wrote(self, secret: Mapping[str, Any]) -> None:
        """The API's answer to our own create or replace: the state the pass judged."""
        self._ours[_key(secret)] = _version(secret)
        self._put(_key(secret), secret)

    def deleted(self, namespace: str, name: str, uid: str | None) -> None:
        self._ours[(namespace, name)] = (str(uid), "")
        self._drop((namespace, name))

    def lookup(self, namespace: str, name: str, *, labelled: bool) -> tuple[bool, Obj | None]:
        """(known, Secret or None). A name that is held is known; a name missing here is known
        absent only if it is one of our `labelled` credential names and its scope was primed;
        otherwise it is unknown: ask the API (and `refresh` with the answer)."""
        found = self._objects.get((namespace, name))
        if found is not None:
            return True, found
        return labelled and self.primed(namespace), None

    def inbound_claims(self, namespace: str, peer: str) -> list[Obj]:
        """Secrets labelled as `peer`'s inbound hashes (what the label-selector LIST returned)."""
        names = self._inbound.get((namespace, peer), set())
        return [
            self._objects[(namespace, name)] for name in sorted(names) if (namespace, name) in self._objects
        ]

    def own_write(self, event_type: str | None, secret: Mapping[str, Any]) -> bool:
        """Whether this event only reports what the operator itself wrote or deleted."""
        ours = self._ours.get(_key(secret))
        if ours is None:
            return False
        uid, version = _version(secret)
        if event_type == "DELETED":
            return ours[0] == uid and ours[1] == ""
        return ours == (uid, version)

    def __len__(self) -> int:
        return len(self._objects)

    def _put(self, key: Key, secret: Mapping[str, Any]) -> None:
        held = self._objects.get(key)
        if held is not None:
            held_uid, held_version = _version(held)
            uid, version = _version(secret)
            if uid == held_uid and _older(version, held_version):
                return
        self._unindex(key)
        kept = _trimmed(secret)
        self._objects[key] = kept
        labels = kept["metadata"].get("labels") or {}
        peer = labels.get(api.LABEL_PEER)
        if labels.get(api.LABEL_ROLE) == api.ROLE_INBOUND and isinstance(peer, str) and peer:
            self._inbound.setdefault((key[0], peer), set()).add(key[1])

    def _drop(self, key: Key) -> None:
        self._unindex(key)
        self._objects.pop(key, None)

    def _unindex(self, key: Key) -> None:
        held = self._objects.get(key)
        if held is None:
            return
        peer = (held["metadata"].get("labels") or {}).get(api.LABEL_PEER)
        names = self._inbound.get((key[0], str(peer)))
        if names is not None:
            names.discard(key[1])
            if not names:
                del self._inbound[(key[0], str(peer))]
