"""`kubectl federation rotate PEER --inbound | --outbound`: ask the operator for new tokens.

The request is an annotation, `federation.ampora.io/rotate: <sides>:<nonce>`, not a spec field:
GitOps tools see no drift, and the operator removes exactly the request it acted on (a JSON patch
that tests the value), so a second request made meanwhile is not lost. The nonce also lets the
operator resume an interrupted rotation with the tokens it already generated for it.
"""

import argparse
import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import Final

from federation_operator.adapters.k8s.client import Kube
from federation_operator.adapters.k8s.resources import FEDERATION_PEERS
from federation_operator.domain import api
from federation_operator.domain.credentials import rotation_request
from federation_operator.plugin.connection import PluginError, connect, namespace_of

HELP: Final = "issue new inbound or outbound tokens for a peer (a new handoff to export)"
_POLL_SECONDS: Final = 0.2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("peer", help="the FederationPeer")
    sides = parser.add_mutually_exclusive_group(required=True)
    sides.add_argument("--inbound", action="store_true", help="new token the remote presents to us")
    sides.add_argument("--outbound", action="store_true", help="new token we present to the remote")
    parser.add_argument("--wait", action="store_true", help="wait until the operator has acted")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to --wait (default 60)")


def new_nonce(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)


async def request_rotation(
    kube: Kube, *, namespace: str, peer_name: str, inbound: bool, outbound: bool
) -> str:
    if await kube.get(FEDERATION_PEERS, namespace, peer_name) is None:
        raise PluginError(f"FederationPeer {peer_name} not found in namespace {namespace}")
    nonce = new_nonce(datetime.now(UTC))
    value = rotation_request.rotation_value(inbound=inbound, outbound=outbound, nonce=nonce)
    await kube.patch(
        FEDERATION_PEERS, namespace, peer_name, {"metadata": {"annotations": {api.ANNOTATION_ROTATE: value}}}
    )
    return value


async def wait_until_handled(
    kube: Kube, *, namespace: str, peer_name: str, value: str, within: float
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        peer = await kube.get(FEDERATION_PEERS, namespace, peer_name)
        if peer is None:
            raise PluginError(f"FederationPeer {peer_name} was deleted")
        if (peer["metadata"].get("annotations") or {}).get(api.ANNOTATION_ROTATE) != value:
            return
        await asyncio.sleep(_POLL_SECONDS)
    raise PluginError(
        f"the operator did not act on the rotation of {peer_name} within {within:g}s; is it running? "
        f"The request stays in annotation {api.ANNOTATION_ROTATE}."
    )


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    namespace = namespace_of(args)
    kube = connect(args)
    side = "inbound" if args.inbound else "outbound"
    try:
        value = await request_rotation(
            kube, namespace=namespace, peer_name=args.peer, inbound=args.inbound, outbound=args.outbound
        )
        print(f"requested {side} rotation of FederationPeer {args.peer} ({api.ANNOTATION_ROTATE}={value})")
        if args.wait:
            await wait_until_handled(
                kube, namespace=namespace, peer_name=args.peer, value=value, within=args.timeout
            )
            print(f"rotated; hand the new token(s) over with `kubectl federation export {args.peer} ...`")
    finally:
        kube.close()
    return 0
