"""Small pure helpers for the plain-dict Kubernetes objects the operator reads and builds."""

import base64
import binascii
from collections.abc import Mapping
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
