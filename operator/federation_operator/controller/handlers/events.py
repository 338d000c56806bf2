"""Kubernetes Events about our objects: the one helper every handler posts through.

An Event names its object by kind and metadata only, so the body is rebuilt from those (an
object read from a list has no `kind`). Outside a running operator (a direct pass from a test or a
tool) kopf has no poster, and there is no one to tell: nothing is posted. A message is cut to the
1 KiB the API server keeps. Messages name Secrets and keys, never a value.
"""

from collections.abc import Mapping
from typing import Any, Final, Literal, cast

import kopf

from federation_operator.domain import api

EventType = Literal["Normal", "Warning"]
_MAX_MESSAGE: Final = 1024


def post_event(obj: Mapping[str, Any], *, kind: str, type_: EventType, reason: str, message: str) -> None:
    body = {"apiVersion": api.API_VERSION, "kind": kind, "metadata": obj["metadata"]}
    try:
        kopf.event(cast(kopf.Body, body), type=type_, reason=reason, message=message[:_MAX_MESSAGE])
    except LookupError:
        return
