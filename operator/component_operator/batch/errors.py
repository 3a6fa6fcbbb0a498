"""What can go wrong when a batch is prepared, started or waited for.

One base class, ``BatchError``, so a script can catch everything the runner and the command line
raise on purpose; Kubernetes API failures that are not one of these stay ``ApiException``. None of
them is a ``RuntimeError``: a ``RuntimeError`` from ``get_instance_representation`` means "this
item cannot be prepared" (django-analyses' convention) and is caught per item.

    BatchError
    ├── ImageNotReadyError     the ComponentImage is missing, not Ready, or has no imageSha256
    ├── InvalidBatchError      the batch the runner built (or a manifest) fails the CRD's model
    ├── BatchConflictError     a batch of that name still runs other items
    ├── BatchGoneError         the batch was deleted while being waited for
    └── BatchTimeoutError      the batch did not finish in time (also a TimeoutError)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


class BatchError(Exception):
    """Base of the batch runner's own errors."""


class ImageNotReadyError(BatchError):
    """The items' digests need the image's pinned digest, which only a Ready image has."""

    def __init__(self, namespace: str, name: str, why: str) -> None:
        super().__init__(f"ComponentImage {namespace}/{name} is not usable: {why}")
        self.namespace = namespace
        self.name = name
        self.why = why


@dataclass(frozen=True)
class FieldError:
    """One reason a manifest is invalid: where, what was there, which rule it broke."""

    path: str
    value: Any
    rule: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule} (got {_short(self.value)})"


class InvalidBatchError(BatchError, ValueError):
    """The batch fails the same model the API server's schema is generated from."""

    def __init__(self, what: str, errors: Sequence[FieldError]) -> None:
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{what} is invalid:\n{lines}")
        self.what = what
        self.errors = list(errors)


class BatchConflictError(BatchError):
    """A batch of the chosen name exists, holds other items and has not finished."""


class BatchGoneError(BatchError):
    """The batch disappeared (deleted) while it was being waited for."""


class BatchTimeoutError(BatchError, TimeoutError):
    """The batch was neither Complete nor Failed when the timeout passed."""

    def __init__(self, namespace: str, name: str, timeout: float, progress: str) -> None:
        super().__init__(f"ComponentBatch {namespace}/{name} did not finish within {timeout:g}s (progress {progress})")
        self.namespace = namespace
        self.name = name
        self.progress = progress


def _short(value: Any, limit: int = 100) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
