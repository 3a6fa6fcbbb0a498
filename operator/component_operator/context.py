"""What the operator's handlers share, passed explicitly instead of living in module globals.

kopf handlers take no custom arguments, so the one ``OperatorContext`` travels in kopf's memo
(``memo.context``, as Twingate's operator keeps ``memo.settings``). It holds the run options,
the configuration, the job reconciler (its queue, timers and failure counts), the object
store client and the validation pool. ``OperatorContext.create`` builds one from options, so
tests (and a second operator in the same process) get their own without touching globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import OperatorConfig

if TYPE_CHECKING:
    from .handlers.job import JobReconciler
    from .runner import RunOptions


@dataclass
class OperatorContext:
    options: "RunOptions"
    config: OperatorConfig
    reconciler: "JobReconciler"
    #: ``adapters.s3.ObjectStore`` when the data plane is on (created at start-up).
    store: Any = None
    #: ``kinds.sandbox.ValidationPool`` (started at start-up, closed at clean-up).
    validation: Any = None
    #: ``adapters.content_hashes.ContentHashes``: SHA-256 of objects given without one (data plane on).
    content_hashes: Any = None
    #: The ComponentBatch work queue (same machinery as the jobs', its own slots and counters).
    batches: Any = None
    metrics_serving: bool = False
    #: ``handlers.pod_watch.PodWatch``: the job pods' own watch (started at start-up).
    pod_watch: Any = None
    #: Names of kopf's watcher tasks seen running (the liveness probe notices one that stopped).
    watchers_seen: set[str] = field(default_factory=set)

    @classmethod
    def create(cls, options: "RunOptions") -> "OperatorContext":
        from .handlers.job import JobReconciler

        return cls(options=options, config=options.config, reconciler=JobReconciler())
