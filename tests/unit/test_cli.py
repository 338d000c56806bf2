"""The command line: every subcommand answers --help for the person running it, `run` builds the
configuration it says, and the devkit's commands are found through their entry points or explained
when the devkit is missing."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from federation_operator import cli
from federation_operator.plugin import cli as plugin_cli


@pytest.mark.parametrize("command", sorted(cli.commands()))
def test_every_command_has_help(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "federation_operator", command, "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_sandbox_help_says_it_is_not_a_cluster() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "federation_operator", "sandbox", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "not a kubernetes cluster" in " ".join(result.stdout.split()).lower()


def test_run_with_server_takes_the_server_options(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(
        [
            "run",
            "--site",
            "eu",
            "-n",
            "fed",
            "--with-server",
            "--port",
            "9443",
            "--tls-cert",
            str(tmp_path / "c"),
            "--tls-key",
            str(tmp_path / "k"),
            "--http-port",
            "0",
        ]
    )
    config, server = cli.run_configs(args)
    assert config.namespaces == ("fed",)
    assert server is not None
    assert (server.site, server.port, server.http_port) == ("eu", 9443, None)
    assert server.namespaces == ("fed",)


def test_run_without_server_runs_none() -> None:
    _, server = cli.run_configs(cli.build_parser().parse_args(["run"]))
    assert server is None


def test_devkit_commands_come_from_its_entry_points() -> None:
    commands = cli.devkit_commands()
    assert commands["demo"].main.__module__ == "federation_devkit.demo"
    assert commands["sandbox"].main.__module__ == "federation_devkit.sandbox_command"


def test_without_the_devkit_its_commands_say_how_to_install_it() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_DEVKIT, "demo", "--no-color"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "federation-devkit" in result.stderr
    assert "./hack/bootstrap.sh" in result.stderr
    assert "Traceback" not in result.stderr


# The product as it is installed in the image: no distribution registers the devkit's commands.
_WITHOUT_DEVKIT = """
import sys
from federation_operator import cli
cli.entry_points = lambda **_: []
sys.exit(cli.main(sys.argv[1:]))
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


PROGRAMS = {"federation-operator": cli.build_parser(), "kubectl federation": plugin_cli.build_parser()}
HELP_PAGES = [
    pytest.param(parser, id=f"{program} {name}".strip())
    for program, top in PROGRAMS.items()
    for name, parser in [("", top), *_subparsers(top).items()]
]
# Words from the implementation that mean nothing to someone running the command.
INTERNALS = ("configure(", "main(args", "OperatorRegistry", "kopf.", "registry", "module")


@pytest.mark.parametrize("parser", HELP_PAGES)
def test_every_help_page_says_what_the_command_does_with_an_example(parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    assert parser.description, "no description"
    assert "\nexample:\n" in text
    assert [word for word in INTERNALS if word in text] == []
