"""`federation-operator` entry point: one subcommand per component, each owned by its module.

Each component module exposes `configure(parser)` and `main(args) -> int`, so adding a command is
one line here and the command's options live beside the code that reads them.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence

from federation_operator import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("federation_operator.runner", "run the operator (kopf) against the current kubeconfig"),
    "serve": ("federation_operator.server.main", "run the federation server (ping + forward-auth)"),
    "sandbox": (
        "federation_operator.sandbox.main",
        "start an in-memory Kubernetes API emulation (not a cluster) with the operator",
    ),
    "demo": ("federation_operator.demo", "two linked sites (EU, US) in sandboxes, end to end"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="federation-operator", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(
            name,
            help=help_text,
            description=module.__doc__,
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
