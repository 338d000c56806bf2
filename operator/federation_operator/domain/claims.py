"""Which FederationPeers claim the same caller: one pinned certificate with one accepted token hash.

The federation server refuses a call whose certificate and token match more than one active peer
(factor `AmbiguousPeer`) instead of attributing it by ordering. Pins and hashes are both public
(hashes are safe to commit to git), so anyone who may create a FederationPeer anywhere can set one
up; the operator therefore flags such peers at reconcile time, before any call: every reconcile
registers the peer's claims here and learns which other peers share one.

One registry per operator instance, in memory (every peer is reconciled at start, so it fills
itself). It compares what this operator watches: peers in namespaces it does not watch are out
of its sight (and out of its federation server's too). Pure: no I/O.
"""

import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from federation_operator.domain import api, pinning, tokens
from federation_operator.domain.credentials.inbound_hashes import parse_hashes
from federation_operator.domain.credentials.peer_secrets import ObservedSecrets
from federation_operator.domain.tokens import MalformedCredential

PeerKey = tuple[str, str]  # (namespace, name)
Claim = tuple[str, str]  # (normalised thumbprint, sha256:<hex> hash)


class SharedClaims:
    def __init__(self) -> None:
        self._of_peer: dict[PeerKey, frozenset[Claim]] = {}
        self._holders: dict[Claim, set[PeerKey]] = {}

    def register(self, peer: PeerKey, claims: Iterable[Claim]) -> set[PeerKey]:
        """Record `peer`'s claims now; return the other peers that gained or lost a co-claimant
        through this change (their verdict must be judged again)."""
        new = frozenset(claims)
        old = self._of_peer.get(peer, frozenset())
        if new == old:
            return set()
        affected: set[PeerKey] = set()
        for claim in old - new:
            holders = self._holders[claim]
            holders.discard(peer)
            affected |= holders
            if not holders:
                del self._holders[claim]
        for claim in new - old:
            holders = self._holders.setdefault(claim, set())
            affected |= holders
            holders.add(peer)
        if new:
            self._of_peer[peer] = new
        else:
            self._of_peer.pop(peer, None)
        return affected

    def forget(self, peer: PeerKey) -> set[PeerKey]:
        return self.register(peer, ())

    def sharing(self, peer: PeerKey) -> list[PeerKey]:
        """The other peers holding at least one of `peer`'s claims, sorted."""
        others: set[PeerKey] = set()
        for claim in self._of_peer.get(peer, frozenset()):
            others |= self._holders.get(claim, set())
        others.discard(peer)
        return sorted(others)


def caller_claims(spec: Mapping[str, Any], *, observed: ObservedSecrets, now: datetime) -> set[Claim]:
    """(thumbprint, hash) pairs that identify this peer's caller: every valid pin with every hash
    the federation server may accept for it (mirrored in `<peer>-inbound`, or about to be from
    spec.inbound). A suspended peer claims nothing: the server never accepts it."""
    if spec.get("suspend") is True:
        return set()
    thumbprints = pinning.parse_pins(spec.get("remoteCertificates")).thumbprints
    hashes: set[str] = set()
    own = observed.inbound
    if own.exists and own.managed:
        # An unreadable document accepts nothing on the server either: it claims nothing.
        with contextlib.suppress(MalformedCredential):
            hashes.update(parse_hashes(own.data.get(api.INBOUND_HASHES_KEY) or b"").accepted(now))
    inbound = spec.get("inbound") or {}
    if isinstance(inbound, Mapping) and isinstance(inbound.get("secretHash"), str):
        hashes.add(inbound["secretHash"])
    return {(thumbprint, digest) for thumbprint in thumbprints for digest in hashes if tokens.is_hash(digest)}
