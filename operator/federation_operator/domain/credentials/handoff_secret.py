"""The short-lived `<peer>-handoff` Secret: the remote's copy of tokens we generated, shown once.

`remote-outbound` is our inbound token, `remote-inbound` our outbound token. The Secret remembers
which request its tokens were generated for (`initial` or a rotation's nonce), so that a pass
interrupted between writes resumes with the tokens already shown instead of new ones nobody saw,
and when it is deleted unread. This module is the one reader of its data (the credentials plan
and `kubectl federation export`).
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from federation_operator.domain import api, tokens
from federation_operator.domain.credentials.outbound_tokens import stored_text
from federation_operator.domain.credentials.peer_secrets import ObservedSecret
from federation_operator.domain.times import parse_rfc3339
from federation_operator.domain.tokens import SecretText

INITIAL_GENERATION: Final = "initial"

# On `<peer>-handoff`: the request its tokens were generated for, and when it is deleted unread.
ANNOTATION_GENERATION: Final = f"{api.GROUP}/generation"

ANNOTATION_EXPIRES_AT: Final = f"{api.GROUP}/expires-at"


def handoff_expiry(handoff: ObservedSecret, status: Mapping[str, Any]) -> datetime | None:
    """When a handoff Secret expires: its annotation, else status (a hand-edited annotation that does
    not parse does not end the handoff early); None when neither is readable."""
    recorded = status.get("handoff")
    return parse_rfc3339(handoff.annotations.get(ANNOTATION_EXPIRES_AT)) or parse_rfc3339(
        recorded.get("expiresAt") if isinstance(recorded, Mapping) else None
    )


def handoff_token(handoff: ObservedSecret, key: str) -> SecretText | None:
    """A token of the handoff layout (`remote-outbound`, `remote-inbound`), None unless well-formed.

    The one reader of the handoff Secret's data: the credentials handler (resuming a generation)
    and `kubectl federation export` (handing it over)."""
    stored = stored_text(handoff.data.get(key))
    return SecretText(stored) if stored and tokens.is_token(stored) else None


def unconsumed_inbound(
    handoff: ObservedSecret, inbound_hash: str | None, status: Mapping[str, Any], now: datetime
) -> SecretText | None:
    """Our inbound token from a handoff nobody exported yet, still the accepted one: carried over."""
    if not handoff.managed or inbound_hash is None:
        return None
    expiry = handoff_expiry(handoff, status)
    token = handoff_token(handoff, api.HANDOFF_REMOTE_OUTBOUND_KEY)
    if expiry is None or expiry <= now or token is None:
        return None
    return token if tokens.matches(token, inbound_hash) else None
