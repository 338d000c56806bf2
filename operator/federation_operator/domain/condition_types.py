"""Every condition type the operator writes, in one table: its kind, its reasons, the one writer
that owns it, and what it means to kstatus (Flux, Argo CD, `kubectl wait`; docs/gitops.md).

`conditions.set_condition` refuses a type, reason or writer that is not here, so a new condition
or reason is one row (or one member) here, and the tests of whichever handler writes it fail
until it is. docs/api.md shows this table (tests/unit/test_condition_types.py holds them equal).

A reason set names every reason the writer can put on the condition, whatever its status. A
writer owns its rows: a merge of a fresh status takes the writer's own types from what it
computed and the others' from what it read (`conditions.merge_owned`). Only the heartbeat also
removes one type it does not own: the credentials handler's `Reconciling`, once the link is
judged under the current spec.
Pure: no I/O.
"""

from dataclasses import dataclass
from typing import Final, Literal

from federation_operator.domain import api
from federation_operator.domain.factors import Factor

Owner = Literal["certs", "credentials", "heartbeat", "ingress"]

READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
EXPIRING: Final = "Expiring"
CREDENTIALS_READY: Final = "CredentialsReady"
REACHABLE: Final = "Reachable"
PINS_USABLE: Final = "PinsUsable"


@dataclass(frozen=True)
class ConditionType:
    kind: str
    type: str
    owner: Owner
    reasons: frozenset[str]
    meaning: str  # to kstatus and to a reader of `kubectl get -o yaml`


class UnknownCondition(ValueError):
    """A writer wrote a condition type or reason that is not in the table: a bug, never input."""


_CERT_BLOCKED: Final = frozenset(
    {"Expired", "SecretMissing", "SecretConflict", "SecretTampered", "InvalidSpec"}
)
_CERT_ISSUING: Final = frozenset({"Issuing", "Reissuing"})
# Every reason CredentialsReady=False can carry (credentials.planning's problems, and a spec that
# does not parse); the heartbeat's Ready and the credentials handler's Stalled repeat them.
_CREDENTIAL_PROBLEMS: Final = frozenset(
    {
        "InvalidSpec",
        "SecretNotFound",
        "SecretKeyMissing",
        "SecretMalformed",
        "SecretConflict",
        "SecretMissing",
        "ForeignInboundSecret",
        "AmbiguousPeer",
    }
)
_REACHABLE_REASONS: Final = frozenset(
    {
        "Reachable",
        "Slow",
        "InsecureSkipVerify",
        "NoPingYet",
        "Suspended",
        *(factor.value for factor in Factor),
    }
)

TABLE: Final[tuple[ConditionType, ...]] = (
    ConditionType(
        api.CERT_KIND,
        READY,
        "certs",
        _CERT_ISSUING | _CERT_BLOCKED | {"Issued"},
        "True: the certificate is issued and valid (kstatus Current for observedGeneration); "
        "Unknown while issuing; False when only the user can fix it",
    ),
    ConditionType(
        api.CERT_KIND,
        EXPIRING,
        "certs",
        frozenset({"RenewalDue", "Valid"}),
        "True once now passes renewalTime: rotate (not read by kstatus)",
    ),
    ConditionType(
        api.CERT_KIND,
        RECONCILING,
        "certs",
        _CERT_ISSUING,
        "abnormal-true, removed when done: kstatus InProgress while issuing",
    ),
    ConditionType(
        api.CERT_KIND,
        STALLED,
        "certs",
        _CERT_BLOCKED,
        "abnormal-true, removed when done: kstatus Failed while Ready=False",
    ),
    ConditionType(
        api.PEER_KIND,
        CREDENTIALS_READY,
        "credentials",
        _CREDENTIAL_PROBLEMS | {"CredentialsReady", "InboundSecretRestored"},
        "True: both tokens are in place and the inbound hashes published (not read by kstatus); "
        "reason InboundSecretRestored while the last inbound rotation is older than a write-back "
        "of `<peer>-inbound` from status",
    ),
    ConditionType(
        api.PEER_KIND,
        RECONCILING,
        "credentials",
        frozenset({"WaitingForPing"}),
        "abnormal-true: kstatus InProgress from a spec change until the heartbeat judged the link "
        "(the heartbeat removes it)",
    ),
    ConditionType(
        api.PEER_KIND,
        STALLED,
        "credentials",
        _CREDENTIAL_PROBLEMS,
        "abnormal-true, removed when done: kstatus Failed while CredentialsReady=False",
    ),
    ConditionType(
        api.PEER_KIND,
        REACHABLE,
        "heartbeat",
        _REACHABLE_REASONS,
        "the reachability state: True when Reachable or Slow, False with the failed factor as "
        "reason, Unknown before a ping or when suspended (not read by kstatus)",
    ),
    ConditionType(
        api.PEER_KIND,
        READY,
        "heartbeat",
        _REACHABLE_REASONS | _CREDENTIAL_PROBLEMS | {"CredentialsNotReady"},
        "Reachable, unless the credentials are not ready or the peer is suspended (False); "
        "kstatus Current when True for observedGeneration",
    ),
    ConditionType(
        api.PEER_KIND,
        PINS_USABLE,
        "ingress",
        frozenset(
            {
                "Enforced",
                "Suspended",
                "ProviderNotInstalled",
                "InvalidPin",
                "CertificateExpired",
                "PemRequired",
            }
        ),
        "True: every pin is enforced at the edge; False names the pin the edge cannot enforce "
        "(Argo CD Degraded)",
    ),
)

_BY_KEY: Final = {(row.kind, row.type): row for row in TABLE}


def reasons(kind: str, type_: str) -> frozenset[str]:
    """The reasons `type_` on `kind` may carry (empty when the table has no such row)."""
    row = _BY_KEY.get((kind, type_))
    return row.reasons if row is not None else frozenset()


def owned_by(kind: str, owner: Owner) -> frozenset[str]:
    """The condition types `owner` writes on `kind`."""
    return frozenset(row.type for row in TABLE if row.kind == kind and row.owner == owner)


def check(*, kind: str, owner: Owner, type_: str, reason: str) -> None:
    """Raise UnknownCondition unless `owner` owns `type_` on `kind` and `reason` is one of its reasons."""
    row = _BY_KEY.get((kind, type_))
    if row is None:
        raise UnknownCondition(f"{kind} has no condition type {type_!r} in condition_types.TABLE")
    if row.owner != owner:
        raise UnknownCondition(f"{kind} condition {type_} is written by {row.owner}, not {owner}")
    if reason not in row.reasons:
        raise UnknownCondition(f"{kind} condition {type_} has no reason {reason!r} in condition_types.TABLE")
