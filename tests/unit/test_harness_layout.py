"""The tests' own layout: helpers and fixtures live once, in tests/harness; test modules import
only from there.

A test module that imports another (or a conftest) couples two tests' fates and hides where a
helper lives; a second copy of a helper drifts from the first. These checks read the sources, so
they also catch an import inside a function.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
HARNESS = TESTS / "harness"


def _python_files() -> Iterator[Path]:
    yield from sorted(path for path in TESTS.rglob("*.py") if "schemas" not in path.parts)


def _imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in `path`, relative ones resolved against its package."""
    inside = TESTS.parent in path.parents
    package = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts[:-1]) if inside else ""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            yield node.lineno, base
            # `from tests import kstatus` imports the module tests.kstatus
            yield from ((node.lineno, f"{base}.{alias.name}") for alias in node.names)


def _is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def test_no_test_module_or_conftest_is_imported_by_anything() -> None:
    offences = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {module}"
        for path in _python_files()
        for line, module in _imported(path)
        if module.startswith("tests.") and _is_test_module(module)
    ]
    assert not offences, "shared helpers belong in tests/harness:\n" + "\n".join(offences)


def test_tests_import_helpers_from_the_harness_only() -> None:
    offences = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {module}"
        for path in _python_files()
        for line, module in _imported(path)
        if module.startswith("tests.") and not module.startswith("tests.harness")
    ]
    assert not offences, "\n".join(offences)


def test_every_helper_module_is_in_the_harness_and_the_harness_holds_no_tests() -> None:
    outside = [
        str(path.relative_to(TESTS))
        for path in _python_files()
        if HARNESS not in path.parents
        and not path.name.startswith("test_")
        and path.name not in ("conftest.py", "__init__.py")
    ]
    assert not outside, f"helper modules outside tests/harness: {outside}"
    assert not list(HARNESS.rglob("test_*.py")), "tests/harness holds helpers, not tests"


def _fixture_names(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr == "fixture":
                    yield node.name


# pytest's override idiom, on purpose: a module may give `site` its own operator settings.
SPECIALISED = {"site"}


def test_no_test_module_redefines_a_harness_fixture() -> None:
    shared = set(_fixture_names(HARNESS / "fixtures.py"))
    assert {"site_factory", "keys", "helm"} <= shared
    shared -= SPECIALISED
    redefined = [
        f"{path.relative_to(TESTS.parent)}: {name}"
        for path in _python_files()
        if HARNESS not in path.parents
        for name in _fixture_names(path)
        if name in shared
    ]
    assert not redefined, "\n".join(redefined)


def test_the_checks_see_an_offending_import(tmp_path: Path) -> None:
    """The import reader itself: every spelling of importing a test module is seen."""
    module = tmp_path / "sample.py"
    module.write_text(
        "from tests.integration.test_export import issued_pem\n"
        "import tests.integration.conftest\n"
        "from tests import kstatus\n"
        "def late():\n"
        "    from tests.unit import test_certs\n"
    )
    found = [name for _, name in _imported(module)]
    assert "tests.integration.test_export" in found
    assert "tests.integration.conftest" in found
    assert "tests.kstatus" in found
    assert "tests.unit.test_certs" in found
