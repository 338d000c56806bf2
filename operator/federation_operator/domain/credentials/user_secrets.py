"""A user's Secret named by `spec.inbound.secretRef` or `spec.outbound.secretRef`: its one reader.

Both readers name the Secret and key in what they report, never the value.
"""

from collections.abc import Mapping

from federation_operator.domain import tokens
from federation_operator.domain.credentials.credential_spec import SecretRef
from federation_operator.domain.credentials.outbound_tokens import OutboundTokens, stored_text
from federation_operator.domain.credentials.peer_secrets import Problem
from federation_operator.domain.tokens import MalformedCredential, SecretText


def parse_user_hash(
    data: Mapping[str, bytes] | None, ref: SecretRef, *, field_path: str
) -> tuple[str | None, Problem | None]:
    """A user's Secret named by `spec.inbound.secretRef`: a token or its `sha256:` hash; either way
    the hash, or the problem (naming Secret and key, never the value). The one reader of it."""
    if data is None:
        return None, Problem("SecretNotFound", f"Secret {ref.name} ({field_path}) not found")
    value = stored_text(data.get(ref.key))
    if value is None:
        return None, Problem("SecretKeyMissing", f"Secret {ref.name} ({field_path}) has no key {ref.key}")
    try:
        return tokens.hash_from_stored(value), None
    except MalformedCredential as error:
        return None, Problem("SecretMalformed", f"Secret {ref.name} ({field_path}) key {ref.key}: {error}")


def parse_user_token(data: Mapping[str, bytes] | None, ref: SecretRef, *, field_path: str) -> OutboundTokens:
    """A user's Secret named by `spec.outbound.secretRef`: the key must hold the token itself."""
    if data is None:
        return OutboundTokens(None, problem=f"Secret {ref.name} ({field_path}) not found")
    value = stored_text(data.get(ref.key))
    if value is None:
        return OutboundTokens(None, problem=f"Secret {ref.name} ({field_path}) has no key {ref.key}")
    if not tokens.is_token(value):
        return OutboundTokens(
            None,
            problem=f"Secret {ref.name} ({field_path}) key {ref.key} is not a 43-character base64url "
            "token (outbound needs the token itself, not a hash)",
        )
    return OutboundTokens(SecretText(value))
