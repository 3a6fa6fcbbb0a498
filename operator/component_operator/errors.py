"""The operator's error taxonomy, in one place, so every layer raises and catches the same types.

::

    Exception
     ├── PermanentError      the user's (or the object's) fault; retrying cannot help.
     │    │                  The object ends in a clear state at once: a job ``Failed`` (or
     │    │                  ``Cancelled`` for invalid inputs) with ``reason`` and message, an
     │    │                  image or interface ``Ready=False``.
     │    └── RefusedError   the API server refused what we sent (400, 403, 404 on create, 422):
     │                       e.g. a pod that an unsafe ``inputPrefixes`` made invalid, a name
     │                       taken by a foreign object, a namespace being deleted.
     ├── TemporaryError      the platform's fault (timeouts, 5xx, 429, conflicts, an object store
     │                       that is down): retried with exponential backoff, at most
     │                       ``TEMPORARY_RETRY_LIMIT`` times in a row, then treated as unexpected.
     └── anything else       unexpected (a bug, or input nobody foresaw): logged with context and
                             retried ``UNEXPECTED_RETRY_LIMIT`` times with backoff, then the job
                             ends ``Failed`` with reason ``InternalError`` and the error's text.

No object is retried forever, and the ``unexpected`` counter of
``component_operator_reconcile_errors_total`` is the alarm for the last branch: with a correct
operator it stays 0 whatever users create (the hostile-input suite holds it to that).
"""

from __future__ import annotations

from typing import Mapping

#: Consecutive temporary failures of one object before it is treated as unexpected. With the
#: backoff below (1 s doubling to 60 s) 30 tries cover about 25 minutes of an unavailable
#: platform, longer than any API server restart or object-store failover we expect.
TEMPORARY_RETRY_LIMIT = 30
#: Unexpected failures of one object before it ends ``InternalError``.
UNEXPECTED_RETRY_LIMIT = 5
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0

INTERNAL_ERROR = "InternalError"


class PermanentError(Exception):
    """A problem that retrying cannot fix; ``reason`` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str, detail: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.detail = dict(detail or {})


class RefusedError(PermanentError):
    """The API server refused a request; ``status`` is the HTTP status it answered."""

    def __init__(self, message: str, status: int, reason: str = "RefusedByAPIServer") -> None:
        super().__init__(reason, message)
        self.status = status


class TemporaryError(Exception):
    """A failure a retry can fix; ``delay`` is the least wait before the next try."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


def backoff(failures: int, least: float = 0.0) -> float:
    """Delay before try ``failures + 1``: 1, 2, 4 … 60 s (never below ``least``)."""
    delay = min(BACKOFF_FIRST_SECONDS * (2 ** max(failures - 1, 0)), BACKOFF_MAX_SECONDS)
    return max(delay, least)


def describe(err: BaseException, limit: int = 900) -> str:
    """``Type: text`` of an unexpected error, bounded, for a status message."""
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
