"""kopf decorators for FederationCert and its Secret."""

from typing import Any

import kopf

from federation_operator.controller.config import OperatorConfig, context_of, running
from federation_operator.controller.handlers import certs as cert_handlers
from federation_operator.domain import api

CERT = (api.GROUP, api.VERSION, api.CERT_PLURAL)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.resume(*CERT, registry=registry, id="cert-resume")
    @kopf.on.create(*CERT, registry=registry, id="cert-create")
    @kopf.on.update(*CERT, registry=registry, id="cert-update")
    async def cert_changed(
        body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: Any, **_: Any
    ) -> None:
        await cert_handlers.reconcile(context_of(memo), body=body, patch=patch, logger=logger)

    @kopf.timer(*CERT, registry=registry, id="cert-check", interval=config.cert_check_interval, when=running)
    async def cert_check(
        body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, memo: Any, **_: Any
    ) -> None:
        await cert_handlers.reconcile(
            context_of(memo), body=body, patch=patch, logger=logger, may_issue=False
        )

    @kopf.on.delete(*CERT, registry=registry, id="cert-delete")
    async def cert_deleted(body: kopf.Body, logger: kopf.Logger, memo: Any, **_: Any) -> None:
        await cert_handlers.clean_up(context_of(memo), body=body, logger=logger)

    @kopf.on.event(
        "v1",
        "secrets",
        registry=registry,
        id="cert-secret-event",
        labels={api.LABEL_ROLE: api.ROLE_CLIENT_CERT},
    )
    async def cert_secret_event(event: kopf.RawEvent, logger: kopf.Logger, memo: Any, **_: Any) -> None:
        await cert_handlers.secret_changed(context_of(memo), event=event, logger=logger)
