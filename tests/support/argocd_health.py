"""Run the Argo CD health checks (gitops/argocd/<group>/<Kind>/health.lua) as Argo CD does.

Argo CD's Lua VM (gopher-lua, Lua 5.1) gets the live object as the global ``obj`` (JSON objects
as tables, arrays as 1-based tables, null as nil) and takes the table the script returns:
``{status = "Healthy" | "Progressing" | "Degraded" | "Suspended" | "Missing" | "Unknown",
message = "..."}``. Here the same script runs in Lua 5.1 through lupa, in a fresh runtime per call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HEALTH_DIR = REPO / "gitops" / "argocd"
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def script_path(group: str, kind: str) -> Path:
    return HEALTH_DIR / group / kind / "health.lua"


def _to_lua(lua, value: Any):
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value if v is not None])
    return value


def health(obj: dict, *, group: str | None = None, kind: str | None = None) -> dict[str, str]:
    """The health Argo CD would show for ``obj`` (a dict as the API returns it)."""
    from lupa import lua51

    group = group or obj["apiVersion"].split("/")[0]
    kind = kind or obj["kind"]
    lua = lua51.LuaRuntime(register_eval=False, unpack_returned_tuples=False)
    lua.globals().obj = _to_lua(lua, json.loads(json.dumps(obj)))
    result = lua.execute(script_path(group, kind).read_text())
    if result is None or not hasattr(result, "items"):
        raise AssertionError(f"{kind} health.lua returned {result!r}, not a table")
    out = {str(k): v for k, v in dict(result).items()}
    if out.get("status") not in STATUSES or not isinstance(out.get("message"), str):
        raise AssertionError(f"{kind} health.lua returned {out!r}")
    return out
