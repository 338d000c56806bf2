"""Start an in-memory Kubernetes API emulation on loopback, with our CRDs, and the operator against it.

This is NOT a Kubernetes cluster: it is an emulation of the API server, for development, tests and
demos when no cluster is at hand. Objects live in memory and are lost on exit; nothing runs Pods;
there is no authentication or RBAC. Point kubectl at it with the kubeconfig it writes; use a real
cluster (kind, or your own) for anything else. It stays up until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from federation_devkit.sandbox.emulator import load_crds
from federation_devkit.sandbox.server import Sandbox
from federation_operator.adapters.logs import configure_logging

logger = logging.getLogger(__name__)

# What `federation-operator sandbox --help` says, for the person running it.
SUMMARY = "start an in-memory Kubernetes API emulation (not a cluster) with the operator"
DESCRIPTION = (
    "Start an in-memory emulation of the Kubernetes API on 127.0.0.1, with our CRDs, the\n"
    "operator and a federation server, and write a kubeconfig for kubectl. This is NOT a\n"
    "Kubernetes cluster: objects live in memory and are lost on exit, nothing runs Pods, there\n"
    "is no authentication. docs/sandbox.md lists what kubectl can and cannot do against it.\n"
    "It runs until Ctrl-C."
)
EXAMPLE = (
    "federation-operator sandbox --kubeconfig /tmp/sandbox.kubeconfig\n"
    "  export KUBECONFIG=/tmp/sandbox.kubeconfig; kubectl apply -f examples/federationcert.yaml"
)


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
        default=0,
        help="federation server port on 127.0.0.1, TLS with a generated server certificate whose CA "
        "is written next to the kubeconfig (default 0: a free port)",
    )
    parser.add_argument("--site", default="sandbox", help="this site's name, told to remotes in ping replies")
    parser.add_argument(
        "--crds", type=Path, help="load CRDs from this file or directory instead of the package's"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs and one line per API call")


def main(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    if not args.verbose:
        # One line per API call drowns what the operator says; --verbose brings them back.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
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
        operator = server = None
        if not args.no_operator:
            server = await _start_server(args, kubeconfig=path)
            operator = await _start_operator(path, site=args.site)
        try:
            await stop.wait()
        finally:
            # Both talk to the API this loop serves: stop them from worker threads.
            for part in (operator, server):
                if part is not None:
                    await loop.run_in_executor(None, part.stop)
    print("Sandbox stopped; its objects are gone.", flush=True)


async def _start_server(args: argparse.Namespace, *, kubeconfig: Path) -> Any:
    """The federation server, terminating TLS itself; its CA is written next to the kubeconfig."""
    from federation_devkit import localsite

    def start() -> Any:
        directory = kubeconfig.resolve().parent
        ca_file = localsite.write_server_identity(directory, args.site)
        port = args.federation_port or localsite.free_port()
        config = localsite.local_server_config(
            name=args.site, directory=directory, kubeconfig=kubeconfig, port=port
        )
        server = localsite.ServerThread(config).start()
        print(f"Federation server: https://{localsite.LOOPBACK}:{port} (CA: {ca_file})", flush=True)
        return server

    # The server's start waits for its index, which needs this loop to answer the API calls.
    return await asyncio.get_running_loop().run_in_executor(None, start)


async def _start_operator(kubeconfig: Path, *, site: str) -> Any:
    """The operator in its own thread and loop (kopf's habit), watching all namespaces."""
    from federation_operator.controller.config import OperatorConfig
    from federation_operator.controller.threads import OperatorThread

    config = OperatorConfig(kubeconfig=kubeconfig, site=site)
    thread = OperatorThread(config)
    # Starting waits for kopf to be ready, which needs this loop to answer its API calls.
    await asyncio.get_running_loop().run_in_executor(None, thread.start)
    print("Operator running against the sandbox (all namespaces).", flush=True)
    return thread
