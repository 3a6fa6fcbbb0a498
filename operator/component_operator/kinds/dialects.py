"""Python ``jsonschema`` validator classes whose regular expressions run on RE2 (see ``regex``).

``jsonschema`` calls ``re.search`` directly in five places: the ``pattern`` and
``patternProperties`` keywords, ``additionalProperties`` (which properties the patterns
cover) and ``unevaluatedProperties`` of draft 2019-09 and 2020-12 (which properties were
evaluated). Each draft's class is extended (``jsonschema.validators.extend``) with versions of
those keywords that call ``regex.search`` instead; everything else, messages included, is
jsonschema's own.

Two families exist: ``python_regex=False`` (the default everywhere) never runs Python ``re``
and raises ``regex.PythonRegexRequired`` for a pattern RE2 cannot evaluate faithfully;
``python_regex=True`` falls back to Python ``re`` and is used only inside the bounded
validation workers (``sandbox``).

jsonschema switches the validator class whenever a subschema declares ``$schema`` (and the
vega-lite document declares draft 7), through ``evolve`` and ``validator_for``, which know
only the stock classes. The extended classes therefore replace ``evolve`` so that a switch
lands on the extended class of the same draft: no stock class, and so no Python ``re``, can
be reached from an extended one.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import attrs
import jsonschema
from jsonschema import validators as jsonschema_validators
from jsonschema.exceptions import ValidationError
from referencing.jsonschema import lookup_recursive_ref

from . import regex

#: The drafts grand-challenge accepts in custom schemas, oldest first.
STOCK_CLASSES: tuple[type, ...] = (
    jsonschema.Draft3Validator,
    jsonschema.Draft4Validator,
    jsonschema.Draft6Validator,
    jsonschema.Draft7Validator,
    jsonschema.Draft201909Validator,
    jsonschema.Draft202012Validator,
)
_LEGACY_UNEVALUATED = jsonschema.Draft201909Validator


def _families() -> dict[bool, dict[type, type]]:
    return {python: {stock: _extend(stock, python) for stock in STOCK_CLASSES} for python in (False, True)}


def validator_class(stock: type, *, python_regex: bool = False) -> type:
    """The RE2-backed class of one draft (``stock`` is a jsonschema class, e.g. Draft7Validator)."""
    return _FAMILIES[python_regex][stock]


def is_extended(cls: type) -> bool:
    return any(cls in family.values() for family in _FAMILIES.values())


# ---------------------------------------------------------------------------------------
# Building the classes
# ---------------------------------------------------------------------------------------


def _extend(stock: type, python: bool) -> type:
    def search(pattern: str, text: str) -> bool:
        if not isinstance(pattern, str) or not isinstance(text, str):
            # Not a string pattern (a broken schema): fail as jsonschema's re.search would.
            import re

            return re.search(pattern, text) is not None
        return regex.search(pattern, text, python=python)

    keywords: dict[str, Callable[..., Any]] = {
        "pattern": _pattern(search),
        "patternProperties": _pattern_properties(search),
        "additionalProperties": _additional_properties(search),
    }
    if "unevaluatedProperties" in stock.VALIDATORS:
        keywords["unevaluatedProperties"] = _unevaluated_properties(search, legacy=stock is _LEGACY_UNEVALUATED)
    cls = jsonschema_validators.extend(stock, keywords)
    cls.__name__ = cls.__qualname__ = f"{stock.__name__}RE2{'WithPythonFallback' if python else ''}"
    init_fields = [(field.name, field.alias) for field in attrs.fields(cls) if field.init]

    def evolve(self: Any, **changes: Any) -> Any:
        # jsonschema's evolve, with the dialect switch mapped onto this family.
        schema = changes.setdefault("schema", self.schema)
        target = jsonschema_validators.validator_for(schema, default=type(self))
        target = _FAMILIES[python].get(target, target)
        for name, alias in init_fields:
            if alias not in changes:
                changes[alias] = getattr(self, name)
        return target(**changes)

    cls.evolve = evolve
    return cls


def _pattern(search: Callable[[str, str], bool]) -> Callable[..., Iterator[ValidationError]]:
    def pattern(validator: Any, patrn: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        if validator.is_type(instance, "string") and not search(patrn, instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    return pattern


def _pattern_properties(search: Callable[[str, str], bool]) -> Callable[..., Iterator[ValidationError]]:
    def patternProperties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        if not validator.is_type(instance, "object"):
            return
        for pattern, subschema in patterns.items():
            for key, value in instance.items():
                if search(pattern, key):
                    yield from validator.descend(value, subschema, path=key, schema_path=pattern)

    return patternProperties


def _additional(instance: Any, schema: Any, search: Callable[[str, str], bool]) -> Iterator[str]:
    # jsonschema joins the patterns with "|" and searches once; searching each is the same
    # set (any pattern matches) without building a pattern from user text.
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    for key in instance:
        if key not in properties and not any(search(pattern, key) for pattern in patterns):
            yield key


def _additional_properties(search: Callable[[str, str], bool]) -> Callable[..., Iterator[ValidationError]]:
    from jsonschema._utils import extras_msg

    def additionalProperties(validator: Any, aP: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        # jsonschema._keywords.additionalProperties (4.26) with the regex engine swapped.
        if not validator.is_type(instance, "object"):
            return
        extras = set(_additional(instance, schema, search))
        if validator.is_type(aP, "object"):
            for extra in extras:
                yield from validator.descend(instance[extra], aP, path=extra)
        elif not aP and extras:
            if "patternProperties" in schema:
                verb = "does" if len(extras) == 1 else "do"
                joined = ", ".join(repr(each) for each in sorted(extras))
                patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
                yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
            else:
                error = "Additional properties are not allowed (%s %s unexpected)"
                yield ValidationError(error % extras_msg(sorted(extras, key=str)))

    return additionalProperties


def _unevaluated_properties(search: Callable[[str, str], bool], *, legacy: bool) -> Callable[..., Iterator[ValidationError]]:
    from jsonschema._utils import extras_msg

    def unevaluatedProperties(validator: Any, uP: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        # jsonschema._keywords.unevaluatedProperties (and its draft 2019-09 twin), 4.26.
        if not validator.is_type(instance, "object"):
            return
        evaluated = _evaluated_keys(validator, instance, schema, search, legacy=legacy)
        unevaluated = []
        for key in instance:
            if key not in evaluated:
                for _ in validator.descend(instance[key], uP, path=key, schema_path=key):
                    unevaluated.append(key)  # noqa: PERF401 - one entry per error, as jsonschema
        if unevaluated:
            if uP is False:
                error = "Unevaluated properties are not allowed (%s %s unexpected)"
                yield ValidationError(error % extras_msg(sorted(unevaluated, key=str)))
            else:
                error = "Unevaluated properties are not valid under the given schema (%s %s unevaluated and invalid)"
                yield ValidationError(error % extras_msg(unevaluated))

    return unevaluatedProperties


def _evaluated_keys(validator: Any, instance: Any, schema: Any, search: Callable[[str, str], bool], *,
                    legacy: bool) -> list[str]:
    """``find_evaluated_property_keys_by_schema`` of jsonschema 4.26 (``_utils`` for 2020-12,
    ``_legacy_keywords`` for 2019-09), with the regex engine swapped."""
    if validator.is_type(schema, "boolean"):
        return []
    keys: list[str] = []

    def follow(resolved: Any) -> None:
        keys.extend(_evaluated_keys(validator.evolve(schema=resolved.contents, _resolver=resolved.resolver),
                                    instance, resolved.contents, search, legacy=legacy))

    if schema.get("$ref") is not None:
        follow(validator._resolver.lookup(schema["$ref"]))
    if legacy and "$recursiveRef" in schema:
        follow(lookup_recursive_ref(validator._resolver))
    if not legacy and schema.get("$dynamicRef") is not None:
        follow(validator._resolver.lookup(schema["$dynamicRef"]))

    if legacy:
        for keyword in ("properties", "additionalProperties", "unevaluatedProperties"):
            if keyword in schema:
                value = schema[keyword]
                if validator.is_type(value, "boolean") and value:
                    keys += instance.keys()
                elif validator.is_type(value, "object"):
                    keys += [key for key in value if key in instance]
    else:
        properties = schema.get("properties")
        if validator.is_type(properties, "object"):
            keys += properties.keys() & instance.keys()
        for keyword in ("additionalProperties", "unevaluatedProperties"):
            if (subschema := schema.get(keyword)) is None:
                continue
            keys += [key for key, value in instance.items() if _valid(validator.descend(value, subschema))]

    if "patternProperties" in schema:
        for key in instance:
            for pattern in schema["patternProperties"]:
                if search(pattern, key):
                    keys.append(key)

    if "dependentSchemas" in schema:
        for key, subschema in schema["dependentSchemas"].items():
            if key in instance:
                keys += _evaluated_keys(validator, instance, subschema, search, legacy=legacy)

    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _valid(validator.descend(instance, subschema)):
                keys += _evaluated_keys(validator, instance, subschema, search, legacy=legacy)

    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys += _evaluated_keys(validator, instance, schema["if"], search, legacy=legacy)
            if "then" in schema:
                keys += _evaluated_keys(validator, instance, schema["then"], search, legacy=legacy)
        elif "else" in schema:
            keys += _evaluated_keys(validator, instance, schema["else"], search, legacy=legacy)
    return keys


def _valid(errors: Iterator[Any]) -> bool:
    return next(errors, None) is None


# Built once at import and never changed: {python_regex: {stock class: extended class}}.
_FAMILIES: dict[bool, dict[type, type]] = _families()
