"""`federation-operator` entry point: one subcommand per component, each owned by its module.

Each component module exposes `configure(parser)` and `main(args) -> int`, so adding a command is
one entry in `COMMANDS` and the command's options live beside the code that reads them. What
`--help` says is written here, for the person running the command: what it does and an example,
not how it is built (the module docstrings are for developers).
"""

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from federation_operator import __version__

DESCRIPTION = """\
Federate two sites: each issues an mTLS client certificate (FederationCert), pins the other
side's, and shares two secrets per link (FederationPeer). `run` is the operator, `serve` the
federation server that checks every inbound call; `sandbox` and `demo` try it without a cluster.
The kubectl plugin is `kubectl federation` (kubectl-federation)."""


@dataclass(frozen=True)
class Command:
    module: str
    summary: str
    description: str
    example: str


COMMANDS: dict[str, Command] = {
    "run": Command(
        "federation_operator.runner",
        "run the operator against the current kubeconfig",
        "Run the operator: it issues the certificates of FederationCerts, the tokens of\n"
        "FederationPeers, pings every peer every 30 s and reports reachability in their status,\n"
        "and (with --ingress-provider) configures the ingress so only pinned certificates pass.\n"
        "In a cluster the Helm chart runs it; outside, it uses the current kubeconfig.",
        "federation-operator run --namespace federation --site eu\n"
        "  federation-operator run --with-server --port 8443 --tls-cert server.crt --tls-key server.key",
    ),
    "serve": Command(
        "federation_operator.server.main",
        "run the federation server that answers the other sites' pings",
        "Run the federation server: it answers GET /api/federation/ping and the ingress's\n"
        "forward-auth calls, and lets a call through only when its client certificate is pinned\n"
        "and its secret matches, both for the same peer. --port terminates mTLS itself; --http-port\n"
        "serves plain HTTP behind a proxy that passes the client certificate in a header.",
        "federation-operator serve --site eu --port 8443 --tls-cert server.crt --tls-key server.key\n"
        "  federation-operator serve --site eu --http-port 8080 --client-cert-source xfcc \\\n"
        "      --trusted-proxy 10.0.0.0/8",
    ),
    "sandbox": Command(
        "federation_operator.sandbox.main",
        "start an in-memory Kubernetes API emulation (not a cluster) with the operator",
        "Start an in-memory emulation of the Kubernetes API on 127.0.0.1, with our CRDs, the\n"
        "operator and a federation server, and write a kubeconfig for kubectl. This is NOT a\n"
        "Kubernetes cluster: objects live in memory and are lost on exit, nothing runs Pods, there\n"
        "is no authentication. docs/sandbox.md lists what kubectl can and cannot do against it.\n"
        "It runs until Ctrl-C.",
        "federation-operator sandbox --kubeconfig /tmp/sandbox.kubeconfig\n"
        "  export KUBECONFIG=/tmp/sandbox.kubeconfig; kubectl apply -f examples/federationcert.yaml",
    ),
    "demo": Command(
        "federation_operator.demo",
        "two linked sites (EU, US) in sandboxes, end to end",
        "Run two sites, EU and US, on this machine (each a sandbox with its operator and federation\n"
        "server), link them as an admin would (certificates, peer, export, apply), watch both links\n"
        "turn Reachable, stop and restart one side, rotate a secret while the link stays green, and\n"
        "tear everything down.",
        "federation-operator demo\n"
        "  federation-operator demo --workdir /tmp/demo   # keeps kubeconfigs, CAs and audit logs",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="federation-operator",
        description=DESCRIPTION,
        epilog="example:\n  federation-operator demo\n  federation-operator run --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        module = importlib.import_module(command.module)
        sub = commands.add_parser(
            name,
            help=command.summary,
            description=command.description,
            epilog=f"example:\n  {command.example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.configure(sub)
        sub.set_defaults(module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.module.main(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
