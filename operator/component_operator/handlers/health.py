"""Liveness: report unhealthy when the operator is alive but no longer working.

kopf serves ``--liveness`` (``/healthz``) from the event loop, so a loop that is blocked does
not answer at all and the kubelet's probe times out. What kopf does not notice by itself is
a *zombie*: the process and its loop are fine, but a watch stream died (kopf logs "Watcher
for … has failed" and never starts it again) or reconciles hang. Each probe checks:

* every watcher task seen before is still running (a watcher that stopped means the events
  of that resource are no longer seen: the pod must be restarted);
* no job reconcile has been running longer than ``STUCK_RECONCILE_SECONDS`` (every API call
  has a timeout, so a reconcile that long is wedged).

A failed check raises ``kopf.PermanentError``: kopf answers the probe with HTTP 500 and
Kubernetes restarts the pod (the chart's livenessProbe).
"""

from __future__ import annotations

import asyncio

import kopf

from ..context import OperatorContext

STUCK_RECONCILE_SECONDS = 600.0
WATCHER_TASK_PREFIX = "watcher for "


def running_watchers() -> set[str]:
    return {task.get_name() for task in asyncio.all_tasks() if task.get_name().startswith(WATCHER_TASK_PREFIX)}


def check(ctx: OperatorContext, alive: set[str]) -> dict[str, object]:
    """The health verdict: raises ``kopf.PermanentError`` naming what is wrong."""
    lost = sorted(ctx.watchers_seen - alive)
    ctx.watchers_seen |= alive
    if lost:
        raise kopf.PermanentError(f"watch streams stopped: {', '.join(lost)}")
    oldest = ctx.reconciler.oldest_reconcile_seconds()
    if oldest > STUCK_RECONCILE_SECONDS:
        raise kopf.PermanentError(f"a job reconcile has been running for {oldest:.0f} s (limit {STUCK_RECONCILE_SECONDS:.0f} s)")
    return {"watchers": len(alive), "reconciling": len(ctx.reconciler.started), "oldestReconcileSeconds": round(oldest, 1)}


@kopf.on.probe(id="operator", errors=kopf.ErrorsMode.PERMANENT)
def operator_health(memo: kopf.Memo, **_) -> dict[str, object]:
    return check(memo.context, running_watchers())
