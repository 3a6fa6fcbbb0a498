"""An interface's own JSON Schema (``spec.schema``): is it usable, and how may it be evaluated?

grand-challenge accepts any well-formed schema of draft 3 to 2020-12 here, embeds it next to
the kind's schema in a draft 7 document and evaluates both. Three things can go wrong only at
value-validation time there (as unhandled exceptions); this module finds them when the
interface is defined instead:

* a ``$ref`` to a remote document (only the vega-lite v5 URL is served, from memory);
* a local ``$ref`` that does not resolve: local references resolve against the *composed*
  document, so ``#/$defs/x`` of a standalone schema points nowhere once embedded;
* keywords that the draft 7 metaschema rejects (``"exclusiveMaximum": true`` of draft 4),
  which fail grand-challenge's ``check_schema`` of the composed document.

Two bounds come first, so that no check recurses over a hostile schema: nesting deeper than
``limits.MAX_NESTING_DEPTH`` is refused, and so is a ``$schema`` that names no draft
jsonschema knows (grand-challenge silently checks those against 2020-12; a typo such as
``https://json-schema.org/draft-07/schema#`` then goes unnoticed).

It also decides how the fast validator may evaluate the schema (see ``values``): some
keywords are evaluated differently by jsonschema-rs and Python ``jsonschema`` (regular
expression dialects, float ``multipleOf``, dialect switches inside a subschema), and those
schemas keep Python's verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import jsonschema
from jsonschema import validators as jsonschema_validators
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT7

from . import limits
from .errors import InvalidSchemaError
from .schemas import INTERFACE_VALUE_SCHEMA, VEGA_LITE_V5_URL

#: The ``$schema`` URIs of the drafts a custom schema may declare (jsonschema's, with or
#: without a trailing ``#``); without ``$schema`` a schema is checked against 2020-12.
KNOWN_DRAFTS: dict[str, str] = {
    "http://json-schema.org/draft-03/schema#": "draft 3",
    "http://json-schema.org/draft-04/schema#": "draft 4",
    "http://json-schema.org/draft-06/schema#": "draft 6",
    "http://json-schema.org/draft-07/schema#": "draft 7",
    "https://json-schema.org/draft/2019-09/schema": "draft 2019-09",
    "https://json-schema.org/draft/2020-12/schema": "draft 2020-12",
}

# Keywords whose values are data, never schemas (a "$ref" key inside an enum is not a reference).
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples", "example", "required"})
# Keywords whose value maps names to subschemas (the names are not keywords).
_NAMED_SUBSCHEMAS = frozenset({"properties", "patternProperties", "definitions", "$defs", "dependentSchemas", "dependencies"})
_REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
# Anything that makes evaluation depend on where the schema sits in the composed document.
_LOCATION_KEYWORDS = frozenset({*_REFERENCE_KEYWORDS, "$id", "id", "$anchor", "$dynamicAnchor", "$recursiveAnchor"})

# The validator classes of jsonschema-rs that evaluate a dialect like Python jsonschema does.
_RUST_CLASS_BY_PYTHON_NAME = {
    "Draft4Validator": "Draft4Validator",
    "Draft6Validator": "Draft6Validator",
    "Draft7Validator": "Draft7Validator",
    "Draft201909Validator": "Draft201909Validator",
    "Draft202012Validator": "Draft202012Validator",
}


def iter_subschemas(schema: Any, pointer: tuple = ()) -> Iterator[tuple[tuple, dict[str, Any]]]:
    """Every object in ``schema`` that may be evaluated as a (sub)schema, with its pointer.

    Unknown keywords are descended too: a local ``$ref`` can point into them.
    """
    if isinstance(schema, dict):
        yield pointer, schema
        for key, value in schema.items():
            if key in _DATA_KEYWORDS:
                continue
            if key in _NAMED_SUBSCHEMAS and isinstance(value, dict):
                for name, subschema in value.items():
                    yield from iter_subschemas(subschema, (*pointer, key, name))
            else:
                yield from iter_subschemas(value, (*pointer, key))
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from iter_subschemas(item, (*pointer, index))


def references(schema: Any) -> list[str]:
    """Every ``$ref`` (and dynamic/recursive reference) string in the schema."""
    found = []
    for _, subschema in iter_subschemas(schema):
        for keyword in _REFERENCE_KEYWORDS:
            if isinstance(subschema.get(keyword), str):
                found.append(subschema[keyword])
    return found


def is_vega_lite_reference(reference: str) -> bool:
    return reference == VEGA_LITE_V5_URL or reference.startswith(VEGA_LITE_V5_URL + "#")


def check_custom_schema(schema: Any) -> None:
    """Raise ``InvalidSchemaError`` (``Invalid schema: ...``) unless ``schema`` is usable.

    ``None`` and ``{}`` (no extra schema) are always fine.
    """
    if schema is None or schema == {}:
        return
    if not isinstance(schema, (dict, bool)):
        raise InvalidSchemaError(f"Invalid schema: {_short(schema)} is not of type 'object', 'boolean'")
    deep = limits.too_deep(schema)
    if deep is not None:  # before anything recurses over it (metaschema checks, copies)
        raise InvalidSchemaError(f"Invalid schema: {limits.depth_message(deep, 'the schema')}")
    declared = declared_draft(schema)
    try:
        declared.check_schema(schema)
    except jsonschema.SchemaError as err:
        raise InvalidSchemaError(f"Invalid schema: {err.message}") from None
    for reference in references(schema):
        if not reference.startswith("#") and not is_vega_lite_reference(reference):
            raise InvalidSchemaError(f"Invalid schema: remote $ref {reference!r} is not allowed")
    # Values are checked against the schema embedded in a draft 7 document, whose own
    # metaschema check must pass too (grand-challenge fails every value otherwise).
    if declared is not jsonschema.Draft7Validator:
        try:
            jsonschema.Draft7Validator.check_schema(schema)
        except jsonschema.SchemaError as err:
            raise InvalidSchemaError(
                f"Invalid schema: {err.message} (the schema is embedded in a draft 7 document "
                "when values are checked, so it must also be valid draft 7)"
            ) from None
    _check_local_references_resolve(schema)


def declared_draft(schema: Any) -> type:
    """The jsonschema class of the draft ``schema`` declares; 2020-12 without ``$schema``.

    Raises ``InvalidSchemaError`` naming the URI and the known drafts when ``$schema`` names
    no known draft (or is not a string).
    """
    if not isinstance(schema, dict) or "$schema" not in schema:
        return jsonschema.Draft202012Validator  # grand-challenge's default for the check
    uri = schema["$schema"]
    known = None
    if isinstance(uri, str):
        try:
            known = jsonschema_validators.validator_for(schema, default=None)
        except ValueError:  # not even a URI ("http://[")
            known = None
    if known is None:
        drafts = ", ".join(f"{uri!r} ({name})" for uri, name in KNOWN_DRAFTS.items())
        raise InvalidSchemaError(
            f"Invalid schema: $schema {_short(uri)} is not a JSON Schema draft this operator knows; "
            f"use one of {drafts}, or leave $schema out (the schema is then checked as draft 2020-12)"
        )
    return known


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_local_references_resolve(schema: Any) -> None:
    if not isinstance(schema, dict):
        return
    if any(key in subschema for _, subschema in iter_subschemas(schema) for key in ("$id", "id")):
        return  # references then resolve against the embedded $id; leave it to evaluation
    composed = {**INTERFACE_VALUE_SCHEMA, "allOf": [schema]}
    resolver = Registry().resolver_with_root(DRAFT7.create_resource(composed))
    for reference in references(schema):
        if not reference.startswith("#"):
            continue
        try:
            resolver.lookup(reference)
        except Unresolvable:
            raise InvalidSchemaError(
                f"Invalid schema: $ref {reference!r} cannot be resolved. The schema is embedded in "
                "the kind's schema document, so local references resolve against that document: "
                "use '#/definitions/<KIND CODE>' for built-in kinds or inline the subschema"
            ) from None


@dataclass(frozen=True)
class EvaluationPlan:
    """How ``values`` may evaluate a custom schema.

    ``rust_class``: the jsonschema-rs class that evaluates it like Python does, or ``None``
    when only Python's verdict is trusted. ``standalone``: the schema can be evaluated on
    its own (no references, no ids), so its verdict can be AND-ed with the kind's.
    """

    python_class: type
    rust_class: str | None
    standalone: bool


def plan_evaluation(schema: Any) -> EvaluationPlan:
    """Pick the evaluation strategy for an already checked custom schema."""
    if not isinstance(schema, dict):
        return EvaluationPlan(jsonschema.Draft7Validator, None, False)
    python_class = jsonschema_validators.validator_for(schema, default=jsonschema.Draft7Validator)
    subschemas = list(iter_subschemas(schema))
    standalone = not any(key in sub for _, sub in subschemas for key in _LOCATION_KEYWORDS)
    rust_class = _RUST_CLASS_BY_PYTHON_NAME.get(python_class.__name__)
    unknown_dialect = "$schema" in schema and jsonschema_validators.validator_for(schema, default=None) is None
    if unknown_dialect or any(_diverges_in_rust(pointer, sub) for pointer, sub in subschemas):
        rust_class = None
    return EvaluationPlan(python_class, rust_class, standalone)


def _diverges_in_rust(pointer: tuple, subschema: dict[str, Any]) -> bool:
    """Keywords that jsonschema-rs may accept where Python jsonschema rejects."""
    # Regular expressions: Python's re and Rust's ECMA-style engine differ in corner cases.
    if "pattern" in subschema or "patternProperties" in subschema:
        return True
    # Python tests float multipleOf by float division (0.3 is not a multiple of 0.1 there).
    if "multipleOf" in subschema:
        factor = subschema["multipleOf"]
        if isinstance(factor, bool) or factor != 1:
            return True
    # Python switches dialect at any $schema; jsonschema-rs only honours the document's.
    if pointer and "$schema" in subschema:
        return True
    return False
