"""`kubectl federation check [-A | -n NS] [--ping]`: is federation healthy here, and if not, what to do.

Modelled on `linkerd multicluster check`: one line per check, a message that says what is wrong,
a hint that says where to look, and a non-zero exit on any failure so scripts and CI can gate on
it. Unlike `status` it does not trust status alone: it reads the Secrets that status summarises
(certificate Secret, inbound hashes, outbound token, a user's referenced Secrets) and checks
that they exist, parse, and agree with the fingerprints status shows, so a deleted or hand-edited
Secret shows here before the next heartbeat notices. It prints names, fingerprints and
thumbprints, never a token or a key.

Verdicts: pass, warn (passes, but needs attention soon: a certificate past its renewal time, a
Slow or suspended link, `insecureSkipVerify`), fail. Symbols are linkerd's (`√`, `‼`, `×`) on a
terminal and ASCII (`[ok]`, `[warn]`, `[FAIL]`) otherwise, so logs and CI output stay readable.
"""

import argparse
import asyncio
import enum
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TextIO

from federation_operator.adapters.k8s.client import Kube
from federation_operator.adapters.k8s.credentials import read_outbound
from federation_operator.adapters.k8s.resources import FEDERATION_CERTS, FEDERATION_PEERS, SECRETS
from federation_operator.domain import (
    api,
    certs,
    condition_types,
    conditions,
    issuance,
    objects,
    pinning,
    tokens,
)
from federation_operator.domain.credentials import (
    credential_spec,
    inbound_hashes,
    peer_secrets,
    user_secrets,
)
from federation_operator.domain.times import parse_rfc3339
from federation_operator.plugin import ping
from federation_operator.plugin.connection import connect, namespace_of
from federation_operator.plugin.status import add_scope_flags, days_left, paint, use_colour

HELP: Final = "check certificates, tokens, pins and reachability of every peer; non-zero exit on failure"
MAX_PINS: Final = 8
# Written by the operator's edge pass (handlers/ingress.py) when an ingress provider is configured.


def configure(parser: argparse.ArgumentParser) -> None:
    add_scope_flags(parser)
    parser.add_argument(
        "--ping", action="store_true", help="also ping every peer now from this machine (as `ping` does)"
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds per live ping with --ping (default: spec.heartbeat.timeout)"
    )


class Verdict(enum.Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Result:
    name: str
    verdict: Verdict
    message: str = ""
    hint: str = ""


def passed(name: str, message: str = "") -> Result:
    return Result(name, Verdict.PASS, message)


def warned(name: str, message: str, hint: str = "") -> Result:
    return Result(name, Verdict.WARN, message, hint)


def failed(name: str, message: str, hint: str) -> Result:
    return Result(name, Verdict.FAIL, message, hint)


@dataclass
class Section:
    title: str
    results: list[Result] = field(default_factory=list)


@dataclass(frozen=True)
class Scope:
    """What one check run reads, fetched once."""

    certificates: Mapping[tuple[str, str], Mapping[str, Any]]
    secrets: Mapping[tuple[str, str], Mapping[str, Any] | None]


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return str(obj["metadata"].get("namespace") or ""), str(obj["metadata"]["name"])


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, object] | None:
    return conditions.get_condition((obj.get("status") or {}).get("conditions") or [], type_)


def _condition_text(condition: Mapping[str, object] | None) -> str:
    if condition is None:
        return "no condition yet (is the operator running?)"
    reason = condition.get("reason") or condition.get("status")
    message = condition.get("message")
    return f"{reason}: {message}" if message else str(reason)


# ---- FederationCert ----------------------------------------------------------------------------


def cert_secret_name(cert: Mapping[str, Any]) -> str:
    name = str(cert["metadata"]["name"])
    return str(
        (cert.get("spec") or {}).get("secretName")
        or (cert.get("status") or {}).get("secretName")
        or f"{name}-tls"
    )


def check_certificate(cert: Mapping[str, Any], secret: Mapping[str, Any] | None, *, now: datetime) -> Section:
    namespace, name = _key(cert)
    section = Section(f"FederationCert {namespace}/{name}")
    describe_hint = f"kubectl describe fcert {name} -n {namespace}"
    ready = _condition(cert, "Ready")
    if ready is not None and ready.get("status") == "True":
        section.results.append(passed("is Ready"))
    else:
        section.results.append(failed("is Ready", _condition_text(ready), describe_hint))

    secret_name = cert_secret_name(cert)
    secret_check = f"Secret {secret_name} holds the issued certificate and key"
    reissue_hint = (
        f"the operator never re-issues behind your back; request a new key and certificate with "
        f"`kubectl annotate fcert {name} -n {namespace} {api.ANNOTATION_REISSUE}=$(date +%s)`, then hand "
        "the new certificate to every remote that pins this one"
    )
    thumbprint = (cert.get("status") or {}).get("thumbprint")
    identity = issuance.read_client_identity(secret, secret_name=secret_name)
    if isinstance(identity, str):
        section.results.append(failed(secret_check, identity, reissue_hint))
    elif thumbprint and identity.info.thumbprint != thumbprint:
        stored = identity.info.thumbprint
        message = f"Secret {secret_name} holds {stored}, but status.thumbprint says {thumbprint}"
        section.results.append(failed(secret_check, message, reissue_hint))
    else:
        section.results.append(passed(secret_check))

    expiry_check = "is not expiring"
    not_after = parse_rfc3339((cert.get("status") or {}).get("notAfter"))
    rotate_hint = (
        "rotate: create a new FederationCert, give its status.certificate to the remote to pin, point "
        f"clientCertificateRef at it, then delete {name} (docs/plugin.md, `check`)"
    )
    expiring = _condition(cert, "Expiring")
    if not_after is None:
        section.results.append(failed(expiry_check, "no status.notAfter: not issued yet", describe_hint))
    elif not_after <= now:
        section.results.append(
            failed(expiry_check, f"expired at {conditions.rfc3339(not_after)}", rotate_hint)
        )
    elif expiring is not None and expiring.get("status") == "True":
        section.results.append(
            warned(expiry_check, f"past its renewal time: {days_left(not_after, now)} days left", rotate_hint)
        )
    else:
        section.results.append(passed(expiry_check, f"{days_left(not_after, now)} days left"))
    return section


# ---- FederationPeer ----------------------------------------------------------------------------


def check_client_certificate(peer: Mapping[str, Any], scope: Scope) -> Result:
    namespace, name = _key(peer)
    ref = ((peer.get("spec") or {}).get("clientCertificateRef") or {}).get("name")
    title = f"client certificate FederationCert {ref} exists and is Ready" if ref else "client certificate"
    if not ref:
        return failed(
            title,
            "spec.clientCertificateRef is not set: no certificate to present",
            f"create a FederationCert and `kubectl patch fpeer {name} -n {namespace} --type merge "
            '-p \'{"spec":{"clientCertificateRef":{"name":"CERT"}}}\'`',
        )
    cert = scope.certificates.get((namespace, str(ref)))
    if cert is None:
        return failed(
            title,
            f"FederationCert {ref} (spec.clientCertificateRef) not found in {namespace}",
            f"create it (`kubectl get fcert -n {namespace}` lists the existing ones) or fix the reference",
        )
    ready = _condition(cert, "Ready")
    if ready is None or ready.get("status") != "True":
        return failed(
            title,
            f"FederationCert {ref} is not Ready: {_condition_text(ready)}",
            f"kubectl describe fcert {ref} -n {namespace}",
        )
    return passed(title)


def check_credentials_ready(peer: Mapping[str, Any]) -> Result:
    namespace, name = _key(peer)
    condition = _condition(peer, condition_types.CREDENTIALS_READY)
    if condition is not None and condition.get("status") == "True":
        return passed(condition_types.CREDENTIALS_READY)
    return failed(
        condition_types.CREDENTIALS_READY,
        _condition_text(condition),
        f"kubectl describe fpeer {name} -n {namespace} (docs/credentials.md)",
    )


def read_inbound_hashes(
    secret: Mapping[str, Any] | None, *, peer_name: str
) -> inbound_hashes.InboundHashes | str:
    """The accepted hashes, or why there are none (a Secret and key name, never a value)."""
    name = peer_secrets.inbound_secret_name(peer_name)
    if secret is None:
        return f"Secret {name} not found"
    raw = objects.secret_data(secret).get(api.INBOUND_HASHES_KEY)
    if raw is None:
        return f"Secret {name} has no key {api.INBOUND_HASHES_KEY}"
    reading = inbound_hashes.read_hashes(raw)
    if reading.current is None or reading.problem is not None:
        return f"Secret {name} key {api.INBOUND_HASHES_KEY}: {reading.problem or 'no current hash'}"
    return inbound_hashes.InboundHashes(current=reading.current, previous=reading.previous)


def inbound_source_hash(spec: Mapping[str, Any], scope: Scope, *, namespace: str) -> str | None:
    """The hash the user's inbound source names, or a problem string; None for generated tokens.

    Returned as `sha256:...` on success, else a sentence (never holding the value)."""
    inbound = spec.get("inbound") or {}
    if inbound.get("secretHash") is not None:
        value = str(inbound["secretHash"]).strip()
        return value if tokens.is_hash(value) else "spec.inbound.secretHash is not sha256:<64 lowercase hex>"
    ref = inbound.get("secretRef")
    if not ref:
        return None
    secret_ref = credential_spec.SecretRef(
        name=str(ref.get("name")), key=str(ref.get("key") or credential_spec.DEFAULT_REF_KEY)
    )
    secret = scope.secrets.get((namespace, secret_ref.name))
    digest, problem = user_secrets.parse_user_hash(
        objects.secret_data(secret) if secret is not None else None,
        secret_ref,
        field_path="spec.inbound.secretRef",
    )
    return digest if digest is not None else (problem.message if problem else "unreadable")


async def check_tokens(peer: Mapping[str, Any], scope: Scope, kube: Kube) -> list[Result]:
    namespace, name = _key(peer)
    spec = peer.get("spec") or {}
    status = peer.get("status") or {}
    describe_hint = f"kubectl describe fpeer {name} -n {namespace} (docs/credentials.md)"
    rotate_hint = (
        f"a lost generated token is never regenerated silently: `kubectl federation rotate {name} "
        f"--{{side}} -n {namespace}`, then export and apply on the remote"
    )
    results: list[Result] = []

    outbound = await read_outbound(kube, namespace=namespace, peer_name=name, spec=spec)
    outbound_fp: str | None = None
    if outbound.current is None:
        hint = (
            rotate_hint.format(side="outbound")
            if not spec.get("outbound")
            else "fix the Secret named by spec.outbound.secretRef"
        )
        results.append(failed("outbound token present", outbound.problem or "no outbound token", hint))
    else:
        outbound_fp = tokens.fingerprint(tokens.hash_token(outbound.current))
        results.append(passed("outbound token present"))

    hashes = read_inbound_hashes(
        scope.secrets.get((namespace, peer_secrets.inbound_secret_name(name))), peer_name=name
    )
    inbound_fp: str | None = None
    if isinstance(hashes, str):
        results.append(failed("inbound hashes present", hashes, describe_hint))
    else:
        inbound_fp = tokens.fingerprint(hashes.current)
        results.append(passed("inbound hashes present"))

    source = inbound_source_hash(spec, scope, namespace=namespace)
    if source is not None:
        title = "inbound source readable"
        if not tokens.is_hash(source):
            results.append(
                failed(title, source, "fix the Secret or spec.inbound (docs/credentials.md, Sources)")
            )
        elif not isinstance(hashes, str) and source != hashes.current:
            results.append(
                failed(
                    title,
                    f"the source's hash ({tokens.fingerprint(source)}) is not mirrored into "
                    f"{peer_secrets.inbound_secret_name(name)} ({inbound_fp}) yet",
                    describe_hint + "; is the operator running?",
                )
            )
        else:
            results.append(passed(title))

    if outbound_fp is not None and inbound_fp is not None:
        title = "status fingerprints match the Secrets"
        shown_in = (status.get("inbound") or {}).get("fingerprint")
        shown_out = (status.get("outbound") or {}).get("fingerprint")
        mismatches = [
            f"{side}: status says {shown}, the Secrets hold {actual}"
            for side, shown, actual in (
                ("inbound", shown_in, inbound_fp),
                ("outbound", shown_out, outbound_fp),
            )
            if shown != actual
        ]
        if mismatches:
            results.append(failed(title, "; ".join(mismatches), describe_hint + "; is the operator running?"))
        else:
            results.append(passed(title, f"in {inbound_fp}, out {outbound_fp}"))
    return results


def check_pins(peer: Mapping[str, Any], *, now: datetime) -> Result:
    namespace, name = _key(peer)
    pins = pinning.parse_pins((peer.get("spec") or {}).get("remoteCertificates"))
    title = "remote certificate pins present and valid"
    hint = (
        f"ask the remote admin for their FederationCert's status.certificate and set "
        f"spec.remoteCertificates of {name} (`kubectl edit fpeer {name} -n {namespace}`)"
    )
    if not pins:
        return failed(title, "spec.remoteCertificates is empty: nobody can call us as this peer", hint)
    if len(pins) > MAX_PINS:
        return failed(title, f"{len(pins)} pins; at most {MAX_PINS}", hint)
    problems: list[str] = [pin.problem for pin in pins.invalid if pin.problem is not None]
    by_pem: set[str] = set()
    thumbprint_only: list[tuple[str, str]] = []
    for pin in pins.valid:
        assert pin.thumbprint is not None
        if pin.not_after is not None:
            by_pem.add(pin.thumbprint)
            if pin.not_after <= now:
                problems.append(
                    f"{pin.where}: the pinned certificate expired at {conditions.rfc3339(pin.not_after)}"
                )
        else:
            thumbprint_only.append((pin.where, pin.thumbprint))
    if problems:
        return failed(title, "; ".join(problems), hint)
    unenforced = [where for where, thumbprint in thumbprint_only if thumbprint not in by_pem]
    if unenforced and not _pins_enforced(peer):
        return failed(
            title,
            f"{', '.join(unenforced)}: a thumbprint alone, which the server's direct TLS (serve --port, "
            "the sandbox) and every ingress provider cannot enforce: that certificate is refused in the "
            "handshake",
            f"pin the certificate itself: ask the remote admin for `kubectl get fcert NAME -o yaml` and run "
            f"`kubectl federation pin {name} --certificate FILE -n {namespace}` (docs/server.md, which pin "
            "kinds each mode accepts)",
        )
    return passed(title, f"{len(pins)} pin{'s' if len(pins) != 1 else ''}")


def _pins_enforced(peer: Mapping[str, Any]) -> bool:
    """Whether the operator said the edge enforces every pin (a proxy of ours that checks hashes)."""
    condition = _condition(peer, condition_types.PINS_USABLE)
    return condition is not None and condition.get("status") == "True"


def check_reachability(peer: Mapping[str, Any]) -> Result:
    namespace, name = _key(peer)
    spec = peer.get("spec") or {}
    status = peer.get("status") or {}
    title = f"remote {spec.get('endpoint')} reachable"
    state = str(status.get("reachability") or "Unknown")
    failure = status.get("lastFailure") or {}
    why = f"{failure.get('factor')}: {failure.get('message')}" if failure.get("factor") else ""
    hint = f"kubectl federation ping {name} -n {namespace} (docs/plugin.md lists what each factor means)"
    if spec.get("suspend"):
        return warned(title, "spec.suspend is true: no pings, inbound calls refused")
    insecure = bool((spec.get("serverTrust") or {}).get("insecureSkipVerify"))
    if state == "Reachable":
        if insecure:
            return warned(
                title,
                "Reachable, but spec.serverTrust.insecureSkipVerify is set",
                "use a caBundleRef outside labs",
            )
        return passed(title, f"{status.get('latencyMilliseconds')} ms")
    if state == "Slow":
        return warned(
            title, f"Slow: {status.get('latencyMilliseconds')} ms (above spec.heartbeat.slowThreshold)", hint
        )
    if state == "Unknown":
        return failed(
            title,
            "Unknown: no recent ping finished (is the operator running?)"
            + (f"; last failure {why}" if why else ""),
            hint,
        )
    return failed(title, f"{state}: {why or 'no reason recorded'}", hint)


async def check_live_ping(peer: Mapping[str, Any], kube: Kube, *, time_limit: float | None) -> Result:
    namespace, name = _key(peer)
    report = await ping.ping_peer(kube, namespace=namespace, peer_name=name, time_limit=time_limit)
    title = "live ping from here"
    latency = ping.milliseconds(report.outcome.latency)
    if report.ok:
        return passed(title, f"{latency} ms")
    failure = report.outcome.failure
    message = f"{failure.factor}: {failure.message}" if failure else "failed"
    return failed(title, message, f"kubectl federation ping {name} -n {namespace}")


async def check_peer(
    peer: Mapping[str, Any], scope: Scope, kube: Kube, *, now: datetime, live: bool, time_limit: float | None
) -> Section:
    namespace, name = _key(peer)
    section = Section(f"FederationPeer {namespace}/{name}")
    section.results.append(check_client_certificate(peer, scope))
    section.results.append(check_credentials_ready(peer))
    section.results.extend(await check_tokens(peer, scope, kube))
    section.results.append(check_pins(peer, now=now))
    section.results.append(check_reachability(peer))
    if live:
        section.results.append(await check_live_ping(peer, kube, time_limit=time_limit))
    return section


# ---- running and printing ----------------------------------------------------------------------


def referenced_secrets(
    certificates: Sequence[Mapping[str, Any]], peers: Sequence[Mapping[str, Any]]
) -> set[tuple[str, str]]:
    """Every Secret a check reads (outbound tokens are read by `read_outbound` itself)."""
    wanted = {(_key(cert)[0], cert_secret_name(cert)) for cert in certificates}
    for peer in peers:
        namespace, name = _key(peer)
        wanted.add((namespace, peer_secrets.inbound_secret_name(name)))
        ref = ((peer.get("spec") or {}).get("inbound") or {}).get("secretRef")
        if ref and ref.get("name"):
            wanted.add((namespace, str(ref["name"])))
    return wanted


async def run_checks(
    kube: Kube, *, namespace: str | None, live: bool = False, time_limit: float | None = None
) -> list[Section]:
    cert_list, peers = await asyncio.gather(
        kube.list(FEDERATION_CERTS, namespace), kube.list(FEDERATION_PEERS, namespace)
    )
    cert_list = sorted(cert_list, key=_key)
    peers = sorted(peers, key=_key)
    wanted = sorted(referenced_secrets(cert_list, peers))
    # Single gets, not a list of all Secrets: `check` needs only what it names, and a user allowed
    # to read these Secrets by name need not be allowed to list every Secret in the namespace.
    fetched = await asyncio.gather(*(kube.get(SECRETS, ns, name) for ns, name in wanted))
    scope = Scope(
        certificates={_key(cert): cert for cert in cert_list}, secrets=dict(zip(wanted, fetched, strict=True))
    )
    now = certs.utcnow()
    sections = [
        check_certificate(cert, scope.secrets.get((_key(cert)[0], cert_secret_name(cert))), now=now)
        for cert in cert_list
    ]
    for peer in peers:
        sections.append(await check_peer(peer, scope, kube, now=now, live=live, time_limit=time_limit))
    return sections


SYMBOLS: Final = {
    True: {Verdict.PASS: "√", Verdict.WARN: "‼", Verdict.FAIL: "×"},
    False: {Verdict.PASS: "[ok]", Verdict.WARN: "[warn]", Verdict.FAIL: "[FAIL]"},
}
VERDICT_COLOURS: Final = {Verdict.PASS: "32", Verdict.WARN: "33", Verdict.FAIL: "31"}


def render(sections: Sequence[Section], *, tty: bool, colour: bool) -> str:
    lines: list[str] = []
    for section in sections:
        lines += [section.title, "-" * len(section.title)]
        for result in section.results:
            symbol = paint(SYMBOLS[tty][result.verdict], VERDICT_COLOURS[result.verdict], colour=colour)
            text = f"{symbol} {result.name}"
            if result.message:
                text += f" ({result.message})" if result.verdict is Verdict.PASS else f": {result.message}"
            lines.append(text)
            if result.hint and result.verdict is not Verdict.PASS:
                lines.append(f"    see: {result.hint}")
        lines.append("")
    results = [result for section in sections for result in section.results]
    failures = sum(1 for result in results if result.verdict is Verdict.FAIL)
    warnings = sum(1 for result in results if result.verdict is Verdict.WARN)
    if failures:
        symbol = SYMBOLS[tty][Verdict.FAIL]
        lines.append(f"Status check results are {symbol}: {failures} of {len(results)} checks failed")
    else:
        summary = f"Status check results are {SYMBOLS[tty][Verdict.PASS]}: {len(results)} checks passed"
        lines.append(summary + (f" ({warnings} with warnings)" if warnings else ""))
    return "\n".join(lines) + "\n"


def failed_any(sections: Sequence[Section]) -> bool:
    return any(result.verdict is Verdict.FAIL for section in sections for result in section.results)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args, sys.stdout))


async def _run(args: argparse.Namespace, stream: TextIO) -> int:
    namespace = None if args.all_namespaces else namespace_of(args)
    kube = connect(args)
    try:
        sections = await run_checks(kube, namespace=namespace, live=args.ping, time_limit=args.timeout)
    finally:
        kube.close()
    if not sections:
        where = "any namespace" if namespace is None else f"namespace {namespace}"
        print(f"No FederationCerts or FederationPeers in {where}: nothing to check.", file=stream)
        return 0
    stream.write(render(sections, tty=stream.isatty(), colour=use_colour(stream)))
    return 1 if failed_any(sections) else 0
