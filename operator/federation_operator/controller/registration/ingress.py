"""kopf decorators for the edge: any change to a namespace's peers re-runs that namespace's edge.

The trust bundle is the union of a namespace's peers, so each trigger names only the namespace;
`handlers.ingress.reconcile_namespace` re-reads all its peers. Only spec changes count (the
pins and `suspend` live there): status writes, ours included, never start a pass.
"""

from typing import Any

import kopf

from federation_operator.controller.config import OperatorConfig, context_of, running
from federation_operator.controller.handlers import ingress as ingress_handlers
from federation_operator.domain import api

PEER = (api.GROUP, api.VERSION, api.PEER_PLURAL)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    if config.ingress is None:
        # No edge configured: no handler, no finalizer, nothing written.
        return
    locks = ingress_handlers.NamespaceLocks()
    interval = config.ingress_check_interval

    @kopf.on.resume(*PEER, registry=registry, id="ingress-resume")
    @kopf.on.create(*PEER, registry=registry, id="ingress-create")
    @kopf.on.update(*PEER, registry=registry, id="ingress-update", field="spec")
    @kopf.on.delete(*PEER, registry=registry, id="ingress-delete")
    @kopf.timer(*PEER, registry=registry, id="ingress-check", interval=interval, when=running)
    async def peer_changed(namespace: str | None, logger: kopf.Logger, memo: Any, **_: Any) -> None:
        # FederationPeer is namespaced: kopf's `None` (cluster-scoped objects) never comes here.
        await ingress_handlers.reconcile_namespace(
            context_of(memo), namespace=str(namespace), locks=locks, logger=logger
        )
