"""Session-wide test setup.

CPython 3.11.7 can fail with "AST constructor recursion depth mismatch" when pytest's assertion
rewriter parses a module in one thread while another thread (an operator or sandbox under test)
compiles code too. Importing the lazily loaded heavy modules here, before any test starts a
thread, keeps all of that parsing on the main thread.
"""

from pathlib import Path
from typing import Final

import hypothesis
import hypothesis.strategies  # noqa: F401
import kopf  # noqa: F401
import kubernetes.client  # noqa: F401
import pytest

import federation_operator.adapters.k8s.client
import federation_operator.controller.runner  # noqa: F401

# The shared fixtures (tests/harness/fixtures.py), available to every test without an import.
pytest_plugins = ["tests.harness.fixtures"]

RELIABILITY: Final = Path(__file__).parent / "reliability"


LONG_RUNNING: Final = ("reliability", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/reliability/ carries the `reliability` marker, so that the tier can be
    selected (`-m reliability`) or left out (`-m "not reliability"`) without naming its folder.

    Modules with long-running tests go first: the parallel workers (`--dist loadscope`) take
    modules in this order, and a long module started last would keep one worker busy while the
    other idles. Each module keeps its own order.
    """
    for item in items:
        if item.path.is_relative_to(RELIABILITY):
            item.add_marker(pytest.mark.reliability)
    long_modules = {
        item.path for item in items if any(item.get_closest_marker(name) for name in LONG_RUNNING)
    }
    items.sort(key=lambda item: item.path not in long_modules)
