"""Small pure helpers for the plain-dict Kubernetes objects the operator reads and builds."""

import base64
import binascii
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from federation_operator.domain import api


def secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """Decoded `data` of a Secret (plus `stringData`, which a real server folds in on write).

    Every Secret reader starts here, so it never raises: a value that is not base64 text (a real
    API server refuses one; a sandbox, a mock or a hand-made object may not) is left out, and the
    layout's parser then reports its key as missing, by name.
    """
    result: dict[str, bytes] = {}
    data, string_data = secret.get("data"), secret.get("stringData")
    for key, value in data.items() if isinstance(data, Mapping) else ():
        if isinstance(key, str) and isinstance(value, str):
            try:
                result[key] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
    for key, value in string_data.items() if isinstance(string_data, Mapping) else ():
        if isinstance(key, str) and isinstance(value, str):
            result[key] = value.encode("utf-8", errors="replace")
    return result


def encode_secret_data(values: Mapping[str, bytes]) -> dict[str, str]:
    return {key: base64.b64encode(value).decode("ascii") for key, value in values.items()}


def owner_reference(*, kind: str, name: str, uid: str) -> dict[str, Any]:
    """Controller reference to one of our objects: the API server garbage-collects dependents."""
    return {
        "apiVersion": api.API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(owner.get("uid") == uid for owner in owners)


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def kept_for_reading(
    obj: Mapping[str, Any], *, metadata: Iterable[str], fields: Iterable[str] = (), shared: Iterable[str] = ()
) -> dict[str, Any]:
    """The parts of `obj` a long-lived cache reads (`metadata` keys, then top-level `fields` and
    `shared`), with the keys and the metadata's strings shared across objects, and every string
    of the `shared` fields too (a peer's spec and status: no secret is ever in either).

    Why: the operator keeps a few objects per peer for the peer's lifetime (the credential Secrets,
    the heartbeat's reads), and each watch event or API reply decodes its own copies of the same
    strings: every key, label keys and values, the namespace, the owner's kind and apiVersion.
    Interned, one copy serves every object. Values outside metadata (a Secret's `data`) are kept
    as they are, never interned: secret material must not end up in the interpreter's string table.
    """
    meta = obj.get("metadata") or {}
    kept: dict[str, Any] = {
        "metadata": {sys.intern(key): _interned(meta[key]) for key in metadata if key in meta}
    }
    for field in fields:
        if field in obj:
            kept[sys.intern(field)] = _keys_interned(obj[field])
    for field in shared:
        if field in obj:
            kept[sys.intern(field)] = _interned(obj[field])
    return kept


def _interned(value: Any) -> Any:
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, Mapping):
        return {sys.intern(str(key)): _interned(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interned(item) for item in value]
    return value


def _keys_interned(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {sys.intern(str(key)): item for key, item in value.items()}
    return value
