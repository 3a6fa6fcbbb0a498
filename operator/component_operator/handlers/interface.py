"""ComponentInterface handler: keep status.superKind and the Ready condition current."""

from __future__ import annotations

import kopf

from .. import GROUP, VERSION
from ..planning.conditions import status_changes
from ..planning.interfaces import decide_interface_status


@kopf.on.resume(GROUP, VERSION, "componentinterfaces")
@kopf.on.create(GROUP, VERSION, "componentinterfaces")
@kopf.on.update(GROUP, VERSION, "componentinterfaces")
async def reconcile_interface(spec, status, meta, patch, **_) -> None:
    desired = decide_interface_status(dict(spec), dict(status), meta.get("generation"))
    changes = status_changes(dict(status), desired)
    if changes:
        patch.status.update(changes)
