"""`kubectl federation import FILE`: apply an export bundle keeping only what this side needs.

The bundle `kubectl federation export` prints carries, in its Secret, both swapped tokens in
plaintext. Applied with `kubectl apply -f`, our inbound token (what the other side presents to
us) stays readable in that Secret, and in the `kubectl.kubernetes.io/last-applied-configuration`
annotation of the Secret too (issue #13). Import instead keeps:

- the inbound token as its hash only: the FederationPeer gets `spec.inbound.secretHash`;
- the outbound token (what we present) in a Secret holding just that key;
- no annotation at all: objects are created (or their fields patched) through the API, never
  applied client-side.

The bundle's shape is the contract of `plugin/export.py` (a FederationPeer; a Secret with keys
`inbound` and `outbound` when the exporter still had our inbound token; ConfigMaps with public
material such as the exporter's server CA, created as they are); anything else is refused
without echoing a value.
"""

import argparse
import asyncio
import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from federation_operator.adapters.k8s.client import Conflict, Kube
from federation_operator.adapters.k8s.resources import CONFIGMAPS, FEDERATION_PEERS, SECRETS
from federation_operator.domain import api, objects, tokens
from federation_operator.plugin.connection import PluginError, connect, namespace_of
from federation_operator.plugin.export import REMOTE_INBOUND_KEY, REMOTE_OUTBOUND_KEY

HELP: Final = (
    "create the peer of an export bundle keeping the inbound token as a hash and no plaintext in "
    "any annotation"
)


LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the bundle `kubectl federation export` printed")


@dataclass(frozen=True)
class ImportPlan:
    peer: dict[str, Any]
    secret: dict[str, Any] | None  # the outbound token only
    config_maps: tuple[dict[str, Any], ...]  # public material, as exported


def plan_import(documents: list[Mapping[str, Any]], *, namespace: str) -> ImportPlan:
    """What to create. Pure; raises PluginError."""
    peers = [doc for doc in documents if doc.get("kind") == api.PEER_KIND]
    secrets = [doc for doc in documents if doc.get("kind") == "Secret"]
    config_maps = tuple(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": str(doc["metadata"]["name"]), "namespace": namespace},
            "data": dict(doc.get("data") or {}),
        }
        for doc in documents
        if doc.get("kind") == "ConfigMap"
    )
    if len(peers) != 1 or len(secrets) > 1 or len(peers) + len(secrets) + len(config_maps) != len(documents):
        raise PluginError(
            "not an export bundle: expected one FederationPeer, at most one Secret, and ConfigMaps"
        )
    spec: dict[str, Any] = dict(peers[0].get("spec") or {})
    peer: dict[str, Any] = {
        "apiVersion": api.API_VERSION,
        "kind": api.PEER_KIND,
        "metadata": {"name": str(peers[0]["metadata"]["name"]), "namespace": namespace},
        "spec": spec,
    }
    if not secrets:
        return ImportPlan(peer=peer, secret=None, config_maps=config_maps)
    secret_name = str(secrets[0]["metadata"]["name"])
    data = secrets[0].get("data") or {}
    try:
        values = {key: base64.b64decode(str(data[key]), validate=True).decode("ascii") for key in data}
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise PluginError(f"Secret {secret_name} in the bundle is not base64 ASCII") from None
    inbound, outbound = values.get(REMOTE_INBOUND_KEY), values.get(REMOTE_OUTBOUND_KEY)
    if inbound is None or not tokens.is_token(inbound) or outbound is None or not tokens.is_token(outbound):
        raise PluginError(
            f"Secret {secret_name} in the bundle needs keys {REMOTE_INBOUND_KEY} and "
            f"{REMOTE_OUTBOUND_KEY}, each a token"
        )
    spec["inbound"] = {"secretHash": tokens.hash_token(tokens.SecretText(inbound))}
    spec["outbound"] = {"secretRef": {"name": secret_name, "key": REMOTE_OUTBOUND_KEY}}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": secret_name, "namespace": namespace},
        "data": objects.encode_secret_data({REMOTE_OUTBOUND_KEY: outbound.encode("ascii")}),
    }
    return ImportPlan(peer=peer, secret=secret, config_maps=config_maps)


async def _create_or_update(kube: Kube, *, namespace: str, plan: ImportPlan) -> None:
    peer, secret = plan.peer, plan.secret
    for config_map in plan.config_maps:
        try:
            await kube.create(CONFIGMAPS, namespace, config_map)
        except Conflict:
            await kube.patch(
                CONFIGMAPS, namespace, config_map["metadata"]["name"], {"data": config_map["data"]}
            )
    # The Secret first: a peer that points at a missing Secret would report SecretNotFound.
    if secret is not None:
        try:
            await kube.create(SECRETS, namespace, secret)
        except Conflict:
            # Also undoes an earlier `kubectl apply` of the bundle: its plaintext inbound key and
            # the last-applied annotation that repeats it.
            cleanup = {REMOTE_INBOUND_KEY: None, **secret["data"]}
            await kube.patch(
                SECRETS,
                namespace,
                secret["metadata"]["name"],
                {"metadata": {"annotations": {LAST_APPLIED: None}}, "data": cleanup},
            )
    try:
        await kube.create(FEDERATION_PEERS, namespace, peer)
    except Conflict:
        # A merge patch: the other way of stating a side (secretRef / secretHash) must be removed.
        spec = dict(peer["spec"])
        for side in ("inbound", "outbound"):
            if isinstance(spec.get(side), Mapping):
                other = "secretRef" if "secretHash" in spec[side] else "secretHash"
                spec[side] = {**spec[side], other: None}
        await kube.patch(
            FEDERATION_PEERS,
            namespace,
            peer["metadata"]["name"],
            {"metadata": {"annotations": {LAST_APPLIED: None}}, "spec": spec},
        )


def run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    try:
        documents = [doc for doc in yaml.safe_load_all(args.file.read_text()) if doc]
    except (OSError, yaml.YAMLError) as error:
        raise PluginError(f"cannot read bundle {args.file}: {type(error).__name__}") from None
    plan = plan_import(documents, namespace=namespace)
    peer, secret = plan.peer, plan.secret
    kube = connect(args)
    try:
        asyncio.run(_create_or_update(kube, namespace=namespace, plan=plan))
    finally:
        kube.close()
    kept = f" and Secret {secret['metadata']['name']} (outbound token only)" if secret else ""
    print(
        f"imported FederationPeer {peer['metadata']['name']}{kept} in namespace {namespace}; "
        "the inbound token is kept as its hash"
    )
    return 0
