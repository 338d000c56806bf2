"""JSON shapes the federation server sends, as TypedDicts.

The other end of a link need not run this package (docs/protocol.md is the contract), so the
heartbeat does not trust these shapes: `probe_classify.read_ping_reply` reads any reply and keeps
only well-typed fields. Pure: no I/O, no third-party imports.
"""

from typing import Final, Literal, NotRequired, TypedDict

# The factors a red reply can carry (a subset of DESIGN.md's `lastFailure.factor`: the ones that
# only the receiving side can know).
Factor = Literal["Certificate", "Secret", "UnknownPeer", "Suspended", "AmbiguousPeer"]
FACTOR_CERTIFICATE: Final = "Certificate"
FACTOR_SECRET: Final = "Secret"
FACTOR_UNKNOWN_PEER: Final = "UnknownPeer"
FACTOR_SUSPENDED: Final = "Suspended"
# The certificate and token match more than one active peer here: refused rather than attributed
# to one of them by ordering (issue #13: a peer in another namespace pinning the same certificate
# with the same, git-safe, hash took the caller's identity).
FACTOR_AMBIGUOUS_PEER: Final = "AmbiguousPeer"

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
