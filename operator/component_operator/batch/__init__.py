"""Batch runs from Python and from the command line: django-analyses' QuerySetRunner on ComponentBatches.

``QuerySetRunner`` (subclass it, call ``run()``) prepares one ComponentBatch from any iterable of
data, skipping the items whose run already exists; ``component-operator batch run|status|wait``
applies, plans (dry run), inspects and follows batches written as YAML. The operator does the
running; this package only prepares, starts and watches. See docs/batches.md.
"""

from __future__ import annotations

from .errors import (
    BatchConflictError,
    BatchError,
    BatchGoneError,
    BatchTimeoutError,
    FieldError,
    ImageNotReadyError,
    InvalidBatchError,
)
from .items import File, Image
from .runner import QuerySetRunner, RunResult

__all__ = [
    "BatchConflictError",
    "BatchError",
    "BatchGoneError",
    "BatchTimeoutError",
    "FieldError",
    "File",
    "Image",
    "ImageNotReadyError",
    "InvalidBatchError",
    "QuerySetRunner",
    "RunResult",
]
