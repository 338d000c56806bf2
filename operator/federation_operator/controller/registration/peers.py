"""kopf decorators for FederationPeer credentials and the Secrets they live in or come from.

The periodic check reads a peer only when `readiness.check_due` says time has made something
due (a handoff TTL, a rotation overlap) or its safety-net period has passed; every change runs
the create/update/resume or Secret-event handlers at once.
"""

from datetime import datetime, timedelta
from typing import Any

import kopf

from federation_operator.controller.config import OperatorConfig, context_of, running
from federation_operator.controller.handlers import peers as peer_handlers
from federation_operator.domain import api
from federation_operator.domain.claims import SharedClaims
from federation_operator.domain.credentials import readiness

PEER = (api.GROUP, api.VERSION, api.PEER_PLURAL)
# The periodic check reads every peer at least this many check intervals apart (5 min at 30 s).
FULL_CHECK_EVERY = 10


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    locks = peer_handlers.PeerLocks()
    watchers = peer_handlers.SecretWatchers()
    claims = SharedClaims()
    interval = config.peer_check_interval
    full_every = timedelta(seconds=interval * FULL_CHECK_EVERY)
    # When each peer was last read in full (operator clock), for `readiness.check_due`.
    last_full: dict[tuple[str, str], datetime] = {}

    async def read_in_full(
        name: str, namespace: str, spec: kopf.Spec, logger: kopf.Logger, memo: Any
    ) -> None:
        context = context_of(memo)
        watchers.watch(namespace, name, peer_handlers.watched_secret_names(name, spec))
        started = context.clock()
        await peer_handlers.reconcile(
            context, namespace=namespace, name=name, locks=locks, claims=claims, logger=logger
        )
        last_full[(namespace, name)] = started

    @kopf.on.resume(*PEER, registry=registry, id="peer-credentials-resume")
    @kopf.on.create(*PEER, registry=registry, id="peer-credentials-create")
    @kopf.on.update(*PEER, registry=registry, id="peer-credentials-update")
    async def peer_changed(
        name: str, namespace: str | None, spec: kopf.Spec, logger: kopf.Logger, memo: Any, **_: Any
    ) -> None:
        await read_in_full(name, str(namespace), spec, logger, memo)

    @kopf.timer(*PEER, registry=registry, id="peer-credentials-check", interval=interval, when=running)
    async def peer_check(
        name: str,
        namespace: str | None,
        spec: kopf.Spec,
        status: kopf.Status,
        meta: kopf.Meta,
        logger: kopf.Logger,
        memo: Any,
        **_: Any,
    ) -> None:
        due = readiness.check_due(
            status,
            generation=meta.get("generation"),
            now=context_of(memo).clock(),
            last_full=last_full.get((str(namespace), name)),
            full_every=full_every,
        )
        if due:
            await read_in_full(name, str(namespace), spec, logger, memo)

    @kopf.on.delete(*PEER, registry=registry, id="peer-credentials-delete")
    async def peer_deleted(body: kopf.Body, logger: kopf.Logger, memo: Any, **_: Any) -> None:
        await peer_handlers.clean_up(context_of(memo), body=body, locks=locks, claims=claims, logger=logger)
        watchers.forget(str(body.metadata.namespace), str(body.metadata.name))
        last_full.pop((str(body.metadata.namespace), str(body.metadata.name)), None)

    @kopf.on.event("v1", "secrets", registry=registry, id="peer-secret-event")
    async def peer_secret_event(
        event: kopf.RawEvent, name: str, namespace: str | None, logger: kopf.Logger, memo: Any, **_: Any
    ) -> None:
        peers = watchers.peers_of(str(namespace), name)
        # A Secret labelled as some peer's inbound hashes (a forgery, or a copy) re-judges that
        # peer, which reports it while it exists and clears the report once it is gone.
        claimed = peer_handlers.claimed_peer(event.get("object") or {})
        if claimed is not None and claimed not in peers:
            peers = [*peers, claimed]
        if peers:
            await peer_handlers.secret_changed(
                context_of(memo), event=event, peers=peers, locks=locks, claims=claims, logger=logger
            )
