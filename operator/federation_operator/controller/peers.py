"""kopf decorators for FederationPeer credentials and the Secrets they live in or come from."""

from typing import Any

import kopf

from federation_operator import api
from federation_operator.handlers import peers as peer_handlers
from federation_operator.runner import OperatorConfig, context_of

PEER = (api.GROUP, api.VERSION, api.PEER_PLURAL)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    locks = peer_handlers.PeerLocks()
    watchers = peer_handlers.SecretWatchers()
    interval = config.peer_check_interval

    @kopf.on.resume(*PEER, registry=registry, id="peer-credentials-resume")
    @kopf.on.create(*PEER, registry=registry, id="peer-credentials-create")
    @kopf.on.update(*PEER, registry=registry, id="peer-credentials-update")
    @kopf.timer(*PEER, registry=registry, id="peer-credentials-check", interval=interval)
    async def peer_changed(
        name: str, namespace: str | None, spec: kopf.Spec, logger: kopf.Logger, memo: Any, **_: Any
    ) -> None:
        watchers.watch(str(namespace), name, peer_handlers.watched_secret_names(name, spec))
        await peer_handlers.reconcile(
            context_of(memo), namespace=str(namespace), name=name, locks=locks, logger=logger
        )

    @kopf.on.delete(*PEER, registry=registry, id="peer-credentials-delete")
    async def peer_deleted(body: kopf.Body, logger: kopf.Logger, memo: Any, **_: Any) -> None:
        await peer_handlers.clean_up(context_of(memo), body=body, locks=locks, logger=logger)
        watchers.forget(str(body.metadata.namespace), str(body.metadata.name))

    @kopf.on.event("v1", "secrets", registry=registry, id="peer-secret-event")
    async def peer_secret_event(
        event: kopf.RawEvent, name: str, namespace: str | None, logger: kopf.Logger, memo: Any, **_: Any
    ) -> None:
        peers = watchers.peers_of(str(namespace), name)
        if peers:
            await peer_handlers.secret_changed(
                context_of(memo), event=event, peers=peers, locks=locks, logger=logger
            )
