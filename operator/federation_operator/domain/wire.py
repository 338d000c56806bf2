"""JSON shapes the federation server sends, as TypedDicts.

The other end of a link need not run this package (docs/protocol.md is the contract), so the
heartbeat does not trust these shapes: `probe_classify.read_ping_reply` reads any reply and keeps
only well-typed fields. Pure: no I/O, no third-party imports.
"""

from typing import Final, Literal, NotRequired, TypedDict

# The factors a red reply carries are `factors.REFUSALS`; the vocabulary lives in `factors`.

# Sent on every red reply too, so that a proxy (nginx `auth_request_set`) can pass the factor on
# even when it replaces our body with its own error page.
HEADER_FACTOR: Final = "X-Federation-Factor"
HEADER_REQUEST_ID: Final = "X-Request-Id"


class PeerRef(TypedDict):
    name: str
    namespace: str


class LinkFailure(TypedDict):
    factor: str
    message: NotRequired[str]
    time: NotRequired[str]


class LinkView(TypedDict, total=False):
    """Our current view of the link, from the caller's FederationPeer status on our side.

    It becomes `status.remote` on the caller's side: what we see of them.
    """

    reachability: str
    lastSuccessTime: str
    latencyMilliseconds: int
    lastFailure: LinkFailure
    inboundFingerprint: str
    outboundFingerprint: str


class PingReply(TypedDict):
    """`200` reply of `GET /api/federation/ping` when both factors passed."""

    ok: Literal[True]
    site: str
    peer: PeerRef
    time: str
    link: LinkView


class DeniedReply(TypedDict):
    """Any red reply (ping and forward-auth): which factor failed, in one human line."""

    ok: Literal[False]
    factor: str
    message: str
    retryAfterSeconds: NotRequired[int]
