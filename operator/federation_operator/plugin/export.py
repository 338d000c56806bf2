"""`kubectl federation export PEER`: the bundle the other side applies, with the swap done here.

"The secret I use outbound is what you check inbound": the bundle holds a FederationPeer pointing
back at us with our client certificate pinned, and a Secret in which our inbound token is the
remote's `outbound` and our outbound token the remote's `inbound`. Our inbound token exists in
plaintext only in the handoff Secret, so export consumes it: the handoff is deleted once the
bundle is printed, and the operator sees the deletion and clears `status.handoff`.

The bundle is complete, so the remote's peer works once applied: `--client-certificate` (which of
the remote's FederationCerts it presents) is required, and `--server-ca` adds the CA of our
endpoint's server certificate when a public CA did not issue it.
"""

import argparse
import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml
from cryptography import x509

from federation_operator.adapters.k8s.client import ApiError, Kube
from federation_operator.adapters.k8s.credentials import read_outbound
from federation_operator.adapters.k8s.resources import FEDERATION_CERTS, FEDERATION_PEERS, SECRETS
from federation_operator.domain import api, objects, tokens
from federation_operator.domain.credentials import handoff_secret, peer_secrets
from federation_operator.domain.tokens import SecretText
from federation_operator.plugin import gitops_export
from federation_operator.plugin.connection import PluginError, connect, namespace_of

HELP: Final = "print a bundle for the remote site (FederationPeer + swapped tokens); consumes the handoff"
CREDENTIALS_SUFFIX: Final = "-credentials"
SERVER_CA_SUFFIX: Final = "-server-ca"
SERVER_CA_KEY: Final = "ca.crt"
REMOTE_INBOUND_KEY: Final = "inbound"
REMOTE_OUTBOUND_KEY: Final = "outbound"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("peer", help="the FederationPeer here")
    parser.add_argument("--name", required=True, help="the name of the FederationPeer on the remote")
    parser.add_argument("--endpoint", required=True, help="our public https:// URL, as the remote reaches it")
    parser.add_argument(
        "--client-certificate",
        required=True,
        help="the FederationCert on the remote that it presents to us (ask the remote admin: "
        "`kubectl get fcert` there); without it the remote's calls would carry no certificate",
    )
    parser.add_argument(
        "--server-ca",
        help="PEM file of the CA of our federation endpoint's server certificate, when it is not a "
        "public CA: the bundle then carries it in a ConfigMap and the remote trusts it",
    )
    parser.add_argument("--remote-namespace", help="namespace for the bundle's objects (default: none)")
    parser.add_argument(
        "--gitops",
        metavar="DIR",
        type=Path,
        help="write the remote's files into DIR instead of printing a bundle: a FederationPeer safe to "
        "commit (hash and reference, no token) and a separate Secret file for its secret tool",
    )


@dataclass(frozen=True)
class Handover:
    """What the remote needs, read from here. `remote_outbound` is absent when only its hash exists."""

    certificate_pem: str
    remote_inbound: SecretText
    remote_outbound: SecretText | None = field(default=None)


def build_bundle(
    *,
    remote_name: str,
    endpoint: str,
    handover: Handover,
    client_certificate: str | None = None,
    server_ca_pem: str | None = None,
    remote_namespace: str | None = None,
) -> list[dict[str, Any]]:
    """The remote's objects. Pure; the Secret holds tokens, so the result must only go to stdout."""
    secret_name = remote_name + CREDENTIALS_SUFFIX
    metadata: dict[str, Any] = {"name": remote_name}
    if remote_namespace:
        metadata["namespace"] = remote_namespace
    spec: dict[str, Any] = {
        "endpoint": endpoint,
        "remoteCertificates": [{"pem": handover.certificate_pem}],
        "outbound": {"secretRef": {"name": secret_name, "key": REMOTE_OUTBOUND_KEY}},
    }
    if client_certificate:
        spec["clientCertificateRef"] = {"name": client_certificate}
    bundle: list[dict[str, Any]] = []
    if server_ca_pem:
        ca_name = remote_name + SERVER_CA_SUFFIX
        spec["serverTrust"] = {"caBundleRef": {"kind": "ConfigMap", "name": ca_name, "key": SERVER_CA_KEY}}
        bundle.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {**metadata, "name": ca_name},
                "data": {SERVER_CA_KEY: server_ca_pem},
            }
        )
    if handover.remote_outbound is not None:
        spec["inbound"] = {"secretRef": {"name": secret_name, "key": REMOTE_INBOUND_KEY}}
        bundle.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {**metadata, "name": secret_name},
                "data": objects.encode_secret_data(
                    {
                        REMOTE_OUTBOUND_KEY: handover.remote_outbound.reveal().encode("ascii"),
                        REMOTE_INBOUND_KEY: handover.remote_inbound.reveal().encode("ascii"),
                    }
                ),
            }
        )
    else:
        # Our inbound token is gone (only its hash is kept): the remote keeps the outbound token
        # it already has in its Secret and learns only the hash of our new outbound token.
        spec["inbound"] = {"secretHash": tokens.hash_token(handover.remote_inbound)}
    bundle.append({"apiVersion": api.API_VERSION, "kind": api.PEER_KIND, "metadata": metadata, "spec": spec})
    return bundle


def render_bundle(bundle: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(bundle, sort_keys=False)


def _rotate_hint(peer: str, namespace: str) -> str:
    return (
        f"Issue new tokens with `kubectl federation rotate {peer} --inbound -n {namespace}` (add a second "
        "rotate with --outbound to renew what we present too), then run export again before the new "
        "handoff expires."
    )


async def read_handover(kube: Kube, *, namespace: str, peer_name: str) -> tuple[Handover, Mapping[str, Any]]:
    """What the bundle needs, and the handoff Secret it consumes. Raises PluginError with the fix."""
    peer = await kube.get(FEDERATION_PEERS, namespace, peer_name)
    if peer is None:
        raise PluginError(f"FederationPeer {peer_name} not found in namespace {namespace}")
    status = peer.get("status") or {}
    handoff_name = str(
        (status.get("handoff") or {}).get("secretName") or peer_secrets.handoff_secret_name(peer_name)
    )
    handoff = await kube.get(SECRETS, namespace, handoff_name)
    observed = peer_secrets.observe_peer_secret(
        handoff, name=handoff_name, peer_name=peer_name, peer_uid=peer["metadata"]["uid"]
    )
    expires = handoff_secret.handoff_expiry(observed, status)
    expired = expires is None or expires <= datetime.now(UTC)
    if handoff is None or not observed.managed or expired:
        raise PluginError(
            f"FederationPeer {peer_name} has no handoff to export: Secret {handoff_name} was already "
            "consumed by an earlier export or has expired (spec.credentials.handoffTTL). The plaintext "
            "of our inbound token exists nowhere any more. " + _rotate_hint(peer_name, namespace)
        )
    pem = await _our_certificate(kube, namespace=namespace, peer=peer)
    remote_inbound = handoff_secret.handoff_token(observed, api.HANDOFF_REMOTE_INBOUND_KEY)
    if remote_inbound is None:
        read = await read_outbound(
            kube, namespace=namespace, peer_name=peer_name, spec=peer.get("spec") or {}
        )
        if read.current is None:
            raise PluginError(f"FederationPeer {peer_name}: no outbound token to hand over: {read.problem}")
        remote_inbound = read.current
    return (
        Handover(
            certificate_pem=pem,
            remote_inbound=remote_inbound,
            remote_outbound=handoff_secret.handoff_token(observed, api.HANDOFF_REMOTE_OUTBOUND_KEY),
        ),
        handoff or {},
    )


async def _our_certificate(kube: Kube, *, namespace: str, peer: Mapping[str, Any]) -> str:
    name = ((peer.get("spec") or {}).get("clientCertificateRef") or {}).get("name")
    peer_name = peer["metadata"]["name"]
    if not name:
        raise PluginError(
            f"FederationPeer {peer_name} has no spec.clientCertificateRef: the remote must pin the "
            "certificate we present. Create a FederationCert and set clientCertificateRef.name first."
        )
    cert = await kube.get(FEDERATION_CERTS, namespace, str(name))
    pem = ((cert or {}).get("status") or {}).get("certificate")
    if not pem:
        raise PluginError(
            f"FederationCert {name} (clientCertificateRef of {peer_name}) has no issued certificate yet "
            f"(status.certificate); check `kubectl get fcert {name} -n {namespace}`"
        )
    return str(pem)


def _print_bundle(args: argparse.Namespace, handover: Handover, *, server_ca_pem: str | None) -> None:
    text = render_bundle(
        build_bundle(
            remote_name=args.name,
            endpoint=args.endpoint,
            handover=handover,
            client_certificate=args.client_certificate,
            server_ca_pem=server_ca_pem,
            remote_namespace=args.remote_namespace,
        )
    )
    sys.stdout.write(text)
    sys.stdout.flush()
    if handover.remote_outbound is None:
        print(
            "note: our inbound token is kept only as a hash here, so the bundle carries no Secret; the "
            f"remote keeps its Secret {args.name}{CREDENTIALS_SUFFIX} for what it presents to us",
            file=sys.stderr,
        )


def _write_gitops(args: argparse.Namespace, handover: Handover, *, server_ca_pem: str | None) -> None:
    files = gitops_export.build_gitops_files(
        remote_name=args.name,
        endpoint=args.endpoint,
        certificate_pem=handover.certificate_pem,
        remote_inbound=handover.remote_inbound,
        remote_outbound=handover.remote_outbound,
        client_certificate=args.client_certificate,
        server_ca=(args.name + SERVER_CA_SUFFIX, SERVER_CA_KEY, server_ca_pem) if server_ca_pem else None,
        remote_namespace=args.remote_namespace,
    )
    for path in gitops_export.write_gitops_files(args.gitops, files):
        print(f"wrote {path}", file=sys.stderr)
    if files.secret is None:
        print(
            "note: our inbound token is kept only as a hash here, so there is no Secret file; the remote "
            f"keeps its Secret {args.name}{gitops_export.OUTBOUND_SUFFIX} for what it presents to us",
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


def read_ca_bundle(path: str) -> str:
    """The PEM CA certificate(s) in `path`, checked to parse; PluginError says what is wrong."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise PluginError(f"cannot read {path}: {error}") from None
    try:
        x509.load_pem_x509_certificates(text.encode("ascii"))
    except ValueError:
        raise PluginError(f"{path} holds no PEM certificate (expected our server's CA certificate)") from None
    return text.strip() + "\n"


async def _run(args: argparse.Namespace) -> int:
    server_ca_pem = read_ca_bundle(args.server_ca) if args.server_ca else None
    namespace = namespace_of(args)
    kube = connect(args)
    try:
        handover, handoff = await read_handover(kube, namespace=namespace, peer_name=args.peer)
        if args.gitops is not None:
            _write_gitops(args, handover, server_ca_pem=server_ca_pem)
        else:
            _print_bundle(args, handover, server_ca_pem=server_ca_pem)
        meta = handoff["metadata"]
        try:
            # The deletion is the signal: the operator sees it and clears status.handoff.
            await kube.delete(SECRETS, namespace, meta["name"], uid=meta["uid"])
        except ApiError as error:
            print(
                f"error: the bundle was handed out but the handoff Secret {meta['name']} was not deleted "
                f"({error}); delete it with `kubectl delete secret {meta['name']} -n {namespace}`",
                file=sys.stderr,
            )
            return 1
        return 0
    finally:
        kube.close()
