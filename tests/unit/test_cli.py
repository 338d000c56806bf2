"""The command line: every subcommand answers --help, and `run` builds the configuration it says."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from federation_operator import cli
from federation_operator.plugin import cli as plugin_cli
from federation_operator.runner import config_from_args


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
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
    config = config_from_args(args)
    assert config.namespaces == ("fed",)
    assert config.server is not None
    assert (config.server.site, config.server.port, config.server.http_port) == ("eu", 9443, None)
    assert config.server.namespaces == ("fed",)


def test_run_without_server_runs_none() -> None:
    assert config_from_args(cli.build_parser().parse_args(["run"])).server is None


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
