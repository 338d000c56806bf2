"""The upstream CRD schemas in tests/schemas/ are the byte-for-byte copies its README lists."""

import hashlib
import re
from pathlib import Path

from tests.harness.ingress import CRD_FILES, SCHEMAS

# A README table row: | `file.yaml` | Kind | `blob id` |
ROW = re.compile(r"^\| `(?P<file>[^`]+\.yaml)` \| [^|]+ \| `(?P<blob>[0-9a-f]{40})` \|$", re.MULTILINE)


def _git_blob_id(data: bytes) -> str:
    # What `git hash-object` prints, so the ids compare with `git rev-parse <tag>:<path>` upstream.
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324


def _listed() -> dict[str, str]:
    return {match["file"]: match["blob"] for match in ROW.finditer((SCHEMAS / "README.md").read_text())}


def test_every_schema_the_tests_use_is_listed_with_its_licence() -> None:
    listed = _listed()
    for relative in CRD_FILES.values():
        assert Path(relative).name in listed, relative
        assert (SCHEMAS / Path(relative).parts[0] / "LICENSE").is_file(), relative


def test_every_copy_has_the_upstream_blob_id() -> None:
    copies = {path.name: path for path in SCHEMAS.rglob("*.yaml")}
    assert set(copies) == set(_listed())
    for name, blob in _listed().items():
        assert _git_blob_id(copies[name].read_bytes()) == blob, f"{name} differs from the upstream file"
