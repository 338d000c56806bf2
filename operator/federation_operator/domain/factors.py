"""Failure factors: which part of a link a failed ping or a refused call is blamed on.

One vocabulary, one home: the pinger's verdicts (`probe_classify`), the federation server's red
replies, `status.lastFailure.factor` and the metrics' `factor` label all use `Factor`. The CRDs'
enum of `lastFailure.factor` is tested equal to it (tests/unit/test_factors.py), so adding a factor
is a member here and the CRD's enum (plus its line in the docs' tables, also tested).
Pure: no I/O.
"""

import enum
from typing import Final


class Factor(enum.StrEnum):
    """In the CRD's order. A `StrEnum`: its members are the strings that go on the wire and in status."""

    NETWORK = "Network"  # no connection (DNS, refused, reset, no route)
    TIMEOUT = "Timeout"  # no reply within spec.heartbeat.timeout
    TLS = "TLS"  # the remote's server certificate did not verify, or the handshake failed
    CERTIFICATE = "Certificate"  # our client certificate: missing, unreadable, or not pinned there
    SECRET = "Secret"  # our outbound token: missing, or not the one the remote expects
    UNKNOWN_PEER = "UnknownPeer"  # the remote has no FederationPeer for our certificate
    SUSPENDED = "Suspended"  # the link is suspended (here or there)
    # The certificate and token match more than one active peer on the receiving side: refused
    # rather than attributed to one of them by ordering.
    AMBIGUOUS_PEER = "AmbiguousPeer"
    HTTP = "HTTP"  # any other non-2xx reply


# The factors only the receiving side can know: what the federation server's red replies carry.
REFUSALS: Final = frozenset(
    {Factor.CERTIFICATE, Factor.SECRET, Factor.UNKNOWN_PEER, Factor.SUSPENDED, Factor.AMBIGUOUS_PEER}
)
