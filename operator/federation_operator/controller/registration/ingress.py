"""kopf decorators for the edge: any change to a namespace's peers re-runs that namespace's edge.

The trust bundle is the union of a namespace's peers, so each trigger names only the namespace;
`handlers.ingress.reconcile_namespace` re-reads all its peers. Only spec changes count (the
pins and `suspend` live there): status writes, ours included, never start a pass.

kopf's change handlers alone are not enough. kopf compares each event with the last configuration
it finished handling; a spec that changes (A to B) and returns (to A) while the handling of B is
still in progress compares equal, and kopf drops the handlers of B not yet run. The edge may
already show B by then, written by a pass another peer triggered. So every watch event is also
compared with what the namespace's last pass computed from (`NamespaceLocks.is_current`: the
peer's uid and `metadata.generation`), and a peer that moved on starts a pass at once. The change
handlers stay for kopf's retries; they skip the pass when the event watch already ran it.

The event watch starts its pass (or joins the queued one) and waits for it at most `EDGE_WAIT`.
kopf runs a peer's event handlers before its change handlers, in one worker per peer: a pass held
by the API server (a read that waits out the client's 30 s timeout) would otherwise hold that
peer's credentials pass too, and every peer of the namespace joins the same pass. Waiting at all
paces a start's peers to the edge's passes, which bounds the operator's memory. The change
handlers, registered after the credentials' ones, still wait for the pass, so that kopf retries a
pass that failed.

Pinned certificates expire without any API event, so the edge is also re-checked every
`ingress_check_interval`: by one periodic sweep per operator over the namespaces that hold
peers (`ingress-check`, see `handlers/periodic.py`), one pass per namespace, not a kopf timer
per peer that re-ran the same namespace pass once for each of its peers.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from federation_operator.controller.config import OperatorConfig, context_of
from federation_operator.controller.handlers import ingress as ingress_handlers
from federation_operator.controller.handlers.periodic import HandlerContext, bounded
from federation_operator.controller.handlers.pins_handover import PinsHandover
from federation_operator.controller.registration.peer_events import PeerEvents
from federation_operator.controller.registration.periodic import Tick, register_periodic
from federation_operator.domain import api

PEER = (api.GROUP, api.VERSION, api.PEER_PLURAL)
SWEEP_KEY = "ingress-check"
# Namespaces whose edge the sweep re-checks at once (each pass holds its namespace's lock).
SWEEP_CONCURRENCY = 4
# How long the event watch waits for its namespace's pass before the peer's other handlers run.
EDGE_WAIT = 5.0
_log = logging.getLogger(__name__)


def register(
    registry: kopf.OperatorRegistry,
    config: OperatorConfig,
    *,
    handover: PinsHandover | None,
    events: PeerEvents,
) -> None:
    if config.ingress is None:
        # No edge configured: no handler, no finalizer, nothing written.
        return
    locks = ingress_handlers.NamespaceLocks()
    interval = config.ingress_check_interval
    # The peers the handlers have seen, per namespace: the namespaces the sweep re-checks.
    peers_in: dict[str, set[str]] = {}
    handler_context = HandlerContext()

    def seen(namespace: str, name: str, meta: kopf.Meta, *, gone: bool) -> bool:
        """Note the peer; whether the namespace's last pass already computed from it as it is."""
        handler_context.capture()
        if not gone and not meta.get("deletionTimestamp"):
            peers_in.setdefault(namespace, set()).add(name)
        return locks.is_current(namespace, name, meta, gone=gone)

    async def pass_unless_current(
        namespace: str, name: str, meta: kopf.Meta, *, gone: bool, logger: kopf.Logger, memo: Any
    ) -> None:
        """Run the namespace's pass unless its last one already computed from this peer as it is."""
        if not seen(namespace, name, meta, gone=gone):
            await ingress_handlers.reconcile_namespace(
                context_of(memo), namespace=namespace, locks=locks, logger=logger, handover=handover
            )

    # Passes the event watch started: held so that they are not collected mid-flight (the event
    # watch waits for one at most EDGE_WAIT), and cancelled when the operator stops.
    started: set[asyncio.Task[None]] = set()

    async def watched_pass(namespace: str, *, logger: kopf.Logger, memo: Any) -> None:
        try:
            await ingress_handlers.reconcile_namespace(
                context_of(memo), namespace=namespace, locks=locks, logger=logger, handover=handover
            )
        except Exception as error:
            # The peer's change handler (kopf retries it) or the next sweep runs the pass again.
            logger.warning("Edge pass of namespace %s failed: %s; it is retried", namespace, error)

    async def peer_seen(
        type: str | None,
        name: str,
        namespace: str | None,
        meta: kopf.Meta,
        logger: kopf.Logger,
        memo: Any,
        **_: Any,
    ) -> None:
        # FederationPeer is namespaced: kopf's `None` (cluster-scoped objects) never comes here.
        if seen(str(namespace), name, meta, gone=type == "DELETED"):
            return
        # A queued pass has not listed the peers yet: it reads this one as it is now.
        waited: asyncio.Future[None] | None = locks.queued.get(str(namespace))
        if waited is None:
            # The task copies this handler's context: kopf's Event posting in the pass needs it.
            task = asyncio.create_task(
                watched_pass(str(namespace), logger=logger, memo=memo),
                name=f"edge pass of namespace {namespace}",
            )
            started.add(task)
            task.add_done_callback(started.discard)
            waited = task
        # Waiting paces kopf's workers to the edge's passes: a start's peers go on to their
        # credentials no faster than the passes list them, which bounds what the operator holds
        # at once (at 2,000 peers, not waiting took the RSS from 207 to 267 MiB; docs/benchmarks.md).
        # Bounded, so that a pass the API server holds does not hold the credentials too.
        await asyncio.wait({waited}, timeout=EDGE_WAIT)

    events.add("ingress-watch", peer_seen)

    @kopf.on.cleanup(registry=registry, id="ingress-watch-stop")
    async def stop_started_passes(**_: Any) -> None:
        for task in list(started):
            task.cancel()
        for task in list(started):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @kopf.on.resume(*PEER, registry=registry, id="ingress-resume")
    @kopf.on.create(*PEER, registry=registry, id="ingress-create")
    @kopf.on.update(*PEER, registry=registry, id="ingress-update", field="spec")
    async def peer_changed(
        name: str, namespace: str | None, meta: kopf.Meta, logger: kopf.Logger, memo: Any, **_: Any
    ) -> None:
        await pass_unless_current(str(namespace), name, meta, gone=False, logger=logger, memo=memo)

    @kopf.on.delete(*PEER, registry=registry, id="ingress-delete")
    async def peer_deleted(
        name: str, namespace: str | None, logger: kopf.Logger, memo: Any, **_: Any
    ) -> None:
        await ingress_handlers.reconcile_namespace(
            context_of(memo), namespace=str(namespace), locks=locks, logger=logger, handover=handover
        )
        # Forgotten only once the pass that removes its certificate from the edge succeeded.
        known = peers_in.get(str(namespace), set())
        known.discard(name)
        if not known:
            peers_in.pop(str(namespace), None)

    async def make_sweep(memo: kopf.Memo) -> Tick:
        context = context_of(memo)

        def check(namespace: str) -> Callable[[], Awaitable[None]]:
            async def job() -> None:
                await ingress_handlers.reconcile_namespace(
                    context, namespace=namespace, locks=locks, logger=_log, handover=handover
                )
                _log.debug("%s of namespace %s succeeded", SWEEP_KEY, namespace)

            return job

        async def sweep() -> None:
            jobs = [
                (f"{SWEEP_KEY} of namespace {namespace}", check(namespace)) for namespace in sorted(peers_in)
            ]
            await bounded(jobs, limit=SWEEP_CONCURRENCY, logger=_log, context=handler_context)

        return sweep

    register_periodic(registry, key=SWEEP_KEY, interval=interval, make_tick=make_sweep, logger=_log)
