"""kopf decorators only: which events reach which handler. The work is in `handlers/`.

One module per concern; `register` is called once per operator instance (see runner.py), so
every decorator names the registry explicitly and has an explicit `id`.
"""

import asyncio
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import kopf

from federation_operator.controller.config import OperatorConfig
from federation_operator.controller.handlers.pass_gate import PassGate
from federation_operator.controller.handlers.periodic import Periodic
from federation_operator.controller.handlers.pins_handover import PinsHandover
from federation_operator.controller.handlers.secret_cache import SecretCache
from federation_operator.controller.registration import certs, heartbeat, ingress, memory, metrics, peers
from federation_operator.controller.registration.peer_events import PeerEvents
from federation_operator.controller.scheduler import Scheduler
from federation_operator.controller.write_queue import WriteQueue


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    # The credential Secrets from the operator's watch: the credentials passes keep it, the
    # heartbeat reads its outbound tokens from it.
    secrets = SecretCache()
    # The credentials passes' gate: the passes wait there, the heartbeat asks who waits.
    gate = PassGate(config.reconcile_concurrency)
    # The edge's `PinsUsable` verdicts for peers whose credentials pass is still to write: it
    # carries them in its own status write (one write per new peer instead of two).
    handover = (
        None
        if config.ingress is None
        else PinsHandover(patience=timedelta(seconds=config.ingress_check_interval))
    )
    certs.register(registry, config)
    # Every FederationPeer event goes to one kopf handler, which hands it to these in this order.
    events = PeerEvents()
    peers.register(registry, config, secrets=secrets, gate=gate, handover=handover, events=events)
    heartbeat.register(registry, config, secrets=secrets, gate=gate, events=events)
    metrics.register(registry, config)
    ingress.register(registry, config, handover=handover, events=events)
    events.register(registry)
    memory.register(registry, config)


async def wind_down(memo: Mapping[str, Any]) -> None:
    """Stop the heartbeat scheduler, its status writes and every periodic sweep in the memo, all at once.

    Called as soon as the operator is told to stop, before kopf has stopped its watchers and
    workers: nothing they would still ping or write is needed (the next start judges every peer
    afresh). Their cleanup handlers run later as before and find them stopped.
    """
    stops = [
        value.stop() for value in list(memo.values()) if isinstance(value, Periodic | Scheduler | WriteQueue)
    ]
    await asyncio.gather(*stops)
