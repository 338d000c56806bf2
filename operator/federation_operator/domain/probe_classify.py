"""Which factor made a ping fail, in one human line: the classification, kept pure.

Why separate from `probe.py`: the rules (any 2xx is green whatever its body; an alert from the
remote about our certificate is our `Certificate` factor, a failed verification of *their* server
certificate is `TLS`, the remote's red JSON wins over its HTTP status) are the part people argue
about and the part that must not regress, so they are tested without sockets. `probe.py` turns
exceptions and responses into the plain descriptions below; this module decides. It also reads
the optional fields of a green reply (`read_ping_reply`): a remote's body is untrusted input, so
its reader lives next to the other rules about what a remote sent.

Our own messages are stable for a given cause (no ports, timings or request ids), because a
message that changed on every ping would force a status write on every ping. A remote's error
text is quoted only when it sent no factor we know, bounded and stripped of control characters.
"""

import json
from dataclasses import dataclass
from typing import Final, Literal, TypedDict

from federation_operator.domain.factors import Factor
from federation_operator.domain.reachability import Failure

MESSAGE_LIMIT: Final = 300
# How much of a non-JSON error body a failure message quotes, and the longest reply field we keep.
EXCERPT_LIMIT: Final = 120
FIELD_LIMIT: Final = 253
UNEXPECTED_LIMIT: Final = 200

# OpenSSL alert reasons the *remote* sends when it does not like the certificate we presented.
# (Names as `ssl.SSLError.reason` shows them; TLS 1.3 adds `certificate required`.)
_PEER_CERT_ALERTS: Final = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": (
        "the remote requires a client certificate and we sent none (TLS alert certificate required): "
        "does spec.clientCertificateRef name a Ready FederationCert?"
    ),
    "TLSV1_ALERT_UNKNOWN_CA": (
        "the remote does not pin our client certificate (TLS alert unknown ca): "
        "the remote admin must pin our FederationCert's certificate"
    ),
    "SSLV3_ALERT_BAD_CERTIFICATE": (
        "the remote rejected our client certificate (TLS alert bad certificate): "
        "the remote admin must pin our FederationCert's certificate"
    ),
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": (
        "the remote rejected our client certificate (TLS alert certificate unknown): "
        "the remote admin must pin our FederationCert's certificate"
    ),
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": (
        "the remote says our client certificate expired (TLS alert certificate expired): "
        "issue a new FederationCert and hand its certificate to the remote"
    ),
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": (
        "the remote does not support our client certificate's key type (TLS alert unsupported "
        "certificate): use an ECDSA or RSA FederationCert"
    ),
    "TLSV1_ALERT_ACCESS_DENIED": (
        "the remote denied access during the TLS handshake (TLS alert access denied): "
        "ask the remote admin what their edge refuses"
    ),
}


class RemoteView(TypedDict, total=False):
    """`status.remote`: what a remote's green reply said about this link (CRD shape)."""

    site: str
    peerName: str
    peerNamespace: str
    time: str
    reachability: str
    latencyMilliseconds: int
    lastSuccessTime: str
    inboundFingerprint: str
    outboundFingerprint: str


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


def _printable(text: str) -> str:
    """Control characters (terminal escapes, NULs) replaced: a remote's text reaches `kubectl`."""
    return "".join(char if char.isprintable() or char.isspace() else "?" for char in text)


def _line(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= MESSAGE_LIMIT else one[: MESSAGE_LIMIT - 1] + "…"


def unexpected(error: BaseException) -> str:
    """An unexpected exception in one bounded line: its type and message, for a log and a status.

    Our readers never put a token or key into an exception (tokens travel as `SecretText`); the
    bound keeps a library's long message from flooding a condition.
    """
    text = " ".join(_printable(str(error)).split())
    if len(text) > UNEXPECTED_LIMIT:
        text = text[: UNEXPECTED_LIMIT - 1] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def classify_transport(problem: TransportProblem, *, timeout_seconds: float) -> Failure:
    if problem.stage == "timeout":
        return Failure(
            Factor.TIMEOUT,
            f"no complete reply within {timeout_seconds:g}s: the remote or the network path is too slow "
            "or drops packets (spec.heartbeat.timeout sets the limit)",
        )
    if problem.verify_message is not None:
        return Failure(
            Factor.TLS,
            _line(
                f"the remote's server certificate failed our verification ({problem.verify_message}): "
                "does spec.serverTrust name the CA that issued it?"
            ),
        )
    if problem.ssl_reason is not None:
        known = _PEER_CERT_ALERTS.get(problem.ssl_reason)
        if known is not None:
            return Failure(Factor.CERTIFICATE, known)
        reason = problem.ssl_reason.lower().replace("_", " ")
        return Failure(
            Factor.TLS,
            _line(f"the TLS handshake failed ({reason}): is the endpoint an HTTPS federation server?"),
        )
    if problem.stage == "refused-after-handshake":
        return Failure(
            Factor.CERTIFICATE,
            "the remote closed the connection right after the TLS handshake: "
            "it does not accept our client certificate (not pinned there?)",
        )
    if problem.stage == "redirect":
        return Failure(
            Factor.HTTP,
            _line(f"the remote redirected the ping ({problem.detail}); redirects are not followed"),
        )
    if problem.stage == "too-large":
        return Failure(Factor.HTTP, _line(f"the remote's reply exceeded {problem.detail}"))
    if problem.stage == "protocol":
        return Failure(
            Factor.HTTP, _line(f"the remote broke the HTTP exchange: {problem.detail or 'protocol error'}")
        )
    if problem.errno_name == "ECONNREFUSED":
        return Failure(
            Factor.NETWORK,
            "connection refused: nothing listens at the endpoint's host and port "
            "(is the remote's federation server running, is the port right?)",
        )
    if problem.errno_name in {"ECONNRESET", "EPIPE"}:
        return Failure(
            Factor.NETWORK,
            "the connection was reset: the remote, or a firewall or proxy on the way, dropped it",
        )
    if problem.errno_name in {"EHOSTUNREACH", "ENETUNREACH"}:
        return Failure(Factor.NETWORK, "no route to the remote host: check the network path to the endpoint")
    if problem.detail == "gaierror":
        # socket.gaierror: the resolver's error codes are negative, so no errno name reaches here.
        return Failure(Factor.NETWORK, "the endpoint's host name does not resolve (DNS): check spec.endpoint")
    if problem.stage == "read" and problem.detail == "closed":
        # With TLS 1.3 a server that refuses our certificate after the handshake often just closes.
        return Failure(Factor.NETWORK, "the remote closed the connection without a reply")
    detail = problem.detail or problem.errno_name or "error"
    return Failure(Factor.NETWORK, _line(f"the {problem.stage} step of the ping failed ({detail})"))


def excerpt(body: bytes) -> str:
    """A sanitised, length-bounded first line of what a remote sent, for a failure message."""
    text = " ".join(_printable(body[: EXCERPT_LIMIT * 4].decode("utf-8", errors="replace")).split())
    return text if len(text) <= EXCERPT_LIMIT else text[: EXCERPT_LIMIT - 1] + "…"


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        payload = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None


def classify_reply(*, status: int, factor_header: str | None, body: bytes) -> Failure | None:
    """None for any 2xx, whatever its body; else the factor and one line.

    Any 2xx after a handshake that passed our checks is a green ping (DESIGN.md): the remote may be
    another implementation of the contract, which owes us no particular body. For a red reply, the
    remote's JSON (`{"factor", "message"}`, docs/protocol.md) is believed when its factor is one of
    ours; the `X-Federation-Factor` header stands in when a proxy replaced the body; otherwise the
    status code and an excerpt of the body say what happened.
    """
    if 200 <= status < 300:
        return None
    factor, message = None, None
    payload = _json_object(body)
    if payload is not None:
        raw_factor, raw_message = payload.get("factor"), payload.get("message")
        if isinstance(raw_factor, str) and raw_factor in frozenset(Factor):
            factor = raw_factor
        if isinstance(raw_message, str) and raw_message.strip():
            message = _printable(raw_message)
    if factor is None and factor_header in frozenset(Factor):
        factor = factor_header
    if factor is None:
        shown = message or (excerpt(body) if body else "")
        return Failure(
            Factor.HTTP, _line(f"the remote answered HTTP {status}" + (f": {shown}" if shown else ""))
        )
    return Failure(
        factor, _line(f"remote says: {message}" if message else f"remote refused ({factor}, HTTP {status})")
    )


def _text_field(value: object) -> str | None:
    if not isinstance(value, str) or not value or len(value) > FIELD_LIMIT:
        return None
    return _printable(value)


def read_ping_reply(body: bytes) -> RemoteView | None:
    """`status.remote` from a green reply's body: our optional reply fields (docs/protocol.md),
    each used only when present and of the documented type; None when none is usable.

    The one reader of the ping reply's JSON shape (domain/wire.py's `PingReply` is what our server
    writes): the heartbeat and `kubectl federation ping` both go through here.
    """
    payload = _json_object(body)
    if payload is None:
        return None
    view: RemoteView = {}
    site = _text_field(payload.get("site"))
    if site is not None:
        view["site"] = site
    when = _text_field(payload.get("time"))
    if when is not None:
        view["time"] = when
    peer = payload.get("peer")
    if isinstance(peer, dict):
        for source, target in (("name", "peerName"), ("namespace", "peerNamespace")):
            value = _text_field(peer.get(source))
            if value is not None:
                view[target] = value  # type: ignore[literal-required]
    link = payload.get("link")
    if isinstance(link, dict):
        for key in ("reachability", "lastSuccessTime", "inboundFingerprint", "outboundFingerprint"):
            value = _text_field(link.get(key))
            if value is not None:
                view[key] = value
        latency = link.get("latencyMilliseconds")
        # bool is an int to Python, not to JSON readers; a latency is never negative or absurd.
        if isinstance(latency, int) and not isinstance(latency, bool) and 0 <= latency < 2**53:
            view["latencyMilliseconds"] = latency
    return view or None
