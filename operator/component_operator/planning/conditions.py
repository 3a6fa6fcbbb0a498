"""metav1.Condition bookkeeping, as pure functions.

A condition's lastTransitionTime changes only when its status changes (the convention of
cert-manager, Kueue and the Kubernetes API guidelines), so writing the same observation
twice yields an identical status and no write at all.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def set_condition(
    conditions: list[dict[str, Any]] | None,
    type_: str,
    status: bool | str,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """Return a new list with the condition ``type_`` set; others are kept in order."""
    status_text = status if isinstance(status, str) else ("True" if status else "False")
    result: list[dict[str, Any]] = []
    found = False
    for cond in conditions or []:
        if cond.get("type") != type_:
            result.append(dict(cond))
            continue
        found = True
        transition = cond.get("lastTransitionTime") if cond.get("status") == status_text else None
        result.append(_condition(type_, status_text, reason, message, generation, transition or now or now_rfc3339()))
    if not found:
        result.append(_condition(type_, status_text, reason, message, generation, now or now_rfc3339()))
    return result


def get_condition(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    for cond in conditions or []:
        if cond.get("type") == type_:
            return cond
    return None


def is_true(conditions: list[dict[str, Any]] | None, type_: str) -> bool:
    cond = get_condition(conditions, type_)
    return bool(cond) and cond.get("status") == "True"


def _condition(type_: str, status: str, reason: str, message: str, generation: int | None, ltt: str) -> dict[str, Any]:
    cond: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": ltt,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def status_changes(current: dict[str, Any] | None, desired: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``desired`` that differs from ``current`` (empty: nothing to write)."""
    current = current or {}
    return {key: value for key, value in desired.items() if current.get(key) != value}
