"""`kubectl federation ping PEER`: one ping now, from this machine, exactly as the heartbeat pings.

When a link is red the first question is "is it still red right now, and why?"; waiting for the
next heartbeat (and reading it from status) is slow and says nothing about this machine's path.
So this reads the same credentials the heartbeat reads (the FederationCert named by
`clientCertificateRef` with its key, `spec.serverTrust`, the outbound token) through the same
function, and pings with the same `Pinger`: the same TLS, headers, timeout and failure factors.
Like the heartbeat, it tries the previous outbound token when the remote refuses the current one
during a rotation overlap. It prints the result and never a token.
"""

import argparse
import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from federation_operator.adapters.k8s.client import Kube
from federation_operator.adapters.k8s.ping_credentials import (
    CacheReader,
    CredentialCache,
    Credentials,
    load_credentials,
)
from federation_operator.adapters.k8s.resources import FEDERATION_PEERS
from federation_operator.adapters.probe import Pinger, PingOutcome
from federation_operator.domain import certs, tokens
from federation_operator.domain.factors import Factor
from federation_operator.domain.heartbeat_schedule import settings_of
from federation_operator.domain.reachability import Failure
from federation_operator.domain.tokens import SecretText
from federation_operator.plugin.connection import PluginError, connect, namespace_of

HELP: Final = "ping a peer now with its own credentials (as the heartbeat does) and print the result"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("peer", help="the FederationPeer")
    parser.add_argument(
        "--timeout", type=float, help="seconds for the whole ping (default: spec.heartbeat.timeout)"
    )


@dataclass(frozen=True)
class PingReport:
    """One ping's outcome, plus what a person needs to read it. Holds no token."""

    peer: str
    endpoint: str
    outcome: PingOutcome
    slow_threshold: timedelta
    presented: Mapping[str, Any] | None = None
    accepted_fingerprint: str | None = None  # of the outbound token the remote accepted
    used_previous: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome.ok


async def _load(
    kube: Kube, *, namespace: str, peer_name: str, spec: Mapping[str, Any]
) -> Credentials | Failure:
    # The heartbeat's own loader, with a cache that never serves a stale object (max_age 0), so
    # a ping here sees exactly what the next heartbeat cycle would read after a change.
    reader = CacheReader(CredentialCache(kube), namespace, max_age=0.0)
    return await load_credentials(reader, peer_name=peer_name, spec=spec)


async def ping_peer(
    kube: Kube, *, namespace: str, peer_name: str, time_limit: float | None = None
) -> PingReport:
    """One ping of `peer_name` from here. Raises PluginError when the peer does not exist."""
    peer = await kube.get(FEDERATION_PEERS, namespace, peer_name)
    if peer is None:
        raise PluginError(f"FederationPeer {peer_name} not found in namespace {namespace}")
    spec = peer.get("spec") or {}
    endpoint = str(spec.get("endpoint") or "")
    settings = settings_of(spec)
    limit = time_limit if time_limit is not None else settings.timeout.total_seconds()
    loaded = await _load(kube, namespace=namespace, peer_name=peer_name, spec=spec)
    if isinstance(loaded, Failure):
        return PingReport(
            peer=peer_name,
            endpoint=endpoint,
            outcome=PingOutcome(False, timedelta(), failure=loaded),
            slow_threshold=settings.slow_threshold,
        )
    outbound = loaded.outbound
    assert outbound.current is not None  # load_credentials returns a Failure otherwise
    candidates: list[SecretText] = [outbound.current]
    now = certs.utcnow()
    if outbound.previous is not None and (
        outbound.previous_expires_at is None or outbound.previous_expires_at > now
    ):
        candidates.append(outbound.previous)
    pinger = Pinger()
    try:
        outcome = PingOutcome(False, timedelta(), Failure(Factor.SECRET, "no outbound token"))
        for token in candidates:
            outcome = await pinger.ping(
                endpoint=endpoint,
                material=loaded.material,
                token=token,
                header=loaded.header,
                time_limit=limit,
            )
            if outcome.ok:
                return PingReport(
                    peer=peer_name,
                    endpoint=endpoint,
                    outcome=outcome,
                    slow_threshold=settings.slow_threshold,
                    presented=loaded.presented,
                    accepted_fingerprint=tokens.fingerprint(tokens.hash_token(token)),
                    used_previous=token is outbound.previous,
                )
            if outcome.failure is None or outcome.failure.factor != Factor.SECRET:
                break
    finally:
        await pinger.aclose()
    return PingReport(
        peer=peer_name,
        endpoint=endpoint,
        outcome=outcome,
        slow_threshold=settings.slow_threshold,
        presented=loaded.presented,
    )


def milliseconds(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)


def describe(report: PingReport) -> list[str]:
    """The lines `ping` prints. Public facts only: names, fingerprints, the remote's reply."""
    outcome = report.outcome
    latency = milliseconds(outcome.latency)
    lines: list[str] = []
    if outcome.ok:
        slow = outcome.latency > report.slow_threshold
        verdict = "Slow" if slow else "Reachable"
        lines.append(f"PING {report.peer} ({report.endpoint}): {verdict}, {latency} ms")
        if slow:
            lines.append(
                f"  slower than spec.heartbeat.slowThreshold ({milliseconds(report.slow_threshold)} ms)"
            )
    else:
        failure = outcome.failure or Failure(Factor.HTTP, "no reply")
        lines.append(f"PING {report.peer} ({report.endpoint}): FAILED after {latency} ms")
        lines.append(f"  factor:  {failure.factor}")
        lines.append(f"  message: {failure.message}")
    if report.presented:
        lines.append(
            f"  presented FederationCert {report.presented.get('name')} "
            f"({report.presented.get('thumbprint')}, valid until {report.presented.get('notAfter')})"
        )
    if report.accepted_fingerprint:
        which = "previous" if report.used_previous else "current"
        lines.append(f"  outbound token accepted: {which} (fingerprint {report.accepted_fingerprint})")
    remote = outcome.reply
    if remote:
        lines.append(
            f"  remote site: {remote.get('site', '-')}; it knows us as "
            f"{remote.get('peerNamespace', '-')}/{remote.get('peerName', '-')}"
        )
        view = [remote.get("reachability", "Unknown")]
        if "latencyMilliseconds" in remote:
            view.append(f"{remote['latencyMilliseconds']} ms")
        if remote.get("inboundFingerprint") or remote.get("outboundFingerprint"):
            inbound, outbound = remote.get("inboundFingerprint", "-"), remote.get("outboundFingerprint", "-")
            view.append(f"in-fp {inbound} out-fp {outbound}")
        lines.append(f"  remote's view of the link: {', '.join(view)}")
    elif outcome.ok:
        lines.append("  the remote's reply carried no link details (optional; see docs/protocol.md)")
    return lines


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    kube = connect(args)
    try:
        report = await ping_peer(kube, namespace=namespace, peer_name=args.peer, time_limit=args.timeout)
    finally:
        kube.close()
    for line in describe(report):
        print(line)
    return 0 if report.ok else 1
