"""`hashes.json` in `<peer>-inbound`: the inbound hashes the federation server accepts for a peer.

`{"current": "sha256:<hex>", "previous": [{"hash", "expiresAt"}]}`: hashes only, never a token.
This module is its one reader (`read_hashes`, which never raises; `parse_hashes` is its strict
form) and its one writer (`render_hashes`), and it rolls the hashes on a rotation. It also writes
and reads their published copy, `status.inbound.acceptedHashes` (`accepted_hashes_status`,
`published_hashes`): the source of truth the Secret is written back from.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from federation_operator.domain import conditions, tokens
from federation_operator.domain.times import parse_rfc3339
from federation_operator.domain.tokens import MalformedCredential


@dataclass(frozen=True)
class PreviousHash:
    hash: str
    expires_at: datetime


@dataclass(frozen=True)
class InboundHashes:
    current: str
    previous: tuple[PreviousHash, ...] = ()

    def accepted(self, now: datetime) -> list[str]:
        return [self.current, *(item.hash for item in self.previous if item.expires_at > now)]


@dataclass(frozen=True)
class HashesReading:
    """`hashes.json` read without raising: what is usable in it, and the first thing that is not."""

    current: str | None
    previous: tuple[PreviousHash, ...] = ()
    problem: str | None = None


def read_hashes(raw: bytes | None) -> HashesReading:
    """The one reader of `hashes.json` (credentials handler, `check`).

    Never raises. A malformed `previous` entry is left out (and named in `problem`); a malformed
    `current` leaves `current` None. A caller that must fail closed accepts only what is here.
    """
    try:
        document = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        return HashesReading(None, problem="not a {current, previous} hashes document")
    problems: list[str] = []
    current = document.get("current")
    if not isinstance(current, str) or not tokens.is_hash(current):
        current = None
        problems.append("current is not a sha256:<64 hex> hash")
    previous: list[PreviousHash] = []
    entries = document.get("previous") or []
    for entry in entries if isinstance(entries, list) else [None]:
        digest = entry.get("hash") if isinstance(entry, dict) else None
        expires = parse_rfc3339(entry.get("expiresAt")) if isinstance(entry, dict) else None
        if isinstance(digest, str) and tokens.is_hash(digest) and expires is not None:
            previous.append(PreviousHash(hash=digest, expires_at=expires))
        else:
            problems.append("a previous entry is not {hash: sha256:<64 hex>, expiresAt: RFC 3339}")
    return HashesReading(current, tuple(previous), problems[0] if problems else None)


def parse_hashes(raw: bytes) -> InboundHashes:
    """`hashes.json` as the credentials handler needs it: whole, or MalformedCredential."""
    reading = read_hashes(raw)
    if reading.problem is not None or reading.current is None:
        raise MalformedCredential(reading.problem or "holds no current hash")
    return InboundHashes(current=reading.current, previous=reading.previous)


def render_hashes(hashes: InboundHashes) -> bytes:
    document = {
        "current": hashes.current,
        "previous": [
            {"hash": item.hash, "expiresAt": conditions.rfc3339(item.expires_at)} for item in hashes.previous
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")


def accepted_hashes_status(hashes: InboundHashes) -> list[dict[str, str]]:
    """`status.inbound.acceptedHashes`: what the federation server accepts for this peer (hashes
    only, as safe to publish as `spec.inbound.secretHash`), current first."""
    return [
        {"hash": hashes.current},
        *({"hash": item.hash, "expiresAt": conditions.rfc3339(item.expires_at)} for item in hashes.previous),
    ]


def published_hashes(status: Mapping[str, Any], *, source: str) -> InboundHashes | None:
    """What `status.inbound.acceptedHashes` (written by `accepted_hashes_status`) publishes for the
    inbound `source`, current first, or None when status publishes no list for that source."""
    inbound = status.get("inbound") or {}
    if not isinstance(inbound, Mapping) or inbound.get("source") != source:
        return None
    entries = inbound.get("acceptedHashes")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], Mapping):
        return None
    current = entries[0].get("hash")
    if not isinstance(current, str) or not tokens.is_hash(current):
        return None
    previous = []
    for entry in entries[1:]:
        digest = entry.get("hash") if isinstance(entry, Mapping) else None
        expires = parse_rfc3339(entry.get("expiresAt")) if isinstance(entry, Mapping) else None
        if isinstance(digest, str) and tokens.is_hash(digest) and expires is not None:
            previous.append(PreviousHash(hash=digest, expires_at=expires))
    return InboundHashes(current=current, previous=tuple(previous))


def roll_hashes(
    old: InboundHashes | None, *, current: str, now: datetime, overlap: timedelta
) -> InboundHashes:
    """A new accepted hash; the one it replaces stays valid for `overlap` (zero: not at all)."""
    previous = [
        item for item in (old.previous if old else ()) if item.expires_at > now and item.hash != current
    ]
    if old is not None and old.current != current and overlap > timedelta(0):
        previous.append(PreviousHash(hash=old.current, expires_at=now + overlap))
    return InboundHashes(current=current, previous=tuple(previous))
