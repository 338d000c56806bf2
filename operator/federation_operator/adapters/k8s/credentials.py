"""Reading the outbound token a peer presents, wherever it lives.

Generated outbound tokens live in the operator's `<peer>-outbound` Secret (current, and during a
rotation the previous one with its expiry); a user's token lives in the Secret named by
`spec.outbound.secretRef`. The heartbeat, `kubectl federation ping`, `check` and `export` read it
through here; the layouts themselves are parsed by `outbound_tokens.parse_outbound` and
`user_secrets.parse_user_token`, the same readers the credentials handler uses, so a Secret the
handler reports as malformed is never read differently here. Problems are described by name and
key, never by value.
"""

from collections.abc import Mapping
from typing import Any

from federation_operator.adapters.k8s.client import Kube
from federation_operator.adapters.k8s.resources import SECRETS
from federation_operator.domain import objects
from federation_operator.domain.credentials import (
    credential_spec,
    outbound_tokens,
    peer_secrets,
    user_secrets,
)
from federation_operator.domain.credentials.outbound_tokens import OutboundTokens


async def read_outbound(
    kube: Kube, *, namespace: str, peer_name: str, spec: Mapping[str, Any]
) -> OutboundTokens:
    ref = credential_spec.outbound_ref(spec)
    if isinstance(ref, str):
        return OutboundTokens(None, problem=ref)
    if ref is not None:
        secret = await kube.get(SECRETS, namespace, ref.name)
        data = objects.secret_data(secret) if secret is not None else None
        return user_secrets.parse_user_token(data, ref, field_path="spec.outbound.secretRef")
    name = peer_secrets.outbound_secret_name(peer_name)
    secret = await kube.get(SECRETS, namespace, name)
    if secret is None:
        return OutboundTokens(None, problem=f"Secret {name} (generated outbound token) not found")
    return outbound_tokens.parse_outbound(objects.secret_data(secret), name=name)
