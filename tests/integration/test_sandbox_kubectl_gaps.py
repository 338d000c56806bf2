"""Every kubectl command docs/sandbox.md lists under "kubectl against the sandbox" does what it says.

The table is the user's map of where the sandbox differs from a cluster, so it is checked, not
trusted: each row's command runs in bash with the real kubectl against a sandbox started with the
`federation-operator sandbox` command (after `kubectl apply -f examples/federationcert.yaml`), and
must work or fail as its "outcome" cell says, with the quoted text in its output.
"""

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.sandbox_process import Sandbox, run, start_sandbox, stop_sandbox

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH"),
]

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## kubectl against the sandbox"
ROW = re.compile(r"^\| `(?P<command>(?:[^`]|\\\|)+)` \| (?P<outcome>works|fails): `(?P<text>[^`]+)` \|", re.M)


@dataclass(frozen=True)
class Row:
    command: str
    works: bool
    text: str


def documented_rows() -> list[Row]:
    page = (ROOT / "docs" / "sandbox.md").read_text()
    section = page[page.index(SECTION) :]
    return [
        # In a Markdown table a pipe is written `\|`; the shell wants the pipe itself.
        Row(match["command"].replace("\\|", "|"), match["outcome"] == "works", match["text"])
        for match in ROW.finditer(section)
    ]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, Path]]:
    workdir = tmp_path_factory.mktemp("gaps")
    started = start_sandbox("eu", workdir / "eu")
    try:
        (workdir / "examples").symlink_to(ROOT / "examples")
        setup = run(
            "kubectl apply -f examples/federationcert.yaml && "
            "kubectl wait --for=condition=Ready fcert/federation-client --timeout=60s",
            started,
            workdir,
        )
        assert setup.returncode == 0, setup.stdout + setup.stderr
        yield started, workdir
    finally:
        stop_sandbox(started)


def test_the_table_lists_commands_that_work_and_commands_that_fail() -> None:
    rows = documented_rows()
    # Guards the parsing: a table the regex no longer reads would make the test below vacuous.
    assert len(rows) >= 10
    assert {row.works for row in rows} == {True, False}


@pytest.mark.parametrize("row", documented_rows(), ids=lambda row: row.command)
def test_each_listed_command_has_the_documented_outcome(sandbox: tuple[Sandbox, Path], row: Row) -> None:
    started, workdir = sandbox
    result = run(row.command, started, workdir)
    output = result.stdout + result.stderr
    assert (result.returncode == 0) == row.works, output
    assert row.text in output
