"""A pytest plugin that fails the run when a test is skipped for a reason CI does not allow.

A skip hides a behaviour nobody checked. CI installs every tool the suite drives (see .ci/run), so
the only skips left there are the ones that cannot be helped (no Docker engine for kind), listed
with their reason in an allow-list file: one regular expression per line, matched against the
start of the skip reason; `#` starts a comment.
Use: `pytest -p tests.harness.skip_policy --allowed-skips FILE`.
"""

import re
from pathlib import Path

import pytest


def read_allow_list(text: str) -> list[re.Pattern[str]]:
    """The patterns of an allow-list file; blank lines and `#` comments are ignored."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [re.compile(line) for line in lines if line]


def skip_reason(report: pytest.TestReport) -> str:
    # A skip's longrepr is (path, line, "Skipped: <reason>").
    if isinstance(report.longrepr, tuple):
        return report.longrepr[2].removeprefix("Skipped: ")
    return str(report.longrepr)


class SkipPolicy:
    """Records every skip of the run and refuses those no allow-list pattern matches."""

    def __init__(self, *, allowed: list[re.Pattern[str]], source: str) -> None:
        self.allowed = allowed
        self.source = source
        self.refused: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        reason = skip_reason(report)
        if not any(pattern.match(reason) for pattern in self.allowed):
            self.refused.append((report.nodeid, reason))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.refused and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.refused:
            return
        terminalreporter.section("skips not in the allow-list", red=True)
        for nodeid, reason in self.refused:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(
            f"{len(self.refused)} test(s) skipped for a reason not allowed: install what they need "
            f"(.ci/run) or allow the reason in {self.source}"
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--allowed-skips",
        metavar="FILE",
        help="fail the run if a test is skipped for a reason no pattern in FILE matches",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--allowed-skips")
    if path:
        policy = SkipPolicy(allowed=read_allow_list(Path(path).read_text()), source=path)
        config.pluginmanager.register(policy, "skip-policy")
