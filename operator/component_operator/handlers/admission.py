"""Validating admission webhook: refuse broken interfaces, jobs and batches at `kubectl apply`.

Served by kopf's webhook server. The configuration uses failurePolicy Ignore on purpose: if
the operator is down, objects are still admitted (GitOps keeps working) and the reconcilers
run the very same checks, so a bad object ends Ready=False (interface) or Cancelled (job)
instead of slipping through.

Schemas and values are user data, so they are checked in the bounded validation pool
(``kinds.sandbox``), never on the event loop: each check has ``validationSeconds`` and
``validationMemoryMB``, and one request ``validationRequestSeconds`` in total (below the
webhook's timeoutSeconds, so the API server hears a verdict rather than timing out into
Ignore). An overrun refuses the object with a message naming the field and the budget.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from .. import GROUP, VERSION, kinds
from ..config import OperatorConfig
from ..kinds.sandbox import ValidationPool

logger = logging.getLogger(__name__)


@kopf.on.validate(GROUP, VERSION, "componentinterfaces", id="validate-interface", operations=["CREATE", "UPDATE"],
                  ignore_failures=True)
async def validate_interface(spec, old, operation, memo, **_) -> None:
    pool = _pool(memo)
    try:
        found = await pool.check_interface(dict(spec), total_seconds=pool.request_seconds)
    except Exception:  # noqa: BLE001 - the pool itself failed: admit, as failurePolicy Ignore would
        logger.exception("validate-interface: the validation pool failed; admitting (the reconciler checks again)")
        return
    errors = [f"{e.field}: {e.message}" for e in found]
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
async def validate_job(spec, old, operation, component_interfaces, memo, **_) -> None:
    if operation == "UPDATE" and old and (old.get("spec") or {}).get("inputs") == spec.get("inputs"):
        return  # only cancel/annotations changed; inputs were checked when they were set
    interfaces = {name: next(iter(store)) for name, store in component_interfaces.items() if store}
    pool = _pool(memo)
    try:
        # Interfaces not created yet are allowed (GitOps applies in any order); the reconciler waits for them.
        problems = await pool.check_inputs(dict(spec), interfaces, require_known=False, total_seconds=pool.request_seconds)
    except Exception:  # noqa: BLE001 - the pool itself failed: admit, as failurePolicy Ignore would
        logger.exception("validate-job: the validation pool failed; admitting (the reconciler checks again)")
        return
    if problems:
        raise kopf.AdmissionError("; ".join(str(p) for p in problems), code=422)


@kopf.on.validate(GROUP, VERSION, "componentbatches", id="validate-batch", operations=["CREATE", "UPDATE"],
                  ignore_failures=True)
async def validate_batch(spec, component_interfaces, memo, **_) -> None:
    """The filter must compile and the fixed inputs be valid; the items are checked by the webhook
    of each job the batch creates (a refused one is reported as an invalid item, with its index)."""
    from ..kinds.cel_filter import FilterError, compile_filter

    errors = []
    if spec.get("filter"):
        try:
            compile_filter(str(spec["filter"]))
        except FilterError as err:
            errors.append(err.message)
    interfaces = {name: next(iter(store)) for name, store in component_interfaces.items() if store}
    pool = _pool(memo)
    try:
        problems = await pool.check_inputs({"inputs": list(spec.get("inputs") or [])}, interfaces, require_known=False,
                                           total_seconds=pool.request_seconds)
    except Exception:  # noqa: BLE001 - the pool itself failed: admit, as failurePolicy Ignore would
        logger.exception("validate-batch: the validation pool failed; admitting (its jobs are checked again)")
        problems = []
    errors.extend(str(p) for p in problems)
    if errors:
        raise kopf.AdmissionError("; ".join(errors), code=422)


def _pool(memo: Any) -> ValidationPool:
    """The operator's pool (made at start-up, ``memo.context.validation``); made here from the
    config if start-up did not. Kept in kopf's memo, the per-operator object, never in a global.
    """
    holder = getattr(memo, "context", None) or memo
    pool = getattr(holder, "validation", None)
    if pool is None:
        pool = ValidationPool.from_config(_config(memo))
        holder.validation = pool  # checks start its workers on first use
    return pool


def _config(memo: Any) -> OperatorConfig:
    """The operator's configuration (the only place this module reads it)."""
    context = getattr(memo, "context", None)
    config = getattr(context, "config", None)
    return config if config is not None else OperatorConfig()
