"""kopf decorators that feed the operator's metrics beyond the heartbeat's own.

Certificate expiry is mirrored from every FederationCert event (the status the operator wrote,
so a restarted operator has the gauges again after its first listing); handler failures are
counted from kopf's per-object log; credential passes by the peers' handlers (`CREDENTIALS_KEY`).
All use the registry the heartbeat serves on /metrics.
"""

import logging
from typing import Any

import kopf

from federation_operator.adapters.metrics import (
    ApiGateMetrics,
    CertificateMetrics,
    CredentialMetrics,
    HandlerErrors,
)
from federation_operator.controller.config import API_GATE_KEY, OperatorConfig
from federation_operator.controller.handlers.heartbeat import Shared
from federation_operator.controller.registration.heartbeat import MEMO_KEY as HEARTBEAT_KEY
from federation_operator.domain import api

CERT = (api.GROUP, api.VERSION, api.CERT_PLURAL)
CERTS_KEY = "certificate-metrics"
CREDENTIALS_KEY = "credential-metrics"
ERRORS_KEY = "handler-errors"
KOPF_OBJECT_LOGGER = "kopf.objects"


def _certificates(memo: kopf.Memo) -> CertificateMetrics:
    found = memo.get(CERTS_KEY)
    if found is None:
        shared: Shared = memo[HEARTBEAT_KEY]
        found = memo[CERTS_KEY] = CertificateMetrics(shared.metrics.registry)
    assert isinstance(found, CertificateMetrics)
    return found


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    # Registered after the heartbeat's startup, which creates the registry.
    @kopf.on.startup(registry=registry, id="metrics-startup")
    async def metrics_startup(memo: kopf.Memo, **_: Any) -> None:
        shared: Shared = memo[HEARTBEAT_KEY]
        errors = memo[ERRORS_KEY] = HandlerErrors(shared.metrics.registry)
        logging.getLogger(KOPF_OBJECT_LOGGER).addHandler(errors)
        _certificates(memo)
        memo[CREDENTIALS_KEY] = CredentialMetrics(shared.metrics.registry)
        ApiGateMetrics(shared.metrics.registry, memo[API_GATE_KEY])

    @kopf.on.cleanup(registry=registry, id="metrics-cleanup")
    async def metrics_cleanup(memo: kopf.Memo, **_: Any) -> None:
        errors = memo.get(ERRORS_KEY)
        if errors is not None:
            logging.getLogger(KOPF_OBJECT_LOGGER).removeHandler(errors)

    @kopf.on.event(*CERT, registry=registry, id="cert-metrics")
    async def cert_metrics(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        obj = event["object"]
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        if event["type"] == "DELETED":
            _certificates(memo).forget(namespace=namespace, name=name)
        else:
            _certificates(memo).observe(namespace=namespace, name=name, status=obj.get("status") or {})
