"""`kubectl-federation SUBCOMMAND ...`: argument parsing and dispatch only.

A subcommand is a module with `HELP: str`, `configure(parser)` and `run(args) -> int`; adding one
is one module and one line in `SUBCOMMANDS`.
"""

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from federation_operator.adapters.k8s.client import ApiError
from federation_operator.plugin import check, conformance, export, importing, pin, ping, rotate, status
from federation_operator.plugin.connection import PluginError, add_connection_flags

SUBCOMMANDS: dict[str, ModuleType] = {
    "pin": pin,
    "export": export,
    "import": importing,
    "rotate": rotate,
    "status": status,
    "check": check,
    "ping": ping,
    "probe": conformance,
}


# What --help shows under each command: the commands a user types, in the order they need them.
EXAMPLES: dict[str, str] = {
    "pin": (
        "kubectl federation pin us-region --certificate us-cert.yaml \\\n"
        "      --endpoint https://federation.us.example.com --client-certificate federation-client\n"
        "  (us-cert.yaml: the remote admin's `kubectl get fcert federation-client -o yaml`)"
    ),
    "export": (
        "kubectl federation export us-region --name eu-region \\\n"
        "      --endpoint https://federation.eu.example.com \\\n"
        "      --client-certificate federation-client > for-us.yaml\n"
        "  (the remote admin imports it: kubectl federation import for-us.yaml)"
    ),
    "import": (
        "kubectl federation import for-us.yaml -n federation\n"
        "  (keeps the inbound token as its hash; nothing readable in annotations)"
    ),
    "rotate": (
        "kubectl federation rotate us-region --inbound --wait\n"
        "  (then hand the new token over: kubectl federation export us-region ...)"
    ),
    "status": "kubectl federation status -A",
    "check": "kubectl federation check -A --ping",
    "ping": "kubectl federation ping us-region -n federation",
    "probe": "kubectl federation probe https://federation.us.example.com --certificate federation-client",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl federation",
        description="Manage federation peers: status, check, ping, probe, pin, export, import, rotate.",
        epilog="example:\n  kubectl federation status -A\n  kubectl federation check",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        sub = commands.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog=f"example:\n  {EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_connection_flags(sub)
        module.configure(sub)
        run: Callable[[argparse.Namespace], int] = module.run
        sub.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ApiError as error:
        print(f"error: the Kubernetes API refused: {error}", file=sys.stderr)
        return 1
    return result
