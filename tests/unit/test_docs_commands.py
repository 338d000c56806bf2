"""Every `federation-operator ...` and `kubectl federation ...` command the docs name exists.

The commands are taken from the user-facing pages (README.md, docs/*.md, the chart README): each
command in a fenced `sh` (or unlabelled) block, every inline code span, and every table row whose
first cell is a command (the flags in the other cells belong to it). Each subcommand must exist in the CLI's
parser and each `--flag` in that subcommand's parser, so a renamed or removed flag fails here
before a user copies it.
"""

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from federation_operator import cli
from federation_operator.plugin import cli as plugin_cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "charts/federation-operator/README.md",
]
PROGRAMS = {
    ("federation-operator",): cli.build_parser,
    ("python", "-m", "federation_operator"): cli.build_parser,
    ("kubectl", "federation"): plugin_cli.build_parser,
    ("kubectl-federation",): plugin_cli.build_parser,
}
# Where a command line ends for our purposes: pipes, redirections, shell lists, comments.
SHELL_STOP = {"|", "||", "&&", ";", "#", ">", ">>", "2>&1", "<"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")
FLAG = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


@dataclass(frozen=True)
class Mention:
    where: str
    text: str
    extra_flags: tuple[str, ...] = ()


def _tokens(text: str) -> list[str]:
    try:
        words = shlex.split(text, comments=False)
    except ValueError:
        words = text.split()
    out: list[str] = []
    for word, following in zip(words, [*words[1:], ""], strict=True):
        if word == "|" and following.lstrip("[").startswith("-"):
            continue  # a synopsis's alternative (`--inbound | --outbound`), not a pipe
        if word in SHELL_STOP or word.startswith(("#", ">")):
            break
        out.append(word.strip("[]"))
    return out


def _block_commands(block: str) -> list[str]:
    # A command starts at column 0; indented lines continue it (after a `\\` or in a usage
    # synopsis whose lines end in comments).
    commands: list[str] = []
    for line in block.splitlines():
        code = line.split(" #", 1)[0].rstrip().removesuffix("\\")
        if line[:1].isspace() and commands:
            commands[-1] += " " + code.strip()
        elif code.strip():
            commands.append(code.strip())
    return commands


def mentions(page: Path) -> list[Mention]:
    text = page.read_text()
    name = str(page.relative_to(ROOT))
    found: list[Mention] = []
    for match in FENCE.finditer(text):
        if match[1] in ("", "sh", "bash", "shell", "console"):
            found.extend(Mention(f"{name} (code block)", command) for command in _block_commands(match[2]))
    prose = FENCE.sub("", text)
    for line in prose.splitlines():
        cells = line.strip().strip("|").split("|")
        if line.startswith("|") and len(cells) > 1:
            head = INLINE.search(cells[0])
            if head and _program(_tokens(head[1])) is not None:
                flags = tuple(FLAG.findall(" ".join(re.findall(r"`([^`]+)`", "|".join(cells[1:])))))
                found.append(Mention(f"{name} (table)", head[1], flags))
    for match in INLINE.finditer(prose):
        found.append(Mention(name, match[1].replace("\n", " ")))
    return [mention for mention in found if _program(_tokens(mention.text)) is not None]


def _program(words: list[str]) -> tuple[tuple[str, ...], argparse.ArgumentParser] | None:
    for prefix in PROGRAMS:
        if tuple(words[: len(prefix)]) == prefix:
            return prefix, PARSERS[prefix]
    return None


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def problems(mention: Mention) -> list[str]:
    words = _tokens(mention.text)
    found = _program(words)
    assert found is not None
    prefix, parser = found
    rest = words[len(prefix) :]
    commands = _subparsers(parser)
    if not rest or rest[0].startswith("-") or rest[0].isupper() or rest[0] == "...":
        # The program alone, its own flags (--help), or a placeholder such as COMMAND or ...
        flags, sub = [w for w in rest if w.startswith("-")], parser
    elif rest[0] not in commands:
        return [f"{mention.where}: `{mention.text}`: no subcommand {rest[0]!r} (has {sorted(commands)})"]
    else:
        sub = commands[rest[0]]
        flags = [w for w in rest[1:] if w.startswith("-")]
    known = set(sub._option_string_actions)
    return [
        f"{mention.where}: `{mention.text}`: {flag.split('=')[0]} is not a flag of `{' '.join(prefix)}"
        f"{' ' + rest[0] if sub is not parser else ''}`"
        for flag in [*flags, *mention.extra_flags]
        if flag.split("=")[0] not in known
    ]


PARSERS = {prefix: build() for prefix, build in PROGRAMS.items()}


def test_the_docs_name_commands_at_all() -> None:
    # Guards the extraction itself: if it found nothing, the test below would prove nothing.
    assert len([m for page in PAGES for m in mentions(page)]) > 20


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_documented_command_and_flag_exists(page: Path) -> None:
    assert [problem for mention in mentions(page) for problem in problems(mention)] == []
