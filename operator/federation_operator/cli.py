"""`federation-operator` entry point: one subcommand per component; this module composes them.

Each component exposes `configure(parser)` and `main(args) -> int`, so the command's options live
beside the code that reads them. This module is the top of the package: it is the only one that
puts the operator and the federation server together (`run --with-server`). What `--help` says is
written for the person running the command: what it does and an example, not how it is built.

The development commands (`sandbox`, `demo`) live in the separate `federation-devkit` distribution,
which registers them under the entry-point group `federation_operator.commands` (each entry a
module with SUMMARY, DESCRIPTION, EXAMPLE, configure and main); the product never imports the
devkit, it only finds what is installed and says how to install what is not.
"""

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Final

from federation_operator import __version__
from federation_operator.adapters.logs import CANCELLED_HANDLERS, configure_logging
from federation_operator.adapters.memory import fix_mmap_threshold
from federation_operator.controller import runner
from federation_operator.controller.config import OperatorConfig
from federation_operator.server import main as server_main

DESCRIPTION = """\
Federate two sites: each issues an mTLS client certificate (FederationCert), pins the other
side's, and shares two secrets per link (FederationPeer). `run` is the operator, `serve` the
federation server that checks every inbound call; `sandbox` and `demo` try it without a cluster.
The kubectl plugin is `kubectl federation` (kubectl-federation)."""

ENTRY_POINT_GROUP: Final = "federation_operator.commands"
# Named here only so that `--help` lists them and a missing devkit is explained, not a bare
# "invalid choice".
DEVKIT_COMMANDS: Final = {
    "sandbox": "start an in-memory Kubernetes API emulation (not a cluster) with the operator",
    "demo": "two linked sites (EU, US) in sandboxes, end to end",
}
DEVKIT_MISSING: Final = (
    "`federation-operator {name}` is development tooling from the federation-devkit package,\n"
    "which is not installed here. From a checkout of this repository: ./hack/bootstrap.sh\n"
    "(or: pip install -e ./devkit), then run it again."
)


@dataclass(frozen=True)
class Command:
    summary: str
    description: str
    example: str
    configure: Callable[[argparse.ArgumentParser], None]
    main: Callable[[argparse.Namespace], int]


def configure_run(parser: argparse.ArgumentParser) -> None:
    runner.configure(parser)
    parser.add_argument(
        "--with-server", action="store_true", help="also run the federation server in-process"
    )
    server_main.add_listener_arguments(parser.add_argument_group("federation server (with --with-server)"))


def run_configs(args: argparse.Namespace) -> tuple[OperatorConfig, server_main.ServerConfig | None]:
    """The operator's configuration and, with `--with-server`, the in-process server's."""
    server = server_main.config_from_args(args) if args.with_server else None
    return runner.config_from_args(args), server


async def run_operator_with_server(
    *, operator: OperatorConfig, server: server_main.ServerConfig | None, stop: asyncio.Event
) -> None:
    """The operator until `stop` is set; the federation server beside it, stopped once it is done."""
    server_stop = asyncio.Event()
    serving: asyncio.Task[None] | None = None
    if server is not None:
        serving = asyncio.create_task(
            server_main.run_server(config=server, stop=server_stop), name="federation-server"
        )
    try:
        await runner.run_operator(config=operator, stop=stop)
    finally:
        server_stop.set()
        if serving is not None:
            await serving


def main_run(args: argparse.Namespace) -> int:
    configure_logging(verbose=args.verbose)
    fix_mmap_threshold()
    stop = asyncio.Event()

    async def _run() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        operator, server = run_configs(args)
        await run_operator_with_server(operator=operator, server=server, stop=stop)

    asyncio.run(_run())
    summary = CANCELLED_HANDLERS.summary()
    if summary is not None:
        logging.getLogger(__name__).info(summary)
    return 0


COMMANDS: Final = {
    "run": Command(
        summary="run the operator against the current kubeconfig",
        description=(
            "Run the operator: it issues the certificates of FederationCerts, the tokens of\n"
            "FederationPeers, pings every peer every 30 s and reports reachability in their status,\n"
            "and (with --ingress-provider) configures the ingress so only pinned certificates pass.\n"
            "In a cluster the Helm chart runs it; outside, it uses the current kubeconfig."
        ),
        example=(
            "federation-operator run --namespace federation --site eu\n"
            "  federation-operator run --with-server --port 8443 --tls-cert server.crt --tls-key server.key"
        ),
        configure=configure_run,
        main=main_run,
    ),
    "serve": Command(
        summary="run the federation server that answers the other sites' pings",
        description=(
            "Run the federation server: it answers GET /api/federation/ping and the ingress's\n"
            "forward-auth calls, and lets a call through only when its client certificate is pinned\n"
            "and its secret matches, both for the same peer. --port terminates mTLS itself; --http-port\n"
            "serves plain HTTP behind a proxy that passes the client certificate in a header."
        ),
        example=(
            "federation-operator serve --site eu --port 8443 --tls-cert server.crt --tls-key server.key\n"
            "  federation-operator serve --site eu --http-port 8080 --client-cert-source xfcc \\\n"
            "      --trusted-proxy 10.0.0.0/8"
        ),
        configure=server_main.configure,
        main=server_main.main,
    ),
}


def _missing_devkit(name: str, summary: str) -> Command:
    message = DEVKIT_MISSING.format(name=name)

    def configure(parser: argparse.ArgumentParser) -> None:
        # Whatever the real command would take: the answer is the same pointer to the devkit.
        parser.set_defaults(takes_any_arguments=True)

    def main(_: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return 2

    return Command(
        summary=f"{summary} (needs federation-devkit)",
        description=message,
        example="./hack/bootstrap.sh   # in a checkout: installs federation-devkit into .venv",
        configure=configure,
        main=main,
    )


def devkit_commands() -> dict[str, Command]:
    """The commands the installed devkit registers, and a pointer to it for those it would."""
    installed = {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}
    found: dict[str, Command] = {}
    for name in [*DEVKIT_COMMANDS, *sorted(installed.keys() - DEVKIT_COMMANDS.keys())]:
        entry = installed.get(name)
        if entry is None:
            found[name] = _missing_devkit(name, DEVKIT_COMMANDS[name])
            continue
        command: Any = entry.load()
        found[name] = Command(
            summary=command.SUMMARY,
            description=command.DESCRIPTION,
            example=command.EXAMPLE,
            configure=command.configure,
            main=command.main,
        )
    return found


def commands() -> dict[str, Command]:
    return {**COMMANDS, **devkit_commands()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="federation-operator",
        description=DESCRIPTION,
        epilog="example:\n  federation-operator demo\n  federation-operator run --help",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=__version__)
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in commands().items():
        sub = subcommands.add_parser(
            name,
            help=command.summary,
            description=command.description,
            epilog=f"example:\n  {command.example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.configure(sub)
        sub.set_defaults(handler=command.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "takes_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
