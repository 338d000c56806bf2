"""Start an in-memory Kubernetes API emulation on loopback, with our CRDs, and the operator against it.

This is NOT a Kubernetes cluster: it is an emulation of the API server, for development, tests and
demos when no cluster is at hand. Objects live in memory and are lost on exit; nothing runs Pods;
there is no authentication or RBAC. Point kubectl at it with the kubeconfig it writes; use a real
cluster (kind, or your own) for anything else. It stays up until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from federation_operator.sandbox.emulator import load_crds
from federation_operator.sandbox.server import Sandbox

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", type=Path, required=True, help="write the sandbox's kubeconfig here")
    parser.add_argument("--port", type=int, default=0, help="API port on 127.0.0.1 (default 0: a free port)")
    parser.add_argument(
        "--namespace", default="default", help="namespace to create and make the kubeconfig's default"
    )
    parser.add_argument("--no-operator", action="store_true", help="run the API emulation alone")
    parser.add_argument(
        "--federation-port",
        type=int,
        help="port for the in-process federation server (accepted now; served once the server lands)",
    )
    parser.add_argument(
        "--crds", type=Path, help="load CRDs from this file or directory instead of the package's"
    )
    parser.add_argument("--verbose", "-v", action="store_true")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_serve(args))
    return 0


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    crds = load_crds(args.crds) if args.crds else None
    async with Sandbox(port=args.port, crds=crds) as sandbox:
        sandbox.api.ensure_namespace(args.namespace)
        path = sandbox.write_kubeconfig(args.kubeconfig, namespace=args.namespace)
        print(f"Sandbox Kubernetes API (in-memory emulation, not a cluster): {sandbox.url}", flush=True)
        print(f"export KUBECONFIG={path.resolve()}", flush=True)
        if args.federation_port is not None:
            print(f"--federation-port {args.federation_port}: no federation server to start yet", flush=True)
        operator = None if args.no_operator else await _start_operator(path)
        try:
            await stop.wait()
        finally:
            if operator is not None:
                # The operator's requests are served by this loop: stop it from a worker thread.
                await loop.run_in_executor(None, operator.stop)
    print("Sandbox stopped; its objects are gone.", flush=True)


async def _start_operator(kubeconfig: Path) -> Any:
    """The operator in its own thread and loop (kopf's habit), watching all namespaces."""
    try:
        runner = importlib.import_module("federation_operator.runner")
    except ImportError as exc:
        print(f"operator not available ({exc}); serving the API alone", file=sys.stderr, flush=True)
        return None
    config = runner.OperatorConfig(kubeconfig=kubeconfig)
    thread = runner.OperatorThread(config)
    # Starting waits for kopf to be ready, which needs this loop to answer its API calls.
    await asyncio.get_running_loop().run_in_executor(None, thread.start)
    print("Operator running against the sandbox (all namespaces).", flush=True)
    return thread
