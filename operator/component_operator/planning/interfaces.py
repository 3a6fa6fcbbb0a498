"""Decide a ComponentInterface's status from its spec (pure).

The same rule set runs in the admission webhook and here, so an interface created while
the webhook was absent still ends with ``Ready=False`` and the first failing rule.
"""

from __future__ import annotations

from typing import Any

from .. import kinds
from .conditions import set_condition


def decide_interface_status(
    spec: dict[str, Any], status: dict[str, Any] | None, generation: int | None, errors: list | None = None
) -> dict[str, Any]:
    """Return the desired status (superKind, kindCode, Ready condition, observedGeneration).

    ``errors`` are the rule violations found by the bounded validation pool (the handler's);
    None runs ``kinds.check_interface`` here (tests, the CLI).
    """
    status = status or {}
    desired: dict[str, Any] = {"observedGeneration": generation}
    try:
        kind = kinds.resolve_kind(spec.get("kind", ""))
    except kinds.UnknownKindError as err:
        desired["conditions"] = set_condition(
            status.get("conditions"), "Ready", False, "UnknownKind", str(err), generation=generation
        )
        return desired
    desired["kindCode"] = kind.code
    desired["superKind"] = kinds.super_kind(kind, spec.get("storeInDatabase", True)).value
    errors = list(errors) if errors is not None else kinds.check_interface(spec)
    if status.get("inUse") and status.get("overlaySegmentsInUse") is not None:
        # Without the webhook, a renamed or removed segment is caught here against what was in use.
        errors += kinds.check_overlay_segments_update(status["overlaySegmentsInUse"], spec.get("overlaySegments") or [], True)
    if errors:
        message = "; ".join(f"{e.field}: {e.message}" for e in errors)
        conditions = set_condition(status.get("conditions"), "Ready", False, "InvalidInterface", message, generation=generation)
    else:
        conditions = set_condition(
            status.get("conditions"), "Ready", True, "Valid", "every interface rule passes", generation=generation
        )
    desired["conditions"] = conditions
    return desired


def internal_error_status(status: dict[str, Any] | None, generation: int | None, text: str) -> dict[str, Any]:
    """Ready=False, reason InternalError: the operator could not check this interface."""
    conditions = set_condition((status or {}).get("conditions"), "Ready", False, "InternalError",
                               f"The operator could not check this interface: {text}", generation=generation)
    return {"observedGeneration": generation, "conditions": conditions}
