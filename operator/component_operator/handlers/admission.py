"""Validating admission webhook: refuse broken interfaces and jobs at `kubectl apply`.

Served by kopf's webhook server. The configuration uses failurePolicy Ignore on purpose: if
the operator is down, objects are still admitted (GitOps keeps working) and the reconcilers
run the very same checks, so a bad object ends Ready=False (interface) or Cancelled (job)
instead of slipping through.
"""

from __future__ import annotations

import kopf

from .. import GROUP, VERSION, kinds
from ..planning.inputs import check_inputs
from .job import RECONCILER


@kopf.on.validate(GROUP, VERSION, "componentinterfaces", id="validate-interface", operations=["CREATE", "UPDATE"],
                  ignore_failures=True)
def validate_interface(spec, old, operation, **_) -> None:
    errors = [f"{e.field}: {e.message}" for e in kinds.check_interface(dict(spec))]
    if operation == "UPDATE" and old:
        old_status = old.get("status") or {}
        in_use = bool(old_status.get("inUse"))
        for e in kinds.check_overlay_segments_update(
            (old.get("spec") or {}).get("overlaySegments") or [], spec.get("overlaySegments") or [], in_use
        ):
            errors.append(f"{e.field}: {e.message}")
    if errors:
        raise kopf.AdmissionError("; ".join(errors), code=422)


@kopf.on.validate(GROUP, VERSION, "componentjobs", id="validate-job", operations=["CREATE", "UPDATE"], ignore_failures=True)
def validate_job(spec, old, operation, component_interfaces, **_) -> None:
    if operation == "UPDATE" and old and (old.get("spec") or {}).get("inputs") == spec.get("inputs"):
        return  # only cancel/annotations changed; inputs were checked when they were set
    interfaces = {name: next(iter(store)) for name, store in component_interfaces.items() if store}
    # Interfaces not created yet are allowed (GitOps applies in any order); the reconciler waits for them.
    problems = check_inputs(dict(spec), interfaces, require_known=False)
    if problems:
        raise kopf.AdmissionError("; ".join(str(p) for p in problems), code=422)
