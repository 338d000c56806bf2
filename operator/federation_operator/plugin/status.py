"""`kubectl federation status [-A | -n NS]`: every link of a namespace (or all) in one table.

`kubectl get fpeer -o wide` shows what the CRD's printer columns can express; an operator on call
needs more in one glance: why a link is red (the failing factor), which certificate it presents
and how long that certificate has left (read from the FederationCert, not the peer), and the
fingerprints that show the token swap is right. Everything comes through the API, so the table
is the same against a real cluster and the sandbox. It never reads a Secret.
"""

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TextIO

from federation_operator.adapters.k8s.client import Kube
from federation_operator.adapters.k8s.resources import FEDERATION_CERTS, FEDERATION_PEERS
from federation_operator.domain import certs
from federation_operator.domain.times import human_duration, parse_rfc3339
from federation_operator.plugin.connection import connect, namespace_of

HELP: Final = "show every peer's reachability, latency, failing factor, certificate expiry and fingerprints"
NONE: Final = "-"
# ANSI SGR codes per reachability (what `kubectl` users know from other plugins' coloured states).
COLOURS: Final = {
    "Reachable": "32",  # green
    "Slow": "33",  # yellow
    "Degraded": "33",
    "Unreachable": "31",  # red
    "Unknown": "2",  # dim
}
GREEN_STATES: Final = frozenset({"Reachable"})


def add_scope_flags(parser: argparse.ArgumentParser) -> None:
    """`-A`, as kubectl spells it; `-n` comes from the shared connection flags."""
    parser.add_argument("--all-namespaces", "-A", action="store_true", help="every namespace (overrides -n)")


def configure(parser: argparse.ArgumentParser) -> None:
    add_scope_flags(parser)


def use_colour(stream: TextIO) -> bool:
    """Colour only for a person at a terminal who has not opted out (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, code: str | None, *, colour: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if colour and code else text


def days_left(not_after: datetime, now: datetime) -> int:
    return int((not_after - now).total_seconds() // 86400)


def cert_cell(cert_name: str | None, cert: Mapping[str, Any] | None, *, now: datetime) -> str:
    """`name (Nd)` from the FederationCert's own status.notAfter; says why when there is no date."""
    if not cert_name:
        return NONE
    if cert is None:
        return f"{cert_name} (missing)"
    not_after = parse_rfc3339((cert.get("status") or {}).get("notAfter"))
    if not_after is None:
        return f"{cert_name} (not issued)"
    if not_after <= now:
        return f"{cert_name} (expired)"
    return f"{cert_name} ({days_left(not_after, now)}d)"


@dataclass(frozen=True)
class Row:
    namespace: str
    name: str
    endpoint: str
    reachability: str
    latency: str
    last_success: str
    factor: str
    cert: str
    inbound_fp: str
    outbound_fp: str


def presented_cert_name(peer: Mapping[str, Any]) -> str | None:
    """The FederationCert the peer presents: what the heartbeat last presented, else what spec names."""
    presented = ((peer.get("status") or {}).get("presentedCertificate") or {}).get("name")
    named = ((peer.get("spec") or {}).get("clientCertificateRef") or {}).get("name")
    chosen = presented or named
    return str(chosen) if chosen else None


def build_row(
    peer: Mapping[str, Any], certificates: Mapping[tuple[str, str], Mapping[str, Any]], *, now: datetime
) -> Row:
    meta = peer.get("metadata") or {}
    spec = peer.get("spec") or {}
    status = peer.get("status") or {}
    namespace = str(meta.get("namespace") or "")
    state = str(status.get("reachability") or "Unknown")
    latency = status.get("latencyMilliseconds")
    last_success = parse_rfc3339(status.get("lastSuccessTime"))
    failure = status.get("lastFailure") or {}
    factor = str(failure.get("factor") or NONE) if state not in GREEN_STATES else NONE
    cert_name = presented_cert_name(peer)
    return Row(
        namespace=namespace,
        name=str(meta.get("name") or ""),
        endpoint=str(spec.get("endpoint") or NONE),
        reachability=state,
        latency=f"{latency}ms" if isinstance(latency, int) else NONE,
        last_success=human_duration((now - last_success).total_seconds()) if last_success else NONE,
        factor=factor,
        cert=cert_cell(cert_name, certificates.get((namespace, cert_name or "")), now=now),
        inbound_fp=str((status.get("inbound") or {}).get("fingerprint") or NONE),
        outbound_fp=str((status.get("outbound") or {}).get("fingerprint") or NONE),
    )


def build_rows(
    peers: Sequence[Mapping[str, Any]], certificates: Sequence[Mapping[str, Any]], *, now: datetime
) -> list[Row]:
    by_name = {
        (str(cert["metadata"].get("namespace") or ""), str(cert["metadata"]["name"])): cert
        for cert in certificates
    }
    rows = [build_row(peer, by_name, now=now) for peer in peers]
    return sorted(rows, key=lambda row: (row.namespace, row.name))


HEADERS: Final = (
    "NAMESPACE",
    "NAME",
    "ENDPOINT",
    "REACHABILITY",
    "LATENCY",
    "LAST-SUCCESS",
    "FACTOR",
    "CERT",
    "IN-FP",
    "OUT-FP",
)


def render_table(rows: Sequence[Row], *, all_namespaces: bool, colour: bool) -> str:
    """kubectl's layout: upper-case headers, columns padded to the widest cell, three spaces apart."""
    cells = [
        [
            row.namespace,
            row.name,
            row.endpoint,
            row.reachability,
            row.latency,
            row.last_success,
            row.factor,
            row.cert,
            row.inbound_fp,
            row.outbound_fp,
        ]
        for row in rows
    ]
    headers = list(HEADERS)
    if not all_namespaces:
        headers = headers[1:]
        cells = [line[1:] for line in cells]
    state_column = headers.index("REACHABILITY")
    widths = [max(len(item) for item in column) for column in zip(headers, *cells, strict=True)]
    lines = []
    for index, line in enumerate([headers, *cells]):
        padded = []
        for column, (cell, width) in enumerate(zip(line, widths, strict=True)):
            text = cell.ljust(width) if column < len(line) - 1 else cell
            if index > 0 and column == state_column:
                # Pad first, then paint: escape codes must not count towards the width.
                text = paint(text, COLOURS.get(cell), colour=colour)
            padded.append(text)
        lines.append("   ".join(padded).rstrip())
    return "\n".join(lines) + "\n"


async def collect(kube: Kube, *, namespace: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    peers, certificates = await asyncio.gather(
        kube.list(FEDERATION_PEERS, namespace), kube.list(FEDERATION_CERTS, namespace)
    )
    return peers, certificates


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    namespace = None if args.all_namespaces else namespace_of(args)
    kube = connect(args)
    try:
        peers, certificates = await collect(kube, namespace=namespace)
    finally:
        kube.close()
    if not peers:
        where = "any namespace" if namespace is None else f"namespace {namespace}"
        print(f"No FederationPeers found in {where}.", file=sys.stderr)
        return 0
    rows = build_rows(peers, certificates, now=certs.utcnow())
    sys.stdout.write(render_table(rows, all_namespaces=namespace is None, colour=use_colour(sys.stdout)))
    return 0
