"""FederationCert: issue once, then only report what the Secret holds.

Every path (create, update, resume, the periodic check, a change to the Secret) goes through
`reconcile`, which asks `issuance.assess` what to do. Status is written only when it differs.
"""

from collections.abc import Mapping
from typing import Any

import kopf

from federation_operator.adapters.k8s import client as k8s
from federation_operator.adapters.k8s.resources import FEDERATION_CERTS, SECRETS
from federation_operator.controller.config import OperatorContext
from federation_operator.controller.handlers.events import post_event
from federation_operator.domain import api, certs, condition_types, issuance


async def reconcile(
    context: OperatorContext,
    *,
    body: kopf.Body,
    patch: kopf.Patch,
    logger: kopf.Logger,
    may_issue: bool = True,
) -> None:
    status = await evaluate(context, body=body, logger=logger, may_issue=may_issue)
    if status != dict(body.get("status") or {}):
        patch.status.update(status)
    # The request is answered (or was already): only the handler that may issue takes it away.
    if may_issue and api.ANNOTATION_REISSUE in body.metadata.annotations:
        patch.metadata.annotations[api.ANNOTATION_REISSUE] = None


async def evaluate(
    context: OperatorContext, *, body: Mapping[str, Any], logger: kopf.Logger, may_issue: bool = True
) -> dict[str, Any]:
    """Observe, decide, act if we must, and return the status that describes the result.

    Only the change handlers issue (`may_issue`): the periodic check and Secret events run
    concurrently with them and would otherwise race them to create the same Secret.
    """
    now = context.clock()
    meta = body["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    generation = meta.get("generation")
    old_status: Mapping[str, Any] = body.get("status") or {}
    try:
        spec = issuance.parse_cert_spec(body.get("spec") or {}, name=name, namespace=namespace)
    except issuance.InvalidCertSpec as error:
        assessment = issuance.Assessment(issuance.Action.BLOCKED, "InvalidSpec", str(error))
        return issuance.cert_status(
            old=old_status, spec=None, assessment=assessment, generation=generation, now=now
        )

    reissue = (meta.get("annotations") or {}).get(api.ANNOTATION_REISSUE)
    secret = await context.kube.get(SECRETS, namespace, spec.secret_name)
    observed = issuance.observe_cert_secret(secret, cert_name=name, cert_uid=uid)
    assessment = issuance.assess(spec=spec, status=old_status, observed=observed, reissue_request=reissue)

    if assessment.action is issuance.Action.ISSUE and not may_issue:
        return dict(old_status)
    if assessment.action is issuance.Action.ISSUE:
        assessment = await _issue(
            context, spec=spec, body=body, existing=secret, reissue_request=reissue, logger=logger
        )

    new_status = issuance.cert_status(
        old=old_status, spec=spec, assessment=assessment, generation=generation, now=now
    )
    _announce_transitions(body, old_status, new_status, spec=spec)
    return new_status


async def _issue(
    context: OperatorContext,
    *,
    spec: issuance.CertSpec,
    body: Mapping[str, Any],
    existing: Mapping[str, Any] | None,
    reissue_request: str | None,
    logger: kopf.Logger,
) -> issuance.Assessment:
    meta = body["metadata"]
    issued = certs.issue_certificate(
        subject=spec.subject, validity=spec.validity, algorithm=spec.algorithm, now=context.clock()
    )
    secret = issuance.build_cert_secret(
        spec=spec,
        cert_name=meta["name"],
        cert_uid=meta["uid"],
        namespace=meta["namespace"],
        issued=issued,
        reissue_request=reissue_request,
    )
    try:
        if existing is None:
            await context.kube.create(SECRETS, meta["namespace"], secret)
        else:
            # Re-issue on request over our own Secret: the resourceVersion we judged must still be current.
            secret["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            await context.kube.replace(SECRETS, meta["namespace"], spec.secret_name, secret)
    except k8s.Conflict:
        # Someone (another replica, or our own earlier attempt) wrote it first: judge what is there now.
        raise kopf.TemporaryError("the Secret changed while issuing; re-reading", delay=1) from None
    logger.info(
        "issued certificate %s for %s (%s)", issued.info.thumbprint, meta["name"], spec.algorithm.value
    )
    if spec.algorithm in certs.ALGORITHM_WARNINGS:
        post_event(
            body,
            kind=api.CERT_KIND,
            type_="Warning",
            reason="AlgorithmWarning",
            message=certs.ALGORITHM_WARNINGS[spec.algorithm],
        )
    post_event(
        body,
        kind=api.CERT_KIND,
        type_="Normal",
        reason="Issued",
        message=f"issued {issued.info.thumbprint}, valid until {issued.info.not_after:%Y-%m-%dT%H:%M:%SZ}",
    )
    return issuance.Assessment(issuance.Action.REPORT, "Issued", "certificate issued", issued.info)


def _announce_transitions(
    body: Mapping[str, Any], old: Mapping[str, Any], new: Mapping[str, Any], *, spec: issuance.CertSpec
) -> None:
    """Events only when a condition flips, so that a periodic check is silent."""

    def state(status: Mapping[str, Any], type_: str) -> tuple[str, str]:
        for condition in status.get("conditions") or []:
            if condition.get("type") == type_:
                return str(condition.get("status")), str(condition.get("reason"))
        return "", ""

    expiring = state(new, condition_types.EXPIRING)
    if expiring[0] == "True" and state(old, condition_types.EXPIRING)[0] != "True":
        post_event(
            body,
            kind=api.CERT_KIND,
            type_="Warning",
            reason="Expiring",
            message=f"certificate in {spec.secret_name} is due for rotation",
        )
    ready = state(new, condition_types.READY)
    if ready[0] == "False" and state(old, condition_types.READY) != ready:
        post_event(
            body,
            kind=api.CERT_KIND,
            type_="Warning",
            reason=ready[1],
            message=_message(new, condition_types.READY),
        )


def _message(status: Mapping[str, Any], type_: str) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("type") == type_:
            return str(condition.get("message", ""))
    return ""


async def clean_up(context: OperatorContext, *, body: kopf.Body, logger: kopf.Logger) -> None:
    """Delete our Secret explicitly: owner GC may be slow or absent (a key must not outlive its cert)."""
    meta = body.metadata
    try:
        spec = issuance.parse_cert_spec(body.spec, name=str(meta.name), namespace=str(meta.namespace))
        secret_name = spec.secret_name
    except issuance.InvalidCertSpec:
        secret_name = str((body.get("status") or {}).get("secretName") or f"{meta.name}-tls")
    secret = await context.kube.get(SECRETS, meta.namespace, secret_name)
    if secret is None:
        return
    observed = issuance.observe_cert_secret(secret, cert_name=str(meta.name), cert_uid=str(meta.uid))
    if observed.managed:
        await context.kube.delete(SECRETS, meta.namespace, secret_name, uid=secret["metadata"]["uid"])
        logger.info("deleted Secret %s with the private key", secret_name)


async def secret_changed(context: OperatorContext, *, event: kopf.RawEvent, logger: kopf.Logger) -> None:
    """A client-certificate Secret changed or vanished: re-judge its FederationCert right away."""
    secret = event["object"]
    meta = secret.get("metadata") or {}
    cert_name = (meta.get("labels") or {}).get(api.LABEL_CERT)
    if not cert_name or event["type"] not in ("DELETED", "MODIFIED"):
        return
    cert = await context.kube.get(FEDERATION_CERTS, meta.get("namespace"), cert_name)
    if cert is None or (cert.get("metadata") or {}).get("deletionTimestamp"):
        return
    status = await evaluate(context, body=cert, logger=logger, may_issue=False)
    if status != (cert.get("status") or {}):
        await context.kube.patch(
            FEDERATION_CERTS, meta.get("namespace"), cert_name, {"status": status}, subresource="status"
        )
