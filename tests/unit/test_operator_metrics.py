"""The operator's metrics beside the heartbeat: certificate expiry and kopf's handler failures."""

import logging
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from federation_operator.adapters.metrics import CertificateMetrics, HandlerErrors


def value(registry: CollectorRegistry, metric: str, **labels: str) -> float | None:
    return registry.get_sample_value(metric, labels)


def test_certificate_times_mirror_the_status_and_go_with_the_certificate() -> None:
    registry = CollectorRegistry()
    metrics = CertificateMetrics(registry)
    status = {"notAfter": "2027-02-28T09:10:00Z", "renewalTime": "2027-01-28T09:10:00Z"}
    metrics.observe(namespace="federation", name="eu-client", status=status)
    not_after = datetime(2027, 2, 28, 9, 10, tzinfo=UTC).timestamp()
    renewal = datetime(2027, 1, 28, 9, 10, tzinfo=UTC).timestamp()
    labels = {"namespace": "federation", "name": "eu-client"}
    assert value(registry, "federation_certificate_not_after_timestamp_seconds", **labels) == not_after
    assert value(registry, "federation_certificate_renewal_timestamp_seconds", **labels) == renewal
    # Not issued (yet, or any more): no series, rather than a stale time.
    metrics.observe(namespace="federation", name="eu-client", status={"notAfter": "garbage"})
    assert value(registry, "federation_certificate_not_after_timestamp_seconds", **labels) is None
    metrics.forget(namespace="federation", name="eu-client")  # twice is fine


def test_handler_errors_count_kopf_object_errors_by_kind() -> None:
    registry = CollectorRegistry()
    errors = HandlerErrors(registry)
    logger = logging.getLogger("test.kopf.objects")
    logger.addHandler(errors)
    logger.propagate = False
    try:
        peer = {"k8s_ref": {"kind": "FederationPeer", "name": "us", "namespace": "federation"}}
        logger.error("Handler 'peer-create' failed temporarily: boom", extra=peer)
        logger.error("Handler 'x' failed", extra={"k8s_ref": {"kind": "ConfigMap"}})
        logger.warning("not a failure", extra=peer)
        logger.error("no reference")
    finally:
        logger.removeHandler(errors)
    name = "federation_operator_handler_errors_total"
    assert value(registry, name, kind="FederationPeer") == 1
    assert value(registry, name, kind="FederationCert") == 0  # exposed before the first error
    assert value(registry, name, kind="other") == 2
