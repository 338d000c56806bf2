"""Shared-secret tokens: generation, hashing, fingerprints and the one comparison we allow.

A token is 32 bytes from `secrets.token_bytes`, written as base64url without padding. Its hash is
`sha256:` + hex SHA-256 of the token's ASCII text, so `printf %s "$T" | sha256sum` reproduces it.
Inbound tokens are kept only as hashes; every comparison goes through `hmac.compare_digest`.

Tokens travel inside `SecretText`, whose repr and str never show the value, so a token that
reaches a log line, an exception or a status by mistake shows up as `<redacted>` instead.
"""

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

TOKEN_BYTES: Final = 32
HASH_PREFIX: Final = "sha256:"
FINGERPRINT_LENGTH: Final = 12
_HASH_RE: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
# 32 bytes in base64url without padding are 43 characters of this alphabet.
_TOKEN_RE: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class SecretText:
    """A secret string that does not print itself."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "<redacted>"

    def __repr__(self) -> str:
        return "SecretText(<redacted>)"


class MalformedCredential(ValueError):
    """A token or hash that does not have the documented shape. The message never holds it."""


def generate_token() -> SecretText:
    raw = secrets.token_bytes(TOKEN_BYTES)
    return SecretText(base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii"))


def hash_token(token: SecretText) -> str:
    digest = hashlib.sha256(token.reveal().encode("ascii")).hexdigest()
    return HASH_PREFIX + digest


def is_hash(value: str) -> bool:
    return bool(_HASH_RE.match(value))


def is_token(value: str) -> bool:
    return bool(_TOKEN_RE.match(value))


def fingerprint(token_hash: str) -> str:
    """First 12 hex digits of a token's hash: safe to show, and equal on both ends of a link."""
    if not is_hash(token_hash):
        raise MalformedCredential("not a sha256:<64 hex> hash")
    return token_hash[len(HASH_PREFIX) : len(HASH_PREFIX) + FINGERPRINT_LENGTH]


def hash_from_stored(value: str) -> str:
    """A user's Secret may hold a token or a `sha256:` hash; either way we keep the hash."""
    text = value.strip()
    if is_hash(text):
        return text
    if is_token(text):
        return hash_token(SecretText(text))
    raise MalformedCredential("expected a 43-character base64url token or a sha256:<64 lowercase hex> hash")


def matches(token: SecretText, token_hash: str) -> bool:
    """Constant-time check of a presented token against one accepted hash."""
    presented = hash_token(token).encode("ascii")
    return hmac.compare_digest(presented, token_hash.encode("ascii"))


def digest_of_token(token: SecretText) -> bytes:
    """The 32 raw bytes behind `hash_token(token)`: what a hot path compares (no hex, no prefix)."""
    return hashlib.sha256(token.reveal().encode("ascii")).digest()


def digest_of_hash(token_hash: str) -> bytes:
    """The 32 raw bytes of an `is_hash`-checked `sha256:<64 hex>` hash."""
    if not is_hash(token_hash):
        raise MalformedCredential("not a sha256:<64 hex> hash")
    return bytes.fromhex(token_hash[len(HASH_PREFIX) :])


def digest_matches(presented: bytes, accepted: bytes) -> bool:
    """Constant-time check of a presented token's digest (`digest_of_token`) against one accepted."""
    return hmac.compare_digest(presented, accepted)


def matches_any(token: SecretText, accepted_hashes: Iterable[str]) -> bool:
    """Check against every accepted hash without stopping early, so timing says nothing.

    `hmac.compare_digest` takes ASCII strings as they are (the federation server's hot path); the
    accepted hashes must be `is_hash`-checked (a non-ASCII string raises TypeError)."""
    presented = hash_token(token)
    result = False
    for accepted in accepted_hashes:
        result |= hmac.compare_digest(presented, accepted)
    return result
