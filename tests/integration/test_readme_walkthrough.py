"""The README's "Linking two sites" block, run as written against two sandboxes, ends Reachable.

Two `federation-operator sandbox` processes stand in for the EU and US clusters. The block is read
from README.md (between the walkthrough markers) and each command runs in bash with real kubectl
and the installed `kubectl-federation`, under the kubeconfig of the site its `# on ...` comment
names. The only edits are the ones the README itself prescribes for this setting: the example
endpoints become the sandboxes' federation servers, and `--server-ca` is added to `pin` and
`export` because a sandbox's server certificate comes from its own CA. The last section (`get`,
`check`) runs once both sides are Reachable; `check` must pass on both sides.
"""

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.sandbox_process import Sandbox, run, start_sandbox, stop_sandbox
from tests.harness.waiting import wait_for

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH"),
]

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- walkthrough:begin -->\n```sh\n(.*?)```\n<!-- walkthrough:end -->", re.DOTALL)
README_ENDPOINTS = {"eu": "https://federation.eu.example.com", "us": "https://federation.us.example.com"}
# The default heartbeat is 30 s, and EU's first ping goes out before US knows EU: the second one
# (30 s later) is the first that can succeed. Generous for a loaded machine, still bounded.
REACHABLE_WITHIN = 150.0


@dataclass
class Step:
    sites: tuple[str, ...]
    command: str


def walkthrough_steps(readme: str) -> list[list[Step]]:
    """The block's commands grouped by `# on ...` section, each with the sites it runs on."""
    match = BLOCK.search(readme)
    assert match, "README.md has no walkthrough block between the markers"
    sections: list[list[Step]] = []
    sites: tuple[str, ...] = ()
    for line in match[1].replace("\\\n", " ").splitlines():
        heading = re.match(r"# on (each site|EU|US)\b", line)
        if heading:
            sites = ("eu", "us") if heading[1] == "each site" else (heading[1].lower(),)
            sections.append([])
        elif line.strip():
            assert sections, f"command before any '# on ...' heading: {line}"
            sections[-1].append(Step(sites, " ".join(line.split())))
    return sections


@pytest.fixture
def sandboxes(tmp_path: Path) -> Iterator[dict[str, Sandbox]]:
    started: dict[str, Sandbox] = {}
    try:
        for name in ("eu", "us"):
            started[name] = start_sandbox(name, tmp_path / name)
        yield started
    finally:
        for sandbox in started.values():
            stop_sandbox(sandbox)


def adapted(command: str, *, sandboxes: dict[str, Sandbox]) -> str:
    """The README's own adaptation for endpoints whose certificate comes from a private CA."""
    for name, example in README_ENDPOINTS.items():
        command = command.replace(example, sandboxes[name].endpoint)
    if command.startswith("kubectl federation pin "):
        command += f" --server-ca {sandboxes['us'].ca_file}"
    if command.startswith("kubectl federation export "):
        # `> file` ends the command: the flag goes before the redirection.
        head, redirect, target = command.partition(" > ")
        command = f"{head} --server-ca {sandboxes['eu'].ca_file}{redirect}{target}"
    return command


def reachability(sandbox: Sandbox, peer: str, workdir: Path) -> str:
    result = run(f"kubectl get fpeer {peer} -o jsonpath='{{.status.reachability}}'", sandbox, workdir)
    return result.stdout.strip()


def test_the_readme_walkthrough_links_two_sandboxes_reachable_both_ways(
    sandboxes: dict[str, Sandbox], tmp_path: Path
) -> None:
    sections = walkthrough_steps((ROOT / "README.md").read_text())
    *setup, final = sections
    # The handed-over files (us-cert.yaml, for-us.yaml) live in one directory both admins use;
    # `examples/` is the repository's, as in a checkout.
    workdir = tmp_path / "handover"
    workdir.mkdir()
    (workdir / "examples").symlink_to(ROOT / "examples")
    transcript: list[str] = []
    for section in setup:
        for step in section:
            for site in step.sites:
                command = adapted(step.command, sandboxes=sandboxes)
                result = run(command, sandboxes[site], workdir)
                transcript.append(f"[{site}] $ {command}\n{result.stdout}{result.stderr}")
                assert result.returncode == 0, "\n".join(transcript)

    links = {"eu": "us-region", "us": "eu-region"}
    for site, peer in links.items():
        wait_for(
            lambda site=site, peer=peer: reachability(sandboxes[site], peer, workdir) == "Reachable",
            timeout=REACHABLE_WITHIN,
            interval=1.0,
            message=f"{site}'s {peer} Reachable",
        )

    assert final[0].sites == ("eu", "us")
    for step in final:
        for site in step.sites:
            result = run(adapted(step.command, sandboxes=sandboxes), sandboxes[site], workdir)
            assert result.returncode == 0, f"[{site}] {step.command}\n{result.stdout}{result.stderr}"
            if step.command.startswith("kubectl get federationpeers"):
                assert re.search(rf"^{links[site]}\s.*\sReachable\s", result.stdout, re.MULTILINE), (
                    result.stdout
                )
            if step.command.startswith("kubectl federation check"):
                assert "[FAIL]" not in result.stdout, result.stdout
