"""The rules a ComponentInterface (a socket) must satisfy, as pure functions.

grand-challenge enforces them in ``ComponentInterface.full_clean()``: every field validator
runs and all their errors are reported, then ``clean()`` runs its checks in a fixed order and
stops at the first failure (§2, §1.5). The admission webhook and the interface reconciler
both call ``check_interface`` so a socket refused at ``kubectl apply`` and a socket marked
``Ready=False`` carry the same messages, addressed by camelCase spec path
(``spec.relativePath``, ``spec.overlaySegments[1].voxelValue``).

Overlay segments are accepted with the Kubernetes spelling ``voxelValue`` (what the CRD
stores) or grand-challenge's ``voxel_value``; errors name the key as it was written.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import PurePosixPath
from typing import Any, Mapping, Sequence

import jsonschema
from jsonschema.exceptions import best_match

from .catalog import Kind, SuperKind, resolve_kind, super_kind
from .custom_schema import check_custom_schema
from .errors import InterfaceRuleError, InvalidSchemaError, UnknownKindError, ValueValidationError
from .values import format_path, grand_challenge_message, validate_value

RELATIVE_PATH_MAX_LENGTH = 255
TITLE_MAX_LENGTH = 255
_BASE = "/input/"
# Job outputs are mounted below /input/<job uuid>/output/, so no path may contain a UUID.
_UUID_ANYWHERE = re.compile(r".*[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}.*", re.IGNORECASE)
_RESERVED_PATHS = ("inputs.json",)  # written by the platform into every /input

_CAMEL, _SNAKE = "voxelValue", "voxel_value"


def overlay_segments_schema(voxel_key: str = _CAMEL) -> dict[str, Any]:
    """grand-challenge's ``OVERLAY_SEGMENTS_SCHEMA`` with the voxel key spelled ``voxel_key``."""
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "array",
        "items": {
            "type": "object",
            "properties": {voxel_key: {"type": "integer"}, "name": {"type": "string"}, "visible": {"type": "boolean"}},
            "required": [voxel_key, "name", "visible"],
            "additionalProperties": False,
        },
    }


def check_interface(spec: Mapping[str, Any], *, python_regex: bool = False) -> list[InterfaceRuleError]:
    """Every field-validator error, then the first failing ``clean()`` rule; empty if valid.

    ``python_regex``: see ``values.validate_value`` (only the bounded workers pass True).
    """
    errors: list[InterfaceRuleError] = []
    kind: Kind | None = None
    try:
        kind = resolve_kind(spec.get("kind", ""))
    except UnknownKindError as err:
        errors.append(InterfaceRuleError("spec.kind", str(err)))

    relative_path = spec.get("relativePath")
    relative_path = "" if relative_path is None else relative_path
    errors += [InterfaceRuleError("spec.relativePath", m) for m in relative_path_errors(relative_path)]

    title = spec.get("title")
    if isinstance(title, str) and len(title) > TITLE_MAX_LENGTH:
        errors.append(InterfaceRuleError("spec.title", _max_length_message(TITLE_MAX_LENGTH, title)))

    schema = spec.get("schema")
    schema_ok = True
    try:
        check_custom_schema(schema)
    except InvalidSchemaError as err:
        schema_ok = False
        errors.append(InterfaceRuleError("spec.schema", err.message))

    segments = spec.get("overlaySegments") or []
    segment_errors = _overlay_segments_shape_errors(segments)
    errors += segment_errors

    if kind is None:
        return errors  # every clean() rule depends on the kind
    if not isinstance(relative_path, str):
        relative_path = str(relative_path)
    first = _first_clean_error(spec, kind, relative_path, segments, segments_ok=not segment_errors, schema_ok=schema_ok,
                               python_regex=python_regex)
    if first is not None:
        errors.append(first)
    return errors


def _first_clean_error(
    spec: Mapping[str, Any],
    kind: Kind,
    relative_path: str,
    segments: Sequence[Any],
    *,
    segments_ok: bool,
    schema_ok: bool,
    python_regex: bool = False,
) -> InterfaceRuleError | None:
    """grand-challenge's ``clean()``: the checks in their order, first failure only."""
    store_in_database = spec.get("storeInDatabase", True)
    checks = (
        lambda: _overlay_segments_error(kind, segments, shape_ok=segments_ok),
        lambda: _store_in_database_error(kind, store_in_database),
        lambda: _kind_relative_path_error(kind, relative_path),
        lambda: _example_value_error(kind, spec, schema_ok, python_regex),
        lambda: _default_value_error(kind, spec, store_in_database),
    )
    for check in checks:
        error = check()
        if error is not None:
            return error
    return None


# ---------------------------------------------------------------------------------------
# relativePath field validators (all of them run)
# ---------------------------------------------------------------------------------------


def relative_path_errors(value: str) -> list[str]:
    """Messages of every ``relative_path`` field validator that fails, in grand-challenge's order."""
    if not isinstance(value, str):
        return ["Enter a valid value."]
    if value == "":
        return ["This field cannot be blank."]  # Django stops at blank: no validator runs
    messages = []
    safe = _safe_path_error(value)
    if safe:
        messages.append(safe)
    if value.startswith("/") or value.endswith("/"):
        messages.append("Path must not begin or end with '/'")
    if value.lower() in _RESERVED_PATHS:
        messages.append("This relative path is reserved")
    if _UUID_ANYWHERE.match(value):
        messages.append("Enter a valid value.")
    if "\x00" in value:
        messages.append("Null characters are not allowed.")
    if len(value) > RELATIVE_PATH_MAX_LENGTH:
        messages.append(_max_length_message(RELATIVE_PATH_MAX_LENGTH, value))
    return messages


def _safe_path_error(value: str) -> str | None:
    """Django's ``safe_join("/input/", value)``: no escape, and already in normal form."""
    joined = posixpath.abspath(posixpath.join(_BASE, value))
    base = posixpath.abspath(_BASE)
    if not joined.startswith(base + "/") and joined != base:
        return "Relative paths are not allowed."
    normalised = joined[len(_BASE) :]
    if normalised != value:
        return f"Invalid file path, should be {normalised}."
    return None


def _max_length_message(limit: int, value: str) -> str:
    return f"Ensure this value has at most {limit} characters (it has {len(value)})."


# ---------------------------------------------------------------------------------------
# clean() rules
# ---------------------------------------------------------------------------------------


def _store_in_database_error(kind: Kind, store_in_database: Any) -> InterfaceRuleError | None:
    if store_in_database and not kind.store_in_database_allowed:
        return InterfaceRuleError("spec.storeInDatabase", f"Interface {kind.code} objects cannot be stored in the database")
    return None


def _kind_relative_path_error(kind: Kind, relative_path: str) -> InterfaceRuleError | None:
    def error(message: str) -> InterfaceRuleError:
        return InterfaceRuleError("spec.relativePath", message)

    if kind.extension and not relative_path.endswith(kind.extension):
        return error(f"Relative path should end with {kind.extension}")
    if kind.is_image:
        if not relative_path.startswith("images/"):
            return error("Relative path should start with images/")
        if PurePosixPath(relative_path).suffix:
            return error("Images should be a directory")
    elif relative_path.startswith("images/"):
        return error("Relative path should not start with images/")
    return None


def _example_value_error(kind: Kind, spec: Mapping[str, Any], schema_ok: bool,
                         python_regex: bool = False) -> InterfaceRuleError | None:
    example = spec.get("exampleValue")
    if example is None:
        return None
    if not kind.is_json:
        return InterfaceRuleError("spec.exampleValue", "Example value can be set for interfaces of JSON kind only")
    if not schema_ok:
        return None  # already reported under spec.schema; the example cannot be judged
    try:
        validate_value(kind, example, schema=spec.get("schema"), python_regex=python_regex)
    except ValueValidationError as err:
        field = "spec.exampleValue" + (f".{err.path}" if err.path and not err.path.startswith("[") else err.path)
        return InterfaceRuleError(field, f"The example value for this interface is not valid: {err.message}")
    return None


def _default_value_error(kind: Kind, spec: Mapping[str, Any], store_in_database: Any) -> InterfaceRuleError | None:
    # Only truthy defaults are refused, and only for files; defaults are never schema-checked.
    if super_kind(kind, bool(store_in_database)) is SuperKind.FILE and spec.get("defaultValue"):
        return InterfaceRuleError("spec.defaultValue", "A socket that requires a file should not have a default value")
    return None


# ---------------------------------------------------------------------------------------
# Overlay segments
# ---------------------------------------------------------------------------------------


def _voxel_key(segments: Sequence[Any]) -> str:
    dicts = [s for s in segments if isinstance(s, Mapping)]
    if dicts and any(_SNAKE in s for s in dicts) and not any(_CAMEL in s for s in dicts):
        return _SNAKE
    return _CAMEL


def _overlay_segments_shape_errors(segments: Any) -> list[InterfaceRuleError]:
    """The ``OVERLAY_SEGMENTS_SCHEMA`` field validator (grand-challenge's JSON message)."""
    if segments is None:
        return []
    schema = overlay_segments_schema(_voxel_key(segments) if isinstance(segments, list) else _CAMEL)
    error = best_match(jsonschema.Draft7Validator(schema).iter_errors(segments))
    if error is None:
        return []
    parts = list(error.absolute_path)
    if error.validator == "required":
        missing = re.match(r"^'(.*)' is a required property$", error.message)
        if missing:
            parts.append(missing.group(1))
    path = format_path(parts)
    field = "spec.overlaySegments" + (f".{path}" if path and not path.startswith("[") else path)
    return [InterfaceRuleError(field, grand_challenge_message(error))]


def _overlay_segments_error(kind: Kind, segments: Any, *, shape_ok: bool) -> InterfaceRuleError | None:
    field = "spec.overlaySegments"
    if kind.code == "SEG" and not segments:
        return InterfaceRuleError(field, "Overlay segments must be set for this interface")
    if kind.code != "SEG" and segments:
        return InterfaceRuleError(field, "Overlay segments should only be set for segmentations")
    # Contiguity needs well-formed segments; malformed ones are reported by the shape check.
    if segments and shape_ok and not overlay_segments_contiguous(segments):
        return InterfaceRuleError(field, "Voxel values for overlay segments must be contiguous.")
    return None


def overlay_segments_contiguous(segments: Sequence[Mapping[str, Any]]) -> bool:
    """Declared voxel values plus the implicit background 0 form a run of integers."""
    values = {_voxel_value(s) for s in segments} | {0}
    return sorted(values) == list(range(min(values), max(values) + 1))


def _voxel_value(segment: Mapping[str, Any]) -> int:
    return segment[_CAMEL] if _CAMEL in segment else segment[_SNAKE]


def _normalised_segment(segment: Mapping[str, Any]) -> frozenset:
    items = {(_SNAKE if key == _CAMEL else key): value for key, value in segment.items()}
    # Booleans and integers compare equal in Python (True == 1); keep their types apart.
    return frozenset((key, type(value).__name__, value) for key, value in items.items())


def check_overlay_segments_update(
    old: Sequence[Mapping[str, Any]] | None, new: Sequence[Mapping[str, Any]] | None, in_use: bool
) -> list[InterfaceRuleError]:
    """Once values or questions use the interface, segments may only be added (superset rule)."""
    old, new = list(old or []), list(new or [])
    if not in_use:
        return []
    try:
        kept = {_normalised_segment(s) for s in old} <= {_normalised_segment(s) for s in new}
    except (TypeError, AttributeError):  # unhashable or malformed items: the shape check reports them
        kept = False
    if kept:
        return []
    return [
        InterfaceRuleError(
            "spec.overlaySegments",
            "Overlay segments cannot be changed, as values or questions for this ComponentInterface exist.",
        )
    ]
