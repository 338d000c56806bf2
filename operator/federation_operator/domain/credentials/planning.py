"""The plan: everything one pass of the credentials handler writes, deletes, reports and announces,
decided purely from spec, status and the observed Secrets. Equal inputs, equal plan.

Randomness comes in through `new_token`, so tests can pin it.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from federation_operator.domain import api, condition_types, conditions, tokens
from federation_operator.domain.credentials.credential_spec import SOURCE_GENERATED, CredentialSpec, SecretRef
from federation_operator.domain.credentials.handoff_secret import (
    ANNOTATION_EXPIRES_AT,
    ANNOTATION_GENERATION,
    INITIAL_GENERATION,
    handoff_expiry,
    handoff_token,
    unconsumed_inbound,
)
from federation_operator.domain.credentials.inbound_hashes import (
    InboundHashes,
    accepted_hashes_status,
    parse_hashes,
    published_hashes,
    render_hashes,
    roll_hashes,
)
from federation_operator.domain.credentials.outbound_tokens import OutboundTokens, parse_outbound, stored_text
from federation_operator.domain.credentials.peer_secrets import (
    ANNOTATION_INBOUND_SOURCE,
    ObservedSecret,
    ObservedSecrets,
    PeerIdentity,
    Problem,
    SecretDelete,
    SecretWrite,
    build_peer_secret,
)
from federation_operator.domain.credentials.readiness import kstatus_conditions
from federation_operator.domain.credentials.rotation_request import (
    ROTATE_INBOUND,
    ROTATE_OUTBOUND,
    RotationRequest,
)
from federation_operator.domain.credentials.user_secrets import parse_user_hash, parse_user_token
from federation_operator.domain.tokens import MalformedCredential, SecretText


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


def _rotate_hint(peer: PeerIdentity, side: str) -> str:
    return (
        f"To issue new tokens on purpose run `kubectl federation rotate {peer.name} --{side} "
        f"-n {peer.namespace}` and hand them over again with `kubectl federation export`."
    )


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
    # Inbound only: what status publishes (None: nothing for this source), what `<peer>-inbound`
    # holds (None: missing or unreadable), and whether it was written back from status this pass
    # (its name, "Deleted" or "Altered").
    published: InboundHashes | None = None
    stored: InboundHashes | None = None
    restored: tuple[str, str] | None = None


def _same_hashes(stored: InboundHashes, published: InboundHashes) -> bool:
    return stored.current == published.current and set(stored.previous) == set(published.previous)


def _read_ref(
    observed: ObservedSecret | None, ref: SecretRef, *, field_path: str
) -> tuple[str | None, Problem | None]:
    """The stored text of a user's Secret key, or the problem, naming Secret and key, never the value."""
    if observed is None or not observed.exists:
        return None, Problem("SecretNotFound", f"Secret {ref.name} ({field_path}) not found")
    value = stored_text(observed.data.get(ref.key))
    if value is None:
        return None, Problem("SecretKeyMissing", f"Secret {ref.name} ({field_path}) has no key {ref.key}")
    return value, None


def _plan_inbound(
    *,
    spec: CredentialSpec,
    status: Mapping[str, Any],
    observed: ObservedSecrets,
    rotate: bool,
    peer: PeerIdentity,
) -> tuple[_Side, InboundHashes | None, list[Event]]:
    side = _Side(source=spec.inbound_source)
    events: list[Event] = []
    own = observed.inbound
    existing: InboundHashes | None = None
    # What the federation server accepts now: the base of every change, and what a deleted or
    # rewritten `<peer>-inbound` is written back from (the Secret is only a mirror of it).
    published = published_hashes(status, source=spec.inbound_source)
    if own.exists and own.managed:
        try:
            existing = parse_hashes(own.data.get(api.INBOUND_HASHES_KEY) or b"")
        except MalformedCredential as error:
            if published is None and (not rotate or spec.inbound_source != SOURCE_GENERATED):
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

    mirrors_source = own.annotations.get(ANNOTATION_INBOUND_SOURCE) == spec.inbound_source
    if published is not None:
        side.published, side.stored = published, existing
        existing = published

    if spec.inbound_source == SOURCE_GENERATED:
        mirrors_generated = mirrors_source or published is not None
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


def _plan_outbound(
    *,
    spec: CredentialSpec,
    status: Mapping[str, Any],
    observed: ObservedSecrets,
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


def plan(
    *,
    peer: PeerIdentity,
    spec: CredentialSpec,
    status: Mapping[str, Any],
    observed: ObservedSecrets,
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
        remote_outbound = new_inbound_token or unconsumed_inbound(handoff, inbound.hash, status, now)
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
                body=build_peer_secret(
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
                body=build_peer_secret(
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
        if inbound.published is not None and not (
            # What this pass writes anyway (a write of ours interrupted before status), or status.
            inbound.stored is not None
            and (_same_hashes(inbound.stored, hashes) or _same_hashes(inbound.stored, inbound.published))
        ):
            inbound.restored = (own.name, "Altered" if own.exists else "Deleted")
            events.append(
                Event(
                    "Warning",
                    "InboundSecretRestored",
                    f"Secret {own.name} "
                    + ("held other hashes than" if own.exists else "was deleted; its hashes are in")
                    + " status.inbound.acceptedHashes, which only the operator writes; written back "
                    "from status. Review who may write Secrets in this namespace.",
                )
            )
        if (
            not own.exists
            or own.data.get(api.INBOUND_HASHES_KEY) != rendered
            or own.annotations.get(ANNOTATION_INBOUND_SOURCE) != inbound.source
        ):
            writes.append(
                SecretWrite(
                    name=own.name,
                    body=build_peer_secret(
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
        body=build_peer_secret(
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
        if side.rotated:
            result.pop("restored", None)
        if side.restored is not None:
            name, why = side.restored
            result["restored"] = {"secretName": name, "reason": why, "time": conditions.rfc3339(now)}
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
        restored = new_inbound.get("restored")
        if isinstance(restored, Mapping):
            # Kept until the next inbound rotation: the link works, but someone wrote our Secret.
            reason = "InboundSecretRestored"
            message += (
                f"; Secret {restored.get('secretName')} was written back from "
                f"status.inbound.acceptedHashes at {restored.get('time')} ({restored.get('reason')})"
            )
    new_conditions = conditions.set_condition(
        list(old.get("conditions") or []),
        kind=api.PEER_KIND,
        owner="credentials",
        type_=condition_types.CREDENTIALS_READY,
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
