"""Exceptions and error records of the kinds package.

They live in one small module so that every layer (catalogue, value validation, interface
rules, file checks, the CLI and the Kubernetes handlers) can raise and catch the same types
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class UnknownKindError(ValueError):
    """A kind name that is neither a grand-challenge label nor a short code."""

    def __init__(self, name: object, valid_labels: list[str]) -> None:
        self.name = name
        self.valid_labels = list(valid_labels)
        super().__init__(
            f"Unknown interface kind {name!r}. Valid kinds are: {', '.join(self.valid_labels)} "
            "(or their short codes, e.g. 2DBB, MPOI, SEG, CSV)"
        )


class ValueValidationError(ValueError):
    """A value that does not fit its interface.

    ``message`` is grand-challenge's wording (``JSON does not fulfill schema: instance ...``),
    ``path`` the JSON path inside the value (``boxes[3].corners[1]``; empty for the value
    itself), ``detail`` a plain-words form naming path and rule, which is also ``str(err)``,
    and ``instance`` the offending part of the value.
    """

    def __init__(self, message: str, *, path: str = "", detail: str | None = None, instance: Any = None) -> None:
        self.message = message
        self.path = path
        self.instance = instance  # the offending part of the value (for display)
        self.detail = detail if detail is not None else (f"{path}: {message}" if path else message)
        super().__init__(self.detail)

    def __str__(self) -> str:
        return self.detail


class InvalidSchemaError(ValueValidationError):
    """An interface's custom JSON Schema is broken, so no value can be checked against it.

    It is a ``ValueValidationError`` on purpose: code that validates values (job inputs,
    outputs) then reports ``Invalid schema: ...`` for the input instead of crashing.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, path="", detail=message)


class FileContentError(ValueValidationError):
    """The bytes of a file-kind value are not what the kind promises (or its name is refused)."""


class ImageContentError(FileContentError):
    """An image-kind value that grand-challenge would refuse.

    ``message`` is grand-challenge's wording (``Image may not be DICOM``); ``detail`` (also
    ``str(err)``) names the files and the offending values as well; ``files`` are the names
    of the files the error is about.
    """

    def __init__(self, message: str, *, files: tuple[str, ...] | list[str] = (), detail: str | None = None) -> None:
        self.files = tuple(files)
        if detail is None:
            detail = f"{', '.join(self.files)}: {message}" if self.files else message
        super().__init__(message, path="", detail=detail)


@dataclass(frozen=True)
class InterfaceRuleError:
    """One broken ComponentInterface rule: ``field`` is the camelCase spec path."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class LimitExceededError(ValueValidationError):
    """A value or schema beyond a documented bound (nesting depth), refused before evaluation.

    ``limit`` names the bound (``MAX_NESTING_DEPTH``); the message names the depth found.
    """

    def __init__(self, message: str, *, limit: str = "", path: str = "") -> None:
        self.limit = limit
        super().__init__(message, path=path, detail=f"{path}: {message}" if path else message)


class RegexNeedsSandboxError(ValueValidationError):
    """A custom schema's pattern that only Python ``re`` evaluates like grand-challenge does.

    Raised only outside the bounded validation workers (``kinds.sandbox``): there, Python
    ``re`` (which can backtrack for hours) is not allowed to run.
    """

    def __init__(self, message: str, *, pattern: str = "") -> None:
        self.pattern = pattern
        super().__init__(message, path="", detail=message)


class BudgetExceededError(ValueValidationError):
    """A check that overran the time or memory budget of its validation worker.

    ``budget`` is ``"time"`` or ``"memory"``; the message names the bound and the operator
    setting that sets it (``validationSeconds``, ``validationMemoryMB``).
    """

    def __init__(self, message: str, *, budget: str) -> None:
        self.budget = budget
        super().__init__(message, path="", detail=message)
