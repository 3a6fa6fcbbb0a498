"""The ComponentBatch ``spec.filter``: CEL expressions over dataset items, bounded in the pool.

We test these aspects:

* the expressions of the design (size, key suffix and pattern, value arithmetic and fields,
  index, kind, ``item.*``, ``has()``, macros with their own variables) keep exactly the
  expected items of a sample of value, file and image items;
* an expression that does not compile, is too long, empty, not a string, or uses a variable
  no item has is a ``FilterError`` whose message names ``spec.filter``, quotes the
  expression (cut at 200 characters) and says the rule;
* an item whose evaluation fails, or gives something other than a bool, gets its own
  message and the other items their verdicts; a Rust panic is such a failure too;
* JSON values reach CEL with their types: int and double as JSON gives them, bool, null,
  nested lists and maps; integers beyond 64 bits as doubles; values nested past the depth
  limit refused for their item only when the expression reads them;
* only the variables an expression uses are built, with the same verdicts as all of them;
* through a real ``ValidationPool``: the same verdicts in chunks, compile errors raised
  before any work, and costly expressions stopped by the time budget, the memory budget and
  the request budget, with messages naming ``spec.filter`` and the setting, for the items of
  the overrunning chunk only; the pool keeps serving afterwards.

No assertion is on wall-clock time: budgets are asserted through the outcome they produce.
"""

from __future__ import annotations

import asyncio

import pytest

from component_operator.kinds import cel_filter
from component_operator.kinds.cel_filter import (
    MAX_FILTER_LENGTH,
    FilterError,
    compile_filter,
    evaluate_filter,
    item_variables,
)
from component_operator.kinds.sandbox import ValidationPool


def run(coroutine):
    return asyncio.run(coroutine)


def value_item(index: int, value) -> dict:
    return {"index": index, "kind": "value", "value": value, "key": "", "size": 0, "lastModified": "", "sha256": ""}


def object_item(index: int, kind: str, key: str, size: int, last_modified: str = "", sha256: str = "") -> dict:
    return {"index": index, "kind": kind, "uri": f"s3://data/{key}", "key": key, "size": size,
            "lastModified": last_modified, "sha256": sha256}


ITEMS = [
    value_item(0, {"age": 20, "site": "A", "x": None}),
    value_item(1, {"age": 9, "site": "A"}),
    value_item(2, 4),
    value_item(3, 7),
    object_item(4, "file", "scans/case-12.mha", 4096, "2024-05-01T10:00:00Z", "ab" * 32),
    object_item(5, "image", "other/case-x.mha", 50, "2023-02-01T00:00:00Z"),
    object_item(6, "file", "scans/case-3/notes.txt", 2000),
]
F, T = False, True

KEPT = [
    ("size > 1024", [F, F, F, F, T, F, T]),
    ('key.endsWith(".mha")', [F, F, F, F, T, T, F]),
    ('key.matches("^scans/case-[0-9]+")', [F, F, F, F, T, F, T]),
    ('kind == "value" && type(value) == int && value % 2 == 0', [F, F, T, F, F, F, F]),
    ('kind == "value" && type(value) == map && value.age >= 18 && value.site == "A"', [T, F, F, F, F, F, F]),
    ("index < 5", [T, T, T, T, T, F, F]),
    ('kind == "file"', [F, F, F, F, T, F, T]),
    ("item.size < 100", [T, T, T, T, F, T, F]),
    ("has(item.value)", [T, T, T, T, F, F, F]),
    ('kind == "value" && type(value) == map && has(value.x)', [T, F, F, F, F, F, F]),
    ('uri.startsWith("s3://data/scans/") || sha256.startsWith("ab")', [F, F, F, F, T, F, T]),
    ('lastModified != "" && timestamp(lastModified) > timestamp("2024-01-01T00:00:00Z")', [F, F, F, F, T, F, F]),
    ('[".mha", ".txt"].exists(suffix, key.endsWith(suffix))', [F, F, F, F, T, T, T]),
    ('kind in ["file", "image"] && item.size >= 50', [F, F, F, F, T, T, T]),
]


@pytest.mark.parametrize("expression,kept", KEPT, ids=[e for e, _ in KEPT])
def test_expressions_keep_exactly_the_expected_items(expression, kept):
    assert evaluate_filter(expression, ITEMS) == kept


def test_the_design_expressions_as_written():
    adults = [value_item(0, {"age": 20, "site": "A"}), value_item(1, {"age": 20, "site": "B"}),
              value_item(2, {"age": 17, "site": "A"})]
    assert evaluate_filter('value.age >= 18 && value.site == "A"', adults) == [T, F, F]
    numbers = [value_item(i, i) for i in range(5)]
    assert evaluate_filter("value % 2 == 0", numbers) == [T, F, T, F, T]
    assert evaluate_filter("has(value.x)", [value_item(0, {"x": 1}), value_item(1, {"y": 1})]) == [T, F]


def test_only_the_used_variables_are_built_with_the_same_verdicts():
    for expression, kept in KEPT:
        program = compile_filter(expression)
        assert [program.execute(item_variables(item)) for item in ITEMS] == kept, expression
    assert item_variables(ITEMS[4], only={"size"}) == {"size": 4096}
    assert item_variables(ITEMS[4], only={"size", "x"}) == {"size": 4096}  # bound names are not variables
    whole = item_variables(ITEMS[0])["item"]
    assert item_variables(ITEMS[0], only={"kind", "item"}) == {"kind": "value", "item": whole}


# ---------------------------------------------------------------------------------------
# The variables
# ---------------------------------------------------------------------------------------


def test_variables_of_a_value_item_and_of_a_file_item():
    fields = {"index": 0, "kind": "value", "value": {"age": 20, "site": "A", "x": None}, "uri": "", "key": "",
              "size": 0, "lastModified": "", "sha256": ""}
    assert item_variables(ITEMS[0]) == {**fields, "item": fields}
    scan = {"index": 4, "kind": "file", "uri": "s3://data/scans/case-12.mha", "key": "scans/case-12.mha",
            "size": 4096, "lastModified": "2024-05-01T10:00:00Z", "sha256": "ab" * 32}
    assert item_variables(ITEMS[4]) == {**scan, "item": scan}
    # Missing optional fields get their empty values; a file item has no value at all.
    bare = item_variables({"index": 9, "kind": "image"})
    assert bare == {"index": 9, "kind": "image", "uri": "", "key": "", "size": 0, "lastModified": "", "sha256": "",
                    "item": {"index": 9, "kind": "image", "uri": "", "key": "", "size": 0, "lastModified": "",
                             "sha256": ""}}


NESTED = {"n": 3, "f": 3.0, "b": True, "s": "x", "z": None, "l": [1, 2.5, [True, "y"]], "m": {"k": {"deep": 1}}}

TYPED = [
    "type(value.n) == int",
    "type(value.f) == double",
    "type(value.b) == bool && value.b",
    "type(value.s) == string && value.s == 'x'",
    "value.z == null",
    "type(value.l) == list && type(value.l[0]) == int && type(value.l[1]) == double",
    "value.l[2][0] == true && value.l[2][1] == 'y' && size(value.l[2]) == 2",
    "type(value.m) == map && type(value.m.k) == map && value.m.k.deep == 1",
    "value.n == 3.0 && value.f == 3",  # CEL compares numbers across int and double
    "type(value.b) != int && value.b != 1",  # a JSON true is no number
    "item.value.m.k.deep == 1",
]


@pytest.mark.parametrize("expression", TYPED)
def test_nested_json_values_keep_their_types(expression):
    assert evaluate_filter(expression, [value_item(0, NESTED)]) == [True]


def test_integers_beyond_64_bits_are_doubles_and_64_bit_ones_stay_int():
    items = [value_item(0, 2**63 - 1), value_item(1, -(2**63)), value_item(2, 2**63), value_item(3, 2**70),
             value_item(4, -(2**63) - 1)]
    assert evaluate_filter("type(value) == int", items) == [T, T, F, F, F]
    assert evaluate_filter("type(value) == double", items) == [F, F, T, T, T]
    assert evaluate_filter("value == 9223372036854775807", items[:1]) == [T]
    assert evaluate_filter("value > 1.0e21", items[3:4]) == [T]


def test_a_value_past_the_depth_limit_fails_its_item_only_when_read():
    deep = 1
    for _ in range(100):
        deep = [deep]
    items = [value_item(0, deep), value_item(1, [[1]])]
    assert evaluate_filter("index == 0", items) == [T, F]  # value not used: not converted
    assert evaluate_filter("value[0][0] == 1", items) == [
        'spec.filter: "value[0][0] == 1" failed for item 0: its value is nested 100 levels deep at '
        "[0][0][0][0][0][0]..., more than the limit of 64 levels of objects and arrays",
        True,
    ]


def test_a_value_that_is_not_json_data_fails_its_item():
    assert evaluate_filter("value == 1", [value_item(3, {1, 2})]) == [
        'spec.filter: "value == 1" failed for item 3: its value holds a set, which is not JSON data'
    ]


# ---------------------------------------------------------------------------------------
# Compile errors
# ---------------------------------------------------------------------------------------


def compile_error(expression) -> FilterError:
    with pytest.raises(FilterError) as caught:
        compile_filter(expression)
    assert caught.value.message == str(caught.value)
    assert isinstance(caught.value, ValueError)
    return caught.value


def test_syntax_error_names_the_field_quotes_the_expression_and_gives_the_parser_message():
    err = compile_error("size >")
    assert err.message == (
        "spec.filter: \"size >\" does not compile: line 1, column 7: Syntax error: mismatched input '<EOF>' "
        "expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, "
        "BYTES, IDENTIFIER}"
    )
    assert err.expression == "size >"
    assert compile_error("a b").message == (
        "spec.filter: \"a b\" does not compile: line 1, column 3: Syntax error: extraneous input 'b' expecting <EOF>")
    assert compile_error("'open").message == (
        "spec.filter: \"'open\" does not compile: line 1, column 1: Syntax error: token recognition error at: "
        "''open' (and 1 more error)")


def test_unsupported_syntax_is_a_compile_error():
    assert compile_error("value.?x == 1").message == (
        "spec.filter: \"value.?x == 1\" does not compile: line 1, column 6: unsupported syntax '.?'")
    assert compile_error("has(value['x'])").message == (
        "spec.filter: \"has(value['x'])\" does not compile: line 1, column 10: invalid argument to has() macro")


def test_unknown_variables_are_refused_at_compile_time():
    assert compile_error("sise > 1024").message == (
        'spec.filter: "sise > 1024" does not compile: undeclared variable sise (the variables are index, kind, '
        "value, uri, key, size, lastModified, sha256 and item)")
    assert compile_error("[1].all(n, n > 0) && foo == bar").message.startswith(
        'spec.filter: "[1].all(n, n > 0) && foo == bar" does not compile: undeclared variables bar, foo (')
    # Names that macros bind (also after a comment), CEL's type names and every item variable are known.
    types = "type(key) in [string, bytes, list, bool, double, uint, null_type]"
    for expression in ("[1, 2].map(n, n * 2).exists(m, m > 3)", "[1].all(\n// a comment\nq, q > 0)",
                       f"type(value) == map || type(size) == int || {types}",
                       " && ".join(f"has(item.{name})" for name in cel_filter.VARIABLES[:-1])):
        compile_filter(expression)


def test_nesting_past_the_parser_limit_is_a_compile_error_not_a_crash():
    expression = "(" * 300 + "1" + ")" * 300
    assert compile_error(expression).message == (
        f'spec.filter: "{"(" * 197}..." does not compile: line 1, column 97: Recursion limit of 96 exceeded '
        "(the expression is nested too deeply) (and 2 more errors)")


def test_length_bound():
    longest = "size >= 0" + " " * (MAX_FILTER_LENGTH - 9)
    assert len(longest) == MAX_FILTER_LENGTH
    compile_filter(longest)
    too_long = longest + " "
    assert compile_error(too_long).message == (
        f'spec.filter: "size >= 0{" " * 188}..." is 4097 characters long, more than the limit of 4096')


def test_empty_and_non_string_expressions():
    assert compile_error("").message == 'spec.filter: "" is empty: an expression such as size > 0 is needed'
    assert compile_error(" \n").message == 'spec.filter: " \\n" is empty: an expression such as size > 0 is needed'
    assert compile_error(None).message == "spec.filter: must be a string, got NoneType"
    assert compile_error(3).message == "spec.filter: must be a string, got int"


def test_evaluate_filter_raises_compile_errors():
    with pytest.raises(FilterError, match=r'^spec\.filter: "size >" does not compile: line 1, column 7'):
        evaluate_filter("size >", ITEMS)


# ---------------------------------------------------------------------------------------
# Per-item errors
# ---------------------------------------------------------------------------------------


def test_failing_items_get_a_message_and_the_others_their_verdict():
    items = [value_item(0, {"age": 4}), value_item(7, {"site": "A"}), value_item(8, {"age": 2})]
    assert evaluate_filter("value.age > 3", items) == [
        True, 'spec.filter: "value.age > 3" failed for item 7: no such key: age', False]


def test_item_without_a_value_says_so():
    assert evaluate_filter("value % 2 == 0", [ITEMS[2], ITEMS[4], ITEMS[0]]) == [
        True,
        'spec.filter: "value % 2 == 0" failed for item 4: a file item has no value (test kind == "value" first)',
        'spec.filter: "value % 2 == 0" failed for item 0: Unsupported operation: map % int.',
    ]


@pytest.mark.parametrize("expression,detail", [
    ("key", "returned string, not a bool"),
    ("size", "returned int, not a bool"),
    ("double(size) / 2.0", "returned double, not a bool"),
    ("size / 2.0 > 1.0", "No such overload: the operation is not defined for the given operand types."),
    ("[size]", "returned list, not a bool"),
    ("{'a': size}", "returned map, not a bool"),
    ("null", "returned null, not a bool"),
    ("b'x'", "returned bytes, not a bool"),
    ("timestamp(lastModified)", "returned timestamp, not a bool"),
    ("duration('1h')", "returned duration, not a bool"),
    ("1 / (size - 4096) == 0", "division by zero in CEL expression"),
    ("key.lowerAscii() == 'a'", "Undefined variable or function: 'lowerAscii'."),
    ("key.matches('[')", "Function 'matches' error: '[' not a valid regex: regex parse error: [ ^ error: unclosed "
                         "character class."),
    ("size + 9223372036854775807 > 0", "Arithmetic overflow in 'add' on 4096 and 9223372036854775807."),
    ("[1, 2][size] == 1", "index out of bounds: 4096"),
])
def test_non_bool_results_and_evaluation_errors_are_messages(expression, detail):
    assert evaluate_filter(expression, [ITEMS[4]]) == [f'spec.filter: "{expression}" failed for item 4: {detail}']


def test_a_rust_panic_is_a_message_for_its_item():
    class PanicException(BaseException):  # pyo3_runtime.PanicException has this name and base
        pass

    class Panicking:
        def execute(self, variables):
            raise PanicException("attempt to subtract with overflow")

    assert cel_filter._evaluate_item(Panicking(), "size > 0", ITEMS[4], ("size",)) == (
        'spec.filter: "size > 0" failed for item 4: the CEL library failed (attempt to subtract with overflow)')

    class Interrupted:
        def execute(self, variables):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cel_filter._evaluate_item(Interrupted(), "size > 0", ITEMS[4], ("size",))


def test_messages_quote_at_most_200_characters_of_the_expression():
    expression = "size >= 0 && " + " && ".join(["index >= 0"] * 30) + " ? key : ''"
    message = evaluate_filter(expression, [ITEMS[4]])[0]
    assert message == f'spec.filter: "{expression[:197]}..." failed for item 4: returned string, not a bool'


# ---------------------------------------------------------------------------------------
# In the validation pool
# ---------------------------------------------------------------------------------------

NUMBERS = "[" + ",".join(str(n) for n in range(100)) + "]"
#: 100 million additions: minutes of work for the evaluator, in a 4096-character expression.
SLOW = f"{NUMBERS}.all(a, {NUMBERS}.all(b, {NUMBERS}.all(c, {NUMBERS}.all(d, a + b + c + d >= 0))))"
#: Ten thousand strings twice as long as the value, kept in a list: gigabytes for a 2 MB value.
GREEDY = f"{NUMBERS}.map(a, {NUMBERS}.map(b, value + value)).size() > 0"


@pytest.fixture(scope="module")
def pool():
    """Short budgets keep the test quick; the logic is the same at 5 s and 512 MiB."""
    validation = ValidationPool(seconds=1.0, memory_mb=256, workers=2, request_seconds=30.0)
    run(validation.start())
    yield validation
    run(validation.close())


def quoted(expression: str) -> str:
    return cel_filter._quote(expression)


def test_pool_gives_the_in_process_verdicts_in_chunks(pool):
    for expression, kept in KEPT[:4]:
        assert run(pool.filter_items(expression, ITEMS, chunk_items=3)) == kept
    many = [object_item(i, "file", f"scans/case-{i}.{'mha' if i % 3 else 'txt'}", i) for i in range(10_000)]
    expression = 'key.endsWith(".mha") && size > 5000'
    assert run(pool.filter_items(expression, many)) == evaluate_filter(expression, many)
    assert run(pool.filter_items("size > 1", [])) == []
    errors = run(pool.filter_items("value.age > 3", [value_item(7, {"site": "A"})]))
    assert errors == ['spec.filter: "value.age > 3" failed for item 7: no such key: age']


def test_pool_raises_compile_errors_before_any_work(pool):
    with pytest.raises(FilterError) as caught:
        run(pool.filter_items("sise > 1024", ITEMS))
    assert caught.value.message.startswith('spec.filter: "sise > 1024" does not compile: undeclared variable sise')
    with pytest.raises(FilterError):
        run(pool.filter_items("size >", []))


def test_costly_expression_hits_the_time_budget_for_its_chunk_only(pool):
    expression = f"index >= 2 || {SLOW}"
    items = [value_item(i, i) for i in range(5)]
    overrun = (f"spec.filter: {quoted(expression)} failed for item {{}}: evaluating it on items 0 to 1 took longer "
               "than the 1 s budget (operator setting validationSeconds)")
    assert run(pool.filter_items(expression, items, chunk_items=2)) == [
        overrun.format(0), overrun.format(1), True, True, True]
    # The worker that overran was replaced: the pool keeps answering.
    assert run(pool.filter_items("index == 1", items)) == [F, T, F, F, F]


@pytest.fixture(scope="module")
def roomy_pool():
    """A time budget far above what filling the memory budget takes: the outcome is unambiguous."""
    validation = ValidationPool(seconds=60.0, memory_mb=256, workers=1)
    run(validation.start())
    yield validation
    run(validation.close())


def test_expression_that_allocates_without_bound_hits_the_memory_budget(roomy_pool):
    pool = roomy_pool
    items = [value_item(0, "x" * 2_000_000), value_item(1, "x")]
    expression = f"index == 1 || {GREEDY}"
    # The Rust evaluator cannot raise MemoryError: it aborts the worker (SIGABRT, exit code -6).
    assert run(pool.filter_items(expression, items, chunk_items=1)) == [
        f"spec.filter: {quoted(expression)} failed for item 0: evaluating it on item 0 needed more than the 256 MiB "
        "memory budget (operator setting validationMemoryMB); the worker ended with exit code -6",
        True,
    ]
    assert run(pool.filter_items("index == 0", items)) == [T, F]


def test_request_budget_reports_unfinished_chunks(pool):
    items = [value_item(0, 0), value_item(1, 1)]
    assert run(pool.filter_items(SLOW, items, total_seconds=0.3)) == [
        f"spec.filter: {quoted(SLOW)} failed for item {index}: evaluating it on items 0 to 1 was not finished within "
        "the 0.3 s budget of one admission request (operator setting validationRequestSeconds)"
        for index in (0, 1)
    ]


def test_pool_refuses_an_empty_chunk_size(pool):
    with pytest.raises(ValueError, match="chunk_items must be at least 1"):
        run(pool.filter_items("size > 1", ITEMS, chunk_items=0))
