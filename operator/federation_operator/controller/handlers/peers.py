"""FederationPeer credentials: observe the Secrets, ask `planning.plan`, carry the plan out.

Every trigger (create, update, resume, the periodic check, a change to one of the peer's Secrets or
to a user's Secret it references) goes through `reconcile`, which re-reads the peer under a
per-peer lock. So two triggers never plan from the same stale view, and the status written is
always the one computed from what the Secrets hold right now. Status is written only when the
credential part of it differs; no token ever reaches a log line, an Event or the status.
"""

import asyncio
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import kopf

from federation_operator.adapters.k8s import client as k8s
from federation_operator.adapters.k8s.resources import FEDERATION_PEERS, SECRETS
from federation_operator.adapters.k8s.status import DEFAULT_ATTEMPTS, patch_status
from federation_operator.controller.config import OperatorContext
from federation_operator.controller.handlers.events import post_event
from federation_operator.controller.handlers.pins_handover import PinsHandover, write_verdict
from federation_operator.controller.handlers.secret_cache import ROLE_SELECTOR, SecretCache
from federation_operator.domain import api, condition_types, conditions
from federation_operator.domain.claims import SharedClaims, caller_claims
from federation_operator.domain.credentials import (
    credential_spec,
    peer_secrets,
    planning,
    readiness,
    rotation_request,
)
from federation_operator.domain.ingress import pins_usable

# A create that loses a race (409) is re-judged from a fresh read this many times in one pass.
_ATTEMPTS = 3


class PeerLocks:
    """One lock per peer for one operator instance: reconciles of one peer never interleave."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def of(self, namespace: str, name: str) -> asyncio.Lock:
        return self._locks.setdefault((namespace, name), asyncio.Lock())

    def forget(self, namespace: str, name: str) -> None:
        self._locks.pop((namespace, name), None)


class SecretWatchers:
    """Which peers depend on which Secret, for one operator instance: (namespace, Secret) -> peers.

    Why not a `kopf.index`: kopf holds back every handler of every object until all its indices
    are filled, and wakes every held object on each change while filling, which is quadratic in
    the number of peers at startup (docs/benchmarks.md, the scale findings). Filled by the peer
    handlers; a Secret event that comes before its peer is known here loses nothing, since the
    peer's own reconcile reads its Secrets.

    A peer's own Secrets follow from its name (`<peer>-inbound` ...), so only the users' Secrets it
    references are stored: at thousands of peers, a set per own Secret was ~1.4 KiB per peer.
    """

    def __init__(self) -> None:
        # Every known peer, with the users' Secrets it references (mostly none: one shared empty set).
        self._of_peer: dict[tuple[str, str], frozenset[str]] = {}
        self._of_secret: dict[tuple[str, str], set[str]] = {}

    def watch(self, namespace: str, name: str, secrets: Iterable[str]) -> None:
        new = frozenset(secrets) - frozenset(peer_secrets.own_secret_names(name)) or _NONE
        old = self._of_peer.get((namespace, name))
        if new == old:
            return
        self.forget(namespace, name)
        self._of_peer[(namespace, name)] = new
        for secret in new:
            self._of_secret.setdefault((namespace, secret), set()).add(name)

    def forget(self, namespace: str, name: str) -> None:
        for secret in self._of_peer.pop((namespace, name), _NONE):
            peers = self._of_secret.get((namespace, secret))
            if peers is not None:
                peers.discard(name)
                if not peers:
                    del self._of_secret[(namespace, secret)]

    def peers_of(self, namespace: str, secret: str) -> list[str]:
        found = set(self._of_secret.get((namespace, secret), ()))
        owner = peer_secrets.owner_of(secret)
        if owner is not None and (namespace, owner) in self._of_peer:
            found.add(owner)
        return sorted(found)


_NONE: frozenset[str] = frozenset()


def inbound_selector(peer_name: str) -> str:
    """Secrets that claim to hold this peer's inbound hashes (ours, and forgeries to report)."""
    return f"{api.LABEL_ROLE}={api.ROLE_INBOUND},{api.LABEL_PEER}={peer_name}"


def claimed_peer(secret: Mapping[str, Any]) -> str | None:
    """The peer an inbound-labelled Secret claims to belong to, whoever wrote it."""
    labels = (secret.get("metadata") or {}).get("labels") or {}
    if labels.get(api.LABEL_ROLE) != api.ROLE_INBOUND:
        return None
    peer = labels.get(api.LABEL_PEER)
    return peer if isinstance(peer, str) and peer else None


def watched_secret_names(name: str, spec: Mapping[str, Any]) -> set[str]:
    """Every Secret whose change must re-reconcile this peer: ours and the users' it references."""
    return set(peer_secrets.own_secret_names(name)) | credential_spec.referenced_secret_names(spec)


@dataclasses.dataclass(frozen=True)
class Shared:
    """What every credentials pass of one operator instance shares."""

    locks: PeerLocks
    claims: SharedClaims
    cache: SecretCache
    # `PinsUsable` verdicts the edge handed to the credentials passes (None: no edge configured).
    handover: PinsHandover | None = None


async def prime(context: OperatorContext, *, shared: Shared, logger: kopf.Logger) -> None:
    """Fill the Secret cache with one LIST per watched scope (before kopf's watches start).

    A scope whose LIST fails stays unprimed: its passes then read each Secret from the API.
    """
    kube: k8s.Kube = context.kube
    for namespace in context.config.namespaces or (None,):
        try:
            listed = await kube.list(SECRETS, namespace, label_selector=ROLE_SELECTOR)
        except k8s.ApiError as error:
            logger.warning(
                "could not list the credential Secrets (%s); each pass reads its own", error.reason
            )
            continue
        shared.cache.prime(namespace, listed)


async def reconcile(
    context: OperatorContext,
    *,
    namespace: str,
    name: str,
    shared: Shared,
    logger: kopf.Logger,
    fresh: bool = False,
    unless: Callable[[], bool] | None = None,
    seen: Mapping[str, Any] | None = None,
) -> None:
    """Judge one peer; then, outside its lock, the peers whose shared claims it changed.

    `fresh` reads the Secrets from the API instead of the watch's cache (the periodic safety net);
    `unless`, asked once the peer's lock is held, skips the pass (an event of our own write that
    arrived while the pass that wrote it was still running); `seen` is the peer as the watch
    delivered it (resume): judged from it without a GET when that finds nothing to do.
    """
    affected = await _reconcile_locked(
        context,
        namespace=namespace,
        name=name,
        shared=shared,
        logger=logger,
        fresh=fresh,
        unless=unless,
        seen=seen,
    )
    for other_namespace, other in sorted(affected):
        # Their own claims did not change, so this does not cascade further.
        await _reconcile_locked(context, namespace=other_namespace, name=other, shared=shared, logger=logger)


async def _reconcile_locked(
    context: OperatorContext,
    *,
    namespace: str,
    name: str,
    shared: Shared,
    logger: kopf.Logger,
    fresh: bool = False,
    unless: Callable[[], bool] | None = None,
    seen: Mapping[str, Any] | None = None,
) -> set[tuple[str, str]]:
    async with shared.locks.of(namespace, name):
        if unless is not None and unless():
            return set()
        for _ in range(_ATTEMPTS):
            try:
                return await _reconcile_once(
                    context,
                    namespace=namespace,
                    name=name,
                    shared=shared,
                    logger=logger,
                    fresh=fresh,
                    seen=seen,
                )
            except k8s.Conflict:
                # Another writer got there first (a replica, or our own pass before a crash):
                # re-read and judge what is there now, adopting it if it is ours.
                logger.info("a Secret of peer %s changed while writing; re-reading", name)
                seen = None
    raise kopf.TemporaryError(f"Secrets of peer {name} keep changing while writing; retrying", delay=2)


async def _reconcile_once(
    context: OperatorContext,
    *,
    namespace: str,
    name: str,
    shared: Shared,
    logger: kopf.Logger,
    fresh: bool,
    seen: Mapping[str, Any] | None = None,
) -> set[tuple[str, str]]:
    kube: k8s.Kube = context.kube
    claims, cache = shared.claims, shared.cache
    peer = seen if seen is not None else await kube.get(FEDERATION_PEERS, namespace, name)
    if peer is None or peer["metadata"].get("deletionTimestamp"):
        return claims.forget((namespace, name))
    meta = peer["metadata"]
    now = context.clock()
    identity = peer_secrets.PeerIdentity(
        name=name, namespace=namespace, uid=meta["uid"], generation=meta.get("generation")
    )
    status: Mapping[str, Any] = peer.get("status") or {}
    annotation = (meta.get("annotations") or {}).get(api.ANNOTATION_ROTATE)
    try:
        spec = credential_spec.parse_credential_spec(peer.get("spec") or {})
    except credential_spec.InvalidCredentialSpec as error:
        if seen is not None:
            return await _reconcile_once(
                context, namespace=namespace, name=name, shared=shared, logger=logger, fresh=fresh
            )
        await _write_status(
            kube, peer, _invalid_spec_status(status, str(error), identity, now), shared=shared
        )
        return claims.forget((namespace, name))
    try:
        rotation = rotation_request.parse_rotation(annotation)
    except rotation_request.InvalidRotation as error:
        post_event(peer, kind=api.PEER_KIND, type_="Warning", reason="InvalidRotation", message=str(error))
        rotation = None

    observed = await _observe(kube, identity=identity, spec=spec, cache=cache, fresh=fresh)
    affected = claims.register(
        (namespace, name), caller_claims(peer.get("spec") or {}, observed=observed, now=now)
    )
    sharing = tuple(f"{ns}/{other}" for ns, other in claims.sharing((namespace, name)))
    observed = dataclasses.replace(observed, shared_with=sharing)
    the_plan = planning.plan(
        peer=identity, spec=spec, status=status, observed=observed, rotation=rotation, now=now
    )
    if seen is not None:
        if not (
            the_plan.writes
            or the_plan.deletes
            or the_plan.events
            or annotation is not None
            or _status_delta(peer, the_plan.status, status, carried=_carried(shared, peer))
        ):
            return affected  # nothing to do, judged without a call (a restart over converged peers)
        # Something to write: decided again from the API's view, never from a watch body that may
        # trail it (a write already made by another replica, or by this operator before a restart).
        return affected | await _reconcile_once(
            context, namespace=namespace, name=name, shared=shared, logger=logger, fresh=fresh
        )
    for write in the_plan.writes:
        try:
            if write.replace:
                written = await kube.replace(SECRETS, namespace, write.name, write.body)
            else:
                written = await kube.create(SECRETS, namespace, write.body)
        except k8s.Conflict:
            # What we planned from is not what is there (a Secret under our name the cache had
            # not seen, or a concurrent write): this one name is read afresh before the retry.
            cache.refresh(namespace, write.name, await kube.get(SECRETS, namespace, write.name))
            raise
        cache.wrote(written)
        logger.info("wrote Secret %s for peer %s", write.name, name)
    for delete in the_plan.deletes:
        await kube.delete(SECRETS, namespace, delete.name, uid=delete.uid)
        cache.deleted(namespace, delete.name, delete.uid)
        logger.info("deleted Secret %s for peer %s", delete.name, name)
    await _write_status(kube, peer, the_plan.status, shared=shared)
    _announce(peer, status, the_plan)
    if annotation is not None:
        await _clear_rotation(kube, peer, annotation, logger=logger)
    return affected


async def _observe(
    kube: k8s.Kube,
    *,
    identity: peer_secrets.PeerIdentity,
    spec: credential_spec.CredentialSpec,
    cache: SecretCache,
    fresh: bool,
) -> peer_secrets.ObservedSecrets:
    namespace = identity.namespace

    async def read(secret_name: str, *, labelled: bool) -> peer_secrets.ObservedSecret:
        known, secret = (False, None) if fresh else cache.lookup(namespace, secret_name, labelled=labelled)
        if not known:
            secret = await kube.get(SECRETS, namespace, secret_name)
            cache.refresh(namespace, secret_name, secret)
        return peer_secrets.observe_peer_secret(
            secret, name=secret_name, peer_name=identity.name, peer_uid=identity.uid
        )

    async def labelled_inbound() -> list[dict[str, Any]]:
        if not fresh and cache.primed(namespace):
            return cache.inbound_claims(namespace, identity.name)
        listed = await kube.list(SECRETS, namespace, label_selector=inbound_selector(identity.name))
        for secret in listed:
            cache.refresh(namespace, str(secret["metadata"]["name"]), secret)
        return listed

    inbound_name, outbound_name, handoff_name = peer_secrets.own_secret_names(identity.name)
    inbound, outbound, handoff, labelled = await asyncio.gather(
        read(inbound_name, labelled=True),
        read(outbound_name, labelled=True),
        read(handoff_name, labelled=True),
        labelled_inbound(),
    )
    return peer_secrets.ObservedSecrets(
        foreign_inbound=peer_secrets.foreign_inbound_names(
            labelled, peer_name=identity.name, peer_uid=identity.uid
        ),
        inbound=inbound,
        outbound=outbound,
        handoff=handoff,
        inbound_ref=await read(spec.inbound_ref.name, labelled=False) if spec.inbound_ref else None,
        outbound_ref=await read(spec.outbound_ref.name, labelled=False) if spec.outbound_ref else None,
    )


def _invalid_spec_status(
    status: Mapping[str, Any], message: str, identity: peer_secrets.PeerIdentity, now: Any
) -> dict[str, Any]:
    invalid = conditions.set_condition(
        list(status.get("conditions") or []),
        kind=api.PEER_KIND,
        owner="credentials",
        type_=condition_types.CREDENTIALS_READY,
        status="False",
        reason="InvalidSpec",
        message=message,
        generation=identity.generation,
        now=now,
    )
    return {
        "conditions": readiness.kstatus_conditions(invalid, generation=identity.generation, now=now),
        "observedGeneration": identity.generation,
    }


# The fields of status.inbound / status.outbound that this handler owns.
_SIDE_FIELDS = frozenset(
    {"fingerprint", "source", "rotatedAt", "previousExpiresAt", "acceptedHashes", "restored"}
)


def _status_delta(
    peer: Mapping[str, Any],
    new: Mapping[str, Any],
    fresh: Mapping[str, Any],
    *,
    carried: pins_usable.Verdict | None = None,
) -> dict[str, Any]:
    """The merge patch that puts our part of status (`new`) onto `fresh`; empty: nothing to write.

    `carried`: the edge's `PinsUsable` verdict this write carries (pins_handover.py)."""
    rebased = dict(new)
    for side in ("inbound", "outbound"):
        if isinstance(new.get(side), Mapping):
            # e.g. outbound.acceptedFingerprint is the heartbeat's: keep the fresh value.
            theirs = {k: v for k, v in (fresh.get(side) or {}).items() if k not in _SIDE_FIELDS}
            rebased[side] = theirs | {k: v for k, v in new[side].items() if k in _SIDE_FIELDS}
    if "conditions" in new:
        rebased["conditions"] = readiness.rebase_owned_conditions(
            list(fresh.get("conditions") or []),
            list(new["conditions"]),
            generation=peer["metadata"].get("generation"),
        )
    if carried is not None and not pins_usable.shown(fresh, carried):
        rebased["conditions"] = pins_usable.with_verdict(
            rebased.get("conditions", fresh.get("conditions") or []), carried
        )
    return readiness.status_patch(fresh, rebased)


def _carried(shared: Shared, peer: Mapping[str, Any]) -> pins_usable.Verdict | None:
    """The `PinsUsable` verdict the edge handed over for this peer as it is, if any."""
    if shared.handover is None:
        return None
    meta = peer["metadata"]
    return shared.handover.carried(
        (str(meta["namespace"]), str(meta["name"])), uid=str(meta["uid"]), generation=meta.get("generation")
    )


async def _write_status(
    kube: k8s.Kube, peer: Mapping[str, Any], new: Mapping[str, Any], *, shared: Shared
) -> None:
    """Our part of status, with a `PinsUsable` the edge handed over; rebased onto a fresh read if
    another handler wrote meanwhile."""
    carried: list[pins_usable.Verdict | None] = [None]

    def compute(fresh: Mapping[str, Any]) -> dict[str, Any]:
        # Asked on every attempt: a verdict handed over during the previous one goes along.
        carried[0] = _carried(shared, peer)
        return _status_delta(peer, new, fresh, carried=carried[0])

    written = await patch_status(kube, FEDERATION_PEERS, peer, compute)
    if written is None or shared.handover is None:
        return
    meta = peer["metadata"]
    owed = shared.handover.wrote(
        (str(meta["namespace"]), str(meta["name"])),
        uid=str(meta["uid"]),
        generation=meta.get("generation"),
        delivered=carried[0],
    )
    if owed is not None:
        # Handed over while our write was in flight: no credentials pass of this generation
        # follows, so this one writes it.
        await write_verdict(kube, written, owed, attempts=DEFAULT_ATTEMPTS)


async def _clear_rotation(
    kube: k8s.Kube, peer: Mapping[str, Any], value: str, *, logger: kopf.Logger
) -> None:
    """Remove the request we acted on, and only that one: a newer request set meanwhile stays."""
    meta = peer["metadata"]
    path = "/metadata/annotations/" + api.ANNOTATION_ROTATE.replace("~", "~0").replace("/", "~1")
    try:
        await kube.patch(
            FEDERATION_PEERS,
            meta["namespace"],
            meta["name"],
            [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}],
            kind="json",
        )
    except (k8s.Invalid, k8s.Conflict, k8s.NotFound):
        logger.info(
            "rotation request on peer %s changed meanwhile; it is handled on the next event", meta["name"]
        )


def _announce(peer: Mapping[str, Any], old_status: Mapping[str, Any], plan: planning.Plan) -> None:
    for event in plan.events:
        post_event(peer, kind=api.PEER_KIND, type_=event.type, reason=event.reason, message=event.message)
    new = conditions.get_condition(plan.status["conditions"], condition_types.CREDENTIALS_READY) or {}
    old = (
        conditions.get_condition(list(old_status.get("conditions") or []), condition_types.CREDENTIALS_READY)
        or {}
    )
    if new.get("status") == "False" and (old.get("status"), old.get("reason")) != (
        new.get("status"),
        new.get("reason"),
    ):
        post_event(
            peer,
            kind=api.PEER_KIND,
            type_="Warning",
            reason=str(new.get("reason")),
            message=str(new.get("message")),
        )


async def clean_up(
    context: OperatorContext,
    *,
    body: kopf.Body,
    shared: Shared,
    logger: kopf.Logger,
) -> None:
    """Delete the Secrets we created for this peer (never a user's): handoff first, it holds plaintext."""
    namespace, name, uid = str(body.metadata.namespace), str(body.metadata.name), str(body.metadata.uid)
    kube: k8s.Kube = context.kube
    async with shared.locks.of(namespace, name):
        for secret_name in reversed(peer_secrets.own_secret_names(name)):
            # Read afresh: what is deleted must be what is there, not what the watch last said.
            secret = await kube.get(SECRETS, namespace, secret_name)
            observed = peer_secrets.observe_peer_secret(
                secret, name=secret_name, peer_name=name, peer_uid=uid
            )
            if observed.managed:
                await kube.delete(SECRETS, namespace, secret_name, uid=observed.uid)
                shared.cache.deleted(namespace, secret_name, observed.uid)
                logger.info("deleted Secret %s of deleted peer %s", secret_name, name)
    shared.locks.forget(namespace, name)
    for other_namespace, other in sorted(shared.claims.forget((namespace, name))):
        await _reconcile_locked(context, namespace=other_namespace, name=other, shared=shared, logger=logger)


async def secret_changed(
    context: OperatorContext,
    *,
    event: kopf.RawEvent,
    peers: Iterable[str],
    shared: Shared,
    logger: kopf.Logger,
) -> None:
    """A Secret a peer depends on changed or vanished: re-judge those peers now, not at the next timer.

    The cache holds the event's state before this is called. An event that only reports what
    our own pass wrote wakes nobody: the pass that wrote it judged that state already. It is
    checked again under each peer's lock, since the event can overtake the pass that wrote it.
    """
    event_type = event["type"]
    if event_type not in ("ADDED", "MODIFIED", "DELETED"):
        return
    secret = event["object"]
    cache = shared.cache

    def own() -> bool:
        return cache.own_write(event_type, secret)

    if own():
        return
    namespace = str((secret.get("metadata") or {}).get("namespace"))
    for peer_name in sorted(set(peers)):
        await reconcile(
            context, namespace=namespace, name=peer_name, shared=shared, logger=logger, unless=own
        )
