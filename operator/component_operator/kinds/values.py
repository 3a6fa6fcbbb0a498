"""Validate a JSON value against its interface: grand-challenge's verdict and message, fast.

grand-challenge composes one draft 7 schema per interface (kind schema AND custom schema,
plus ``null`` for optional form fields, §1.2) and runs Python ``jsonschema`` on it. That is
exact but slow for large annotations (a 100k-point polygon set takes seconds), and outputs of
every job pass through here. So:

1. The composed schema is compiled once per (kind, custom schema, required) and cached.
2. The verdict comes from jsonschema-rs, which evaluates the same schema some hundred times
   faster. Where its semantics could be *more lenient* than Python's (regex dialects, float
   ``multipleOf``, nested ``$schema``), the custom schema part is evaluated by Python.
3. Only when the fast verdict is "invalid" does Python ``jsonschema`` run, to produce
   grand-challenge's exact message from ``best_match``. If Python finds no error after all
   (jsonschema-rs is stricter on a few non-JSON inputs such as ``inf``), the value is valid:
   Python's verdict always wins.

Regular expressions (``pattern``, ``patternProperties``) of custom schemas run on RE2 through
the validator classes of ``dialects``, never on Python ``re``, unless ``python_regex=True``,
which only the bounded validation workers (``sandbox``) pass: a pattern RE2 cannot evaluate
like Python raises ``RegexNeedsSandboxError`` elsewhere. Values and custom schemas nested
deeper than ``limits.MAX_NESTING_DEPTH`` are refused (``LimitExceededError``) before
anything recurses over them; the one exception is a value of ``Anything`` without a custom
schema, which is valid whatever it is (as on grand-challenge) without being looked at.

Messages: ``ValueValidationError.message`` is grand-challenge's ``JSON does not fulfill
schema: instance ...``; ``.path`` the place in the value (``boxes[3].corners``); ``.detail``
(also ``str(err)``) says the same in plain words, e.g. ``corners: expected exactly 4 items,
got 3``.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import jsonschema
import jsonschema_rs
from jsonschema.exceptions import ValidationError as JsonSchemaError
from jsonschema.exceptions import best_match
from referencing.exceptions import Unresolvable

from . import dialects, limits, regex
from .catalog import Kind, SuperKind, resolve_kind, super_kind
from .custom_schema import EvaluationPlan, check_custom_schema, plan_evaluation, references
from .errors import InvalidSchemaError, LimitExceededError, RegexNeedsSandboxError, ValueValidationError
from .schemas import compose_schema, python_registry, rust_registry

_CACHE_SIZE = 512
_cache: OrderedDict[tuple, "_Compiled | InvalidSchemaError"] = OrderedDict()
_cache_lock = threading.Lock()
_kind_only_cache: dict[tuple[str, bool], "_Compiled"] = {}


@dataclass
class _Compiled:
    """Everything needed to validate values of one (kind, custom schema, required)."""

    composed: dict[str, Any]
    python: Any  # the draft 7 class of ``dialects`` (RE2 regular expressions)
    verdict: Callable[[Any], bool] | None  # fast verdict; None: ask Python
    accepts_everything: bool = False
    python_regex: bool = False


def validate_value(
    kind: str | Kind, value: Any, *, schema: Any = None, required: bool = True, python_regex: bool = False
) -> None:
    """Raise ``ValueValidationError`` unless ``value`` is valid for a JSON-kind interface.

    ``schema`` is the interface's custom schema (``None``/``{}``: none); ``required=False``
    also admits ``null`` (grand-challenge's optional form fields). Values are JSON data:
    dict, list, str, int, float, bool and None. ``python_regex=True`` lets patterns that RE2
    cannot evaluate run on Python ``re``: only for bounded workers (``sandbox``).
    """
    kind = resolve_kind(kind)
    if not kind.is_json:
        raise ValueError(f"{kind.label} is not a JSON kind; check files with check_file_content")
    compiled = _compiled(kind.code, schema, required, python_regex)
    if compiled.accepts_everything:
        return  # Anything without a custom schema: nothing is evaluated, so nothing recurses
    deep = limits.too_deep(value)
    if deep is not None:
        raise LimitExceededError(limits.depth_message(deep, "the value"), limit="MAX_NESTING_DEPTH")
    try:
        if compiled.verdict is not None:
            try:
                if compiled.verdict(value):
                    return
            except (ValueError, TypeError, OverflowError):
                pass  # not plain JSON data (e.g. a date from YAML): Python decides
        error = _python_best_match(compiled, value)
    except regex.PythonRegexRequired as err:
        raise RegexNeedsSandboxError(
            f"Invalid schema: {err}; such patterns are evaluated only by the operator's bounded "
            "validation workers, not here",
            pattern=err.pattern,
        ) from None
    except RecursionError:
        # Within the depth limit, but a schema that recurses (a "$ref" cycle) went too deep.
        raise LimitExceededError(
            "the value could not be checked: evaluating the schema recursed too deeply "
            f"(values are limited to {limits.MAX_NESTING_DEPTH} levels of nesting)",
            limit="MAX_NESTING_DEPTH",
        ) from None
    if error is not None:
        raise _to_value_error(error, python_regex=compiled.python_regex)


def value_required(kind: str | Kind, schema: Any = None, *, store_in_database: bool = True) -> bool:
    """Whether an input of this interface must be given (grand-challenge's ``value_required``).

    ``Bool`` never is (unset means false); other values stored in the database only when
    their schema rejects ``null`` (so ``Anything`` without a restricting schema is optional);
    files and images always are.
    """
    kind = resolve_kind(kind)
    if kind.code == "BOOL":
        return False
    if super_kind(kind, store_in_database) is not SuperKind.VALUE:
        return True
    try:
        validate_value(kind, None, schema=schema)
    except ValueValidationError:
        return True
    return False


def is_valid_value(
    kind: str | Kind, value: Any, *, schema: Any = None, required: bool = True, python_regex: bool = False
) -> bool:
    try:
        validate_value(kind, value, schema=schema, required=required, python_regex=python_regex)
    except ValueValidationError:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Compilation and cache
# ---------------------------------------------------------------------------------------


def _compiled(code: str, schema: Any, required: bool, python_regex: bool = False) -> _Compiled:
    no_custom = schema is None or schema == {}
    if no_custom:
        # At most 2 x 25 entries, never evicted: read without the lock (the common case).
        entry = _kind_only_cache.get((code, required))
        if entry is None:
            entry = _kind_only_cache.setdefault((code, required), _compile(code, None, required))
        return entry
    deep = limits.too_deep(schema)
    if deep is not None:  # before json.dumps and copies, which recurse
        raise InvalidSchemaError(f"Invalid schema: {limits.depth_message(deep, 'the schema')}")
    try:
        schema_key = json.dumps(schema, allow_nan=True)
    except (TypeError, ValueError):
        raise InvalidSchemaError(f"Invalid schema: {schema!r} is not JSON") from None
    key = (code, schema_key, required, python_regex)
    with _cache_lock:
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
    if entry is None:
        try:
            # A private copy: callers may mutate their schema dict after this call.
            entry = _compile(code, json.loads(schema_key), required, python_regex)
        except InvalidSchemaError as err:
            entry = err
        with _cache_lock:
            _cache[key] = entry
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    if isinstance(entry, InvalidSchemaError):
        raise InvalidSchemaError(entry.message)
    return entry


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _kind_only_cache.clear()


def _compile(code: str, custom: Any, required: bool, python_regex: bool = False) -> _Compiled:
    check_custom_schema(custom)
    composed = compose_schema(code, custom, required=required)
    # vega-lite is needed for Chart, and for custom schemas that may reach the Chart definition.
    with_vega_lite = code == "CHART" or bool(custom is not None and references(custom))
    draft7 = dialects.validator_class(jsonschema.Draft7Validator, python_regex=python_regex)
    python = draft7(composed, registry=python_registry(with_vega_lite))
    if code == "JSON" and custom is None and required:
        return _Compiled(composed, python, None, accepts_everything=True, python_regex=python_regex)
    kind_verdict = _rust_is_valid(_without_chart(compose_schema(code, None), code), "Draft7Validator", code == "CHART")
    if custom is None:
        verdict = kind_verdict
    else:
        plan = plan_evaluation(custom)
        verdict = _custom_verdict(code, custom, kind_verdict, with_vega_lite, plan, python_regex)
    if verdict is not None and not required:
        verdict = _admit_null(verdict)
    return _Compiled(composed, python, verdict, python_regex=python_regex)


def _custom_verdict(
    code: str,
    custom: Any,
    kind_verdict: Callable[[Any], bool] | None,
    with_vega_lite: bool,
    plan: EvaluationPlan,
    python_regex: bool = False,
) -> Callable[[Any], bool] | None:
    """The fast verdict of ``allOf: [custom, kind]``, or None when only Python can decide."""
    if kind_verdict is None:
        return None
    if plan.standalone:
        # No references or ids: the custom schema means the same on its own, so its verdict
        # can be AND-ed with the kind's, each by the fastest faithful evaluator.
        custom_verdict = _rust_is_valid(custom, plan.rust_class, with_vega_lite) if plan.rust_class else None
        if custom_verdict is None:
            custom_verdict = _python_is_valid(custom, plan.python_class, python_regex)
        return lambda value: kind_verdict(value) and custom_verdict(value)
    if plan.rust_class == "Draft7Validator":
        # References resolve against the composed document: evaluate that as a whole.
        return _rust_is_valid(compose_schema(code, custom), "Draft7Validator", with_vega_lite)
    return None


def _without_chart(document: dict[str, Any], code: str) -> dict[str, Any]:
    """jsonschema-rs resolves every $ref when compiling; drop the vega-lite one when unused."""
    if code == "CHART":
        return document
    definitions = {name: schema for name, schema in document["definitions"].items() if name != "CHART"}
    return {**document, "definitions": definitions}


def _admit_null(verdict: Callable[[Any], bool]) -> Callable[[Any], bool]:
    # oneOf [null, X]: exactly one must match, so a null that X also accepts is invalid.
    return lambda value: (value is None) != verdict(value)


def _rust_is_valid(schema: Any, class_name: str | None, with_vega_lite: bool) -> Callable[[Any], bool] | None:
    if class_name is None:
        return None
    options: dict[str, Any] = {"validate_formats": False, "offline": True}
    if with_vega_lite:
        options["registry"] = rust_registry()
    try:
        return getattr(jsonschema_rs, class_name)(schema, **options).is_valid
    except Exception:  # noqa: BLE001 - any compile problem: Python evaluates instead
        return None


def _python_is_valid(schema: Any, validator_class: type, python_regex: bool) -> Callable[[Any], bool]:
    extended = dialects.validator_class(validator_class, python_regex=python_regex)
    validator = extended(schema, registry=python_registry(False))
    return validator.is_valid


def _python_best_match(compiled: _Compiled, value: Any) -> JsonSchemaError | None:
    try:
        return best_match(compiled.python.iter_errors(value))
    except Unresolvable as err:
        raise InvalidSchemaError(f"Invalid schema: $ref cannot be resolved ({err})") from None


# ---------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(parts: Iterable[Any]) -> str:
    """``["boxes", 3, "corners"]`` -> ``boxes[3].corners``; odd keys as ``["a.b"]``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def grand_challenge_message(error: JsonSchemaError) -> str:
    """grand-challenge's wording (``core/validators.py::JSONValidator``), reproduced exactly."""
    return f"JSON does not fulfill schema: instance {error.message.replace(str(error.instance) + ' ', '')}"


def _to_value_error(error: JsonSchemaError, *, python_regex: bool = False) -> ValueValidationError:
    parts = list(error.absolute_path)
    rule = _plain_rule(error, parts, python_regex=python_regex)
    path = format_path(parts)
    return ValueValidationError(
        grand_challenge_message(error),
        path=path,
        detail=f"{path}: {rule}" if path else rule,
        instance=error.instance,
    )


def _plain_rule(error: JsonSchemaError, parts: list[Any], *, python_regex: bool = False) -> str:
    """The broken rule in plain words; may extend ``parts`` to name a missing/extra key."""
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if keyword == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        return f"expected {' or '.join(types)}, got {describe(instance)}"
    if keyword in ("minItems", "maxItems") and isinstance(instance, list):
        low, high = schema.get("minItems"), schema.get("maxItems")
        if low is not None and low == high:
            return f"expected exactly {_count(low, 'item')}, got {len(instance)}"
        bound = "at least" if keyword == "minItems" else "at most"
        return f"expected {bound} {_count(expected, 'item')}, got {len(instance)}"
    if keyword in ("minLength", "maxLength") and isinstance(instance, str):
        bound = "at least" if keyword == "minLength" else "at most"
        return f"expected {bound} {_count(expected, 'character')}, got {len(instance)}"
    if keyword in ("minProperties", "maxProperties") and isinstance(instance, dict):
        bound = "at least" if keyword == "minProperties" else "at most"
        return f"expected {bound} {_count(expected, 'property', 'properties')}, got {len(instance)}"
    comparisons = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if keyword in comparisons and not isinstance(expected, bool):
        return f"must be {comparisons[keyword]} {_json(expected)}, got {_json(instance)}"
    if keyword == "multipleOf":
        return f"must be a multiple of {_json(expected)}, got {_json(instance)}"
    if keyword == "enum":
        options = list(expected) if isinstance(expected, list) else [expected]
        allowed = _json(options[0]) if len(options) == 1 else "one of " + ", ".join(_json(o) for o in options)
        return f"must be {allowed}, got {describe(instance)}"
    if keyword == "const":
        return f"must be {_json(expected)}, got {describe(instance)}"
    if keyword == "required":
        missing = re.match(r"^'(.*)' is a required property$", error.message)
        if missing:
            parts.append(missing.group(1))
            return "required property is missing"
    if keyword == "additionalProperties" and expected is False and isinstance(instance, dict):
        allowed = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        # The same engine as the validation that produced this error (RE2 unless sandboxed).
        extra = [k for k in instance if k not in allowed
                 and not any(regex.search(p, k, python=python_regex) for p in patterns)]
        allowed_text = f"; allowed: {', '.join(allowed)}" if allowed else ""
        if len(extra) == 1:
            parts.append(extra[0])
            return f"property is not allowed{allowed_text}"
        return f"properties {', '.join(repr(k) for k in extra)} are not allowed{allowed_text}"
    if keyword in ("oneOf", "anyOf"):
        if "is valid under each of" in error.message:
            return f"matches more than one of the allowed forms ({keyword}), got {describe(instance)}"
        return f"does not match any of the allowed forms ({keyword}), got {describe(instance)}"
    if keyword == "pattern" and isinstance(instance, str):
        return f"must match the pattern {_json(expected)}, got {describe(instance)}"
    if keyword is None and error.schema is False:
        return "no value is allowed here (the schema is false)"
    if keyword == "uniqueItems":
        return "items must be unique"
    return grand_challenge_message(error).removeprefix("JSON does not fulfill schema: instance ").strip()


def describe(instance: Any) -> str:
    """A short description of a JSON value for messages: ``string '42'``, ``array of 3 items``."""
    if instance is None:
        return "null"
    if isinstance(instance, bool):
        return f"boolean {_json(instance)}"
    if isinstance(instance, int):
        return f"integer {instance}"
    if isinstance(instance, float):
        return f"number {_json(instance)}"
    if isinstance(instance, str):
        shown = instance if len(instance) <= 40 else instance[:37] + "..."
        return f"string {shown!r}"
    if isinstance(instance, list):
        return f"array of {_count(len(instance), 'item')}"
    if isinstance(instance, dict):
        keys = ", ".join(str(k) for k in list(instance)[:5]) + (", ..." if len(instance) > 5 else "")
        return f"object with keys {keys}" if instance else "empty object"
    return type(instance).__name__


def _json(value: Any) -> str:
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else (plural or singular + 's')}"

