"""ComponentInterface handler: keep status.superKind and the Ready condition current.

The rules (including the interface's own JSON Schema, which may be hostile) are checked in
the bounded validation pool, off the event loop. An error the operator did not foresee is
retried a few times with backoff, then the interface is marked ``Ready=False`` with reason
``InternalError``: never retried forever.
"""

from __future__ import annotations

import kopf

from .. import GROUP, VERSION
from ..adapters import metrics
from ..context import OperatorContext
from ..errors import UNEXPECTED_RETRY_LIMIT, backoff, describe
from ..planning.conditions import status_changes
from ..planning.interfaces import decide_interface_status, internal_error_status


@kopf.on.resume(GROUP, VERSION, "componentinterfaces")
@kopf.on.create(GROUP, VERSION, "componentinterfaces")
@kopf.on.update(GROUP, VERSION, "componentinterfaces")
async def reconcile_interface(spec, status, meta, patch, retry, memo, logger, **_) -> None:
    ctx: OperatorContext = memo.context
    current, generation = dict(status), meta.get("generation")
    try:
        errors = await ctx.validation.check_interface(dict(spec)) if ctx.validation is not None else None
        desired = decide_interface_status(dict(spec), current, generation, errors)
    except Exception as err:  # noqa: BLE001 - unexpected: bounded retries, then a clear state
        metrics.RECONCILE_ERRORS.labels("componentinterface", "unexpected").inc()
        if retry + 1 < UNEXPECTED_RETRY_LIMIT:
            logger.exception("interface: unexpected error (try %d of %d)", retry + 1, UNEXPECTED_RETRY_LIMIT)
            raise kopf.TemporaryError(describe(err), delay=backoff(retry + 1)) from err
        logger.exception("interface: unexpected error, giving up")
        desired = internal_error_status(current, generation, describe(err))
    changes = status_changes(current, desired)
    if changes:
        patch.status.update(changes)
