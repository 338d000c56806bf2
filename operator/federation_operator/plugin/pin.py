"""`kubectl federation pin PEER --certificate FILE`: pin the remote's client certificate by PEM.

A peer's pins name the certificate the remote presents. A PEM pin works with every server mode
(docs/server.md, "Which pin kinds each mode accepts"); a thumbprint alone does not pass direct
TLS or any ingress provider, so the certificate itself is what the remote admin hands over: the
PEM of their FederationCert (`kubectl get fcert NAME -o jsonpath='{.status.certificate}'`) or the
FederationCert as `kubectl get fcert NAME -o yaml` prints it. This command reads either, checks it
is a certificate, and adds it to the peer's `spec.remoteCertificates`, creating the peer when it
does not exist yet (then `--endpoint` and `--client-certificate` are needed: a peer without them
can neither be reached nor present a certificate). A thumbprint pin of the same certificate is
replaced by the PEM pin; pinning a certificate twice changes nothing. `--server-ca` stores the CA
of the remote's server certificate in a ConfigMap `<peer>-server-ca` and points
`spec.serverTrust` at it, for a remote whose endpoint is not certified by a public CA.
"""

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from federation_operator.adapters.k8s.client import Conflict, Kube
from federation_operator.adapters.k8s.resources import CONFIGMAPS, FEDERATION_PEERS
from federation_operator.domain import api, certs, pinning
from federation_operator.plugin.connection import PluginError, connect, namespace_of
from federation_operator.plugin.export import SERVER_CA_KEY, SERVER_CA_SUFFIX, read_ca_bundle

HELP: Final = (
    "pin the remote's client certificate (its FederationCert's PEM) on a peer, creating the peer if needed"
)
MAX_PINS: Final = 8
_ATTEMPTS: Final = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("peer", help="the FederationPeer here")
    parser.add_argument(
        "--certificate",
        required=True,
        help="the remote's certificate: a PEM file, or its FederationCert as YAML/JSON; - reads stdin",
    )
    parser.add_argument("--endpoint", help="the remote's https:// URL (needed to create the peer)")
    parser.add_argument(
        "--client-certificate", help="our FederationCert presented to the remote (needed to create the peer)"
    )
    parser.add_argument(
        "--server-ca",
        help="PEM file of the CA of the remote's server certificate, when it is not a public CA "
        "(kept in ConfigMap <peer>-server-ca; spec.serverTrust points at it)",
    )


class NotACertificate(PluginError):
    pass


def certificate_from_text(text: str) -> str:
    """The PEM in `text`: a PEM certificate, or a FederationCert object carrying status.certificate."""
    pem: object = text
    if "-----BEGIN CERTIFICATE-----" not in text or "kind:" in text or '"kind"' in text:
        try:
            obj = yaml.safe_load(text)
        except yaml.YAMLError:
            obj = None
        if not isinstance(obj, Mapping) or obj.get("kind") != api.CERT_KIND:
            raise NotACertificate("the file is neither a PEM certificate nor a FederationCert")
        pem = (obj.get("status") or {}).get("certificate")
        if not isinstance(pem, str):
            name = (obj.get("metadata") or {}).get("name")
            raise NotACertificate(f"FederationCert {name} has no status.certificate yet: is it Ready?")
    assert isinstance(pem, str)
    try:
        certs.describe_pem(pem)
    except certs.InvalidCertificate as error:
        raise NotACertificate(f"not a usable certificate: {error}") from None
    return pem.strip() + "\n"


@dataclass(frozen=True)
class Pinned:
    pins: list[dict[str, Any]]
    changed: bool


def add_pem_pin(pins: Sequence[Mapping[str, Any]], pem: str) -> Pinned:
    """`pins` with `pem` pinned: a thumbprint pin of the same certificate becomes the PEM pin."""
    thumbprint = certs.describe_pem(pem).thumbprint
    result: list[dict[str, Any]] = []
    found = False
    changed = False
    for pin in pins:
        same = pinning.parse_pin(pin).thumbprint == thumbprint
        if same and not found:
            found = True
            changed = "pem" not in pin
            result.append({"pem": pem} if changed else dict(pin))
        elif not same:
            result.append(dict(pin))
        else:
            changed = True  # a duplicate pin of the same certificate: dropped
    if not found:
        result.append({"pem": pem})
        changed = True
    if len(result) > MAX_PINS:
        raise PluginError(
            f"a peer holds at most {MAX_PINS} pins; remove one the remote no longer presents "
            "(kubectl edit fpeer) first"
        )
    return Pinned(pins=result, changed=changed)


def new_peer(*, name: str, pem: str, endpoint: str | None, client_certificate: str | None) -> dict[str, Any]:
    if not endpoint or not client_certificate:
        raise PluginError(
            f"FederationPeer {name} does not exist; to create it give --endpoint (the remote's https:// URL) "
            "and --client-certificate (the FederationCert we present to the remote, `kubectl get fcert`)"
        )
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.PEER_KIND,
        "metadata": {"name": name},
        "spec": {
            "endpoint": endpoint,
            "remoteCertificates": [{"pem": pem}],
            "clientCertificateRef": {"name": client_certificate},
        },
    }


def server_trust(peer_name: str) -> dict[str, Any]:
    name = peer_name + SERVER_CA_SUFFIX
    return {"caBundleRef": {"kind": "ConfigMap", "name": name, "key": SERVER_CA_KEY}}


async def store_server_ca(kube: Kube, *, namespace: str, peer_name: str, ca_pem: str) -> None:
    name = peer_name + SERVER_CA_SUFFIX
    data = {SERVER_CA_KEY: ca_pem}
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    try:
        await kube.create(CONFIGMAPS, namespace, body)
    except Conflict:
        await kube.patch(CONFIGMAPS, namespace, name, {"data": data})


async def pin(
    kube: Kube,
    *,
    namespace: str,
    peer_name: str,
    pem: str,
    endpoint: str | None = None,
    client_certificate: str | None = None,
    server_ca_pem: str | None = None,
) -> str:
    """Pin `pem` on the peer (created if missing); returns what was done, in a sentence."""
    info = certs.describe_pem(pem)
    what = f"{info.thumbprint} (CN {info.subject})" if info.subject else info.thumbprint
    if server_ca_pem is not None:
        # Before the peer points at it, so the first ping already verifies against it.
        await store_server_ca(kube, namespace=namespace, peer_name=peer_name, ca_pem=server_ca_pem)
    for _ in range(_ATTEMPTS):
        peer = await kube.get(FEDERATION_PEERS, namespace, peer_name)
        if peer is None:
            body = new_peer(name=peer_name, pem=pem, endpoint=endpoint, client_certificate=client_certificate)
            if server_ca_pem is not None:
                body["spec"]["serverTrust"] = server_trust(peer_name)
            try:
                await kube.create(FEDERATION_PEERS, namespace, body)
            except Conflict:
                continue  # created meanwhile: pin on the existing one
            return f"created FederationPeer {namespace}/{peer_name} pinning {what}"
        spec = peer.get("spec") or {}
        pinned = add_pem_pin(spec.get("remoteCertificates") or [], pem)
        changes: dict[str, Any] = {}
        if pinned.changed:
            changes["remoteCertificates"] = pinned.pins
        if endpoint and endpoint != spec.get("endpoint"):
            changes["endpoint"] = endpoint
        if client_certificate and client_certificate != (spec.get("clientCertificateRef") or {}).get("name"):
            changes["clientCertificateRef"] = {"name": client_certificate}
        if server_ca_pem is not None and spec.get("serverTrust") != server_trust(peer_name):
            # A merge patch: null removes insecureSkipVerify, which may not stand beside a CA.
            changes["serverTrust"] = {**server_trust(peer_name), "insecureSkipVerify": None}
        if not changes:
            return f"FederationPeer {namespace}/{peer_name} already pins {what}; nothing changed"
        # The resourceVersion makes the merge patch a compare-and-swap: pins added by someone
        # else meanwhile are re-read, never overwritten.
        body = {"metadata": {"resourceVersion": peer["metadata"]["resourceVersion"]}, "spec": changes}
        try:
            await kube.patch(FEDERATION_PEERS, namespace, peer_name, body)
        except Conflict:
            continue
        count = f"{len(pinned.pins)} pin{'s' if len(pinned.pins) != 1 else ''}"
        return f"pinned {what} on FederationPeer {namespace}/{peer_name} ({count})"
    raise PluginError(f"FederationPeer {peer_name} kept changing while pinning; run the command again")


def read_certificate(source: str) -> str:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise PluginError(f"cannot read {source}: {error}") from None
    return certificate_from_text(text)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    pem = read_certificate(args.certificate)
    server_ca_pem = read_ca_bundle(args.server_ca) if args.server_ca else None
    namespace = namespace_of(args)
    kube = connect(args)
    try:
        print(
            await pin(
                kube,
                namespace=namespace,
                peer_name=args.peer,
                pem=pem,
                endpoint=args.endpoint,
                client_certificate=args.client_certificate,
                server_ca_pem=server_ca_pem,
            )
        )
    finally:
        kube.close()
    return 0
