"""kopf decorators for FederationPeer credentials and the Secrets they live in or come from.

Every change runs the create/update/resume or Secret-event handlers at once. What no event
announces (a handoff TTL, a rotation overlap ending) is found by one periodic sweep per operator
(`peer-credentials-check`, see `handlers/periodic.py`), not a kopf timer per peer: each peer's
status events leave one deadline here (`readiness.check_deadline`), and the sweep reads in full
only the peers whose deadline has passed, plus a share of those past the safety-net period.
A spec change kopf believes handled (docs/operations.md, "A change reverted while it was being
handled") runs no change handler: the status events make such a peer due at once
(`CredentialsReady` judged for an older generation), and tell which Secrets it names now.
"""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import kopf

from federation_operator.adapters.metrics import CredentialMetrics
from federation_operator.controller.config import OperatorConfig, context_of
from federation_operator.controller.handlers import peers as peer_handlers
from federation_operator.controller.handlers.pass_gate import PassGate
from federation_operator.controller.handlers.periodic import HandlerContext, bounded
from federation_operator.controller.handlers.pins_handover import PinsHandover
from federation_operator.controller.handlers.secret_cache import SecretCache
from federation_operator.controller.registration.metrics import CREDENTIALS_KEY
from federation_operator.controller.registration.peer_events import PeerEvents
from federation_operator.controller.registration.periodic import Tick, register_periodic
from federation_operator.domain import api
from federation_operator.domain.claims import SharedClaims
from federation_operator.domain.credentials import readiness

PEER = (api.GROUP, api.VERSION, api.PEER_PLURAL)
# The periodic check reads every peer at least this many check intervals apart (5 min at 30 s).
FULL_CHECK_EVERY = 10
# Full reads the sweep runs at once: about the API client's thread pool, so a wave of due peers
# (after a restart every peer is due within one safety-net period) queues here, not in the pool.
SWEEP_CONCURRENCY = 16
SWEEP_KEY = "peer-credentials-check"
_log = logging.getLogger(__name__)


def _peer_logger(namespace: str, name: str) -> logging.LoggerAdapter[logging.Logger]:
    """A logger whose lines name the peer, as kopf's per-object logger does for handlers."""
    ref = {"kind": api.PEER_KIND, "apiVersion": api.API_VERSION, "namespace": namespace, "name": name}
    return logging.LoggerAdapter(_log, {"k8s_ref": ref})


def register(
    registry: kopf.OperatorRegistry,
    config: OperatorConfig,
    *,
    secrets: SecretCache,
    gate: PassGate,
    handover: PinsHandover | None,
    events: PeerEvents,
) -> None:
    shared = peer_handlers.Shared(
        locks=peer_handlers.PeerLocks(), claims=SharedClaims(), cache=secrets, handover=handover
    )
    watchers = peer_handlers.SecretWatchers()
    interval = config.peer_check_interval
    full_every = timedelta(seconds=interval * FULL_CHECK_EVERY)
    # When each peer was last read in full (operator clock): the safety net's clock.
    last_full: dict[tuple[str, str], datetime] = {}

    async def read_in_full(
        name: str,
        namespace: str,
        spec: kopf.Spec | None,
        logger: kopf.Logger,
        memo: Any,
        *,
        fresh: bool = False,
        seen: kopf.Body | None = None,
    ) -> None:
        context = context_of(memo)
        if spec is not None:  # the sweep passes none: the spec handlers keep `watchers` current
            watchers.watch(namespace, name, peer_handlers.watched_secret_names(name, spec))
        started = context.clock()
        await peer_handlers.reconcile(
            context, namespace=namespace, name=name, shared=shared, logger=logger, fresh=fresh, seen=seen
        )
        last_full[(namespace, name)] = started
        counted = memo.get(CREDENTIALS_KEY)
        if isinstance(counted, CredentialMetrics):
            counted.passes.inc()

    @kopf.on.resume(*PEER, registry=registry, id="peer-credentials-resume")
    @kopf.on.create(*PEER, registry=registry, id="peer-credentials-create")
    @kopf.on.update(*PEER, registry=registry, id="peer-credentials-update")
    async def peer_changed(
        name: str,
        namespace: str | None,
        spec: kopf.Spec,
        body: kopf.Body,
        reason: str,
        logger: kopf.Logger,
        memo: Any,
        **_: Any,
    ) -> None:
        # On resume (a restart) the watch's body is as fresh as a GET would be, and most peers need
        # nothing: judged from it, a restart costs no call per converged peer. A create or an
        # update has work to do, which is always planned from a fresh read.
        seen = body if reason == kopf.Reason.RESUME else None
        async with gate.slot((str(namespace), name)):
            await read_in_full(name, str(namespace), spec, logger, memo, seen=seen)

    # Per peer, what its last status event said about its next deadline (see `check_deadline`).
    deadlines: dict[tuple[str, str], datetime | None] = {}
    handler_context = HandlerContext()

    async def peer_deadline(
        type: str,
        name: str,
        namespace: str | None,
        spec: kopf.Spec,
        status: kopf.Status,
        meta: kopf.Meta,
        **_: Any,
    ) -> None:
        handler_context.capture()
        key = (str(namespace), name)
        if type == "DELETED":
            deadlines.pop(key, None)
            return
        deadlines[key] = readiness.check_deadline(status, generation=meta.get("generation"))
        # kopf skips the change handlers for a spec that returns to the last one it handled while
        # the handlers of the spec between are still running (A -> B -> A), and those left
        # `watchers` on B's Secrets: every event says which Secrets the peer names now.
        if not meta.get("deletionTimestamp"):
            watchers.watch(key[0], name, peer_handlers.watched_secret_names(name, spec))

    events.add("peer-credentials-deadline", peer_deadline)

    async def make_sweep(memo: kopf.Memo) -> Tick:
        context = context_of(memo)
        # Before kopf's watches start: the credential Secrets in one LIST per scope, not per peer.
        await peer_handlers.prime(context, shared=shared, logger=_log)

        def full_read(namespace: str, name: str, *, fresh: bool) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                logger = _peer_logger(namespace, name)
                await read_in_full(name, namespace, None, logger, memo, fresh=fresh)

            return job

        async def sweep() -> None:
            for key in [key for key in last_full if key not in deadlines]:
                last_full.pop(key)  # its DELETED event came while a read was in flight
            due = readiness.pick_due(
                {key: (last, deadlines[key]) for key, last in last_full.items()},
                now=context.clock(),
                interval=timedelta(seconds=interval),
                full_every=full_every,
            )
            jobs = [
                (f"{SWEEP_KEY} of {ns}/{name}", full_read(ns, name, fresh=fresh)) for (ns, name), fresh in due
            ]
            await bounded(jobs, limit=SWEEP_CONCURRENCY, logger=_log, context=handler_context)

        return sweep

    register_periodic(registry, key=SWEEP_KEY, interval=interval, make_tick=make_sweep, logger=_log)

    @kopf.on.delete(*PEER, registry=registry, id="peer-credentials-delete")
    async def peer_deleted(body: kopf.Body, logger: kopf.Logger, memo: Any, **_: Any) -> None:
        await peer_handlers.clean_up(context_of(memo), body=body, shared=shared, logger=logger)
        watchers.forget(str(body.metadata.namespace), str(body.metadata.name))
        last_full.pop((str(body.metadata.namespace), str(body.metadata.name)), None)
        deadlines.pop((str(body.metadata.namespace), str(body.metadata.name)), None)
        if handover is not None:
            handover.forget((str(body.metadata.namespace), str(body.metadata.name)))

    @kopf.on.event("v1", "secrets", registry=registry, id="peer-secret-event")
    async def peer_secret_event(
        event: kopf.RawEvent, name: str, namespace: str | None, logger: kopf.Logger, memo: Any, **_: Any
    ) -> None:
        peers = watchers.peers_of(str(namespace), name)
        shared.cache.observe(event.get("type"), event.get("object") or {}, watched=bool(peers))
        # A Secret labelled as some peer's inbound hashes (a forgery, or a copy) re-judges that
        # peer, which reports it while it exists and clears the report once it is gone.
        claimed = peer_handlers.claimed_peer(event.get("object") or {})
        if claimed is not None and claimed not in peers:
            peers = [*peers, claimed]
        if peers:
            await peer_handlers.secret_changed(
                context_of(memo), event=event, peers=peers, shared=shared, logger=logger
            )
