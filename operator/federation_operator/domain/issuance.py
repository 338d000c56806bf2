"""What to do about a FederationCert, decided purely from its spec, its status and its Secret.

The rule that matters most: a key is generated only when none was ever issued for this object
(no Secret and no thumbprint in status), or when a user asked for it explicitly with the
`federation.ampora.io/reissue` annotation. Restarts, repeated events, unrelated edits and even a
lost status (the Secret is adopted) never re-issue. A deleted or tampered Secret is reported, not
silently replaced: the remote pins the old certificate, so a quiet re-issue would break the link.

kopf runs a change handler and a timer of one object concurrently, each with the body it was
given, so a decision must not depend on status being fresh. The Secret therefore records what
it holds (the thumbprint it was issued with, and the reissue request it answered): tampering is
judged against the Secret's own record, and one reissue request is answered exactly once.
"""

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from federation_operator.domain import api, certs, condition_types, conditions, durations, objects
from federation_operator.domain.certs import Algorithm, CertificateInfo, SecretBytes

DEFAULT_DURATION = "2160h"
TLS_SECRET_TYPE = "kubernetes.io/tls"


class InvalidCertSpec(ValueError):
    pass


@dataclass(frozen=True)
class CertSpec:
    subject: str
    validity: timedelta
    renew_before: timedelta | None
    algorithm: Algorithm
    secret_name: str


def parse_cert_spec(spec: Mapping[str, Any], *, name: str, namespace: str) -> CertSpec:
    try:
        validity = durations.parse_duration(str(spec.get("duration") or DEFAULT_DURATION))
        renew_text = spec.get("renewBefore")
        renew_before = durations.parse_duration(str(renew_text)) if renew_text else None
    except durations.InvalidDuration as error:
        raise InvalidCertSpec(str(error)) from None
    if renew_before is not None and renew_before >= validity:
        raise InvalidCertSpec("renewBefore must be shorter than duration")
    algorithm_text = str((spec.get("privateKey") or {}).get("algorithm") or Algorithm.ECDSA.value)
    try:
        algorithm = Algorithm(algorithm_text)
    except ValueError:
        raise InvalidCertSpec(
            f"unknown privateKey.algorithm {algorithm_text!r}: use ECDSA, RSA or Ed25519"
        ) from None
    return CertSpec(
        subject=str(spec.get("subject") or f"{namespace}/{name}")[:64],
        validity=validity,
        renew_before=renew_before,
        algorithm=algorithm,
        secret_name=str(spec.get("secretName") or f"{name}-tls"),
    )


@dataclass(frozen=True)
class SecretObservation:
    exists: bool
    managed: bool = False  # labelled for this FederationCert and owned by this incarnation of it
    cert_pem: bytes | None = None
    key_pem: SecretBytes | None = None
    secret_type: str = ""
    recorded_thumbprint: str | None = None
    reissued_for: str | None = None


@dataclass(frozen=True)
class ClientIdentity:
    """What a FederationCert's Secret lets a caller present: the certificate and its key."""

    info: CertificateInfo
    key_pem: SecretBytes = field(repr=False)


def read_client_identity(
    secret: Mapping[str, Any] | None,
    *,
    secret_name: str,
    describe: Callable[[bytes], CertificateInfo] = certs.describe_pem,
) -> ClientIdentity | str:
    """The one reader of a certificate Secret for presenting it (heartbeat, `ping`, `probe`).

    Never raises; the problem names the Secret and key, never a value. `describe` lets the
    heartbeat parse each certificate once, not on every ping."""
    if secret is None:
        return f"Secret {secret_name} not found"
    data = objects.secret_data(secret)
    cert_pem, key_pem = data.get(api.TLS_CERT_KEY), data.get(api.TLS_KEY_KEY)
    if not cert_pem or not key_pem:
        return f"Secret {secret_name} has no certificate and key yet ({api.TLS_CERT_KEY}, {api.TLS_KEY_KEY})"
    try:
        info = describe(cert_pem)
    except ValueError:  # InvalidCertificate, or bytes that are not even ASCII
        return f"Secret {secret_name} key {api.TLS_CERT_KEY} is not a PEM certificate"
    return ClientIdentity(info=info, key_pem=SecretBytes(key_pem))


def observe_cert_secret(
    secret: Mapping[str, Any] | None, *, cert_name: str, cert_uid: str
) -> SecretObservation:
    if secret is None:
        return SecretObservation(exists=False)
    managed = objects.labels_of(secret).get(api.LABEL_CERT) == cert_name and objects.is_owned_by(
        secret, cert_uid
    )
    data = objects.secret_data(secret)
    key = data.get(api.TLS_KEY_KEY)
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    return SecretObservation(
        exists=True,
        managed=managed,
        cert_pem=data.get(api.TLS_CERT_KEY),
        key_pem=SecretBytes(key) if key is not None else None,
        secret_type=str(secret.get("type") or ""),
        recorded_thumbprint=annotations.get(api.ANNOTATION_THUMBPRINT),
        reissued_for=annotations.get(api.ANNOTATION_REISSUED_FOR),
    )


class Action(enum.Enum):
    ISSUE = "issue"  # generate a key and certificate and write the Secret
    REPORT = "report"  # the Secret is good: publish what it holds
    BLOCKED = "blocked"  # something is wrong; say what, change nothing


@dataclass(frozen=True)
class Assessment:
    action: Action
    reason: str
    message: str
    info: CertificateInfo | None = None


def assess(
    *, spec: CertSpec, status: Mapping[str, Any], observed: SecretObservation, reissue_request: str | None
) -> Assessment:
    """Decide; `reissue_request` is the value of the reissue annotation, if the user set one."""
    issued_before = bool(status.get("thumbprint"))
    secret = spec.secret_name
    if not observed.exists:
        if not issued_before:
            return Assessment(Action.ISSUE, "Issuing", "issuing a new key and certificate")
        if reissue_request is not None:
            return Assessment(Action.ISSUE, "Reissuing", "re-issuing on request")
        return Assessment(
            Action.BLOCKED,
            "SecretMissing",
            f"Secret {secret} holding the key was deleted; the certificate pinned by remotes is gone. "
            f"To issue a new key, annotate this FederationCert with {api.ANNOTATION_REISSUE}=true "
            "and hand the new certificate to every remote.",
        )
    if not observed.managed:
        return Assessment(
            Action.BLOCKED,
            "SecretConflict",
            f"Secret {secret} exists and is not managed by this FederationCert; it is left untouched. "
            "Delete it or choose another spec.secretName.",
        )
    if reissue_request is not None and observed.reissued_for != reissue_request:
        return Assessment(Action.ISSUE, "Reissuing", "re-issuing on request")
    problem = _tamper_problem(observed)
    if problem is None:
        assert observed.cert_pem is not None  # checked by _tamper_problem
        return Assessment(
            Action.REPORT, "Issued", "certificate issued", certs.describe_pem(observed.cert_pem)
        )
    return Assessment(
        Action.BLOCKED,
        "SecretTampered",
        f"Secret {secret} {problem}; it is left as it is. To issue a new key, annotate this "
        f"FederationCert with {api.ANNOTATION_REISSUE}=true and hand the new certificate to every remote.",
    )


def _tamper_problem(observed: SecretObservation) -> str | None:
    if observed.secret_type != TLS_SECRET_TYPE:
        return f"has type {observed.secret_type or '(none)'} instead of {TLS_SECRET_TYPE}"
    if not observed.cert_pem or observed.key_pem is None:
        return f"lacks {api.TLS_CERT_KEY} or {api.TLS_KEY_KEY}"
    try:
        info = certs.describe_pem(observed.cert_pem)
    except certs.InvalidCertificate:
        return f"holds no valid certificate in {api.TLS_CERT_KEY}"
    if not certs.key_matches_certificate(key_pem=observed.key_pem, cert_pem=observed.cert_pem):
        return "holds a key that does not belong to its certificate"
    recorded = observed.recorded_thumbprint
    if recorded != info.thumbprint:
        return f"holds certificate {info.thumbprint}, not the issued {recorded or '(unrecorded)'}"
    return None


def build_cert_secret(
    *,
    spec: CertSpec,
    cert_name: str,
    cert_uid: str,
    namespace: str,
    issued: certs.IssuedCertificate,
    reissue_request: str | None = None,
) -> dict[str, Any]:
    labels = api.managed_labels(role=api.ROLE_CLIENT_CERT) | {api.LABEL_CERT: cert_name}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": TLS_SECRET_TYPE,
        "metadata": {
            "name": spec.secret_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {api.ANNOTATION_THUMBPRINT: issued.info.thumbprint}
            | ({api.ANNOTATION_REISSUED_FOR: reissue_request} if reissue_request is not None else {}),
            "ownerReferences": [objects.owner_reference(kind=api.CERT_KIND, name=cert_name, uid=cert_uid)],
        },
        "data": objects.encode_secret_data(
            {api.TLS_CERT_KEY: issued.info.pem.encode("ascii"), api.TLS_KEY_KEY: issued.key_pem.reveal()}
        ),
    }


def cert_status(
    *,
    old: Mapping[str, Any],
    spec: CertSpec | None,
    assessment: Assessment,
    generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The whole status from (old status, what we found, now). Equal inputs give an equal status."""
    result: dict[str, Any] = {key: value for key, value in old.items() if key != "conditions"}
    old_conditions: list[Mapping[str, Any]] = list(old.get("conditions") or [])
    if spec is not None:
        result["secretName"] = spec.secret_name
    info = assessment.info
    if info is not None and spec is not None:
        renewal = certs.renewal_time(
            not_before=info.not_before, not_after=info.not_after, renew_before=spec.renew_before
        )
        result.update(
            certificate=info.pem,
            thumbprint=info.thumbprint,
            spkiSha256=info.spki_sha256,
            notBefore=conditions.rfc3339(info.not_before),
            notAfter=conditions.rfc3339(info.not_after),
            renewalTime=conditions.rfc3339(renewal),
        )
        expired = now >= info.not_after
        ready: conditions.Status = "False" if expired else "True"
        reason, message = (
            ("Expired", f"certificate expired at {result['notAfter']}")
            if expired
            else (
                assessment.reason,
                assessment.message,
            )
        )
        new_conditions = conditions.set_condition(
            old_conditions,
            kind=api.CERT_KIND,
            owner="certs",
            type_=condition_types.READY,
            status=ready,
            reason=reason,
            message=message,
            generation=generation,
            now=now,
        )
        expiring = now >= renewal
        new_conditions = conditions.set_condition(
            new_conditions,
            kind=api.CERT_KIND,
            owner="certs",
            type_=condition_types.EXPIRING,
            status="True" if expiring else "False",
            reason="RenewalDue" if expiring else "Valid",
            message=(
                f"certificate expires at {result['notAfter']}: issue a new FederationCert, hand its PEM to "
                "the remote, point the peer's clientCertificateRef at it, then delete this one"
                if expiring
                else f"renewal due at {result['renewalTime']}"
            ),
            generation=generation,
            now=now,
        )
    else:
        status_value: conditions.Status = "Unknown" if assessment.action is Action.ISSUE else "False"
        new_conditions = conditions.set_condition(
            old_conditions,
            kind=api.CERT_KIND,
            owner="certs",
            type_=condition_types.READY,
            status=status_value,
            reason=assessment.reason,
            message=assessment.message,
            generation=generation,
            now=now,
        )
    ready_now = conditions.get_condition(new_conditions, condition_types.READY) or {}
    new_conditions = conditions.set_or_remove(
        new_conditions,
        kind=api.CERT_KIND,
        owner="certs",
        type_=condition_types.RECONCILING,
        active=ready_now.get("status") == "Unknown",  # issuing
        reason=str(ready_now.get("reason")),
        message=str(ready_now.get("message")),
        generation=generation,
        now=now,
    )
    new_conditions = conditions.set_or_remove(
        new_conditions,
        kind=api.CERT_KIND,
        owner="certs",
        type_=condition_types.STALLED,
        # Expired, SecretMissing, SecretTampered, SecretConflict, InvalidSpec: only the user can fix them.
        active=ready_now.get("status") == "False",
        reason=str(ready_now.get("reason")),
        message=str(ready_now.get("message")),
        generation=generation,
        now=now,
    )
    result["conditions"] = new_conditions
    if generation is not None:
        result["observedGeneration"] = generation
    return result
