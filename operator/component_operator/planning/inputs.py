"""Check a job's inputs against their interfaces (pure; shared by the webhook and the reconciler).

Returns per-interface messages keyed by the interface title, as grand-challenge's
``detailed_error_message``, plus field-addressed messages for admission responses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .. import kinds
from .conditions import is_true
from .pods import input_path


@dataclass(frozen=True)
class InputProblem:
    interface: str
    title: str
    field: str  # e.g. spec.inputs[2].value.corners
    message: str  # for people, relative to the value: "corners: expected exactly 4 items, got 3"
    rule: str = ""  # the rule alone, when ``field`` already names the place

    def __str__(self) -> str:
        return f"{self.field}: {self.rule or self.message}"


def _describe(err: Exception) -> tuple[str, str]:
    """(path inside the value, message) of a validation error from the kinds package."""
    path = getattr(err, "path", "") or ""
    detail = getattr(err, "detail", None) or str(err)
    if path and detail.startswith(f"{path}: "):
        detail = detail[len(path) + 2 :]
    return path, detail


def check_inputs(
    spec: Mapping[str, Any], interfaces: Mapping[str, Mapping[str, Any]], *, require_known: bool = True
) -> list[InputProblem]:
    """Problems with the inputs; interfaces not in ``interfaces`` are skipped unless ``require_known``."""
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
                if not has_value and kinds.value_required(kind, schema):
                    problems.append(
                        InputProblem(name, title, f"{base}.value", f"value is required for interface kind {kind.code}")
                    )
                    continue
                try:
                    kinds.validate_value(kind, item.get("value"), schema=schema)
                except kinds.ValueValidationError as err:
                    path, rule = _describe(err)
                    field = f"{base}.value" + (f".{path}" if path and not path.startswith("[") else path)
                    problems.append(InputProblem(name, title, field, f"{path}: {rule}" if path else rule, rule))
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
