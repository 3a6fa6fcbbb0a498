"""Check a job's inputs against their interfaces (pure; shared by the webhook and the reconciler).

Returns per-interface messages keyed by the interface title, as grand-challenge's
``detailed_error_message``, plus field-addressed messages for admission responses.

The rules are one walk over ``spec.inputs`` (``_walk``). The cheap ones (does the interface
exist, is it Ready, which of value/file/image, duplicate paths) run in-process; checking a
value against its interface's schemas is a ``ValueCheck`` whose outcome the walk asks for.
``check_inputs_bounded`` first collects those checks, has the ``kinds.sandbox`` pool run them
in worker processes with time and memory budgets, then walks again with the outcomes;
``check_inputs`` runs them in-process (tests, and callers without a pool: there a pattern
that needs Python ``re`` is refused, never run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .. import kinds
from ..kinds.sandbox import Outcome, check_input_value
from .conditions import is_true
from .pods import input_path

if TYPE_CHECKING:  # pragma: no cover
    from ..kinds.sandbox import ValidationPool


@dataclass(frozen=True)
class InputProblem:
    interface: str
    title: str
    field: str  # e.g. spec.inputs[2].value.corners
    message: str  # for people, relative to the value: "corners: expected exactly 4 items, got 3"
    rule: str = ""  # the rule alone, when ``field`` already names the place

    def __str__(self) -> str:
        return f"{self.field}: {self.rule or self.message}"


def _describe(err: Any) -> tuple[str, str]:
    """(path inside the value, message) of a validation error (or ``Outcome``) from the kinds package."""
    path = getattr(err, "path", "") or ""
    detail = getattr(err, "detail", None) or str(err)
    if path and detail.startswith(f"{path}: "):
        detail = detail[len(path) + 2 :]
    return path, detail


@dataclass(frozen=True)
class ValueCheck:
    """One input value to check against its interface (kind and custom schema)."""

    index: int
    interface: str
    kind_code: str
    schema: Any
    has_value: bool
    value: Any


def check_inputs(
    spec: Mapping[str, Any], interfaces: Mapping[str, Mapping[str, Any]], *, require_known: bool = True
) -> list[InputProblem]:
    """Problems with the inputs; interfaces not in ``interfaces`` are skipped unless ``require_known``.

    In-process: values are checked here, without a time budget but also without Python
    ``re`` (use ``ValidationPool.check_inputs`` where hostile schemas can arrive).
    """
    return _walk(spec, interfaces, require_known,
                 lambda check: check_input_value(check.kind_code, check.schema, check.has_value, check.value))


async def check_inputs_bounded(
    pool: "ValidationPool",
    spec: Mapping[str, Any],
    interfaces: Mapping[str, Mapping[str, Any]],
    *,
    require_known: bool = True,
    total_seconds: float | None = None,
) -> list[InputProblem]:
    """``check_inputs`` with every value checked in ``pool``, each within its budgets."""
    checks: list[ValueCheck] = []

    def collect(check: ValueCheck) -> Outcome:
        checks.append(check)
        return Outcome()  # the first walk only collects: whether a value is checked is item-local

    _walk(spec, interfaces, require_known, collect)
    outcomes = await pool.run_value_checks(checks, total_seconds=total_seconds)
    return _walk(spec, interfaces, require_known, lambda check: outcomes[check.index])


def _walk(
    spec: Mapping[str, Any],
    interfaces: Mapping[str, Mapping[str, Any]],
    require_known: bool,
    outcome_of: Callable[[ValueCheck], Outcome],
) -> list[InputProblem]:
    problems: list[InputProblem] = []
    seen_paths: dict[str, str] = {}
    prefixes = spec.get("inputPrefixes") or {}
    for index, item in enumerate(spec.get("inputs") or []):
        name = item.get("interface", "")
        base = f"spec.inputs[{index}]"
        iface = interfaces.get(name)
        if iface is None:
            if require_known:
                problems.append(InputProblem(name, name, f"{base}.interface", f"ComponentInterface {name!r} does not exist"))
            continue
        ispec = iface.get("spec", {})
        title = ispec.get("title") or name
        status = iface.get("status") or {}
        if status.get("conditions") and not is_true(status.get("conditions"), "Ready"):
            problems.append(InputProblem(name, title, f"{base}.interface", f"ComponentInterface {name!r} is not valid"))
            continue
        try:
            kind = kinds.resolve_kind(ispec.get("kind", ""))
        except Exception as err:  # unknown kind: the interface itself is broken
            problems.append(InputProblem(name, title, f"{base}.interface", str(err)))
            continue
        has_value = "value" in item and (item.get("value") is not None or kind.code == "JSON")
        has_file, has_image = bool(item.get("file")), bool(item.get("image"))
        if sum((has_value, has_file, has_image)) > 1:
            problems.append(InputProblem(name, title, base, "Only one of image, value and file can be defined."))
            continue
        group = kind.group.value if hasattr(kind.group, "value") else str(kind.group)
        schema = ispec.get("schema") or None
        if group == "json":
            if has_image:
                problems.append(InputProblem(name, title, f"{base}.image", f"value is required for interface kind {kind.code}"))
                continue
            if not has_file:
                outcome = outcome_of(ValueCheck(index, name, kind.code, schema, has_value, item.get("value")))
                problem = _value_problem(outcome, name, title, base, kind.code, item.get("value"))
                if problem is not None:
                    problems.append(problem)
                    continue
        elif group == "file" and not has_file:
            problems.append(InputProblem(name, title, f"{base}.file", f"file is required for interface kind {kind.code}"))
            continue
        elif group == "image" and not has_image:
            problems.append(InputProblem(name, title, f"{base}.image", f"image is required for interface kind {kind.code}"))
            continue
        target = input_path(ispec.get("relativePath", ""), prefixes.get(name))
        if target in seen_paths:
            problems.append(
                InputProblem(name, title, base, f"lands at /input/{target}, as the input for {seen_paths[target]!r} does")
            )
        seen_paths[target] = name
    return problems


def _value_problem(outcome: Outcome, name: str, title: str, base: str, code: str, value: Any) -> InputProblem | None:
    if outcome.ok:
        return None
    if outcome.status == "required":
        return InputProblem(name, title, f"{base}.value", f"value is required for interface kind {code}")
    if outcome.over_budget:
        what = f"validating {kinds.values.describe(value)} against ComponentInterface {name!r}"
        return InputProblem(name, title, f"{base}.value", outcome.detail.replace("{what}", what))
    path, rule = _describe(outcome)
    field = f"{base}.value" + (f".{path}" if path and not path.startswith("[") else path)
    return InputProblem(name, title, field, f"{path}: {rule}" if path else rule, rule)
