"""Which factor made a ping fail, in one human line: the classification, kept pure.

Why separate from `probe.py`: the rules (an alert from the remote about our certificate is our
`Certificate` factor, a failed verification of *their* server certificate is `TLS`, the remote's
red JSON wins over its HTTP status) are the part people argue about and the part that must not
regress, so they are tested without sockets. `probe.py` turns exceptions and responses into the
plain descriptions below; this module decides.

Messages are stable for a given cause (no ports, timings or request ids), because a message that
changed on every ping would force a status write on every ping.
"""

import json
from dataclasses import dataclass
from typing import Final, Literal

from federation_operator.reachability import Failure

NETWORK: Final = "Network"
TIMEOUT: Final = "Timeout"
TLS: Final = "TLS"
CERTIFICATE: Final = "Certificate"
SECRET: Final = "Secret"
UNKNOWN_PEER: Final = "UnknownPeer"
SUSPENDED: Final = "Suspended"
HTTP: Final = "HTTP"
FACTORS: Final = frozenset({NETWORK, TIMEOUT, TLS, CERTIFICATE, SECRET, UNKNOWN_PEER, SUSPENDED, HTTP})

MESSAGE_LIMIT: Final = 300

# OpenSSL alert reasons the *remote* sends when it does not like the certificate we presented.
# (Names as `ssl.SSLError.reason` shows them; TLS 1.3 adds `certificate required`.)
_PEER_CERT_ALERTS: Final = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the remote requires a client certificate and got none",
    "TLSV1_ALERT_UNKNOWN_CA": "the remote does not pin our client certificate (alert unknown ca)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the remote rejected our client certificate (alert bad certificate)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": (
        "the remote rejected our client certificate (alert certificate unknown)"
    ),
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the remote says our client certificate expired",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "the remote does not support our client certificate type",
    "TLSV1_ALERT_ACCESS_DENIED": "the remote denied access during the handshake (alert access denied)",
}

Stage = Literal[
    "connect",
    "read",
    "write",
    "timeout",
    "protocol",
    "too-large",
    "redirect",
    "refused-after-handshake",
    "other",
]


@dataclass(frozen=True)
class TransportProblem:
    """A ping that did not produce an HTTP response, described without any exception object."""

    stage: Stage
    ssl_reason: str | None = None  # ssl.SSLError.reason, e.g. TLSV1_ALERT_UNKNOWN_CA
    verify_message: str | None = None  # ssl.SSLCertVerificationError.verify_message
    errno_name: str | None = None  # e.g. ECONNREFUSED
    detail: str = ""  # a short description of the error type, never a request or a header


def _line(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= MESSAGE_LIMIT else one[: MESSAGE_LIMIT - 1] + "…"


def classify_transport(problem: TransportProblem, *, timeout_seconds: float) -> Failure:
    if problem.stage == "timeout":
        return Failure(TIMEOUT, f"no complete reply within {timeout_seconds:g}s")
    if problem.verify_message is not None:
        return Failure(
            TLS, _line(f"the remote's server certificate failed verification: {problem.verify_message}")
        )
    if problem.ssl_reason is not None:
        known = _PEER_CERT_ALERTS.get(problem.ssl_reason)
        if known is not None:
            return Failure(CERTIFICATE, known)
        return Failure(TLS, _line(f"TLS handshake failed: {problem.ssl_reason.lower().replace('_', ' ')}"))
    if problem.stage == "refused-after-handshake":
        return Failure(
            CERTIFICATE,
            "the remote closed the connection right after the TLS handshake: "
            "it does not accept our client certificate (not pinned there?)",
        )
    if problem.stage == "redirect":
        return Failure(
            HTTP, _line(f"the remote redirected the ping ({problem.detail}); redirects are not followed")
        )
    if problem.stage == "too-large":
        return Failure(HTTP, _line(f"the remote's reply exceeded {problem.detail}"))
    if problem.stage == "protocol":
        return Failure(
            HTTP, _line(f"the remote broke the HTTP exchange: {problem.detail or 'protocol error'}")
        )
    if problem.errno_name == "ECONNREFUSED":
        return Failure(NETWORK, "connection refused")
    if problem.errno_name in {"ECONNRESET", "EPIPE"}:
        return Failure(NETWORK, "connection reset by the remote")
    if problem.errno_name in {"EHOSTUNREACH", "ENETUNREACH"}:
        return Failure(NETWORK, "no route to the remote host")
    if problem.stage == "read" and problem.detail == "closed":
        # With TLS 1.3 a server that refuses our certificate after the handshake often just closes.
        return Failure(NETWORK, "the remote closed the connection without a reply")
    detail = problem.detail or problem.errno_name or "error"
    return Failure(NETWORK, _line(f"{problem.stage} failed: {detail}"))


def classify_reply(*, status: int, factor_header: str | None, body: bytes) -> Failure | None:
    """None for a green reply (`200` with `"ok": true`), else the factor and one line.

    The remote's red JSON (`{"ok": false, "factor", "message"}`) is believed when its factor is
    one of ours; the `X-Federation-Factor` header stands in when a proxy replaced the body.
    """
    payload: object = None
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if status == 200:
        if isinstance(payload, dict) and payload.get("ok") is True:
            return None
        return Failure(
            HTTP, "the remote answered 200 without a ping reply (is the endpoint a federation server?)"
        )
    factor, message = None, None
    if isinstance(payload, dict):
        raw_factor, raw_message = payload.get("factor"), payload.get("message")
        if isinstance(raw_factor, str) and raw_factor in FACTORS:
            factor = raw_factor
        if isinstance(raw_message, str) and raw_message.strip():
            message = raw_message
    if factor is None and factor_header in FACTORS:
        factor = factor_header
    if factor is None:
        return Failure(
            HTTP, _line(f"the remote answered HTTP {status}" + (f": {message}" if message else ""))
        )
    return Failure(
        factor, _line(f"remote says: {message}" if message else f"remote refused ({factor}, HTTP {status})")
    )
