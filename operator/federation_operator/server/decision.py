"""The decision on one inbound call, from what the request presented: accept, deny, or rate-limit.

Find the presented certificate (clientcert, read by the caller), read the bearer token, ask the
index (pure, in memory), and choose the status code. Status codes, chosen so that every proxy's
forward-auth understands them (nginx `auth_request` accepts only 2xx, 401 and 403) and kept the
same on ping:

- 200: both factors passed (forward-auth adds `X-Federation-Peer` / `X-Federation-Namespace`);
- 401: factor `Certificate` or `Secret` (the credentials are missing or wrong);
- 403: factor `UnknownPeer`, `Suspended` or `AmbiguousPeer` (we know the caller and refuse it),
  and forward-auth when the source is rate limited;
- 429 (ping only): the source failed too often; `Retry-After` says when to try again.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Final, Literal, NamedTuple

from federation_operator.domain.factors import Factor
from federation_operator.server.clientcert import Presented
from federation_operator.server.index import AuthResult, PeerIndex, parse_bearer
from federation_operator.server.ratelimit import FailureLimiter

ROUTE_PING: Final = "ping"
ROUTE_AUTH: Final = "auth"

STATUS_OF_FACTOR: Final[Mapping[str, int]] = {
    Factor.CERTIFICATE: 401,
    Factor.SECRET: 401,
    Factor.UNKNOWN_PEER: 403,
    Factor.SUSPENDED: 403,
    Factor.AMBIGUOUS_PEER: 403,
}

Outcome = Literal["ok", "denied", "rate-limited"]


class Decision(NamedTuple):
    result: AuthResult
    outcome: Outcome
    status: int
    retry_after: float | None  # seconds, when rate-limited


def limit_key(index: PeerIndex, presented: Presented, source: str) -> str:
    """Whose failures these are: a pinned certificate's (only its key holder can present it, so
    no one can spend another peer's bucket), else the real client address."""
    thumbprint = presented.thumbprint
    if thumbprint is not None and presented.refusal is None and index.pins(thumbprint):
        return "certificate " + thumbprint
    return "address " + source


def decide(
    *,
    index: PeerIndex,
    limiter: FailureLimiter,
    presented: Presented,
    authorization: str | None,
    source: str,
    route: str,
    now: datetime,
    monotonic: float,
) -> Decision:
    """`authorization` is the raw header; the token it holds goes no further than the index."""
    key = limit_key(index, presented, source)
    limited = limiter.blocked(key, now=monotonic)
    if limited is not None:
        retry_after, last_factor = limited
        result = AuthResult(
            ok=False,
            factor=last_factor,
            message="too many failed attempts from this certificate or address; retry later",
        )
        return Decision(result, "rate-limited", 429 if route == ROUTE_PING else 403, retry_after)
    if presented.refusal is not None:
        result = AuthResult(ok=False, factor=Factor.CERTIFICATE, message=presented.refusal)
    else:
        token = parse_bearer(authorization)
        result = index.authenticate(thumbprint=presented.thumbprint, token=token, now=now)
    if result.ok:
        return Decision(result, "ok", 200, None)
    limiter.record_failure(key, factor=result.factor or "", now=monotonic)
    return Decision(result, "denied", STATUS_OF_FACTOR.get(result.factor or "", 401), None)
