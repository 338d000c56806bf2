"""kopf decorators for the heartbeat: one scheduler for all peers, fed by the peers' watch events.

No kopf daemon or timer per peer (see `controller/scheduler.py` for why): the scheduler starts
with the operator and stops in one step at cleanup. Every watch event of a FederationPeer (the
initial listing, creation, any change of spec or status; handed on by `peer_events`) gives the
peer's latest body to its heartbeat, which the scheduler runs every interval; a deletion (the
`deletionTimestamp`, or the object gone) removes it, which cancels a ping in flight. Status changes
matter as well as spec changes: the heartbeat writes its part of the status on condition that the
status is still the one it last saw (`handlers/heartbeat.py`).
"""

from typing import Any

import kopf

from federation_operator.adapters.cpus import usable_cpus
from federation_operator.adapters.k8s.ping_credentials import CredentialCache
from federation_operator.adapters.metrics import HeartbeatMetrics, serve_metrics
from federation_operator.controller.config import OperatorConfig, context_of
from federation_operator.controller.handlers import heartbeat
from federation_operator.controller.handlers.pass_gate import PassGate
from federation_operator.controller.handlers.saturation import LoopLag, SaturationWatch
from federation_operator.controller.handlers.secret_cache import SecretCache
from federation_operator.controller.registration.peer_events import PeerEvents
from federation_operator.controller.scheduler import Scheduler, SchedulerHooks, default_workers
from federation_operator.controller.write_queue import WriteHooks, WriteQueue

MEMO_KEY = "heartbeat"
SCHEDULER_KEY = "heartbeat-scheduler"
METRICS_KEY = "metrics-server"
WRITES_KEY = "heartbeat-writes"
# The heartbeat's status writers (controller/write_queue.py): writes in flight at once at most.
STATUS_WRITERS = 8
# The heartbeat's own API threads: the status writers' and as many again for the cycles' reads
# (credentials not in the watch's cache), which so never wait behind a write. Fewer than the
# reconcilers' pool: the heartbeat needs to be timely, not to have the most calls in flight.
HEARTBEAT_API_THREADS = 2 * STATUS_WRITERS

PeerKey = heartbeat.PeerKey


def register(
    registry: kopf.OperatorRegistry,
    config: OperatorConfig,
    *,
    secrets: SecretCache,
    gate: PassGate,
    events: PeerEvents,
) -> None:
    @kopf.on.startup(registry=registry, id="heartbeat-startup")
    async def heartbeat_startup(memo: kopf.Memo, **_: Any) -> None:
        context = context_of(memo)
        metrics = HeartbeatMetrics()
        workers = config.heartbeat_workers or default_workers(usable_cpus())
        load = SaturationWatch(config=config, kube=context.kube, metrics=metrics, workers=workers)
        lane = context.kube.lane("heartbeat", workers=HEARTBEAT_API_THREADS)
        loop_lag = LoopLag()
        loop_lag.start()
        writes: WriteQueue[PeerKey] = WriteQueue(
            writers=STATUS_WRITERS,
            hooks=WriteHooks(on_pending=metrics.write_queue.set),
        )
        memo[WRITES_KEY] = writes
        shared = heartbeat.Shared(
            kube=lane,
            writes=writes,
            metrics=metrics,
            cache=CredentialCache(lane),
            load=load,
            loop_lag=loop_lag,
            watched=secrets,
            credentials_queued=gate.waiting,
        )
        memo[MEMO_KEY] = shared
        scheduler: Scheduler[PeerKey] = Scheduler(
            workers=workers,
            hooks=SchedulerHooks(on_start=load.cycle_started, on_pending=metrics.set_pending),
        )
        metrics.workers.set(workers)
        memo[SCHEDULER_KEY] = scheduler
        if config.metrics_port is not None:
            memo[METRICS_KEY] = await serve_metrics(
                shared.metrics.registry, host=config.metrics_host, port=config.metrics_port
            )

    @kopf.on.cleanup(registry=registry, id="heartbeat-cleanup")
    async def heartbeat_cleanup(memo: kopf.Memo, **_: Any) -> None:
        scheduler: Scheduler[PeerKey] | None = memo.get(SCHEDULER_KEY)
        if scheduler is not None:
            await scheduler.stop()
        writes: WriteQueue[PeerKey] | None = memo.get(WRITES_KEY)
        if writes is not None:
            await writes.stop()
        server = memo.get(METRICS_KEY)
        if server is not None:
            await server.cleanup()
        shared: heartbeat.Shared | None = memo.get(MEMO_KEY)
        if shared is not None:
            await shared.loop_lag.stop()
            shared.kube.close()

    async def heartbeat_peers(event: kopf.RawEvent, logger: kopf.Logger, memo: kopf.Memo, **_: Any) -> None:
        scheduler: Scheduler[PeerKey] = memo[SCHEDULER_KEY]
        if not scheduler.started:
            # Started from the first event, not at startup: their tasks inherit the context of kopf's
            # processing, where `kopf.event` finds kopf's event queue (not set for startup handlers).
            scheduler.start()
            memo[WRITES_KEY].start()
        body = event["object"]
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if event["type"] == "DELETED" or meta.get("deletionTimestamp"):
            gone = scheduler.remove(key)
            if isinstance(gone, heartbeat.PeerHeartbeat):
                gone.forget()
            return
        beat = scheduler.beat_of(key)
        if isinstance(beat, heartbeat.PeerHeartbeat):
            beat.observe(body)
            if beat.credentials_arrived():
                scheduler.expedite(key)
            return
        scheduler.put(
            key, heartbeat.PeerHeartbeat(context_of(memo), body=body, shared=memo[MEMO_KEY], logger=logger)
        )

    events.add("heartbeat-peers", heartbeat_peers)
