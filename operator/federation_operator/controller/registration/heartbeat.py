"""kopf decorators for the heartbeat: one daemon per FederationPeer.

A daemon rather than a timer, and suspension handled inside it: see `handlers/heartbeat.py`. The
metrics and the credential cache are made once per operator at startup and reach every daemon
through kopf's memo.
"""

from typing import Any

import kopf

from federation_operator.adapters.k8s.ping_credentials import CredentialCache
from federation_operator.adapters.metrics import HeartbeatMetrics, serve_metrics
from federation_operator.controller.config import OperatorConfig, context_of, running
from federation_operator.controller.handlers import heartbeat
from federation_operator.domain import api

PEER = (api.GROUP, api.VERSION, api.PEER_PLURAL)
MEMO_KEY = "heartbeat"
METRICS_KEY = "metrics-server"
# After `stopped` is set, how long kopf waits before cancelling the daemon, then before giving up
# on it. The loop races every ping against `stopped`, so it normally exits at once.
CANCELLATION_BACKOFF = 1.0
CANCELLATION_TIMEOUT = 5.0


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.startup(registry=registry, id="heartbeat-startup")
    async def heartbeat_startup(memo: kopf.Memo, **_: Any) -> None:
        context = context_of(memo)
        shared = heartbeat.Shared(metrics=HeartbeatMetrics(), cache=CredentialCache(context.kube))
        memo[MEMO_KEY] = shared
        if config.metrics_port is not None:
            memo[METRICS_KEY] = await serve_metrics(
                shared.metrics.registry, host=config.metrics_host, port=config.metrics_port
            )

    @kopf.on.cleanup(registry=registry, id="heartbeat-cleanup")
    async def heartbeat_cleanup(memo: kopf.Memo, **_: Any) -> None:
        server = memo.get(METRICS_KEY)
        if server is not None:
            await server.cleanup()

    @kopf.daemon(
        *PEER,
        registry=registry,
        id="heartbeat",
        cancellation_backoff=CANCELLATION_BACKOFF,
        cancellation_timeout=CANCELLATION_TIMEOUT,
        when=running,
    )
    async def heartbeat_daemon(
        body: kopf.Body, stopped: kopf.DaemonStopped, logger: kopf.Logger, memo: kopf.Memo, **_: Any
    ) -> None:
        beat = heartbeat.Heartbeat(context_of(memo), body=body, shared=memo[MEMO_KEY], logger=logger)
        await beat.run(stopped)
