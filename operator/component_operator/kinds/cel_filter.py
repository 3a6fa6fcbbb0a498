"""The ``spec.filter`` of a ComponentBatch: a CEL expression that picks the dataset items to run.

django-analyses narrows a run with ``filter_queryset``, Python code on the server. A
Kubernetes object cannot carry code, so a ComponentBatch carries an expression in CEL (the
language of Kubernetes' own ``x-kubernetes-validations`` and admission policies), evaluated
once per item with the item's fields as variables::

    size > 1024 && key.endsWith(".mha")
    kind == "value" && value.age >= 18 && value.site == "A"

CEL has no loops, no I/O and no recursion, and its regular expressions are linear-time, but an
expression is still user input of unbounded cost: nested comprehensions over list literals
are O(n^k) in time and memory (four nested ``.all`` over 100 numbers take a minute). So this
module is pure (no kopf, no Kubernetes) and the operator evaluates through
``sandbox.ValidationPool.filter_items``, in the worker processes with their time and memory
budgets; ``evaluate_filter`` here is the in-process form (tests, tools, no pool).

Library: common-expression-language (PyO3 bindings of the Rust ``cel`` crate) rather than
cel-python (pure Python, lark): 10 to 100 times faster (10 000 items in 20-420 ms against
2-11 s, measured with the expressions of the tests), ``3.0 == 3`` is true as the CEL
specification says, errors name the problem (cel-python's print the whole activation), and
its parser refuses nesting past 96 levels where cel-python compiles ``((((...1))))`` and
raises ``RecursionError`` at evaluation. Only the variables an expression uses are converted
for each item (``Program.variables()``): converting all of them was 90% of the time.

What this module guards against, beyond the library:

* a value nested thousands of levels deep makes the Rust conversion overflow its stack (the
  process dies of SIGSEGV): values deeper than ``limits.MAX_NESTING_DEPTH`` are refused for
  that item, before the library sees them;
* integers outside 64 bits: CEL has no such integer, so they become doubles (as in
  JavaScript) rather than the library's mix of ``uint`` and ``double``;
* Rust panics arrive as ``PanicException``, a ``BaseException``: caught, and reported for the
  item like any evaluation error;
* a typo in a variable name (``sise > 1024``) fails for every item at run time: it is refused
  at compile time instead, so the admission webhook can say so.

Not supported by the library (0.10.0): optional syntax (``value.?x``), two-variable
comprehensions (``all(i, v, ...)``), the cel-go extension functions (``lowerAscii``,
``split``, ``replace``, ...: the package's opt-in Python ones are not enabled, they would run
Python code per call); ``size()`` of a string counts UTF-8 bytes, not code points. ``has()``
works on maps (``has(value.x)``); on a non-map it is an error for that item.
"""

from __future__ import annotations

import datetime
import functools
import re
from typing import Any, Collection, Mapping, Sequence

import cel

from . import limits

#: The field every message names.
FIELD = "spec.filter"
#: Longest expression accepted, in characters (Kubernetes' own CEL rules are bounded too).
MAX_FILTER_LENGTH = 4096
#: How much of an expression a message quotes.
_QUOTED_CHARS = 200
#: How much of a library message is kept (parser messages repeat the whole expression).
_DETAIL_CHARS = 400
#: The variables of one item, in the order messages list them.
VARIABLES = ("index", "kind", "value", "uri", "key", "size", "lastModified", "sha256", "item")
_INT64 = (-(2**63), 2**63 - 1)


class FilterError(ValueError):
    """An expression that cannot be a filter: not a string, too long, or does not compile.

    ``message`` is for people and names the field, quotes the expression and says the rule:
    ``spec.filter: "size >" does not compile: line 1, column 7: Syntax error: ...``.
    """

    def __init__(self, message: str, *, expression: str = "") -> None:
        self.message = message
        self.expression = expression
        super().__init__(message)


# ---------------------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------------------


def compile_filter(expression: str) -> cel.Program:
    """The compiled program of ``expression``, or ``FilterError``.

    Cheap and bounded (at most ``MAX_FILTER_LENGTH`` characters, a parser with a depth
    limit), so the webhook and the reconciler call it in-process. Besides syntax, variables
    that are neither an item's nor CEL's (``int``, ``map``, ...) are refused.
    """
    if not isinstance(expression, str):
        raise FilterError(f"{FIELD}: must be a string, got {type(expression).__name__}")
    if len(expression) > MAX_FILTER_LENGTH:
        raise FilterError(
            f"{FIELD}: {_quote(expression)} is {len(expression)} characters long, more than the limit of "
            f"{MAX_FILTER_LENGTH}", expression=expression)
    if not expression.strip():
        raise FilterError(f"{FIELD}: {_quote(expression)} is empty: an expression such as size > 0 is needed",
                          expression=expression)
    try:
        program = cel.compile(expression)
    except Exception as err:  # the library raises ValueError for every parse error
        raise FilterError(_does_not_compile(expression, _parser_detail(str(err), expression)),
                          expression=expression) from None
    except BaseException as err:
        if not _is_panic(err):
            raise
        raise FilterError(_does_not_compile(expression, f"the CEL parser failed ({_short(_flat(str(err)))})"),
                          expression=expression) from None
    unknown = _unknown_variables(program, expression)
    if unknown:
        names = ", ".join(unknown)
        raise FilterError(_does_not_compile(expression, (
            f"undeclared variable{'s' if len(unknown) > 1 else ''} {names} (the variables are "
            f"{', '.join(VARIABLES[:-1])} and {VARIABLES[-1]})")), expression=expression)
    return program


def _does_not_compile(expression: str, detail: str) -> str:
    return f"{FIELD}: {_quote(expression)} does not compile: {detail}"


_PARSE_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): ([^\n]*)")
_RUST_MESSAGE = re.compile(r'msg: "((?:[^"\\]|\\.)*)"')


def _parser_detail(text: str, expression: str) -> str:
    """The first of the parser's errors as ``line 1, column 7: Syntax error: ...``.

    The library's message starts with the whole expression and shows it again under each
    error, with a caret: the expression is quoted once by the caller instead.
    """
    errors = _PARSE_ERROR.findall(text)
    if not errors:
        return _short(_flat(text.removeprefix(f"Failed to parse expression '{expression}': ")))
    line, column, detail = errors[0]
    nested = _RUST_MESSAGE.search(detail)  # "Syntax error: OtherError(ParseError { ... msg: "..." })"
    if nested:
        detail = f"{nested.group(1)} (the expression is nested too deeply)"
    more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return _short(f"line {line}, column {column}: {detail}") + more


# A name a macro binds: the first argument of .all/.exists/.exists_one/.map/.filter. Any
# ``(name,`` counts (comments allowed): a wider net only lets a typo through to run time.
_BOUND = re.compile(r"\(\s*(?://[^\n]*\n\s*)*([A-Za-z_][A-Za-z0-9_]*)\s*(?://[^\n]*\n\s*)*,")


def _unknown_variables(program: cel.Program, expression: str) -> list[str]:
    bound = set(_BOUND.findall(expression))
    return [name for name in program.variables()
            if name not in VARIABLES and name not in bound and not _library_name(name)]


@functools.lru_cache(maxsize=256)
def _library_name(name: str) -> bool:
    """Whether CEL itself resolves ``name`` (the type names ``int``, ``map``, ``null_type``...)."""
    try:
        cel.compile(name).execute({})
    except Exception:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Evaluating
# ---------------------------------------------------------------------------------------


def item_variables(item: Mapping[str, Any], *, only: Collection[str] = VARIABLES) -> dict[str, Any]:
    """The CEL variables of one dataset item: each field, and the whole map as ``item``.

    ``index`` and ``kind`` are required; ``uri``, ``key``, ``lastModified`` and ``sha256``
    default to ``""`` and ``size`` to 0, so every item has them; ``value`` exists only when
    the item has one (value items). ``only``: just these variables (the ones an expression
    uses: converting the rest costs most of an evaluation). ``ValueError`` for a value CEL
    cannot be given (nested deeper than ``limits.MAX_NESTING_DEPTH``, or not JSON data).
    """
    wanted = VARIABLES if "item" in only else only
    fields: dict[str, Any] = {}
    for name in VARIABLES[:-1]:
        if name not in wanted:
            continue
        if name == "value":
            if "value" in item:
                fields["value"] = _checked_value(item["value"])
        elif name in ("index", "kind"):
            fields[name] = item[name]
        else:
            fields[name] = item.get(name, 0 if name == "size" else "")
    if "item" not in only:
        return fields
    return {**{name: fields[name] for name in fields if name in only}, "item": fields}


def _checked_value(value: Any) -> Any:
    found = limits.too_deep(value)
    if found is not None:
        raise ValueError(limits.depth_message(found, "its value"))
    return _cel_value(value)


def _cel_value(value: Any) -> Any:
    """JSON data as the library takes it: ints stay int (CEL's int64), floats double.

    Recursive: callers have bounded the depth first.
    """
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else float(value)
    if isinstance(value, (list, tuple)):
        return [_cel_value(element) for element in value]
    if isinstance(value, dict):
        return {str(key): _cel_value(element) for key, element in value.items()}
    raise ValueError(f"its value holds a {type(value).__name__}, which is not JSON data")


def evaluate_filter(expression: str, items: Sequence[Mapping[str, Any]]) -> list[bool | str]:
    """For each item, whether ``expression`` keeps it, or why it could not tell (a message).

    Compiled once (``FilterError`` if it does not compile); an item whose evaluation fails,
    or gives something other than a bool, gets a message and the others go on:
    ``spec.filter: "value.age > 3" failed for item 7: no such key: age``. In-process and
    unbounded: the operator calls ``ValidationPool.filter_items`` instead.
    """
    program = compile_filter(expression)
    used = frozenset(program.variables()).intersection(VARIABLES)
    return [_evaluate_item(program, expression, item, used) for item in items]


def _evaluate_item(program: cel.Program, expression: str, item: Mapping[str, Any], used: Collection[str]) -> bool | str:
    try:
        variables = item_variables(item, only=used)
    except ValueError as err:
        return item_message(expression, item, str(err))
    try:
        result = program.execute(variables)
    except (MemoryError, SystemError):
        raise  # out of memory: a budget, which the pool reports for the whole task
    except Exception as err:
        return item_message(expression, item, _evaluation_detail(err, item))
    except BaseException as err:
        if not _is_panic(err):
            raise
        return item_message(expression, item, f"the CEL library failed ({_short(_flat(str(err)))})")
    if isinstance(result, bool):
        return result
    return item_message(expression, item, f"returned {_cel_type(result)}, not a bool")


def item_message(expression: str, item: Mapping[str, Any], detail: str) -> str:
    """``spec.filter: "<expression>" failed for item <index>: <detail>``."""
    return f"{FIELD}: {_quote(expression)} failed for item {item.get('index', '?')}: {detail}"


# The library's messages end in generic advice ("Check that the variable is defined ..."),
# longer than the message and misleading for a wrong argument type: cut there.
_ADVICE = re.compile(r"\s+(?:Check that the variable|Check function arguments|CEL does not coerce|Convert explicitly)")
_UNDEFINED = re.compile(r"^Undefined variable or function: '([^']*)'")


def _evaluation_detail(err: Exception, item: Mapping[str, Any]) -> str:
    if isinstance(err, KeyError):
        return f"no such key: {err.args[0] if err.args else ''}"
    text = _ADVICE.split(str(err), maxsplit=1)[0]
    undefined = _UNDEFINED.match(text)
    if undefined and undefined.group(1) == "value" and "value" not in item:
        return f'a {item.get("kind")} item has no value (test kind == "value" first)'
    return _short(_flat(text))


_CEL_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "bool"), (int, "int"), (float, "double"), (str, "string"), (bytes, "bytes"),
    (list, "list"), (dict, "map"), (type(None), "null"), (datetime.datetime, "timestamp"),
    (datetime.timedelta, "duration"),
)


def _cel_type(result: Any) -> str:
    for python_type, name in _CEL_TYPES:
        if isinstance(result, python_type):
            return name
    return type(result).__name__


# ---------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------


def _quote(expression: str) -> str:
    """``"size > 1024"``; control characters escaped, cut after ``_QUOTED_CHARS``."""
    shown = expression.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if len(shown) > _QUOTED_CHARS:
        shown = shown[: _QUOTED_CHARS - 3] + "..."
    return f'"{shown}"'


def _flat(text: str) -> str:
    return " ".join(text.split())


def _short(text: str) -> str:
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 3] + "..."


def _is_panic(err: BaseException) -> bool:
    """A Rust panic, which PyO3 raises as ``pyo3_runtime.PanicException`` (a BaseException)."""
    return type(err).__name__ == "PanicException"
