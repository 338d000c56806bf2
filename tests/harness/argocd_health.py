"""Run our Argo CD health scripts the way Argo CD does: a Lua 5.1 chunk with the object as `obj`.

Argo CD evaluates a health script from `argocd-cm` with gopher-lua (Lua 5.1) and opens only the
base, table and package libraries plus a reduced `os` (argo-cd util/lua/lua.go, `runLua`);
`lupa.lua51` is the reference Lua 5.1 interpreter. The libraries Argo CD does not open for
`argocd-cm` scripts (string, math, io, coroutine, debug) are removed here, and `os` too (our
scripts must not depend on the clock), so a script that needs one fails in our tests before it
fails in a user's Argo CD.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lupa import lua51

ROOT = Path(__file__).resolve().parents[2]
CUSTOMIZATIONS = ROOT / "argocd" / "resource_customizations"
GROUP = "federation.ampora.io"
_WITHHELD = ("string", "math", "io", "os", "coroutine", "debug")


@dataclass(frozen=True)
class Health:
    status: str
    message: str


def script_path(kind: str) -> Path:
    return CUSTOMIZATIONS / GROUP / kind / "health.lua"


def _to_lua(runtime: Any, value: object) -> object:
    """JSON-shaped Python -> Lua the way Argo CD's decoder does it: lists 1-based, null -> nil."""
    if isinstance(value, Mapping):
        return runtime.table_from(
            {key: _to_lua(runtime, item) for key, item in value.items() if item is not None}
        )
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, item) for item in value])
    return value


def evaluate(kind: str, obj: Mapping[str, Any]) -> Health:
    return run(script_path(kind).read_text(), obj)


def run(script: str, obj: Mapping[str, Any]) -> Health:
    """Evaluate `script` as Argo CD does: a chunk whose return value is the health table."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=False, register_eval=False, register_builtins=False)
    lua_globals = runtime.globals()
    for name in _WITHHELD:
        lua_globals[name] = None
    lua_globals["obj"] = _to_lua(runtime, obj)
    result = runtime.execute(script)
    assert result is not None, "the health script returned nothing"
    return Health(status=str(result["status"]), message=str(result["message"] or ""))
