"""One heartbeat ping with the outbound token fallback of a rotation, within one time budget.

During an outbound rotation the remote learns our new token's hash only when its admin applies
it, so for a while the current token is refused (factor `Secret`) and the previous one, still
valid until `previousExpiresAt`, is what works. The ping tries the current token first and the
previous one after a `Secret` refusal, both inside the same `timeout`. While the previous token is
what works, it goes first for `PREFER_PREVIOUS_FOR`, so that the remote's failure limiter does not
see a refused token on every interval.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from federation_operator.adapters.probe import Pinger, PingOutcome, TlsMaterial
from federation_operator.domain import tokens
from federation_operator.domain.credentials.outbound_tokens import OutboundTokens
from federation_operator.domain.factors import Factor
from federation_operator.domain.reachability import REFRESH_INTERVAL, Failure
from federation_operator.domain.tokens import SecretText

PREFER_PREVIOUS_FOR: Final = REFRESH_INTERVAL


@dataclass
class TokenPreference:
    """What one peer's pings learnt about its tokens: which one the remote accepted last, and
    until when the previous token goes first."""

    accepted_fingerprint: str | None = None
    prefer_previous_until: datetime | None = None


def candidates(outbound: OutboundTokens, *, preference: TokenPreference, now: datetime) -> list[SecretText]:
    """The tokens to try, in order: current, then the previous one while it is still valid
    (the previous first while it is the one that works)."""
    assert outbound.current is not None
    order: list[SecretText] = [outbound.current]
    previous = outbound.previous
    if previous is not None and (outbound.previous_expires_at is None or outbound.previous_expires_at > now):
        if preference.prefer_previous_until is not None and now < preference.prefer_previous_until:
            order.insert(0, previous)
        else:
            order.append(previous)
    return order


async def ping_with_fallback(
    pinger: Pinger,
    *,
    endpoint: str,
    material: TlsMaterial,
    outbound: OutboundTokens,
    header: str | None,
    budget: timedelta,
    preference: TokenPreference,
    now: datetime,
    elapsed: Callable[[], float] = time.perf_counter,
) -> PingOutcome:
    """Ping with each candidate token until one is accepted or a failure is not about the token.

    `preference` is updated with what this ping learnt. The attempts share `budget`; a timeout is
    reported against the configured budget (a message with the attempt's remaining time would
    differ on every ping and force a status write each time)."""
    seconds = budget.total_seconds()
    start = elapsed()
    outcome = PingOutcome(False, timedelta(), Failure(Factor.SECRET, "no outbound token"))
    previous = outbound.previous
    for token in candidates(outbound, preference=preference, now=now):
        remaining = seconds - (elapsed() - start)
        if remaining <= 0:
            break
        outcome = await pinger.ping(
            endpoint=endpoint,
            material=material,
            token=token,
            header=header,
            time_limit=remaining,
        )
        if outcome.ok:
            preference.accepted_fingerprint = tokens.fingerprint(tokens.hash_token(token))
            if token is previous:
                preference.prefer_previous_until = now + PREFER_PREVIOUS_FOR
            else:
                preference.prefer_previous_until = None
            return outcome
        if outcome.failure is None or outcome.failure.factor != Factor.SECRET:
            break
    if outcome.failure is not None and outcome.failure.factor == Factor.TIMEOUT:
        failure = Failure(Factor.TIMEOUT, f"no complete reply within {seconds:g}s (spec.heartbeat.timeout)")
        return PingOutcome(False, outcome.latency, failure)
    return outcome
