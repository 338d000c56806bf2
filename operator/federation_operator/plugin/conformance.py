"""`kubectl federation probe URL`: does this endpoint speak docs/protocol.md? Point by point.

Why a command: the other side of a link may be Ampora run by hand or another implementation,
and "the ping is red" says little about whose side is wrong. This connects to any endpoint with a
FederationCert of this site and a token, runs the protocol's points one by one (TLS version,
certificate requested, refusals without a certificate, without a token, with a wrong token, then
success and latency) and prints `pass` / `warn` / `FAIL` for each, like `check`. It speaks
through the heartbeat's own request code (`probe.fetch_once`), so what it sees is what a ping
sees; whether the server *requests* a certificate is not visible from Python's `ssl`, so that one
point asks `openssl s_client`. The key and the token are never printed.

The judgements are pure functions of what was observed (`judge_*`), tested without sockets.
"""

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, TextIO

from federation_operator.adapters.k8s.client import Kube
from federation_operator.adapters.k8s.ping_credentials import CacheReader, CredentialCache, load_credentials
from federation_operator.adapters.k8s.resources import FEDERATION_CERTS, FEDERATION_PEERS, SECRETS
from federation_operator.adapters.probe import (
    Fetched,
    Target,
    TlsMaterial,
    build_ssl_context,
    fetch_once,
    negotiated_version,
    trust_context,
)
from federation_operator.domain import durations, issuance, tokens
from federation_operator.domain.factors import Factor
from federation_operator.domain.heartbeat_schedule import settings_of
from federation_operator.domain.probe_classify import classify_reply, read_ping_reply
from federation_operator.domain.reachability import Failure
from federation_operator.domain.tokens import SecretText
from federation_operator.plugin.check import Result, Section, failed, failed_any, passed, render, warned
from federation_operator.plugin.connection import PluginError, connect, namespace_of
from federation_operator.plugin.status import use_colour

HELP: Final = (
    "check any federation endpoint against docs/protocol.md with this site's certificate and a token"
)
TOKEN_ENV: Final = "FEDERATION_TOKEN"
OPENSSL_SECONDS: Final = 10.0
# Printed by `openssl s_client` only when the server sent a CertificateRequest (TLS 1.2 and 1.3).
_REQUESTED_MARK: Final = "Requested Signature Algorithms"

CHECK_TLS: Final = "TLS version"
CHECK_REQUESTED: Final = "client certificate requested"
CHECK_NO_CERT: Final = "refusal without a client certificate"
CHECK_NO_TOKEN: Final = "refusal without a token"
CHECK_WRONG_TOKEN: Final = "refusal with a wrong token"
CHECK_SUCCESS: Final = "success with the right token"
CHECK_LATENCY: Final = "latency"
_PROTOCOL_HINT: Final = "docs/protocol.md"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the remote's endpoint, https://host[:port][/path]")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--certificate", help="the FederationCert to present (its Secret holds the key)")
    source.add_argument(
        "--peer", help="use this FederationPeer's certificate, outbound token and server trust"
    )
    parser.add_argument("--token-file", type=Path, help=f"file holding the token (default: ${TOKEN_ENV})")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--ca-file", type=Path, help="CA bundle for the remote's server certificate")
    trust.add_argument(
        "--insecure-skip-verify", action="store_true", help="do not verify the server certificate"
    )
    parser.add_argument("--slow-threshold", default="1s", help="latency above which the link is Slow (1s)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (10)")


# ---- judgements (pure) -------------------------------------------------------------------------


def judge_tls(handshake: str | Failure) -> Result:
    if isinstance(handshake, Failure):
        return failed(CHECK_TLS, f"{handshake.factor}: {handshake.message}", _PROTOCOL_HINT)
    if handshake in {"TLSv1.2", "TLSv1.3"}:
        return passed(CHECK_TLS, handshake)
    return failed(CHECK_TLS, f"negotiated {handshake}; the protocol needs TLS 1.2 or 1.3", _PROTOCOL_HINT)


def judge_requested(openssl_output: str | None) -> Result:
    if openssl_output is None:
        return warned(CHECK_REQUESTED, "not checked: openssl is not on PATH", "install openssl")
    if _REQUESTED_MARK in openssl_output:
        return passed(CHECK_REQUESTED, "the server sends a CertificateRequest")
    return failed(
        CHECK_REQUESTED,
        "the server sent no CertificateRequest: no caller can present a certificate",
        _PROTOCOL_HINT + " section 3",
    )


def _reply_factor(fetched: Fetched) -> tuple[int, str | None] | None:
    """(status, factor) of a reply, the factor from the JSON body or else the header."""
    if isinstance(fetched.result, Failure):
        return None
    status, header, body = fetched.result
    factor = None
    failure = classify_reply(status=status, factor_header=header, body=body)
    if failure is not None and failure.factor != Factor.HTTP:
        factor = failure.factor
    return status, factor


def judge_refusal(name: str, fetched: Fetched, *, factor: str, handshake_refusal_ok: bool) -> Result:
    """A request that must be refused: 401 with `factor` passes; a 2xx fails; the rest warns."""
    if isinstance(fetched.result, Failure):
        failure = fetched.result
        if handshake_refusal_ok and failure.factor == Factor.CERTIFICATE:
            return passed(name, f"refused in the TLS handshake ({failure.message})")
        return warned(
            name, f"no HTTP reply: {failure.factor}: {failure.message}", _PROTOCOL_HINT + " section 3"
        )
    reply = _reply_factor(fetched)
    assert reply is not None
    status, got = reply
    if 200 <= status < 300:
        return failed(
            name, f"answered HTTP {status}: the server let in a caller it must refuse", _PROTOCOL_HINT
        )
    if status == 401 and got == factor:
        return passed(name, f"401, factor {factor}")
    said = f"factor {got}" if got else "no factor (JSON `factor` or `X-Federation-Factor`)"
    return warned(
        name, f"refused with HTTP {status} and {said}; expected 401 and factor {factor}", _PROTOCOL_HINT
    )


def judge_success(fetched: Fetched) -> Result:
    if isinstance(fetched.result, Failure):
        failure = fetched.result
        return failed(CHECK_SUCCESS, f"{failure.factor}: {failure.message}", _PROTOCOL_HINT)
    status, _, body = fetched.result
    if not 200 <= status < 300:
        reply = _reply_factor(fetched)
        said = f" (factor {reply[1]})" if reply and reply[1] else ""
        return failed(CHECK_SUCCESS, f"answered HTTP {status}{said}", _PROTOCOL_HINT)
    view = read_ping_reply(body)
    extension = f"optional reply fields: {', '.join(sorted(view))}" if view else "no optional reply fields"
    return passed(CHECK_SUCCESS, f"HTTP {status}; {extension}")


def judge_latency(fetched: Fetched, *, slow_threshold: timedelta) -> Result:
    milliseconds = round(fetched.latency.total_seconds() * 1000)
    limit = round(slow_threshold.total_seconds() * 1000)
    if isinstance(fetched.result, Failure) or not 200 <= fetched.result[0] < 300:
        return warned(CHECK_LATENCY, f"{milliseconds} ms, but the ping was not green")
    if fetched.latency > slow_threshold:
        return warned(CHECK_LATENCY, f"{milliseconds} ms: Slow (threshold {limit} ms)")
    return passed(CHECK_LATENCY, f"{milliseconds} ms (threshold {limit} ms)")


# ---- observations (I/O) ------------------------------------------------------------------------


def openssl_output(target: Target, *, time_limit: float) -> str | None:
    """What `openssl s_client` prints about the handshake, presenting no certificate."""
    binary = shutil.which("openssl")
    if binary is None:
        return None
    try:
        done = subprocess.run(
            [binary, "s_client", "-connect", f"{target.host}:{target.port}", "-servername", target.host],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=time_limit,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        return (expired.stdout or b"").decode("utf-8", "replace")
    return done.stdout.decode("utf-8", "replace")


@dataclass(frozen=True)
class Identity:
    material: TlsMaterial
    token: SecretText
    header: str | None
    slow_threshold: timedelta
    what: str  # for the section title: where the certificate and token came from


async def identity_from_certificate(
    kube: Kube, *, namespace: str, name: str, ca_pem: str | None, insecure: bool
) -> TlsMaterial:
    cert = await kube.get(FEDERATION_CERTS, namespace, name)
    if cert is None:
        raise PluginError(f"FederationCert {name} not found in namespace {namespace}")
    secret_name = str((cert.get("spec") or {}).get("secretName") or f"{name}-tls")
    identity = issuance.read_client_identity(
        await kube.get(SECRETS, namespace, secret_name), secret_name=secret_name
    )
    if isinstance(identity, str):
        raise PluginError(f"FederationCert {name}: {identity}")
    return TlsMaterial(cert_pem=identity.info.pem, key_pem=identity.key_pem, ca_pem=ca_pem, insecure=insecure)


def read_token(args: argparse.Namespace) -> SecretText:
    if args.token_file is not None:
        try:
            text = Path(args.token_file).read_text(encoding="ascii", errors="replace").strip()
        except OSError as error:
            raise PluginError(f"cannot read --token-file: {error.strerror}") from None
    else:
        text = os.environ.get(TOKEN_ENV, "").strip()
        if not text:
            raise PluginError(f"give the token with --token-file PATH or ${TOKEN_ENV} (or use --peer)")
    if not tokens.is_token(text):
        raise PluginError("the token is not 43 base64url characters (docs/protocol.md section 1)")
    return SecretText(text)


def read_ca(args: argparse.Namespace) -> str | None:
    if args.ca_file is None:
        return None
    try:
        return Path(args.ca_file).read_text(encoding="ascii", errors="replace")
    except OSError as error:
        raise PluginError(f"cannot read --ca-file: {error.strerror}") from None


async def load_identity(
    kube: Kube, args: argparse.Namespace, *, namespace: str, ca_pem: str | None, token: SecretText | None
) -> Identity:
    threshold = durations.parse_duration(str(args.slow_threshold))
    if args.peer:
        peer = await kube.get(FEDERATION_PEERS, namespace, args.peer)
        if peer is None:
            raise PluginError(f"FederationPeer {args.peer} not found in namespace {namespace}")
        spec: Mapping[str, Any] = peer.get("spec") or {}
        loaded = await load_credentials(
            CacheReader(CredentialCache(kube), namespace, max_age=0.0), peer_name=args.peer, spec=spec
        )
        if isinstance(loaded, Failure):
            raise PluginError(
                f"the credentials of FederationPeer {args.peer}: {loaded.factor}: {loaded.message}"
            )
        assert loaded.outbound.current is not None
        material = loaded.material
        if ca_pem is not None or args.insecure_skip_verify:
            material = TlsMaterial(
                material.cert_pem, material.key_pem, ca_pem=ca_pem, insecure=args.insecure_skip_verify
            )
        return Identity(
            material=material,
            token=loaded.outbound.current,
            header=loaded.header,
            slow_threshold=settings_of(spec).slow_threshold,
            what=f"FederationPeer {namespace}/{args.peer}",
        )
    assert token is not None
    material = await identity_from_certificate(
        kube, namespace=namespace, name=args.certificate, ca_pem=ca_pem, insecure=args.insecure_skip_verify
    )
    return Identity(
        material=material,
        token=token,
        header=None,
        slow_threshold=threshold,
        what=f"FederationCert {namespace}/{args.certificate}",
    )


async def probe_endpoint(url: str, identity: Identity, *, time_limit: float) -> Section:
    """Every point of docs/protocol.md against `url`, in order; never raises for what the remote does."""
    try:
        target = Target.of(url)
    except ValueError as error:
        raise PluginError(str(error)) from None
    section = Section(f"Endpoint {url} (as {identity.what})")
    try:
        with_cert = build_ssl_context(identity.material)
    except ValueError as error:
        raise PluginError(str(error)) from None
    without_cert = trust_context(ca_pem=identity.material.ca_pem, insecure=identity.material.insecure)

    def bearer(token: SecretText) -> list[tuple[str, str]]:
        if identity.header:
            return [(identity.header, token.reveal())]
        return [("Authorization", "Bearer " + token.reveal())]

    handshake = await negotiated_version(target, with_cert, time_limit=time_limit)
    section.results.append(judge_tls(handshake))
    output = await asyncio.to_thread(openssl_output, target, time_limit=OPENSSL_SECONDS)
    section.results.append(judge_requested(output))
    no_cert = await fetch_once(
        target, context=without_cert, extra_headers=bearer(identity.token), time_limit=time_limit
    )
    section.results.append(
        judge_refusal(CHECK_NO_CERT, no_cert, factor=Factor.CERTIFICATE, handshake_refusal_ok=True)
    )
    no_token = await fetch_once(target, context=with_cert, extra_headers=[], time_limit=time_limit)
    section.results.append(
        judge_refusal(CHECK_NO_TOKEN, no_token, factor=Factor.SECRET, handshake_refusal_ok=False)
    )
    wrong = await fetch_once(
        target, context=with_cert, extra_headers=bearer(tokens.generate_token()), time_limit=time_limit
    )
    section.results.append(
        judge_refusal(CHECK_WRONG_TOKEN, wrong, factor=Factor.SECRET, handshake_refusal_ok=False)
    )
    right = await fetch_once(
        target, context=with_cert, extra_headers=bearer(identity.token), time_limit=time_limit
    )
    section.results.append(judge_success(right))
    section.results.append(judge_latency(right, slow_threshold=identity.slow_threshold))
    return section


def run(args: argparse.Namespace) -> int:
    try:
        durations.parse_duration(str(args.slow_threshold))
    except durations.InvalidDuration as error:
        raise PluginError(f"--slow-threshold: {error}") from None
    token = None if args.peer else read_token(args)
    return asyncio.run(_run(args, sys.stdout, ca_pem=read_ca(args), token=token))


async def _run(
    args: argparse.Namespace, stream: TextIO, *, ca_pem: str | None, token: SecretText | None
) -> int:
    namespace = namespace_of(args)
    kube = connect(args)
    try:
        identity = await load_identity(kube, args, namespace=namespace, ca_pem=ca_pem, token=token)
    finally:
        kube.close()
    section = await probe_endpoint(args.url, identity, time_limit=args.timeout)
    sections: Sequence[Section] = [section]
    stream.write(render(sections, tty=stream.isatty(), colour=use_colour(stream)))
    return 1 if failed_any(sections) else 0
