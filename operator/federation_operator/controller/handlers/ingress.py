"""Edge enforcement, wired: the trust bundle, the provider objects and `PinsUsable`, per namespace.

The pure `ingress` package says what the edge of a namespace should look like; this module reads
what is there, writes only what differs and tells each peer whether the edge can enforce its pins.
The bundle is the union of a namespace's peers, so every trigger (a peer created, changed,
suspended, resumed or deleted, and the periodic expiry check) re-reads all peers of that namespace
under one lock per namespace: two peers changing together never interleave their writes, and the
last writer always computed from the newest list.

Writes are ordered to fail closed in both directions: routes are written after the verification
they rely on exists, and removed before it goes.
"""

import asyncio
import copy
import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Final

import kopf

from federation_operator.adapters.k8s import client as k8s
from federation_operator.adapters.k8s.resources import FEDERATION_PEERS, GATEWAYS, Resource, resource_of
from federation_operator.adapters.k8s.status import StatusContention, patch_status
from federation_operator.controller.config import OperatorContext
from federation_operator.controller.handlers.events import post_event
from federation_operator.controller.handlers.pins_handover import Handed, PinsHandover
from federation_operator.domain import api, condition_types, conditions, pinning
from federation_operator.domain.ingress import pins_usable
from federation_operator.domain.ingress.bundle import (
    BundledCertificate,
    PeerPins,
    TrustBundle,
    build_trust_bundle,
    build_trust_bundle_objects,
)
from federation_operator.domain.ingress.config import IngressConfig
from federation_operator.domain.ingress.diffing import needs_write, stale_owners
from federation_operator.domain.ingress.providers import PROVIDERS, Provider

# What brings a provider's kinds into a cluster, by API group: said in the condition so that the
# reader knows what to install, not only what is missing.
INSTALL_HINTS: Final = {
    "gateway.networking.k8s.io": (
        "the Gateway API CRDs (kubectl apply -f https://github.com/kubernetes-sigs/gateway-api/"
        "releases/download/v1.2.1/standard-install.yaml)"
    ),
    "gateway.envoyproxy.io": (
        "Envoy Gateway, which installs its CRDs (helm install eg oci://docker.io/envoyproxy/gateway-helm "
        "-n envoy-gateway-system --create-namespace)"
    ),
    "networking.k8s.io": "a Kubernetes version that serves networking.k8s.io/v1",
}
# A write that loses a race (409) is re-judged from a fresh read this many times in one pass.
_ATTEMPTS = 3
# The longest a namespace's pass waits after the previous one (NamespaceLocks.pace), seconds:
# well under the event watch's EDGE_WAIT (5 s).
PASS_REST: Final = 2.0
_OUR_ROLES = frozenset({api.ROLE_INGRESS, api.ROLE_TRUST_BUNDLE})

Address = tuple[Resource, str, str]


class NamespaceLocks:
    """One lock per namespace for one operator instance: edge passes of a namespace never interleave."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        # Per namespace, the missing-provider message last logged: logged again only when it changes.
        self.reported: dict[str, str] = {}
        # Per namespace, a pass waiting for the lock that has not read the peers yet.
        self.queued: dict[str, asyncio.Future[None]] = {}
        # Per namespace, what its last successful pass computed the edge from: each peer's
        # (uid, generation). A peer whose spec moved on since needs another pass.
        self.computed_from: dict[str, dict[str, tuple[str, int | None]]] = {}
        # Per namespace, when its last pass ended and how long it took (loop time, seconds).
        self.last_pass: dict[str, tuple[float, float]] = {}

    async def pace(self, namespace: str) -> None:
        """Wait, before a pass of `namespace` lists its peers, until the previous pass has rested
        for as long as it ran (at most `PASS_REST`): a namespace's passes keep the API server and
        the operator busy at most half the time. Triggers that come meanwhile join the waiting pass.

        Without it, a bulk apply of 2,000 peers ran 17-18 passes back to back, each listing every
        peer; with it, 12 (docs/benchmarks.md)."""
        last = self.last_pass.get(namespace)
        if last is None:
            return
        ended, took = last
        rest = min(took, PASS_REST) - (asyncio.get_running_loop().time() - ended)
        if rest > 0:
            await asyncio.sleep(rest)

    def of(self, namespace: str) -> asyncio.Lock:
        return self._locks.setdefault(namespace, asyncio.Lock())

    def is_current(self, namespace: str, name: str, meta: Mapping[str, Any], *, gone: bool) -> bool:
        """Whether the last pass of `namespace` already computed the edge from this peer as it is now.

        `gone`: the peer no longer exists (its DELETED event); a peer being deleted counts as gone,
        since passes leave it out. A spec change bumps `metadata.generation`; status and annotation
        writes do not, so our own writes never count as a change.
        """
        seen = self.computed_from.get(namespace, {}).get(name)
        if gone or meta.get("deletionTimestamp"):
            return seen is None
        return seen == (str(meta.get("uid")), meta.get("generation"))


async def reconcile_namespace(
    context: OperatorContext,
    *,
    namespace: str,
    locks: NamespaceLocks,
    logger: kopf.Logger,
    handover: PinsHandover | None = None,
) -> None:
    """Bring the edge of `namespace` and the peers' `PinsUsable` in line with its peers now.

    With `handover`, a peer whose credentials are still to be judged gets its `PinsUsable` from
    its credentials pass's status write (pins_handover.py); without, the pass writes every one.

    A trigger that finds a pass of its namespace queued (waiting for the lock, not yet listing
    the peers) joins it instead of queueing another: that pass reads everything this trigger
    could add. At startup every peer's resume handler triggers its namespace; without this, a
    namespace of N peers ran N passes, each listing all N peers.
    """
    settings = context.config.ingress
    if settings is None:
        return
    queued = locks.queued.get(namespace)
    if queued is not None:
        await asyncio.shield(queued)
        return
    queued = locks.queued[namespace] = asyncio.get_running_loop().create_future()
    # Retrieved here so that a failed pass nobody joined is not reported as never retrieved.
    queued.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        async with locks.of(namespace):
            await locks.pace(namespace)
            del locks.queued[namespace]
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                await _reconcile_namespace_locked(
                    context,
                    settings=settings,
                    namespace=namespace,
                    locks=locks,
                    logger=logger,
                    handover=handover,
                )
            finally:
                ended = loop.time()
                locks.last_pass[namespace] = (ended, ended - started)
    except BaseException as error:
        if locks.queued.get(namespace) is queued:
            del locks.queued[namespace]
        if isinstance(error, Exception):
            queued.set_exception(error)
        else:
            queued.cancel()
        raise
    queued.set_result(None)


async def _reconcile_namespace_locked(
    context: OperatorContext,
    *,
    settings: IngressConfig,
    namespace: str,
    locks: NamespaceLocks,
    logger: kopf.Logger,
    handover: PinsHandover | None,
) -> None:
    provider = PROVIDERS[context.config.ingress_provider]
    for _ in range(_ATTEMPTS):
        try:
            await _reconcile_once(
                context,
                settings=settings,
                provider=provider,
                namespace=namespace,
                locks=locks,
                logger=logger,
                handover=handover,
            )
            return
        except k8s.Conflict:
            # Another writer (a replica, a user, a controller) got there first: judge it afresh.
            logger.info("an edge object in %s changed while writing; re-reading", namespace)
    raise kopf.TemporaryError(f"edge objects in {namespace} keep changing while writing; retrying", delay=2)


async def _reconcile_once(
    context: OperatorContext,
    *,
    settings: IngressConfig,
    provider: Provider,
    namespace: str,
    locks: NamespaceLocks,
    logger: kopf.Logger,
    handover: PinsHandover | None,
) -> None:
    kube: k8s.Kube = context.kube
    listed = await kube.list(FEDERATION_PEERS, namespace)
    # A peer being deleted is gone for the edge already: its certificate leaves at once.
    peers = sorted(
        (peer for peer in listed if not peer["metadata"].get("deletionTimestamp")),
        key=lambda peer: str(peer["metadata"]["name"]),
    )
    now = context.clock()
    bundle = build_trust_bundle([_peer_pins(peer) for peer in peers], now=now, needs_pem=provider.needs_pem)
    owners = [_owner_reference(peer) for peer in peers]
    config = dataclasses.replace(settings, owner_references=owners)
    bundle_objects = build_trust_bundle_objects(
        namespace=namespace,
        bundle=bundle,
        labels=api.managed_labels(role=api.ROLE_TRUST_BUNDLE),
        owner_references=owners,
    )
    try:
        desired = bundle_objects + provider.build_objects(namespace=namespace, bundle=bundle, config=config)
        possible = _possible_addresses(provider, namespace=namespace, config=config)
    except ValueError as error:
        # A deployment mistake (ingress-nginx with the server in another namespace): no retry fixes it.
        raise kopf.PermanentError(str(error)) from None

    missing = await _missing_kinds(kube, provider, possible)
    if missing:
        # The trust bundle still follows the peers; the provider's objects wait for its CRDs. No
        # error is raised: kopf would retry with backoff and log every attempt, while the periodic
        # check (ingress_check_interval) finds the CRDs within one interval of their arrival.
        for obj in bundle_objects:
            await _apply(kube, obj, logger=logger)
        unserved = not_installed_message(missing, provider=provider.name)
        if locks.reported.get(namespace) != unserved:
            logger.warning("edge of %s not enforced: %s", namespace, unserved)
            locks.reported[namespace] = unserved
        for peer in peers:
            await _set_pins_condition(
                kube, peer, bundle=bundle, now=now, logger=logger, handover=handover, unserved=unserved
            )
        _record_pass(locks, namespace, peers)
        return
    if locks.reported.pop(namespace, None) is not None:
        logger.info(
            "ingress provider %s's kinds are served now; writing the edge of %s", provider.name, namespace
        )

    wanted = {_address(obj) for obj in desired}
    stale = [address for address in possible if address not in wanted]
    # Fail closed: the provider's route kinds are removed first and written last, so no request is
    # routed without the verification it relies on.
    for obj in desired:
        if obj["kind"] not in provider.route_kinds:
            await _apply(kube, obj, logger=logger)
    for address in stale:
        if address[0].kind in provider.route_kinds:
            await _delete_ours(kube, address, logger=logger)
    if provider.gateway_patch is not None:
        await _patch_gateway(
            kube,
            provider,
            namespace=namespace,
            config=config,
            enabled=bool(bundle.certificates),
            logger=logger,
        )
    for obj in desired:
        if obj["kind"] in provider.route_kinds:
            await _apply(kube, obj, logger=logger)
    for address in stale:
        if address[0].kind not in provider.route_kinds:
            await _delete_ours(kube, address, logger=logger)

    for peer in peers:
        await _set_pins_condition(kube, peer, bundle=bundle, now=now, logger=logger, handover=handover)
    _record_pass(locks, namespace, peers)


def _record_pass(locks: NamespaceLocks, namespace: str, peers: Sequence[Mapping[str, Any]]) -> None:
    if not peers:
        locks.computed_from.pop(namespace, None)
        return
    locks.computed_from[namespace] = {
        str(peer["metadata"]["name"]): (str(peer["metadata"].get("uid")), peer["metadata"].get("generation"))
        for peer in peers
    }


async def _missing_kinds(kube: k8s.Kube, provider: Provider, possible: Sequence[Address]) -> list[Resource]:
    """The provider's kinds this API server does not serve (their CRDs are not installed)."""
    needed = {address[0] for address in possible if address[0].group}
    if provider.gateway_patch is not None:
        needed.add(GATEWAYS)
    ordered = sorted(needed, key=lambda resource: (resource.group, resource.kind))
    served = await asyncio.gather(*(kube.served(resource) for resource in ordered))
    return [resource for resource, ok in zip(ordered, served, strict=True) if not ok]


def not_installed_message(missing: Sequence[Resource], *, provider: str) -> str:
    """Which kinds are missing, and what to install, in one line (pure)."""
    groups: dict[str, list[Resource]] = {}
    for resource in missing:
        groups.setdefault(resource.api_version, []).append(resource)
    kinds = "; ".join(
        f"{', '.join(resource.kind for resource in resources)} ({api_version})"
        for api_version, resources in groups.items()
    )
    hints = sorted(
        {INSTALL_HINTS.get(resource.group, f"the CRDs of {resource.group}") for resource in missing}
    )
    return (
        f"the cluster does not serve {kinds}, needed by ingress provider {provider}: install "
        f"{' and '.join(hints)}. The trust bundle is kept; client certificates are not verified at "
        "the edge until then"
    )


def _peer_pins(peer: Mapping[str, Any]) -> PeerPins:
    spec: Mapping[str, Any] = peer.get("spec") or {}
    return PeerPins(
        name=str(peer["metadata"]["name"]),
        namespace=str(peer["metadata"]["namespace"]),
        pins=pinning.parse_pins(spec.get("remoteCertificates")),
        suspended=bool(spec.get("suspend")),
    )


def _owner_reference(peer: Mapping[str, Any]) -> dict[str, Any]:
    # Not `controller: true`: every peer of the namespace owns the bundle equally, and the garbage
    # collector removes it only when the last owner is gone.
    meta = peer["metadata"]
    return {"apiVersion": api.API_VERSION, "kind": api.PEER_KIND, "name": meta["name"], "uid": meta["uid"]}


def _address(obj: Mapping[str, Any]) -> Address:
    meta = obj["metadata"]
    return resource_of(dict(obj)), str(meta["namespace"]), str(meta["name"])


def _possible_addresses(provider: Provider, *, namespace: str, config: IngressConfig) -> list[Address]:
    """Where the bundle and this provider's objects live whenever anything is pinned.

    Built from a placeholder certificate so that the provider module stays the one place that
    knows its kinds, names and namespaces; an address not wanted now holds a stale object.
    """
    placeholder = BundledCertificate(
        thumbprint="0" * 64, pem="", not_after=datetime.datetime.max.replace(tzinfo=datetime.UTC)
    )
    probe = TrustBundle(certificates=(placeholder,), thumbprints=(placeholder.thumbprint,))
    objects = build_trust_bundle_objects(namespace=namespace, bundle=probe, labels={})
    objects += provider.build_objects(namespace=namespace, bundle=probe, config=config)
    return [_address(obj) for obj in objects]


def _is_ours(live: Mapping[str, Any]) -> bool:
    labels: Mapping[str, str] = (live.get("metadata") or {}).get("labels") or {}
    return labels.get(api.LABEL_MANAGED_BY) == api.MANAGER and labels.get(api.LABEL_ROLE) in _OUR_ROLES


async def _apply(kube: k8s.Kube, desired: Mapping[str, Any], *, logger: kopf.Logger) -> None:
    """Create if absent, rewrite our part if it differs, never touch it otherwise."""
    resource, namespace, name = _address(desired)
    live = await kube.get(resource, namespace, name)
    if live is None:
        await kube.create(resource, namespace, desired)
        logger.info("created %s %s/%s", resource.kind, namespace, name)
        return
    if not _is_ours(live):
        # Someone else's object under our name: overwriting it could open or break their edge.
        logger.warning("%s %s/%s exists and is not managed by us; left alone", resource.kind, namespace, name)
        return
    if not needs_write(desired, live):
        return
    await kube.replace(resource, namespace, name, _merged(live, desired))
    logger.info("updated %s %s/%s", resource.kind, namespace, name)


def _merged(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """`live` with our part replaced: others' labels, annotations, owners and fields stay (an owner
    of our owners' kind we no longer want does not: `diffing.stale_owners`).

    The live `resourceVersion` goes along, so a change made since we read makes the PUT fail with
    409 instead of being overwritten.
    """
    body = {key: copy.deepcopy(value) for key, value in live.items() if key != "status"}
    body.update({key: copy.deepcopy(value) for key, value in desired.items() if key != "metadata"})
    meta: dict[str, Any] = copy.deepcopy(dict(live["metadata"]))
    meta.pop("managedFields", None)
    desired_meta: Mapping[str, Any] = desired["metadata"]
    for key in ("labels", "annotations"):
        if desired_meta.get(key):
            meta[key] = {**(meta.get(key) or {}), **desired_meta[key]}
    wanted_owners: Sequence[Mapping[str, Any]] = desired_meta.get("ownerReferences") or []
    if wanted_owners:
        wanted_uids = {ref["uid"] for ref in wanted_owners}
        live_owners = meta.get("ownerReferences") or []
        stale = {id(ref) for ref in stale_owners(live_owners, wanted_owners)}
        kept = [ref for ref in live_owners if ref.get("uid") not in wanted_uids and id(ref) not in stale]
        meta["ownerReferences"] = kept + [dict(ref) for ref in wanted_owners]
    body["metadata"] = meta
    return body


async def _delete_ours(kube: k8s.Kube, address: Address, *, logger: kopf.Logger) -> None:
    resource, namespace, name = address
    live = await kube.get(resource, namespace, name)
    if live is None or not _is_ours(live):
        return
    if await kube.delete(resource, namespace, name, uid=live["metadata"]["uid"]):
        logger.info("deleted %s %s/%s", resource.kind, namespace, name)


async def _patch_gateway(
    kube: k8s.Kube,
    provider: Provider,
    *,
    namespace: str,
    config: IngressConfig,
    enabled: bool,
    logger: kopf.Logger,
) -> None:
    """Add (or remove) our frontend validation on the user's Gateway; 409 re-runs the pass."""
    assert provider.gateway_patch is not None
    gateway_namespace = config.gateway_ns(namespace)
    gateway = await kube.get(GATEWAYS, gateway_namespace, config.gateway_name)
    if gateway is None:
        if enabled:
            logger.warning(
                "Gateway %s/%s not found: client certificates are not verified until it exists",
                gateway_namespace,
                config.gateway_name,
            )
        return
    patch = provider.gateway_patch(namespace=namespace, config=config, gateway=gateway, enabled=enabled)
    if patch is None:
        return
    await kube.patch(GATEWAYS, patch.namespace, patch.name, dict(patch.body), kind="merge")
    logger.info(
        "%s frontend validation on Gateway %s/%s",
        "set" if enabled else "removed",
        patch.namespace,
        patch.name,
    )


async def _set_pins_condition(
    kube: k8s.Kube,
    peer: Mapping[str, Any],
    *,
    bundle: TrustBundle,
    now: datetime.datetime,
    logger: kopf.Logger,
    handover: PinsHandover | None,
    unserved: str | None = None,
) -> None:
    """`PinsUsable` on the peer when it differs, and only it: other conditions are other handlers'.

    Written here, or handed over to the peer's credentials pass (pins_handover.py). A Warning Event
    is posted when it turns `False` with a new reason, by this pass either way.
    """
    name = str(peer["metadata"]["name"])
    key = (str(peer["metadata"]["namespace"]), name)
    warnings = [warning for warning in bundle.warnings if warning.peer == name]
    verdict = pins_usable.decide(peer=peer, warnings=warnings, unserved=unserved, now=now)
    listed: Mapping[str, Any] = peer.get("status") or {}
    if pins_usable.shown(listed, verdict):
        if handover is not None:
            handover.settle(key, listed=listed, generation=verdict.generation)
        return
    handed = Handed.NO if handover is None else handover.hand_over(key, verdict, listed=listed, now=now)
    if handed is Handed.NOW:
        _announce_pins(peer, previous=listed, verdict=verdict)
    if handed in (Handed.NOW, Handed.BEFORE, Handed.DELIVERED):
        return
    previous: dict[str, Any] = {}

    def compute(fresh: Mapping[str, Any]) -> dict[str, Any]:
        previous.clear()
        previous.update(fresh)
        return pins_usable.status_patch(fresh, verdict)

    try:
        written = await patch_status(kube, FEDERATION_PEERS, peer, compute, attempts=_ATTEMPTS)
    except StatusContention:
        logger.info("peer %s keeps changing; %s is set on the next pass", name, condition_types.PINS_USABLE)
        return
    if written is not None and handed is Handed.NO:
        _announce_pins(written, previous=previous, verdict=verdict)


def _announce_pins(
    peer: Mapping[str, Any], *, previous: Mapping[str, Any], verdict: pins_usable.Verdict
) -> None:
    """A Warning Event when `PinsUsable` turns False, or False for another reason."""
    old = conditions.get_condition(previous.get("conditions") or [], condition_types.PINS_USABLE) or {}
    if verdict.status == "False" and (old.get("status"), old.get("reason")) != (
        verdict.status,
        verdict.reason,
    ):
        post_event(peer, kind=api.PEER_KIND, type_="Warning", reason=verdict.reason, message=verdict.message)
