"""What to do about a FederationPeer's two shared secrets, decided purely from spec, status and Secrets.

The rules that matter most:
- A token is generated only when its Secret does not exist and status says none was ever
  generated, or when a user asked for it with the `federation.ampora.io/rotate` annotation.
  Restarts, repeated events and unrelated spec edits never regenerate; a vanished Secret is
  reported (`SecretMissing`), not silently replaced, because the remote holds the old token.
- Every inbound source (generated, `secretHash`, `secretRef`) is mirrored as hashes into the one
  `<peer>-inbound` Secret, and published in `status.inbound.acceptedHashes`, which is what the
  federation server reads (it has no right on Secrets). Inbound plaintext is never stored
  there; it lives only in the short-lived handoff Secret until `kubectl federation export`
  consumes it or it expires.
- Writes are ordered handoff -> outbound -> inbound, and the handoff remembers which request
  (`initial` or the rotation nonce) its tokens belong to. A crash between writes is therefore
  resumed with the same tokens taken from the handoff instead of new ones that nobody could see.

Pure: no I/O. Randomness comes in through `new_token`, so tests can pin it.
"""

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from federation_operator.domain import api, conditions, durations, objects, pinning, tokens
from federation_operator.domain.certs import InvalidCertificate
from federation_operator.domain.times import parse_rfc3339
from federation_operator.domain.tokens import MalformedCredential, SecretText

SOURCE_GENERATED: Final = "Generated"
SOURCE_SECRET_HASH: Final = "SecretHash"
SOURCE_SECRET_REF: Final = "SecretRef"

CONDITION: Final = "CredentialsReady"
DEFAULT_HANDOFF_TTL: Final = timedelta(hours=1)
DEFAULT_ROTATION_OVERLAP: Final = timedelta(hours=1)
DEFAULT_REF_KEY: Final = "token"
SECRET_TYPE: Final = "Opaque"
INITIAL_GENERATION: Final = "initial"

# On `<peer>-inbound`: which spec source the hashes mirror, so that a switch to generated
# credentials is seen as one (the hashes alone do not say where they came from).
ANNOTATION_INBOUND_SOURCE: Final = f"{api.GROUP}/inbound-source"
# On `<peer>-handoff`: the request its tokens were generated for, and when it is deleted unread.
ANNOTATION_GENERATION: Final = f"{api.GROUP}/generation"
ANNOTATION_EXPIRES_AT: Final = f"{api.GROUP}/expires-at"

ROTATE_INBOUND: Final = "inbound"
ROTATE_OUTBOUND: Final = "outbound"

_ZERO_SPAN_RE: Final = re.compile(r"^(?:0+(?:\.0+)?(?:ms|s|m|h))+$")


class InvalidSpec(ValueError):
    pass


class InvalidRotation(ValueError):
    pass


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str


@dataclass(frozen=True)
class CredentialSpec:
    inbound_hash: str | None
    inbound_ref: SecretRef | None
    outbound_ref: SecretRef | None
    handoff_ttl: timedelta
    rotation_overlap: timedelta

    @property
    def inbound_source(self) -> str:
        if self.inbound_hash is not None:
            return SOURCE_SECRET_HASH
        return SOURCE_SECRET_REF if self.inbound_ref is not None else SOURCE_GENERATED

    @property
    def outbound_source(self) -> str:
        return SOURCE_SECRET_REF if self.outbound_ref is not None else SOURCE_GENERATED


def _parse_span(text: str, *, field_name: str, allow_zero: bool) -> timedelta:
    # The CRD pattern allows "0s"; parse_duration refuses non-positive spans, and an overlap of
    # zero is meaningful here (the previous token stops working at once).
    if allow_zero and _ZERO_SPAN_RE.match(text):
        return timedelta(0)
    try:
        return durations.parse_duration(text)
    except durations.InvalidDuration as error:
        raise InvalidSpec(f"spec.credentials.{field_name}: {error}") from None


def _ref(value: Any, *, where: str) -> SecretRef | None:
    if not value:
        return None
    name = str(value.get("name") or "")
    if not name:
        raise InvalidSpec(f"{where}.name is required")
    return SecretRef(name=name, key=str(value.get("key") or DEFAULT_REF_KEY))


def parse_credential_spec(spec: Mapping[str, Any]) -> CredentialSpec:
    inbound = spec.get("inbound") or {}
    outbound = spec.get("outbound") or {}
    secret_hash = inbound.get("secretHash")
    if secret_hash is not None and not tokens.is_hash(str(secret_hash)):
        raise InvalidSpec("spec.inbound.secretHash must match ^sha256:[0-9a-f]{64}$")
    inbound_ref = _ref(inbound.get("secretRef"), where="spec.inbound.secretRef")
    if secret_hash is not None and inbound_ref is not None:
        raise InvalidSpec("spec.inbound takes secretHash or secretRef, not both")
    lifetimes = spec.get("credentials") or {}
    return CredentialSpec(
        inbound_hash=str(secret_hash) if secret_hash is not None else None,
        inbound_ref=inbound_ref,
        outbound_ref=_ref(outbound.get("secretRef"), where="spec.outbound.secretRef"),
        handoff_ttl=_parse_span(
            str(lifetimes.get("handoffTTL") or "1h"), field_name="handoffTTL", allow_zero=False
        ),
        rotation_overlap=_parse_span(
            str(lifetimes.get("rotationOverlap") or "1h"), field_name="rotationOverlap", allow_zero=True
        ),
    )


def inbound_secret_name(peer_name: str) -> str:
    return peer_name + api.INBOUND_SECRET_SUFFIX


def outbound_secret_name(peer_name: str) -> str:
    return peer_name + api.OUTBOUND_SECRET_SUFFIX


def handoff_secret_name(peer_name: str) -> str:
    return peer_name + api.HANDOFF_SECRET_SUFFIX


def own_secret_names(peer_name: str) -> tuple[str, str, str]:
    return inbound_secret_name(peer_name), outbound_secret_name(peer_name), handoff_secret_name(peer_name)


def referenced_secret_names(spec: Mapping[str, Any]) -> set[str]:
    """Users' Secrets a peer reads: a change to any of them must re-reconcile the peer."""
    names = set()
    for side in ("inbound", "outbound"):
        ref = (spec.get(side) or {}).get("secretRef") or {}
        if ref.get("name"):
            names.add(str(ref["name"]))
    return names


# ---- hashes.json -------------------------------------------------------------------------------


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


def _parse_time(text: str) -> datetime:
    parsed = parse_rfc3339(text)
    if parsed is None:
        raise ValueError("not an RFC 3339 time")
    return parsed


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


# ---- rotation requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationRequest:
    inbound: bool
    outbound: bool
    nonce: str


def rotation_value(*, inbound: bool, outbound: bool, nonce: str) -> str:
    """The annotation `kubectl federation rotate` sets: `inbound:<nonce>`, `outbound:<nonce>`, or both."""
    sides = [side for side, wanted in ((ROTATE_INBOUND, inbound), (ROTATE_OUTBOUND, outbound)) if wanted]
    if not sides:
        raise InvalidRotation("choose inbound, outbound or both")
    return ",".join(sides) + ":" + nonce


def parse_rotation(value: str | None) -> RotationRequest | None:
    if value is None:
        return None
    sides_text, _, nonce = value.partition(":")
    sides = {side.strip() for side in sides_text.split(",") if side.strip()}
    if not sides or not sides <= {ROTATE_INBOUND, ROTATE_OUTBOUND}:
        raise InvalidRotation(
            f"annotation {api.ANNOTATION_ROTATE}={value!r} is not inbound:<nonce>, outbound:<nonce> "
            "or inbound,outbound:<nonce>"
        )
    return RotationRequest(
        inbound=ROTATE_INBOUND in sides, outbound=ROTATE_OUTBOUND in sides, nonce=nonce or value
    )


# ---- observations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObservedSecret:
    name: str
    exists: bool
    managed: bool = False  # labelled for this peer and owned by this incarnation of it
    data: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    annotations: Mapping[str, str] = field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None


def observe_secret(
    secret: Mapping[str, Any] | None, *, name: str, peer_name: str, peer_uid: str
) -> ObservedSecret:
    if secret is None:
        return ObservedSecret(name=name, exists=False)
    meta = secret.get("metadata") or {}
    managed = objects.labels_of(secret).get(api.LABEL_PEER) == peer_name and objects.is_owned_by(
        secret, peer_uid
    )
    return ObservedSecret(
        name=name,
        exists=True,
        managed=managed,
        data=objects.secret_data(secret),
        annotations=dict(meta.get("annotations") or {}),
        uid=meta.get("uid"),
        resource_version=meta.get("resourceVersion"),
    )


@dataclass(frozen=True)
class PeerIdentity:
    name: str
    namespace: str
    uid: str
    generation: int | None = None


@dataclass(frozen=True)
class Observation:
    inbound: ObservedSecret  # <peer>-inbound
    outbound: ObservedSecret  # <peer>-outbound
    handoff: ObservedSecret  # <peer>-handoff
    inbound_ref: ObservedSecret | None = None  # the user's Secret named by spec.inbound.secretRef
    outbound_ref: ObservedSecret | None = None  # the user's Secret named by spec.outbound.secretRef
    # Other Secrets labelled as this peer's inbound hashes: the federation server ignores them
    # (only `<peer>-inbound` owned by the peer counts), and they are reported, never adopted.
    foreign_inbound: tuple[str, ...] = ()
    # Other peers (`namespace/name`) pinning one of this peer's certificates with one of its
    # accepted hashes (claims.SharedClaims): the federation server refuses such calls.
    shared_with: tuple[str, ...] = ()


# ---- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str


@dataclass(frozen=True)
class SecretWrite:
    """A whole Secret to create (no resourceVersion) or replace (ours, at the version we judged)."""

    name: str
    body: dict[str, Any] = field(repr=False)

    @property
    def replace(self) -> bool:
        return bool(self.body["metadata"].get("resourceVersion"))


@dataclass(frozen=True)
class SecretDelete:
    name: str
    uid: str | None


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    writes: tuple[SecretWrite, ...]
    deletes: tuple[SecretDelete, ...]
    status: dict[str, Any]  # the credential part: inbound, outbound, handoff, conditions
    events: tuple[Event, ...]
    problems: tuple[Problem, ...]


def build_secret(
    *,
    peer: PeerIdentity,
    name: str,
    role: str,
    data: Mapping[str, bytes],
    annotations: Mapping[str, str] | None = None,
    resource_version: str | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": peer.namespace,
        "labels": api.managed_labels(role=role) | {api.LABEL_PEER: peer.name},
        "ownerReferences": [objects.owner_reference(kind=api.PEER_KIND, name=peer.name, uid=peer.uid)],
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": metadata,
        "data": objects.encode_secret_data(data),
    }


def _rotate_hint(peer: PeerIdentity, side: str) -> str:
    return (
        f"To issue new tokens on purpose run `kubectl federation rotate {peer.name} --{side} "
        f"-n {peer.namespace}` and hand them over again with `kubectl federation export`."
    )


def _text(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.decode("ascii", errors="replace").strip()


@dataclass
class _Side:
    """What one direction ends up as in this pass (mutable while planning)."""

    source: str
    hash: str | None = None
    problem: Problem | None = None
    generate: bool = False
    rotated: bool = False
    previous_expires_at: datetime | None = None
    # Inbound only: every hash the federation server may accept, published in status (the
    # server reads no Secret).
    accepted: InboundHashes | None = None


def _read_ref(
    observed: ObservedSecret | None, ref: SecretRef, *, field_path: str
) -> tuple[str | None, Problem | None]:
    """The stored text of a user's Secret key, or the problem, naming Secret and key, never the value."""
    if observed is None or not observed.exists:
        return None, Problem("SecretNotFound", f"Secret {ref.name} ({field_path}) not found")
    value = _text(observed.data.get(ref.key))
    if value is None:
        return None, Problem("SecretKeyMissing", f"Secret {ref.name} ({field_path}) has no key {ref.key}")
    return value, None


def _plan_inbound(
    *,
    spec: CredentialSpec,
    status: Mapping[str, Any],
    observed: Observation,
    rotate: bool,
    peer: PeerIdentity,
) -> tuple[_Side, InboundHashes | None, list[Event]]:
    side = _Side(source=spec.inbound_source)
    events: list[Event] = []
    own = observed.inbound
    existing: InboundHashes | None = None
    if own.exists and own.managed:
        try:
            existing = parse_hashes(own.data.get(api.INBOUND_HASHES_KEY) or b"")
        except MalformedCredential as error:
            if not rotate or spec.inbound_source != SOURCE_GENERATED:
                side.problem = Problem(
                    "SecretMalformed",
                    f"Secret {own.name} key {api.INBOUND_HASHES_KEY} {error}. "
                    + _rotate_hint(peer, ROTATE_INBOUND),
                )
                return side, None, events
    elif own.exists:
        side.problem = Problem(
            "SecretConflict",
            f"Secret {own.name} exists and is not managed by this FederationPeer; it is left untouched. "
            "Delete or rename it.",
        )
        return side, None, events

    if spec.inbound_source == SOURCE_GENERATED:
        mirrors_generated = own.annotations.get(ANNOTATION_INBOUND_SOURCE) == SOURCE_GENERATED
        ever_generated = (status.get("inbound") or {}).get("source") == SOURCE_GENERATED
        if rotate:
            side.generate, side.rotated = True, True
        elif existing is not None and mirrors_generated:
            side.hash = existing.current
        elif existing is not None or not ever_generated:
            side.generate = True  # first generation, or a switch from a user's source to generated
        else:
            side.problem = Problem(
                "SecretMissing",
                f"Secret {own.name} holding the inbound hash was deleted; the remote still presents the "
                "old token, which is not regenerated behind your back. " + _rotate_hint(peer, ROTATE_INBOUND),
            )
        return side, existing, events

    if rotate:
        events.append(
            Event(
                "Warning",
                "RotationIgnored",
                f"inbound comes from spec.inbound ({spec.inbound_source}); rotate it by changing that source",
            )
        )
    if spec.inbound_hash is not None:
        side.hash = spec.inbound_hash
        return side, existing, events
    assert spec.inbound_ref is not None
    ref_secret = observed.inbound_ref
    side.hash, side.problem = parse_user_hash(
        ref_secret.data if ref_secret is not None and ref_secret.exists else None,
        spec.inbound_ref,
        field_path="spec.inbound.secretRef",
    )
    return side, existing, events


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
    current = _text(data.get(api.OUTBOUND_TOKEN_KEY))
    if current is None:
        return OutboundTokens(None, problem=f"Secret {name} has no key {api.OUTBOUND_TOKEN_KEY}")
    if not tokens.is_token(current):
        return OutboundTokens(
            None, problem=f"Secret {name} key {api.OUTBOUND_TOKEN_KEY} is not a 43-character base64url token"
        )
    previous = _text(data.get(api.OUTBOUND_PREVIOUS_TOKEN_KEY))
    expires = _text(data.get(api.OUTBOUND_PREVIOUS_EXPIRES_KEY))
    expires_at = parse_rfc3339(expires) if expires else None
    if previous is None or not tokens.is_token(previous) or expires_at is None:
        return OutboundTokens(SecretText(current))
    return OutboundTokens(SecretText(current), previous=SecretText(previous), previous_expires_at=expires_at)


def parse_user_hash(
    data: Mapping[str, bytes] | None, ref: SecretRef, *, field_path: str
) -> tuple[str | None, Problem | None]:
    """A user's Secret named by `spec.inbound.secretRef`: a token or its `sha256:` hash; either way
    the hash, or the problem (naming Secret and key, never the value). The one reader of it."""
    if data is None:
        return None, Problem("SecretNotFound", f"Secret {ref.name} ({field_path}) not found")
    value = _text(data.get(ref.key))
    if value is None:
        return None, Problem("SecretKeyMissing", f"Secret {ref.name} ({field_path}) has no key {ref.key}")
    try:
        return tokens.hash_from_stored(value), None
    except MalformedCredential as error:
        return None, Problem("SecretMalformed", f"Secret {ref.name} ({field_path}) key {ref.key}: {error}")


def parse_user_token(data: Mapping[str, bytes] | None, ref: SecretRef, *, field_path: str) -> OutboundTokens:
    """A user's Secret named by `spec.outbound.secretRef`: the key must hold the token itself."""
    if data is None:
        return OutboundTokens(None, problem=f"Secret {ref.name} ({field_path}) not found")
    value = _text(data.get(ref.key))
    if value is None:
        return OutboundTokens(None, problem=f"Secret {ref.name} ({field_path}) has no key {ref.key}")
    if not tokens.is_token(value):
        return OutboundTokens(
            None,
            problem=f"Secret {ref.name} ({field_path}) key {ref.key} is not a 43-character base64url "
            "token (outbound needs the token itself, not a hash)",
        )
    return OutboundTokens(SecretText(value))


def outbound_ref(spec: Mapping[str, Any]) -> SecretRef | str | None:
    """`spec.outbound.secretRef` as a SecretRef, None when absent, or the problem with it."""
    outbound = spec.get("outbound")
    ref = outbound.get("secretRef") if isinstance(outbound, Mapping) else None
    if not ref:
        return None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    if not isinstance(name, str) or not name:
        return "spec.outbound.secretRef.name is required"
    key = ref.get("key")
    return SecretRef(name=name, key=key if isinstance(key, str) and key else DEFAULT_REF_KEY)


def _plan_outbound(
    *,
    spec: CredentialSpec,
    status: Mapping[str, Any],
    observed: Observation,
    rotate: bool,
    peer: PeerIdentity,
) -> tuple[_Side, OutboundTokens | None, list[Event]]:
    side = _Side(source=spec.outbound_source)
    events: list[Event] = []
    if spec.outbound_ref is not None:
        if rotate:
            events.append(
                Event(
                    "Warning",
                    "RotationIgnored",
                    "outbound comes from spec.outbound.secretRef; rotate it by changing that Secret",
                )
            )
        ref = spec.outbound_ref
        value, problem = _read_ref(observed.outbound_ref, ref, field_path="spec.outbound.secretRef")
        if problem is not None or value is None:
            side.problem = problem
            return side, None, events
        read = parse_user_token(
            observed.outbound_ref.data if observed.outbound_ref else None,
            ref,
            field_path="spec.outbound.secretRef",
        )
        if read.current is None:
            side.problem = Problem("SecretMalformed", read.problem or "no outbound token")
        else:
            side.hash = tokens.hash_token(read.current)
        return side, None, events

    own = observed.outbound
    ever_generated = (status.get("outbound") or {}).get("source") == SOURCE_GENERATED
    if own.exists and not own.managed:
        side.problem = Problem(
            "SecretConflict",
            f"Secret {own.name} exists and is not managed by this FederationPeer; it is left untouched. "
            "Delete or rename it.",
        )
        return side, None, events
    stored = parse_outbound(own.data, name=own.name) if own.exists else None
    now_tokens = stored if stored is not None and stored.current is not None else None
    if rotate:
        side.generate, side.rotated = True, True
    elif now_tokens is not None and now_tokens.current is not None:
        side.hash = tokens.hash_token(now_tokens.current)
        side.previous_expires_at = now_tokens.previous_expires_at
    elif own.exists:
        side.problem = Problem(
            "SecretMalformed",
            f"{stored.problem if stored is not None else 'Secret ' + own.name}. "
            + _rotate_hint(peer, ROTATE_OUTBOUND),
        )
    elif ever_generated:
        side.problem = Problem(
            "SecretMissing",
            f"Secret {own.name} holding the outbound token was deleted; it is not regenerated behind "
            "your back. " + _rotate_hint(peer, ROTATE_OUTBOUND),
        )
    else:
        side.generate = True
    return side, now_tokens, events


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
    stored = _text(handoff.data.get(key))
    return SecretText(stored) if stored and tokens.is_token(stored) else None


def plan(
    *,
    peer: PeerIdentity,
    spec: CredentialSpec,
    status: Mapping[str, Any],
    observed: Observation,
    rotation: RotationRequest | None,
    now: datetime,
    new_token: Callable[[], SecretText] = tokens.generate_token,
) -> Plan:
    """Everything this pass writes, deletes, reports and announces. Equal inputs, equal plan."""
    writes: list[SecretWrite] = []
    deletes: list[SecretDelete] = []
    inbound, existing_hashes, events = _plan_inbound(
        spec=spec, status=status, observed=observed, rotate=bool(rotation and rotation.inbound), peer=peer
    )
    outbound, outbound_now, outbound_events = _plan_outbound(
        spec=spec, status=status, observed=observed, rotate=bool(rotation and rotation.outbound), peer=peer
    )
    events.extend(outbound_events)
    handoff = observed.handoff
    overlap = spec.rotation_overlap

    new_inbound_token: SecretText | None = None
    new_outbound_token: SecretText | None = None
    if (inbound.generate or outbound.generate) and handoff.exists and not handoff.managed:
        problem = Problem(
            "SecretConflict",
            f"Secret {handoff.name} exists and is not managed by this FederationPeer, so new tokens could "
            "not be shown to anyone; nothing was generated. Delete or rename it.",
        )
        for side in (inbound, outbound):
            if side.generate:
                side.generate, side.problem = False, problem
    if inbound.generate or outbound.generate:
        generation = rotation.nonce if rotation is not None else INITIAL_GENERATION
        # Resume an interrupted generation with the tokens already shown in the handoff.
        reuse = handoff.managed and handoff.annotations.get(ANNOTATION_GENERATION) == generation

        def token_for(key: str) -> SecretText:
            stored = handoff_token(handoff, key) if reuse else None
            return stored if stored is not None else new_token()

        if inbound.generate:
            new_inbound_token = token_for(api.HANDOFF_REMOTE_OUTBOUND_KEY)
            inbound.hash = tokens.hash_token(new_inbound_token)
        if outbound.generate:
            new_outbound_token = token_for(api.HANDOFF_REMOTE_INBOUND_KEY)
            outbound.hash = tokens.hash_token(new_outbound_token)

        handoff_data: dict[str, bytes] = {}
        remote_outbound = new_inbound_token or _unconsumed_inbound(handoff, inbound.hash, status, now)
        if remote_outbound is not None:
            handoff_data[api.HANDOFF_REMOTE_OUTBOUND_KEY] = remote_outbound.reveal().encode("ascii")
        remote_inbound = new_outbound_token or (outbound_now.current if outbound_now else None)
        if remote_inbound is not None:
            handoff_data[api.HANDOFF_REMOTE_INBOUND_KEY] = remote_inbound.reveal().encode("ascii")
        expires_at = now + spec.handoff_ttl
        if reuse and (old_expiry := handoff_expiry(handoff, status)) is not None:
            expires_at = old_expiry
        writes.append(
            SecretWrite(
                name=handoff.name,
                body=build_secret(
                    peer=peer,
                    name=handoff.name,
                    role=api.ROLE_HANDOFF,
                    data=handoff_data,
                    annotations={
                        ANNOTATION_GENERATION: generation,
                        ANNOTATION_EXPIRES_AT: conditions.rfc3339(expires_at),
                    },
                    resource_version=handoff.resource_version if handoff.exists else None,
                ),
            )
        )
        handoff_state: dict[str, Any] | None = {
            "secretName": handoff.name,
            "expiresAt": conditions.rfc3339(expires_at),
        }
        generated = [
            side
            for side, token in (("inbound", new_inbound_token), ("outbound", new_outbound_token))
            if token
        ]
        rotated = inbound.rotated or outbound.rotated
        verb = "rotated" if rotated else "generated"
        events.append(
            Event(
                "Normal",
                "Rotated" if rotated else "Generated",
                f"{verb} {' and '.join(generated)} token(s); hand them to the remote with "
                f"`kubectl federation export {peer.name}` before {conditions.rfc3339(expires_at)} "
                f"(Secret {handoff.name})",
            )
        )
    else:
        handoff_state = _maintain_handoff(handoff, status=status, now=now, deletes=deletes, events=events)

    if new_outbound_token is not None:
        writes.append(
            _outbound_write(peer, observed.outbound, outbound_now, new_outbound_token, now, overlap)
        )
        if outbound_now is not None and outbound_now.current is not None and overlap > timedelta(0):
            if not tokens.matches(new_outbound_token, tokens.hash_token(outbound_now.current)):
                outbound.previous_expires_at = now + overlap
            else:
                outbound.previous_expires_at = outbound_now.previous_expires_at
    elif (
        outbound_now is not None
        and outbound_now.previous is not None
        and outbound_now.previous_expires_at is not None
        and outbound_now.previous_expires_at <= now
        and outbound.problem is None
    ):
        assert outbound_now.current is not None
        writes.append(
            SecretWrite(
                name=observed.outbound.name,
                body=build_secret(
                    peer=peer,
                    name=observed.outbound.name,
                    role=api.ROLE_OUTBOUND,
                    data={api.OUTBOUND_TOKEN_KEY: outbound_now.current.reveal().encode("ascii")},
                    resource_version=observed.outbound.resource_version,
                ),
            )
        )
        outbound.previous_expires_at = None

    if inbound.hash is not None and inbound.problem is None:
        hashes = roll_hashes(existing_hashes, current=inbound.hash, now=now, overlap=overlap)
        rendered = render_hashes(hashes)
        own = observed.inbound
        if (
            not own.exists
            or own.data.get(api.INBOUND_HASHES_KEY) != rendered
            or own.annotations.get(ANNOTATION_INBOUND_SOURCE) != inbound.source
        ):
            writes.append(
                SecretWrite(
                    name=own.name,
                    body=build_secret(
                        peer=peer,
                        name=own.name,
                        role=api.ROLE_INBOUND,
                        data={api.INBOUND_HASHES_KEY: rendered},
                        annotations={ANNOTATION_INBOUND_SOURCE: inbound.source},
                        resource_version=own.resource_version if own.exists else None,
                    ),
                )
            )
        expiries = [item.expires_at for item in hashes.previous]
        inbound.previous_expires_at = max(expiries) if expiries else None
        inbound.accepted = hashes

    problems = tuple(side.problem for side in (inbound, outbound) if side.problem is not None)
    if observed.foreign_inbound:
        problems += (_foreign_inbound_problem(observed.inbound.name, observed.foreign_inbound),)
    if observed.shared_with:
        problems += (
            Problem(
                "AmbiguousPeer",
                f"FederationPeer {', '.join(observed.shared_with)} pins the same certificate and accepts "
                "the same token as this one; the federation server refuses such calls (factor "
                "AmbiguousPeer) rather than guess. Remove the pin or change the inbound secret of the "
                "peer that should not claim this caller.",
            ),
        )
    status_part = credential_status(
        old=status,
        inbound=inbound,
        outbound=outbound,
        handoff=handoff_state,
        problems=problems,
        generation=peer.generation,
        now=now,
    )
    return Plan(
        writes=tuple(writes),
        deletes=tuple(deletes),
        status=status_part,
        events=tuple(events),
        problems=problems,
    )


def _foreign_inbound_problem(own: str, foreign: tuple[str, ...]) -> Problem:
    return Problem(
        "ForeignInboundSecret",
        f"Secret {', '.join(foreign)} is labelled as the inbound hashes of this peer but is not its "
        f"own ({own}, owned by this FederationPeer); the federation server ignores it. Someone who "
        "may write Secrets in this namespace created or copied it: delete it and review who can.",
    )


def caller_claims(spec: Mapping[str, Any], *, observed: Observation, now: datetime) -> set[tuple[str, str]]:
    """(thumbprint, hash) pairs that identify this peer's caller: every valid pin with every hash
    the federation server may accept for it (mirrored in `<peer>-inbound`, or about to be from
    spec.inbound). A suspended peer claims nothing: the server never accepts it."""
    if spec.get("suspend") is True:
        return set()
    thumbprints = set()
    for pin in spec.get("remoteCertificates") or []:
        if isinstance(pin, Mapping):
            try:
                thumbprints.add(pinning.pin_thumbprint(pin))
            except (pinning.InvalidPin, InvalidCertificate):
                continue
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


def foreign_inbound_names(
    secrets: Iterable[Mapping[str, Any]], *, peer_name: str, peer_uid: str
) -> tuple[str, ...]:
    """Secrets among `secrets` (listed by the inbound role and peer labels) that are not the
    peer's own `<peer>-inbound` owned by it."""
    own = inbound_secret_name(peer_name)
    found = []
    for secret in secrets:
        name = str((secret.get("metadata") or {}).get("name") or "")
        if name != own or not objects.is_owned_by(secret, peer_uid):
            found.append(name)
    return tuple(sorted(found))


def _unconsumed_inbound(
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


def _outbound_write(
    peer: PeerIdentity,
    own: ObservedSecret,
    now_tokens: OutboundTokens | None,
    new: SecretText,
    now: datetime,
    overlap: timedelta,
) -> SecretWrite:
    data = {api.OUTBOUND_TOKEN_KEY: new.reveal().encode("ascii")}
    current = now_tokens.current if now_tokens else None
    if current is not None and tokens.matches(new, tokens.hash_token(current)):
        # Resuming an interrupted rotation: the token is already in place; keep what is there.
        assert now_tokens is not None
        if now_tokens.previous is not None and now_tokens.previous_expires_at is not None:
            data[api.OUTBOUND_PREVIOUS_TOKEN_KEY] = now_tokens.previous.reveal().encode("ascii")
            data[api.OUTBOUND_PREVIOUS_EXPIRES_KEY] = conditions.rfc3339(
                now_tokens.previous_expires_at
            ).encode()
    elif current is not None and overlap > timedelta(0):
        data[api.OUTBOUND_PREVIOUS_TOKEN_KEY] = current.reveal().encode("ascii")
        data[api.OUTBOUND_PREVIOUS_EXPIRES_KEY] = conditions.rfc3339(now + overlap).encode("ascii")
    return SecretWrite(
        name=own.name,
        body=build_secret(
            peer=peer,
            name=own.name,
            role=api.ROLE_OUTBOUND,
            data=data,
            resource_version=own.resource_version if own.exists else None,
        ),
    )


def _maintain_handoff(
    handoff: ObservedSecret,
    *,
    status: Mapping[str, Any],
    now: datetime,
    deletes: list[SecretDelete],
    events: list[Event],
) -> dict[str, Any] | None:
    recorded = status.get("handoff") or None
    if handoff.exists and handoff.managed:
        expiry = handoff_expiry(handoff, status)
        if expiry is None or expiry <= now:
            deletes.append(SecretDelete(name=handoff.name, uid=handoff.uid))
            events.append(
                Event(
                    "Normal",
                    "HandoffExpired",
                    f"handoff Secret {handoff.name} expired unread and was deleted; "
                    "rotate to hand over new tokens",
                )
            )
            return None
        return {"secretName": handoff.name, "expiresAt": conditions.rfc3339(expiry)}
    if recorded:
        events.append(
            Event(
                "Normal",
                "HandoffConsumed",
                f"handoff Secret {recorded.get('secretName', handoff.name)} is gone (consumed by "
                "`kubectl federation export`); our inbound token now exists only as a hash",
            )
        )
    return None


def credential_status(
    *,
    old: Mapping[str, Any],
    inbound: _Side,
    outbound: _Side,
    handoff: Mapping[str, Any] | None,
    problems: tuple[Problem, ...],
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The credential part of status. A side with a problem keeps what it said before: in particular
    `source: Generated`, which is what forbids a silent regeneration later."""

    def side_status(side: _Side, previous: Mapping[str, Any]) -> dict[str, Any]:
        if side.problem is not None or side.hash is None:
            return dict(previous)
        result = dict(previous)
        result["fingerprint"] = tokens.fingerprint(side.hash)
        result["source"] = side.source
        if side.rotated:
            result["rotatedAt"] = conditions.rfc3339(now)
        if side.previous_expires_at is not None:
            result["previousExpiresAt"] = conditions.rfc3339(side.previous_expires_at)
        else:
            result.pop("previousExpiresAt", None)
        if side.accepted is not None:
            result["acceptedHashes"] = accepted_hashes_status(side.accepted)
        return result

    new_inbound = side_status(inbound, old.get("inbound") or {})
    new_outbound = side_status(outbound, old.get("outbound") or {})
    if problems:
        ready: conditions.Status = "False"
        reason = problems[0].reason
        message = "; ".join(problem.message for problem in problems)
    else:
        ready, reason = "True", "CredentialsReady"
        message = (
            f"inbound {new_inbound.get('source')} {new_inbound.get('fingerprint')}, "
            f"outbound {new_outbound.get('source')} {new_outbound.get('fingerprint')}"
        )
    new_conditions = conditions.set_condition(
        list(old.get("conditions") or []),
        type_=CONDITION,
        status=ready,
        reason=reason,
        message=message,
        generation=generation,
        now=now,
    )
    result: dict[str, Any] = {
        "inbound": new_inbound,
        "outbound": new_outbound,
        "handoff": dict(handoff) if handoff else None,
        "conditions": kstatus_conditions(new_conditions, generation=generation, now=now),
    }
    if generation is not None:
        result["observedGeneration"] = generation
    return result


# The conditions this handler owns on a FederationPeer; `Ready` and `Reachable` are the heartbeat's.
OWNED_CONDITIONS: Final = frozenset({CONDITION, conditions.RECONCILING, conditions.STALLED})


def kstatus_conditions(
    items: Sequence[Mapping[str, object]], *, generation: int | None, now: datetime
) -> list[conditions.Condition]:
    """`Stalled` while the credentials need the user (every credential problem does: a Secret to
    create, fix or give back); otherwise `Reconciling` until the heartbeat has judged the link once
    (it writes `Ready` and `status.observedGeneration`, and removes `Reconciling`)."""
    credentials = conditions.get_condition(items, CONDITION) or {}
    stalled = credentials.get("status") == "False"
    result = conditions.set_or_remove(
        items,
        type_=conditions.STALLED,
        active=stalled,
        reason=str(credentials.get("reason")),
        message=str(credentials.get("message")),
        generation=generation,
        now=now,
    )
    return conditions.set_or_remove(
        result,
        type_=conditions.RECONCILING,
        # Stalled wins: nothing is in progress until the user acts.
        active=not stalled and not _ready_for(result, generation),
        reason="WaitingForPing",
        message="waiting for the heartbeat to judge the link under this spec",
        generation=generation,
        now=now,
    )


def _ready_for(items: Sequence[Mapping[str, object]], generation: int | None) -> bool:
    ready = conditions.get_condition(items, conditions.READY)
    return ready is not None and (generation is None or ready.get("observedGeneration") == generation)


def rebase_owned_conditions(
    fresh: Sequence[Mapping[str, object]], ours: Sequence[Mapping[str, object]], *, generation: int | None
) -> list[conditions.Condition]:
    """Our conditions onto a fresh read; `Reconciling` goes if the heartbeat has judged this
    generation meanwhile (a fresh `Ready` is only ever newer than the one ours was computed from)."""
    merged = conditions.merge_owned(fresh, ours, types=OWNED_CONDITIONS)
    if _ready_for(fresh, generation):
        return conditions.remove_condition(merged, conditions.RECONCILING)
    return merged


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch turning `old` into `new` for the keys in `new` (None removes); empty if equal."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if value == before or (value is None and before is None):
            continue
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = {k: None for k in before if k not in value}
            nested.update({k: v for k, v in value.items() if before.get(k) != v})
            patch[key] = nested
        else:
            patch[key] = value
    return patch


def check_due(
    status: Mapping[str, Any],
    *,
    generation: int | None,
    now: datetime,
    last_full: datetime | None,
    full_every: timedelta,
) -> bool:
    """Whether the periodic credentials check must read the peer and its Secrets now.

    Changes announce themselves: a spec or annotation edit runs the update handler, a Secret edit
    or deletion the Secret event handler. What no event announces is time passing: a handoff's
    TTL and a rotation overlap ending. So a steady, Ready peer is read only when one of those
    deadlines (as its status shows them) has passed, and at least every `full_every` in case an
    event was missed; a peer whose credentials are not Ready, or not judged for its current
    generation, is read on every check. At 10,000 peers every 30 s, reading every peer (~6 GETs)
    would be ~2,000 GETs a second for nothing.
    """
    if last_full is None or now - last_full >= full_every:
        return True
    ready = conditions.get_condition(status.get("conditions") or [], CONDITION) or {}
    if ready.get("status") != "True" or ready.get("observedGeneration") != generation:
        return True
    deadlines = (
        (status.get("handoff") or {}).get("expiresAt"),
        (status.get("inbound") or {}).get("previousExpiresAt"),
        (status.get("outbound") or {}).get("previousExpiresAt"),
    )
    for text in deadlines:
        if text is None:
            continue
        try:
            if _parse_time(str(text)) <= now:
                return True
        except ValueError:
            return True
    return False
