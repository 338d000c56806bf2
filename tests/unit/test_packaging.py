"""The production image carries the operator, the server and the plugin, not the devkit.

The sandbox, local sites and the demo are the `federation-devkit` distribution (devkit/); their
dependencies (kmock, cel-python and what it pulls in) and the test-only jsonschema must not reach
requirements/runtime.lock, which is all the Dockerfile installs besides the product's own wheel.
"""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEVKIT_ONLY = {
    "federation-devkit",
    "kmock",
    "cel-python",
    "google-re2",
    "lark",
    "pendulum",
    "jmespath",
    "jsonschema",
    "jsonschema-specifications",
}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(_canonical(re.split(r"[=<>!~;\[ ]", line, maxsplit=1)[0]))
    return names


def test_runtime_lock_holds_no_devkit_dependency() -> None:
    runtime = _locked(ROOT / "requirements" / "runtime.lock")
    assert {"kopf", "kubernetes", "aiohttp", "cryptography", "h11"} <= runtime
    assert runtime & DEVKIT_ONLY == set()


def test_dev_lock_still_has_what_the_devkit_and_tests_need() -> None:
    dev = _locked(ROOT / "requirements" / "dev.lock")
    assert DEVKIT_ONLY - {"federation-devkit"} <= dev
    assert _locked(ROOT / "requirements" / "runtime.lock") <= dev


def test_the_product_declares_no_devkit_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_canonical(re.split(r"[=<>!~;\[ ]", dep, maxsplit=1)[0]) for dep in project["dependencies"]}
    assert declared & DEVKIT_ONLY == set()


def _dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_image_installs_only_the_runtime_lock_and_the_product() -> None:
    instructions = _dockerfile_instructions()
    installs = [line for line in instructions if line.startswith("RUN") and "pip install" in line]
    assert installs, "the Dockerfile installs nothing?"
    requirement_files = {match for line in installs for match in re.findall(r"-r\s+(\S+)", line)}
    assert requirement_files == {"requirements/runtime.lock"}
    copies = [line for line in instructions if line.startswith("COPY") and "--from" not in line]
    assert not [line for line in copies if "devkit" in line or re.search(r"COPY\s+\.\s", line)]
    assert not [line for line in installs if "devkit" in line or "dev.lock" in line or "[dev]" in line]
