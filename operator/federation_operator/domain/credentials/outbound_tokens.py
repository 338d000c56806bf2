"""The generated `<peer>-outbound` Secret: the token we present (`token`) and, during a rotation's
overlap, the one before it (`previous-token` until `previous-expires-at`). Its one reader.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from federation_operator.domain import api, tokens
from federation_operator.domain.times import parse_rfc3339
from federation_operator.domain.tokens import SecretText


def stored_text(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.decode("ascii", errors="replace").strip()


@dataclass(frozen=True)
class OutboundTokens:
    """The outbound token(s) a peer presents, as read from wherever they are stored."""

    current: SecretText | None
    previous: SecretText | None = None
    previous_expires_at: datetime | None = None
    problem: str | None = None  # why there is no usable token: names a Secret and key, never a value

    def candidates(self, now: datetime) -> list[SecretText]:
        """What to present, in order: the current token, then a previous one still in its overlap."""
        result = [self.current] if self.current is not None else []
        if (
            self.previous is not None
            and self.previous_expires_at is not None
            and self.previous_expires_at > now
        ):
            result.append(self.previous)
        return result


def parse_outbound(data: Mapping[str, bytes], *, name: str) -> OutboundTokens:
    """The generated `<peer>-outbound` Secret: the one reader of its layout (operator and plugin).

    `token` must be a token; `previous-token` counts only with a readable `previous-expires-at`
    (a previous token without an end would be presented forever), and anything malformed about
    it leaves just the current token, which is what a rotation's end writes anyway.
    """
    current = stored_text(data.get(api.OUTBOUND_TOKEN_KEY))
    if current is None:
        return OutboundTokens(None, problem=f"Secret {name} has no key {api.OUTBOUND_TOKEN_KEY}")
    if not tokens.is_token(current):
        return OutboundTokens(
            None, problem=f"Secret {name} key {api.OUTBOUND_TOKEN_KEY} is not a 43-character base64url token"
        )
    previous = stored_text(data.get(api.OUTBOUND_PREVIOUS_TOKEN_KEY))
    expires = stored_text(data.get(api.OUTBOUND_PREVIOUS_EXPIRES_KEY))
    expires_at = parse_rfc3339(expires) if expires else None
    if previous is None or not tokens.is_token(previous) or expires_at is None:
        return OutboundTokens(SecretText(current))
    return OutboundTokens(SecretText(current), previous=SecretText(previous), previous_expires_at=expires_at)
