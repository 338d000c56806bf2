"""The federation server's in-memory view of who may call us, and the one authentication rule.

Every inbound call is decided here without an API call: a watch (server/watch.py) feeds the
index with FederationPeer objects exactly as the API returns them (plain dicts). The accepted
inbound hashes come from the peer's own status (`status.inbound.acceptedHashes`), which the
operator writes: the internet-facing server reads no Secret at all (issue #13: least privilege),
and a Secret anyone in the namespace may forge or copy (a `<peer>-inbound` look-alike) cannot
speak for a peer. The index keeps, ready for O(1) lookups:

- normalised thumbprint -> the peers that pin it (a set: two namespaces may pin one certificate);
- per peer: the accepted inbound hashes (current + previous until `expiresAt`), `spec.suspend`,
  and our view of the link (its status), which the ping reply carries back;
- tombstones: thumbprints of recently deleted peers, so that a caller whose peer object we deleted
  hears `UnknownPeer` rather than a bare `Certificate`. A replica only knows about deletions it
  watched, so tombstones are bounded (TOMBSTONE_TTL, TOMBSTONE_LIMIT) and a replica started after
  the deletion answers `Certificate`: both are refusals, only the diagnosis differs.

Authentication binds the two factors to the SAME peer: the certificate selects the candidate
peers, and the token is checked only against those candidates' hashes (constant time, every
candidate checked, no early exit). Pure: no I/O.
"""

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from federation_operator.domain import tokens
from federation_operator.domain.factors import Factor
from federation_operator.domain.pinning import InvalidPin, normalize_thumbprint, parse_pins
from federation_operator.domain.times import parse_rfc3339
from federation_operator.domain.tokens import SecretText
from federation_operator.domain.wire import LinkFailure, LinkView

TOMBSTONE_TTL: Final = timedelta(hours=24)
TOMBSTONE_LIMIT: Final = 4096
# "Bearer" in any case, one space, then the token with any surrounding whitespace.
_BEARER_RE: Final = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] \s*([A-Za-z0-9_-]{43})\s*")

PeerKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The decision on one call. `message` is one human line and never holds the token."""

    ok: bool
    factor: str | None
    message: str
    namespace: str | None = None
    name: str | None = None
    thumbprint: str | None = None


@dataclass(frozen=True, slots=True)
class _Peer:
    key: PeerKey
    thumbprints: frozenset[str]
    pems: tuple[str, ...]
    suspended: bool
    link: LinkView
    # The green decision for each pinned thumbprint, built once here instead of per call.
    accepted: Mapping[str, AuthResult]


@dataclass(frozen=True, slots=True)
class _Hashes:
    current: str | None
    previous: tuple[tuple[str, datetime], ...]

    def accepted(self, now: datetime) -> list[str]:
        if not self.previous:
            return [self.current] if self.current is not None else []
        found = [digest for digest, expires in self.previous if expires > now]
        if self.current is not None:
            found.append(self.current)
        return found


@dataclass(frozen=True, slots=True)
class _Pin:
    """All one decision reads for a thumbprint that exactly one live peer pins, in one object
    (issue 17): the accepted hashes as raw digests, the suspension and the green result. Rebuilt
    whenever that peer changes. Over thousands of rotating callers the decision's cost was its
    cache misses on the set, key, peer and hashes objects of each caller, not the lookups."""

    current: bytes | None
    previous: tuple[tuple[bytes, datetime], ...]
    suspended: bool
    accepted: AuthResult

    def matches(self, presented: bytes, now: datetime) -> bool:
        """Every accepted digest is compared (no early exit), as `tokens.matches_any` does."""
        result = False
        for digest, expires in self.previous:
            if expires > now:
                result |= tokens.digest_matches(presented, digest)
        if self.current is not None:
            result |= tokens.digest_matches(presented, self.current)
        return result


@dataclass(frozen=True, slots=True)
class _Tombstone:
    key: PeerKey
    expires: datetime
    pems: tuple[str, ...]


def parse_bearer(header: str | None) -> SecretText | None:
    """The token of an `Authorization: Bearer <token>` header, or None if absent or malformed.

    Only the documented token shape (43 base64url characters) is accepted, so nothing odd (non
    ASCII, huge) reaches the hash. One regular expression: this runs on every request.
    """
    if header is None or len(header) > 256:
        return None
    match = _BEARER_RE.fullmatch(header)
    return SecretText(match.group(1)) if match is not None else None


def _status_hashes(status: Mapping[str, Any]) -> _Hashes:
    """`status.inbound.acceptedHashes`: the entry without `expiresAt` is current, the others are
    previous; anything unreadable accepts nothing (fail closed)."""
    inbound = status.get("inbound")
    entries = inbound.get("acceptedHashes") if isinstance(inbound, Mapping) else None
    if not isinstance(entries, list):
        return _Hashes(current=None, previous=())
    current: str | None = None
    previous: list[tuple[str, datetime]] = []
    for entry in entries:
        digest = entry.get("hash") if isinstance(entry, Mapping) else None
        if not isinstance(digest, str) or not tokens.is_hash(digest):
            continue
        if entry.get("expiresAt") is None:
            current = current or digest
        elif (expires := parse_rfc3339(entry.get("expiresAt"))) is not None:
            previous.append((digest, expires))
    return _Hashes(current=current, previous=tuple(previous))


def _link_view(status: Mapping[str, Any]) -> LinkView:
    """The parts of our FederationPeer status that the caller may see (no secrets live there)."""
    view = LinkView()
    if isinstance(status.get("reachability"), str):
        view["reachability"] = status["reachability"]
    if isinstance(status.get("lastSuccessTime"), str):
        view["lastSuccessTime"] = status["lastSuccessTime"]
    if isinstance(status.get("latencyMilliseconds"), int):
        view["latencyMilliseconds"] = status["latencyMilliseconds"]
    failure = status.get("lastFailure")
    if isinstance(failure, Mapping) and isinstance(failure.get("factor"), str):
        shown = LinkFailure(factor=failure["factor"])
        if isinstance(failure.get("message"), str):
            shown["message"] = failure["message"]
        if isinstance(failure.get("time"), str):
            shown["time"] = failure["time"]
        view["lastFailure"] = shown
    for side, key in (("inbound", "inboundFingerprint"), ("outbound", "outboundFingerprint")):
        part = status.get(side)
        if isinstance(part, Mapping) and isinstance(part.get("fingerprint"), str):
            view[key] = part["fingerprint"]  # type: ignore[literal-required]
    return view


def _pins(spec: Mapping[str, Any]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Normalised thumbprints and PEMs of a peer's pins; an invalid pin pins nothing (pinning)."""
    pins = parse_pins(spec.get("remoteCertificates"))
    return pins.thumbprints, pins.pems


def _accepted(key: PeerKey, thumbprint: str) -> AuthResult:
    namespace, name = key
    return AuthResult(
        ok=True,
        factor=None,
        message="certificate and secret accepted",
        namespace=namespace,
        name=name,
        thumbprint=thumbprint,
    )


def _laid_out_afresh(pins: Mapping[str, _Pin]) -> dict[str, _Pin]:
    """The same map with every key, entry, digest and result allocated anew, one after another.

    The initial list builds the map one peer at a time, each entry's objects allocated among that
    peer's other objects (and the listed JSON's), so the few bytes a call reads are spread over
    many more memory pages than they fill. Allocated in one pass they sit side by side: fewer
    cache and TLB misses once the callers outnumber what the CPU cache holds (issue 17,
    docs/benchmarks.md). Copies, not the same objects: an unchanged object stays where it is."""
    fresh: dict[str, _Pin] = {}
    for key, pin in pins.items():
        result = pin.accepted
        fresh[key.encode("ascii").decode("ascii")] = _Pin(
            current=_copy(pin.current) if pin.current is not None else None,
            previous=tuple([(_copy(digest), expires) for digest, expires in pin.previous]),
            suspended=pin.suspended,
            accepted=_accepted((result.namespace or "", result.name or ""), result.thumbprint or key),
        )
    return fresh


def _copy(digest: bytes) -> bytes:
    return bytes(memoryview(digest))  # bytes(digest) would return the same object


def _metadata_key(obj: Mapping[str, Any]) -> PeerKey:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))


class PeerIndex:
    """Peers and inbound hashes by thumbprint; see the module docstring for the rules."""

    def __init__(
        self, *, tombstone_ttl: timedelta = TOMBSTONE_TTL, tombstone_limit: int = TOMBSTONE_LIMIT
    ) -> None:
        self._peers: dict[PeerKey, _Peer] = {}
        self._by_thumbprint: dict[str, set[PeerKey]] = {}
        # Per peer, the hashes its status says the operator accepts (see the module docstring).
        self._hashes: dict[PeerKey, _Hashes] = {}
        # Normalised thumbprint -> its one peer's decision inputs, for thumbprints one peer pins.
        self._pins: dict[str, _Pin] = {}
        self._tombstones: OrderedDict[str, _Tombstone] = OrderedDict()
        self._tombstone_ttl = tombstone_ttl
        self._tombstone_limit = tombstone_limit
        self._synced = False
        # Bumped whenever the set of pinned PEMs may have changed (a peer added, deleted or
        # re-pinned; not a status or suspend change): the direct-TLS listener rebuilds its trust
        # store when it sees a new version.
        self.version = 0

    # --- readiness -------------------------------------------------------------------------
    @property
    def synced(self) -> bool:
        return self._synced

    def mark_synced(self) -> None:
        if not self._synced:
            self._pins = _laid_out_afresh(self._pins)
        self._synced = True

    # --- feeding ---------------------------------------------------------------------------
    def upsert_peer(self, obj: Mapping[str, Any], *, now: datetime | None = None) -> None:
        key = _metadata_key(obj)
        metadata = obj.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            # Being deleted (our finalizer still holds it): refuse as if already gone.
            self.delete_peer(*key, now=now)
            return
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        thumbprints, pems = _pins(spec)
        old = self._unlink(key)
        self._peers[key] = _Peer(
            key=key,
            thumbprints=thumbprints,
            pems=pems,
            suspended=spec.get("suspend") is True,
            link=_link_view(status if isinstance(status, Mapping) else {}),
            accepted={thumbprint: _accepted(key, thumbprint) for thumbprint in thumbprints},
        )
        untombed = False
        for thumbprint in thumbprints:
            self._by_thumbprint.setdefault(thumbprint, set()).add(key)
            untombed |= self._tombstones.pop(thumbprint, None) is not None
        self._hashes[key] = _status_hashes(status if isinstance(status, Mapping) else {})
        self._refresh_pins(thumbprints | (old.thumbprints if old is not None else frozenset()))
        if old is None or old.pems != pems or untombed:
            # Only then: the direct-TLS listener reloads every pinned PEM on a new version (seconds
            # of CPU at 10,000 peers), and most updates are the operator's status writes.
            self.version += 1

    def delete_peer(self, namespace: str, name: str, *, now: datetime | None = None) -> None:
        key = (namespace, name)
        peer = self._unlink(key)
        if peer is None:
            return
        self._refresh_pins(peer.thumbprints)
        expires = (now or datetime.now(tz=UTC)) + self._tombstone_ttl
        for thumbprint in peer.thumbprints:
            if thumbprint not in self._by_thumbprint:
                self._tombstones.pop(thumbprint, None)
                self._tombstones[thumbprint] = _Tombstone(key=key, expires=expires, pems=peer.pems)
        while len(self._tombstones) > self._tombstone_limit:
            self._tombstones.popitem(last=False)
        self.version += 1

    def peer_keys(self) -> set[PeerKey]:
        return set(self._peers)

    # --- reading ---------------------------------------------------------------------------
    def link_view(self, namespace: str, name: str) -> LinkView:
        peer = self._peers.get((namespace, name))
        return peer.link if peer is not None else LinkView()

    def pins(self, thumbprint: str) -> bool:
        """Whether a live peer pins this (normalised) thumbprint.

        Asked before `authenticate` on every call (the rate limiter's key): the map of one-peer
        thumbprints first, the one `authenticate` reads next, so that the common call touches one
        map entry at 10,000 peers instead of two (issue 17)."""
        return thumbprint in self._pins or thumbprint in self._by_thumbprint

    def trust_anchors(self, *, now: datetime) -> list[str]:
        """PEMs the direct-TLS handshake accepts: pinned by a live peer or a fresh tombstone.

        Tombstoned certificates still pass the handshake so that the caller hears `UnknownPeer`
        in a JSON reply instead of a bare TLS alert.
        """
        found: dict[str, None] = {}
        for peer in self._peers.values():
            found.update(dict.fromkeys(peer.pems))
        for tombstone in self._tombstones.values():
            if tombstone.expires > now:
                found.update(dict.fromkeys(tombstone.pems))
        return sorted(found)

    def authenticate(self, *, thumbprint: str | None, token: SecretText | None, now: datetime) -> AuthResult:
        if thumbprint is None:
            return AuthResult(ok=False, factor=Factor.CERTIFICATE, message="no client certificate presented")
        # Keys are normalised thumbprints, and clientcert hands us exactly that form: an exact
        # hit needs no normalising (normalising a key gives the key back).
        pin = self._pins.get(thumbprint)
        if (
            pin is not None
            and token is not None
            and not pin.suspended
            and pin.matches(tokens.digest_of_token(token), now)
        ):
            return pin.accepted  # the common case; a refusal is explained by the path below
        candidates = self._by_thumbprint.get(thumbprint)
        if candidates:
            normalised = thumbprint
        else:
            try:
                normalised = normalize_thumbprint(thumbprint)
            except InvalidPin:
                return AuthResult(
                    ok=False, factor=Factor.CERTIFICATE, message="unreadable certificate thumbprint"
                )
            candidates = self._by_thumbprint.get(normalised)
            if not candidates:
                return self._unpinned(normalised, now=now)
        if len(candidates) == 1:
            peer = self._peers[next(iter(candidates))]
            peers = [peer]
            matched = peers if token is not None and self._token_matches(peer, token, now) else []
            if matched and not peer.suspended:
                return peer.accepted[normalised]  # the common case, without the lists below
        else:
            peers = sorted((self._peers[key] for key in candidates), key=lambda peer: peer.key)
            matched = [peer for peer in peers if token is not None and self._token_matches(peer, token, now)]
        active = [peer for peer in matched if not peer.suspended]
        if len(active) > 1:
            # Never attributed by ordering: whoever was created to match another peer's
            # certificate and (git-safe) hash would take its identity. The operator flags both
            # peers at reconcile time; the caller hears which factor, not who the others are.
            return AuthResult(
                ok=False,
                factor=Factor.AMBIGUOUS_PEER,
                message="this certificate and token match more than one FederationPeer here; "
                "refused until exactly one does",
                thumbprint=normalised,
            )
        if active:
            return active[0].accepted[normalised]
        if matched or all(peer.suspended for peer in peers):
            namespace, name = (matched or peers)[0].key
            return AuthResult(
                ok=False,
                factor=Factor.SUSPENDED,
                message="this link is suspended on our side (spec.suspend)",
                namespace=namespace,
                name=name,
                thumbprint=normalised,
            )
        namespace, name = next(peer for peer in peers if not peer.suspended).key
        return AuthResult(
            ok=False,
            factor=Factor.SECRET,
            message=self._secret_message(peers, token),
            namespace=namespace if len(peers) == 1 else None,
            name=name if len(peers) == 1 else None,
            thumbprint=normalised,
        )

    # --- internals -------------------------------------------------------------------------
    def _unlink(self, key: PeerKey) -> _Peer | None:
        peer = self._peers.pop(key, None)
        if peer is None:
            return None
        self._hashes.pop(key, None)
        for thumbprint in peer.thumbprints:
            holders = self._by_thumbprint.get(thumbprint)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._by_thumbprint[thumbprint]
        return peer

    def _refresh_pins(self, thumbprints: Iterable[str]) -> None:
        for thumbprint in thumbprints:
            holders = self._by_thumbprint.get(thumbprint)
            if holders is None or len(holders) != 1:
                self._pins.pop(thumbprint, None)
                continue
            peer = self._peers[next(iter(holders))]
            hashes = self._hashes.get(peer.key) or _Hashes(current=None, previous=())
            self._pins[thumbprint] = _Pin(
                current=tokens.digest_of_hash(hashes.current) if hashes.current is not None else None,
                previous=tuple(
                    (tokens.digest_of_hash(digest), expires) for digest, expires in hashes.previous
                ),
                suspended=peer.suspended,
                accepted=peer.accepted[thumbprint],
            )

    def _token_matches(self, peer: _Peer, token: SecretText, now: datetime) -> bool:
        hashes = self._hashes.get(peer.key)
        return hashes is not None and tokens.matches_any(token, hashes.accepted(now))

    def _unpinned(self, thumbprint: str, *, now: datetime) -> AuthResult:
        tombstone = self._tombstones.get(thumbprint)
        if tombstone is not None and tombstone.expires > now:
            namespace, name = tombstone.key
            return AuthResult(
                ok=False,
                factor=Factor.UNKNOWN_PEER,
                message="the FederationPeer that pinned this certificate has been deleted here",
                namespace=namespace,
                name=name,
                thumbprint=thumbprint,
            )
        return AuthResult(
            ok=False,
            factor=Factor.CERTIFICATE,
            message=f"client certificate {thumbprint} is pinned by no FederationPeer here",
            thumbprint=thumbprint,
        )

    def _secret_message(self, peers: Iterable[_Peer], token: SecretText | None) -> str:
        # No fingerprint of the expected hash nor of the presented token: a reply or an audit line
        # must carry nothing derived from a secret (issue #13). Both sides compare fingerprints
        # in their FederationPeer status (`kubectl federation check`) instead.
        if token is None:
            return "missing or malformed Authorization header: expected `Bearer <token>`"
        if not any((hashes := self._hashes.get(peer.key)) and hashes.current for peer in peers):
            return "no inbound secret is known here for the peer that pins this certificate yet"
        return (
            "the bearer token does not match the inbound secret of the peer that pins this "
            "certificate; compare inbound/outbound fingerprints with `kubectl federation check`"
        )
