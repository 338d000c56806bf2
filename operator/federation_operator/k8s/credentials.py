"""Reading the outbound token a peer presents, wherever it lives.

Generated outbound tokens live in the operator's `<peer>-outbound` Secret (current, and during a
rotation the previous one with its expiry); a user's token lives in the Secret named by
`spec.outbound.secretRef`. Both the heartbeat and `kubectl federation ping` read it through here.
Problems are described by name and key, never by value.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from federation_operator import api, objects, tokens
from federation_operator.k8s.client import Kube
from federation_operator.k8s.resources import SECRETS
from federation_operator.tokens import SecretText


@dataclass(frozen=True)
class OutboundTokens:
    current: SecretText | None
    previous: SecretText | None = None
    previous_expires_at: datetime | None = None
    problem: str | None = None  # why there is no usable token: names a Secret and key, never a value


def outbound_secret_name(peer_name: str) -> str:
    return peer_name + api.OUTBOUND_SECRET_SUFFIX


async def read_outbound(
    kube: Kube, *, namespace: str, peer_name: str, spec: Mapping[str, Any]
) -> OutboundTokens:
    ref = (spec.get("outbound") or {}).get("secretRef")
    if ref:
        name, key = str(ref["name"]), str(ref.get("key") or "token")
        secret = await kube.get(SECRETS, namespace, name)
        if secret is None:
            return OutboundTokens(None, problem=f"Secret {name} (spec.outbound.secretRef) not found")
        value = objects.secret_data(secret).get(key)
        if value is None:
            return OutboundTokens(None, problem=f"Secret {name} has no key {key}")
        text = value.decode("ascii", errors="replace").strip()
        if not tokens.is_token(text):
            return OutboundTokens(
                None, problem=f"Secret {name} key {key} is not a 43-character base64url token"
            )
        return OutboundTokens(SecretText(text))
    name = outbound_secret_name(peer_name)
    secret = await kube.get(SECRETS, namespace, name)
    if secret is None:
        return OutboundTokens(None, problem=f"Secret {name} (generated outbound token) not found")
    data = objects.secret_data(secret)
    current = data.get(api.OUTBOUND_TOKEN_KEY)
    previous = data.get(api.OUTBOUND_PREVIOUS_TOKEN_KEY)
    expires = data.get(api.OUTBOUND_PREVIOUS_EXPIRES_KEY)
    return OutboundTokens(
        current=SecretText(current.decode("ascii")) if current else None,
        previous=SecretText(previous.decode("ascii")) if previous else None,
        previous_expires_at=datetime.fromisoformat(expires.decode("ascii").replace("Z", "+00:00"))
        if expires
        else None,
        problem=None if current else f"Secret {name} has no key {api.OUTBOUND_TOKEN_KEY}",
    )
