"""JSON value validation (§1.2, §1.3): grand-challenge's verdicts and messages, fast.

The cross-check tests compare every verdict with plain ``jsonschema.Draft7Validator`` on the
composed schema (grand-challenge's own way), over examples, hand-written invalid values,
systematic mutations of every example and a table of custom schemas.
"""

from __future__ import annotations

import copy
import math

import jsonschema
import pytest
from jsonschema.exceptions import best_match

from component_operator import kinds
from component_operator.kinds import schemas
from component_operator.kinds.values import clear_cache, grand_challenge_message

D4 = "http://json-schema.org/draft-04/schema#"
D3 = "http://json-schema.org/draft-03/schema#"
D6 = "http://json-schema.org/draft-06/schema#"
D7 = "http://json-schema.org/draft-07/schema#"
D2019 = "https://json-schema.org/draft/2019-09/schema"
D2020 = "https://json-schema.org/draft/2020-12/schema"
PREFIX = "JSON does not fulfill schema: instance "
JSON_CODES = [k.code for k in kinds.JSON_KINDS]


def example(code, **changes):
    value = copy.deepcopy(kinds.EXAMPLE_VALUES[code])
    value.update(changes)
    return value


def without(code, *keys):
    value = example(code)
    for key in keys:
        del value[key]
    return value


def edited(code, edit):
    value = example(code)
    edit(value)
    return value


def grand_challenge(code, value, schema=None, required=True):
    """The reference: Draft 7 on the composed schema, best_match, grand-challenge's message."""
    registry = schemas.python_registry(True)
    validator = jsonschema.Draft7Validator(schemas.compose_schema(code, schema, required=required), registry=registry)
    error = best_match(validator.iter_errors(value))
    return None if error is None else grand_challenge_message(error)


def ours(code, value, schema=None, required=True):
    try:
        kinds.validate_value(code, value, schema=schema, required=required)
    except kinds.ValueValidationError as err:
        return err.message
    return None


# ---------------------------------------------------------------------------------------
# Examples and schemas
# ---------------------------------------------------------------------------------------


def test_every_json_kind_has_a_schema_and_an_example():
    assert set(schemas.JSON_KIND_CODES) == set(JSON_CODES) == set(kinds.EXAMPLE_VALUES)
    assert set(JSON_CODES) <= set(kinds.INTERFACE_VALUE_SCHEMA["definitions"])
    jsonschema.Draft7Validator.check_schema(kinds.INTERFACE_VALUE_SCHEMA)


@pytest.mark.parametrize("code", JSON_CODES)
def test_every_example_value_validates(code):
    kinds.validate_value(code, kinds.EXAMPLE_VALUES[code])
    kinds.validate_value(kinds.resolve_kind(code).label, kinds.example_value(code))
    assert grand_challenge(code, kinds.EXAMPLE_VALUES[code]) is None


def test_example_value_returns_a_private_copy():
    value = kinds.example_value("2DBB")
    value["corners"].clear()
    assert len(kinds.EXAMPLE_VALUES["2DBB"]["corners"]) == 4


def test_schema_details_from_the_specification():
    d = kinds.INTERFACE_VALUE_SCHEMA["definitions"]
    p3 = {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}
    assert d["POIN"]["properties"]["point"] == p3
    assert d["POIN"]["properties"]["probability"] == {"type": "number", "minimum": 0, "maximum": 1}
    assert d["version-object"] == {
        "type": "object",
        "properties": {
            "major": {"type": "number", "minimum": 0, "multipleOf": 1.0},
            "minor": {"type": "number", "minimum": 0, "multipleOf": 1.0},
        },
        "required": ["major", "minor"],
        "additionalProperties": False,
    }
    assert d["3ANG"]["properties"]["type"] == {"const": "Three-point angle"}
    assert d["3-point-angle-object"]["properties"]["type"] == {"const": "Three-point angle"}
    assert d["M3AN"]["properties"]["type"] == {"enum": ["Multiple three-point angles"]}
    assert d["2DBB"]["properties"]["type"] == {"enum": ["2D bounding box"]}
    assert "additionalProperties" not in d["ATRG"]
    assert d["CHART"] == {"$schema": kinds.VEGA_LITE_V5_URL, "$ref": kinds.VEGA_LITE_V5_URL}
    assert d["JSON"] == {}
    for code in ("M2DB", "MDIS", "MPOI", "MPOL", "MLIN", "MANG", "MELL", "M3AN"):
        assert "probability" not in d[code]["properties"]  # only on the items
        assert d[code]["additionalProperties"] is False
    assert d["POLY"]["required"] == ["seed_point", "path_points", "sub_type", "groups", "type", "version"]


def test_compose_schema_as_grand_challenge():
    base = {"$schema": D7, "definitions": kinds.INTERFACE_VALUE_SCHEMA["definitions"]}
    ref = {"$ref": "#/definitions/INT"}
    s = {"maximum": 40}
    assert kinds.compose_schema("INT") == {**base, "allOf": [ref]}
    assert kinds.compose_schema("INT", s) == {**base, "allOf": [s, ref]}
    assert kinds.compose_schema("INT", required=False) == {**base, "oneOf": [{"type": "null"}, ref]}
    assert kinds.compose_schema("INT", s, required=False) == {**base, "oneOf": [{"type": "null"}, {"allOf": [s, ref]}]}
    assert kinds.compose_schema("INT", {}) == kinds.compose_schema("INT")


# ---------------------------------------------------------------------------------------
# Invalid values: at least three per JSON kind, with grand-challenge's message
# ---------------------------------------------------------------------------------------

INVALID = [
    ("STR", 42, "is not of type 'string'"),
    ("STR", None, "is not of type 'string'"),
    ("STR", ["a"], "is not of type 'string'"),
    ("INT", "42", "'42' is not of type 'integer'"),
    ("INT", 1.5, "is not of type 'integer'"),
    ("INT", True, "is not of type 'integer'"),
    ("INT", None, "is not of type 'integer'"),
    ("FLT", True, "is not of type 'number'"),
    ("FLT", "3.14", "'3.14' is not of type 'number'"),
    ("FLT", [1.0], "is not of type 'number'"),
    ("BOOL", 1, "is not of type 'boolean'"),
    ("BOOL", "true", "'true' is not of type 'boolean'"),
    ("BOOL", None, "is not of type 'boolean'"),
    ("CHOI", 1, "is not of type 'string'"),
    ("CHOI", None, "is not of type 'string'"),
    ("CHOI", ["Choice 1"], "is not of type 'string'"),
    ("MCHO", "Choice 1", "'Choice 1' is not of type 'array'"),
    ("MCHO", [1], "is not of type 'string'"),
    ("MCHO", ["a", None], "is not of type 'string'"),
    ("2DBB", {}, "'version' is a required property"),
    ("2DBB", edited("2DBB", lambda v: v["corners"].pop()), "is too short"),
    ("2DBB", example("2DBB", type="2D Bounding Box"), "'2D Bounding Box' is not one of ['2D bounding box']"),
    # grand-challenge strips "<instance> " anywhere in the message, even inside the enum:
    ("2DBB", example("2DBB", type="2D"), "'2D' is not one of ['bounding box']"),
    ("2DBB", example("2DBB", foo=1), "Additional properties are not allowed ('foo' was unexpected)"),
    ("2DBB", example("2DBB", probability=2), "is greater than the maximum of 1"),
    ("2DBB", example("2DBB", version={"major": 1}), "'minor' is a required property"),
    ("M2DB", without("M2DB", "boxes"), "'boxes' is a required property"),
    ("M2DB", edited("M2DB", lambda v: v["boxes"][1]["corners"].pop()), "is too short"),
    ("M2DB", edited("M2DB", lambda v: v["boxes"][0].update(version={"major": 1, "minor": 0})), "Additional properties are not allowed ('version' was unexpected)"),
    ("M2DB", example("M2DB", probability=0.5), "Additional properties are not allowed ('probability' was unexpected)"),
    ("M2DB", edited("M2DB", lambda v: v["boxes"][0].update(type="Multiple 2D bounding boxes")), "'Multiple 2D bounding boxes' is not one of ['2D bounding box']"),
    ("DIST", example("DIST", start=[1, 2, 3, 4]), "is too long"),
    ("DIST", without("DIST", "end"), "'end' is a required property"),
    ("DIST", example("DIST", start=["a", 0, 0]), "'a' is not of type 'number'"),
    ("MDIS", edited("MDIS", lambda v: v["lines"][0].pop("start")), "'start' is a required property"),
    ("MDIS", edited("MDIS", lambda v: v["lines"][1].update(type="Line")), "'Line' is not one of ['Distance measurement']"),
    ("MDIS", example("MDIS", lines="x"), "'x' is not of type 'array'"),
    ("POIN", example("POIN", point=[1, 2]), "is too short"),
    ("POIN", example("POIN", point="1,2,3"), "'1,2,3' is not of type 'array'"),
    ("POIN", example("POIN", type="point"), "'point' is not one of ['Point']"),
    ("POIN", example("POIN", point=[1, 2, True]), "is not of type 'number'"),
    ("MPOI", edited("MPOI", lambda v: v["points"][0].update(version={"major": 1, "minor": 0})), "Additional properties are not allowed ('version' was unexpected)"),
    ("MPOI", example("MPOI", probability=1), "Additional properties are not allowed ('probability' was unexpected)"),
    ("MPOI", edited("MPOI", lambda v: v["points"][0].update(name=1)), "is not of type 'string'"),
    ("POLY", without("POLY", "groups"), "'groups' is a required property"),
    ("POLY", example("POLY", groups=[1]), "is not of type 'string'"),
    ("POLY", edited("POLY", lambda v: v["path_points"][1].pop()), "is too short"),
    ("POLY", example("POLY", sub_type=5), "is not of type 'string'"),
    ("MPOL", edited("MPOL", lambda v: v["polygons"][0].pop("sub_type")), "'sub_type' is a required property"),
    ("MPOL", edited("MPOL", lambda v: v["polygons"][0].update(probability=-0.1)), "is less than the minimum of 0"),
    ("MPOL", example("MPOL", type="Multiple polygon"), "'Multiple polygon' is not one of ['Multiple polygons']"),
    ("LINE", example("LINE", path_point_lists=[[[1, 2]]]), "is too short"),
    ("LINE", example("LINE", seed_points=[1, 2, 3]), "is not of type 'array'"),
    ("LINE", without("LINE", "type"), "'type' is a required property"),
    ("MLIN", edited("MLIN", lambda v: v["lines"][0].pop("path_point_lists")), "'path_point_lists' is a required property"),
    ("MLIN", edited("MLIN", lambda v: v["lines"][1].update(type="Lines")), "'Lines' is not one of ['Line']"),
    ("MLIN", example("MLIN", name=5), "is not of type 'string'"),
    ("ANGL", edited("ANGL", lambda v: v["lines"].append(v["lines"][0])), "is too long"),
    ("ANGL", edited("ANGL", lambda v: v["lines"][0].pop()), "is too short"),
    ("ANGL", without("ANGL", "version", "type"), "'version' is a required property"),
    ("MANG", edited("MANG", lambda v: v["angles"][0].pop("lines")), "'lines' is a required property"),
    ("MANG", edited("MANG", lambda v: v["angles"][0].update(version={"major": 1, "minor": 0})), "Additional properties are not allowed ('version' was unexpected)"),
    ("MANG", example("MANG", angles="x"), "'x' is not of type 'array'"),
    ("ELLI", edited("ELLI", lambda v: v["major_axis"].append([0, 0, 0])), "is too long"),
    ("ELLI", without("ELLI", "minor_axis"), "'minor_axis' is a required property"),
    ("ELLI", example("ELLI", type="ellipse"), "'ellipse' is not one of ['Ellipse']"),
    ("MELL", edited("MELL", lambda v: v["ellipses"][0]["minor_axis"].pop()), "is too short"),
    ("MELL", edited("MELL", lambda v: v["ellipses"][0].update(colour="red")), "Additional properties are not allowed ('colour' was unexpected)"),
    ("MELL", without("MELL", "ellipses"), "'ellipses' is a required property"),
    ("3ANG", example("3ANG", type="Three-Point Angle"), "'Three-point angle' was expected"),
    ("3ANG", edited("3ANG", lambda v: v["angle"].pop()), "is too short"),
    ("3ANG", example("3ANG", version={"major": -1, "minor": 0}), "is less than the minimum of 0"),
    ("3ANG", example("3ANG", version={"major": 1.5, "minor": 0}), "is not a multiple of 1.0"),
    ("M3AN", edited("M3AN", lambda v: v["angles"][0].update(type="3ANG")), "'Three-point angle' was expected"),
    ("M3AN", example("M3AN", type="Multiple three-point angle"), "'Multiple three-point angle' is not one of ['Multiple three-point angles']"),
    ("M3AN", edited("M3AN", lambda v: v["angles"][0]["angle"].append([0, 0, 0])), "is too long"),
    ("ATRG", {}, "'3d_affine_transform' is a required property"),
    ("ATRG", edited("ATRG", lambda v: v["3d_affine_transform"].pop()), "is too short"),
    ("ATRG", edited("ATRG", lambda v: v["3d_affine_transform"][2].__setitem__(1, "1")), "'1' is not of type 'number'"),
    ("ATRG", 5, "is not of type 'object'"),
    ("CHART", 5, "is not valid under any of the given schemas"),
    ("CHART", "chart", "'chart' is not valid under any of the given schemas"),
    ("CHART", example("CHART", mark="barz"), "'barz' is not valid under any of the given schemas"),
    ("CHART", example("CHART", width="wide"), None),
]  # fmt: skip


def _invalid_id(case):
    return f"{case[0]}-{str(case[1])[:30]}"


@pytest.mark.parametrize("code,value,expected", INVALID, ids=[_invalid_id(c) for c in INVALID])
def test_invalid_values_are_refused_with_grand_challenges_message(code, value, expected):
    with pytest.raises(kinds.ValueValidationError) as info:
        kinds.validate_value(code, value)
    message = info.value.message
    assert message.startswith(PREFIX)
    if expected is not None:
        assert message == PREFIX + expected
    assert message == grand_challenge(code, value)


def test_each_json_kind_has_at_least_three_invalid_cases():
    counts = {code: 0 for code in JSON_CODES if code != "JSON"}  # Anything: see custom schemas
    for code, *_ in INVALID:
        counts[code] += 1
    assert min(counts.values()) >= 3, counts


def test_draft7_number_semantics():
    kinds.validate_value("INT", 42.0)  # integer-valued floats are integers in draft 7
    kinds.validate_value("INT", 2**80)
    kinds.validate_value("FLT", 42)
    for code in ("INT", "FLT"):
        for value in (True, False):
            with pytest.raises(kinds.ValueValidationError):
                kinds.validate_value(code, value)
    kinds.validate_value("POIN", example("POIN", version={"major": 2.0, "minor": 0}))


def test_enum_is_case_sensitive_and_format_is_not_asserted():
    with pytest.raises(kinds.ValueValidationError):
        kinds.validate_value("POIN", example("POIN", type="POINT"))
    kinds.validate_value("STR", "not an email", schema={"format": "email"})


def test_empty_containers_are_valid():
    kinds.validate_value("MPOI", example("MPOI", points=[]))
    kinds.validate_value("POLY", example("POLY", path_points=[], groups=[]))
    kinds.validate_value("LINE", example("LINE", seed_points=[], path_point_lists=[[]]))
    kinds.validate_value("MCHO", [])


def test_null_only_valid_for_anything_when_required():
    kinds.validate_value("JSON", None)
    for code in JSON_CODES:
        if code != "JSON":
            with pytest.raises(kinds.ValueValidationError):
                kinds.validate_value(code, None)


def test_optional_values_admit_null_except_anything():
    kinds.validate_value("INT", None, required=False)
    kinds.validate_value("2DBB", None, required=False)
    # oneOf [null, {}]: null matches both branches, so grand-challenge rejects it.
    with pytest.raises(kinds.ValueValidationError) as info:
        kinds.validate_value("JSON", None, required=False)
    assert info.value.message.startswith(PREFIX + "is valid under each of")
    with pytest.raises(kinds.ValueValidationError) as info:
        kinds.validate_value("INT", "x", required=False)
    assert info.value.message == PREFIX + "'x' is not valid under any of the given schemas"


# ---------------------------------------------------------------------------------------
# Paths and plain-words details
# ---------------------------------------------------------------------------------------


def _error(code, value, **kwargs):
    with pytest.raises(kinds.ValueValidationError) as info:
        kinds.validate_value(code, value, **kwargs)
    return info.value


def test_path_and_detail_name_the_place_and_the_rule():
    err = _error("2DBB", edited("2DBB", lambda v: v["corners"].pop()))
    assert (err.path, err.detail, str(err)) == ("corners", "corners: expected exactly 4 items, got 3", err.detail)
    assert err.instance == kinds.EXAMPLE_VALUES["2DBB"]["corners"][:3]

    value = example("M2DB", boxes=[{"corners": [[0, 0, 0]] * 4}] * 3 + [{"corners": [[0, 0, 0], [0, 0]] + [[0, 0, 0]] * 2}])
    err = _error("M2DB", value)
    assert err.path == "boxes[3].corners[1]"
    assert err.detail == "boxes[3].corners[1]: expected exactly 3 items, got 2"


@pytest.mark.parametrize(
    "code,value,path,detail",
    [
        ("INT", "42", "", "expected integer, got string '42'"),
        ("FLT", True, "", "expected number, got boolean true"),
        ("2DBB", {}, "version", "version: required property is missing"),
        ("POIN", example("POIN", foo=1), "foo", "foo: property is not allowed; allowed: name, type, point, version, probability"),
        ("POIN", example("POIN", type="point"), "type", "type: must be \"Point\", got string 'point'"),
        ("3ANG", example("3ANG", type="x"), "type", "type: must be \"Three-point angle\", got string 'x'"),
        ("POIN", example("POIN", probability=1.5), "probability", "probability: must be <= 1, got 1.5"),
        ("POIN", example("POIN", version={"major": 0.5, "minor": 0}), "version.major", "version.major: must be a multiple of 1.0, got 0.5"),
        ("MPOI", example("MPOI", points=[{"point": [1, 2, 3], "a": 1, "b": 2}]), "points[0]", "points[0]: properties 'a', 'b' are not allowed; allowed: name, type, point, probability"),
        ("ATRG", {"3d_affine_transform": [[1, 2, 3, 4]] * 5}, "3d_affine_transform", "3d_affine_transform: expected exactly 4 items, got 5"),
        ("MCHO", ["a", 1], "[1]", "[1]: expected string, got integer 1"),
        ("JSON", {"a b": {"c": 1}}, '["a b"].c', '["a b"].c: must be <= 0, got 1'),
    ],
)  # fmt: skip
def test_plain_words_details(code, value, path, detail):
    schema = {"properties": {"a b": {"properties": {"c": {"maximum": 0}}}}} if code == "JSON" else None
    err = _error(code, value, schema=schema)
    assert (err.path, err.detail) == (path, detail)


# ---------------------------------------------------------------------------------------
# Custom schemas: AND semantics, refusal of broken ones
# ---------------------------------------------------------------------------------------


def test_custom_schema_is_and_ed_with_the_kind_schema():
    schema = {"maximum": 40}
    kinds.validate_value("INT", 40, schema=schema)
    assert _error("INT", 41, schema=schema).message == PREFIX + "is greater than the maximum of 40"
    # The kind schema still applies: a custom schema cannot widen it.
    assert _error("INT", "5", schema={"type": ["integer", "string"]}).message == PREFIX + "'5' is not of type 'integer'"
    named = {"required": ["name"]}
    kinds.validate_value("2DBB", kinds.example_value("2DBB"), schema=named)
    assert _error("2DBB", without("2DBB", "name"), schema=named).message == PREFIX + "'name' is a required property"
    assert _error("JSON", None, schema={"type": "object"}).message == PREFIX + "is not of type 'object'"
    # An interface may refer to the built-in definitions of the composed document.
    assert _error("JSON", 1, schema={"$ref": "#/definitions/STR"}).message == PREFIX + "is not of type 'string'"
    kinds.validate_value("JSON", kinds.example_value("CHART"), schema={"$ref": "#/definitions/CHART"})


def test_custom_schema_dialect_follows_its_schema_keyword():
    # Python jsonschema evaluates an embedded schema in its declared dialect.
    prefix_items = {"$schema": D2020, "prefixItems": [{"type": "string"}]}
    with pytest.raises(kinds.ValueValidationError):
        kinds.validate_value("JSON", [1], schema=prefix_items)
    kinds.validate_value("JSON", [1], schema={"prefixItems": [{"type": "string"}]})  # draft 7 ignores it


def test_value_required():
    assert kinds.value_required("JSON") is False
    assert kinds.value_required("JSON", {"type": "object"}) is True
    assert kinds.value_required("BOOL") is False
    assert kinds.value_required("INT") is True
    assert kinds.value_required("2DBB") is True
    assert kinds.value_required("JSON", store_in_database=False) is True  # a file
    assert kinds.value_required("PDF file") is True
    assert kinds.value_required("Image") is True


@pytest.mark.parametrize(
    "schema,message",
    [
        ({"type": "whatevs"}, "Invalid schema: 'whatevs' is not valid under any of the given schemas"),
        ({"minimum": "3"}, "Invalid schema: '3' is not of type 'number'"),
        ({"$schema": D4, "maximum": 3, "exclusiveMaximum": True}, "Invalid schema: True is not of type 'number'"),
        ({"$ref": "https://example.com/schema.json"}, "Invalid schema: remote $ref 'https://example.com/schema.json' is not allowed"),
        ({"properties": {"a": {"$ref": "other.json#/x"}}}, "Invalid schema: remote $ref 'other.json#/x' is not allowed"),
        ({"$ref": D7}, f"Invalid schema: remote $ref '{D7}' is not allowed"),
        ({"$defs": {"x": {}}, "$ref": "#/$defs/x"}, "Invalid schema: $ref '#/$defs/x' cannot be resolved"),
        ("not a schema", "Invalid schema: 'not a schema' is not of type 'object', 'boolean'"),
    ],
)
def test_broken_custom_schemas_are_refused(schema, message):
    with pytest.raises(kinds.InvalidSchemaError) as info:
        kinds.check_custom_schema(schema)
    assert info.value.message.startswith(message)
    # Validating a value with it reports the schema instead of crashing (twice: cached).
    for _ in range(2):
        with pytest.raises(kinds.InvalidSchemaError) as info:
            kinds.validate_value("JSON", {}, schema=schema)
        assert info.value.message.startswith(message)
        assert isinstance(info.value, kinds.ValueValidationError)


def test_refs_in_data_keywords_and_vega_lite_refs_are_fine():
    kinds.check_custom_schema({"enum": [{"$ref": "https://example.com"}]})
    kinds.check_custom_schema({"$ref": kinds.VEGA_LITE_V5_URL})
    kinds.check_custom_schema({"$ref": kinds.VEGA_LITE_V5_URL + "#/definitions/Mark"})
    kinds.check_custom_schema({"$schema": D2020, "type": "object"})
    kinds.check_custom_schema({})
    kinds.check_custom_schema(None)
    kinds.validate_value("STR", "bar", schema={"$ref": kinds.VEGA_LITE_V5_URL + "#/definitions/Mark"})
    assert _error("STR", "barz", schema={"$ref": kinds.VEGA_LITE_V5_URL + "#/definitions/Mark"}).message.startswith(PREFIX)


def test_cached_validators_do_not_see_later_schema_mutation():
    schema = {"maximum": 3}
    kinds.validate_value("INT", 3, schema=schema)
    schema["maximum"] = 1  # a new schema (different cache key), the old entry is unaffected
    with pytest.raises(kinds.ValueValidationError):
        kinds.validate_value("INT", 3, schema=schema)
    kinds.validate_value("INT", 3, schema={"maximum": 3})


def test_non_json_kinds_are_not_values():
    with pytest.raises(ValueError, match="not a JSON kind"):
        kinds.validate_value("PDF file", "x")


def test_non_json_python_values_get_pythons_verdict():
    import datetime

    with pytest.raises(kinds.ValueValidationError):
        kinds.validate_value("STR", datetime.date(2024, 1, 1))
    kinds.validate_value("JSON", datetime.date(2024, 1, 1))
    kinds.validate_value("FLT", math.inf)  # Python accepts inf as a number; jsonschema-rs does not


# ---------------------------------------------------------------------------------------
# Cross-check: every verdict equals jsonschema Draft7Validator's on the composed schema
# ---------------------------------------------------------------------------------------

SUBSTITUTES = [None, True, False, 0, -1, 1.5, 42.0, 2**64, "", "x", [], [1, 2, 3], [[1, 2, 3]], {}, {"a": 1}]


def mutations(value):
    """The value with each node replaced, each key removed and an extra key added, one at a time."""
    yield value
    if isinstance(value, dict):
        yield {**value, "extra": 1}
        for key in value:
            yield {k: v for k, v in value.items() if k != key}
            for variant in mutations(value[key]):
                if variant is not value[key]:
                    yield {**value, key: variant}
    elif isinstance(value, list):
        yield value[:-1]
        yield [*value, value[-1] if value else 0]
        for index, item in enumerate(value[:2]):
            for variant in mutations(item):
                if variant is not item:
                    yield [*value[:index], variant, *value[index + 1 :]]
    for substitute in SUBSTITUTES:
        yield substitute


def _variants(code):
    seen, out = set(), []
    values = [kinds.EXAMPLE_VALUES[code], *(v for c, v, _ in INVALID if c == code)]
    for base in values:
        for variant in mutations(base):
            key = repr(variant)
            if key not in seen:
                seen.add(key)
                out.append(variant)
    return out


def _sample(values, size):
    stride = max(1, len(values) // size)
    return values[::stride]


@pytest.mark.parametrize("code", JSON_CODES)
def test_verdicts_match_jsonschema_draft7(code):
    # An even sample keeps the test quick (vega-lite validation in Python is slow).
    variants = _sample(_variants(code), 150 if code == "CHART" else 500)
    assert len(variants) > 10
    valid = invalid = 0
    for value in variants:
        for required in (True, False):
            expected = grand_challenge(code, value, required=required)
            assert ours(code, value, required=required) == expected, (value, required)
            valid += expected is None
            invalid += expected is not None
    assert valid and invalid


CUSTOM_SCHEMAS = [
    ("INT", {"maximum": 40}),
    ("INT", {"minimum": 0, "exclusiveMaximum": 10}),
    ("INT", {"$schema": D4, "minimum": 0}),
    ("INT", {"$schema": D6, "exclusiveMinimum": 0}),
    ("INT", {"$schema": D3, "divisibleBy": 2}),
    ("INT", {"multipleOf": 3}),
    ("FLT", {"multipleOf": 0.1}),
    ("FLT", {"$schema": D4, "type": "integer"}),
    ("FLT", {"$schema": D2020, "$ref": "#/definitions/INT", "maximum": 3}),
    ("FLT", {"$ref": "#/definitions/INT", "maximum": 3}),
    ("STR", {"pattern": "^[a-z]+$"}),
    # Patterns run on RE2 (kinds.regex) with Python's verdicts: Unicode \d and \w, $ before "\n".
    ("STR", {"pattern": "^\\d{3}$"}),
    ("STR", {"pattern": "\\w+@\\w+"}),
    ("STR", {"pattern": "(?m)^b$"}),
    ("STR", {"$schema": D4, "pattern": "^[A-Z]"}),
    ("STR", {"pattern": "^(a+)+$"}),
    ("STR", {"enum": ["a", "b", "x"]}),
    ("STR", {"minLength": 1, "maxLength": 2}),
    ("STR", {"contentMediaType": "application/json"}),
    ("STR", {"format": "email"}),
    ("STR", {"not": {"const": "x"}}),
    ("STR", False),
    ("BOOL", {"const": True}),
    ("MCHO", {"items": {"enum": ["a", "b"]}, "uniqueItems": True}),
    ("MCHO", {"minItems": 1, "maxItems": 2}),
    ("2DBB", {"required": ["name"]}),
    ("2DBB", {"properties": {"name": {"enum": ["Region of interest"]}}}),
    ("MPOI", {"properties": {"points": {"maxItems": 1}}}),
    ("MPOI", {"$schema": D2019, "properties": {"points": {"items": {"required": ["name"]}}}}),
    ("JSON", {"type": "object"}),
    ("JSON", {"type": ["object", "null"]}),
    ("JSON", {"not": {"type": "null"}}),
    ("JSON", {"$schema": D2020, "prefixItems": [{"type": "integer"}], "items": False}),
    ("JSON", {"$schema": D2019, "properties": {"a": {}}, "unevaluatedProperties": False}),
    ("JSON", {"$ref": "#/definitions/INT"}),
    ("JSON", {"type": "array", "uniqueItems": True}),
    ("JSON", {"const": [1, True]}),
    ("JSON", {"contains": {"type": "string"}}),
    ("JSON", {"dependencies": {"a": ["b"]}}),
    ("JSON", {"if": {"type": "integer"}, "then": {"minimum": 3}, "else": {"type": "string"}}),
    ("JSON", {"propertyNames": {"maxLength": 1}}),
    ("JSON", {"patternProperties": {"^x": {"type": "integer"}}, "additionalProperties": False}),
    ("JSON", {"patternProperties": {"^\\d+$": {"type": "string"}, "^y": {}}, "additionalProperties": False}),
    ("JSON", {"$schema": D2020, "patternProperties": {"^x": True}, "unevaluatedProperties": False}),
    ("JSON", {"anyOf": [{"type": "integer"}, {"type": "string", "minLength": 1}]}),
    ("JSON", {"oneOf": [{"type": "number"}, {"type": "integer"}]}),
    ("JSON", {"$schema": D7, "items": [{"type": "integer"}], "additionalItems": False}),
]
CUSTOM_VALUES = [
    None, True, False, 0, 1, 1.0, 2, 3, 3.5, 5, 6, 10, 40, 40.0, 41, -1, 0.3, 0.7, 2**64, "", "a", "x", "abc",
    "abc\n", "AB", "ab", '{"a": 1}', "{bad", "a@b", [], [1], [1, 2], ["a", "b"], ["a", "a"], [1, True], [1, "x"],
    [1.0, 1], ["a", "b", "c"], {}, {"a": 1}, {"a": 1, "b": 2}, {"b": 1}, {"x1": 1}, {"x1": "s"}, {"y": 1},
    "123", "١٢٣", "123\n", "a@b\n", "é@ß", "a\nb", "aaaa", "a" * 12 + "!", "Abc", {"12": "s"}, {"١": 1},
]  # fmt: skip


@pytest.mark.parametrize("code,schema", CUSTOM_SCHEMAS, ids=[f"{c}-{s}"[:60] for c, s in CUSTOM_SCHEMAS])
def test_custom_schema_verdicts_match_jsonschema_draft7(code, schema):
    kinds.check_custom_schema(schema)
    values = [*CUSTOM_VALUES, *_sample(_variants(code), 100)]
    verdicts = set()
    for value in values:
        for required in (True, False):
            expected = grand_challenge(code, value, schema, required)
            assert ours(code, value, schema, required) == expected, (value, required)
            verdicts.add(expected is None)
    assert verdicts == {True, False} or schema is False


def test_cross_check_survives_a_cold_cache():
    clear_cache()
    assert ours("FLT", 0.3, {"multipleOf": 0.1}) == grand_challenge("FLT", 0.3, {"multipleOf": 0.1})
    assert ours("STR", "abc\n", {"pattern": "^[a-z]+$"}) is None  # Python's $ matches before a final newline


def test_fast_validator_is_used_where_it_is_faithful():
    from component_operator.kinds.values import _compiled

    for code in JSON_CODES:
        compiled = _compiled(code, None, True)
        assert compiled.accepts_everything if code == "JSON" else compiled.verdict is not None, code
        assert _compiled(code, None, False).verdict is not None
    assert _compiled("INT", {"maximum": 40}, True).verdict is not None
    assert _compiled("JSON", {"$ref": "#/definitions/STR"}, True).verdict is not None  # whole document
    assert _compiled("STR", {"pattern": "^a"}, True).verdict is not None  # kind by Rust, pattern by Python
    # A dialect switch next to a $ref: only Python evaluates that like grand-challenge.
    assert _compiled("FLT", {"$schema": D2020, "$ref": "#/definitions/INT", "maximum": 3}, True).verdict is None


def test_large_values_validate_quickly():
    import time

    points = [[float(i), float(i % 7), 0.5] for i in range(1000)]
    polygon = {"seed_point": [0, 0, 0], "path_points": points, "sub_type": "poly", "groups": []}
    value = example("MPOL", polygons=[dict(polygon, name=f"p{i}", path_points=list(points)) for i in range(100)])
    kinds.validate_value("MPOL", value)
    start = time.perf_counter()
    kinds.validate_value("MPOL", value)
    assert time.perf_counter() - start < 0.5  # Python jsonschema needs about 2 s for this value
    value["polygons"][50]["path_points"][999] = [1.0]
    assert _error("MPOL", value).path == "polygons[50].path_points[999]"


def test_chart_validation_never_touches_the_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("network access during validation")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    clear_cache()
    kinds.validate_value("Chart", kinds.example_value("CHART"))
    assert _error("Chart", example("CHART", mark="barz")).path == "mark"
    kinds.validate_value("String", "bar", schema={"$ref": kinds.VEGA_LITE_V5_URL + "#/definitions/Mark"})
