"""The built-in JSON Schemas of the 25 JSON kinds, and one documented example value per kind.

A value of a JSON kind is valid when it passes grand-challenge's schema for that kind (and
the interface's own schema, see ``values``). The schemas here describe the same sets of
values as grand-challenge's ``INTERFACE_VALUE_SCHEMA`` (Draft 7, one definition per kind
code plus shared building blocks), because algorithms and readers written for
grand-challenge must accept and produce exactly those values. Keyword order inside each
object is kept stable on purpose: jsonschema's ``best_match`` breaks ties by the order in
which errors are found, so the order decides which of two equally relevant messages a user
sees.

``CHART`` is a vega-lite v5 top-level specification. Its schema is read from the copy that
the pinned ``altair`` distribution ships (the package is located, never imported) and is
served from memory under its canonical URL, so validating a chart never touches the network.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import threading
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import quote

from .catalog import JSON_KINDS

DRAFT7_URL = "http://json-schema.org/draft-07/schema#"
VEGA_LITE_V5_URL = "https://vega.github.io/schema/vega-lite/v5.json"
_VEGA_LITE_FILE_IN_ALTAIR = ("vegalite", "v5", "schema", "vega-lite-schema.json")

# ---------------------------------------------------------------------------------------
# Building blocks (§1.3 of the specification)
# ---------------------------------------------------------------------------------------


def _point3() -> dict[str, Any]:
    """P3: a 3-D point ``[x, y, z]``."""
    return {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}


def _exactly(count: int, items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": count, "maxItems": count}


def _any_number_of(items: dict[str, Any]) -> dict[str, Any]:
    # Container arrays have no minItems/maxItems/uniqueItems: empty annotations are valid.
    return {"type": "array", "items": items}


def _probability() -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "maximum": 1}


def _version_object() -> dict[str, Any]:
    whole_number = {"type": "number", "minimum": 0, "multipleOf": 1.0}
    return {
        "type": "object",
        "properties": {"major": dict(whole_number), "minor": dict(whole_number)},
        "required": ["major", "minor"],
        "additionalProperties": False,
    }


def _type_literal(literal: str) -> dict[str, Any]:
    # The two three-point-angle schemas use const, every other annotation enum; the error
    # texts differ ("'x' is not one of [...]" vs "'Three-point angle' was expected").
    if literal == "Three-point angle":
        return {"const": literal}
    return {"enum": [literal]}


def _annotation(
    literal: str,
    geometry: dict[str, dict[str, Any]],
    required: list[str],
    *,
    versioned: bool,
    with_probability: bool = True,
) -> dict[str, Any]:
    """An annotation object; ``versioned`` ones are top-level values, the others list items."""
    properties: dict[str, Any] = {"name": {"type": "string"}, "type": _type_literal(literal)}
    properties.update(geometry)
    if versioned:
        properties["version"] = {"$ref": "#/definitions/version-object"}
    if with_probability:
        properties["probability"] = _probability()
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _collection(literal: str, container: str, item_definition: str, required: list[str]) -> dict[str, Any]:
    """A ``Multiple ...`` wrapper: versioned, no top-level probability, items without version."""
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "type": _type_literal(literal),
            container: _any_number_of({"$ref": f"#/definitions/{item_definition}"}),
            "version": {"$ref": "#/definitions/version-object"},
        },
        "required": required,
        "additionalProperties": False,
    }


def _geometries() -> dict[str, dict[str, dict[str, Any]]]:
    """The geometry properties of each single annotation, shared by value and list item."""
    return {
        "2D bounding box": {"corners": _exactly(4, _point3())},
        "Distance measurement": {"start": _point3(), "end": _point3()},
        "Point": {"point": _point3()},
        "Polygon": {
            "seed_point": _point3(),
            "path_points": _any_number_of(_point3()),
            "sub_type": {"type": "string"},
            "groups": _any_number_of({"type": "string"}),
        },
        "Line": {
            "seed_points": _any_number_of(_point3()),
            "path_point_lists": _any_number_of(_any_number_of(_point3())),
        },
        "Angle": {"lines": _exactly(2, _exactly(2, _point3()))},
        "Ellipse": {"major_axis": _exactly(2, _point3()), "minor_axis": _exactly(2, _point3())},
        "Three-point angle": {"angle": _exactly(3, _point3())},
    }


def _affine_transform_registration() -> dict[str, Any]:
    # ATRG is the odd one out: no version, no type, and any other key is allowed.
    row = {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}}
    return {
        "type": "object",
        "properties": {"3d_affine_transform": {"type": "array", "minItems": 4, "maxItems": 4, "items": row}},
        "required": ["3d_affine_transform"],
    }


def _build_definitions() -> dict[str, Any]:
    g = _geometries()
    single = _annotation
    return {
        "STR": {"type": "string"},
        "INT": {"type": "integer"},
        "FLT": {"type": "number"},
        "BOOL": {"type": "boolean"},
        "JSON": {},
        "2DBB": single("2D bounding box", g["2D bounding box"], ["version", "type", "corners"], versioned=True),
        "M2DB": _collection("Multiple 2D bounding boxes", "boxes", "2D-bounding-box-object", ["version", "type", "boxes"]),
        "DIST": single("Distance measurement", g["Distance measurement"], ["version", "type", "start", "end"], versioned=True),
        "MDIS": _collection("Multiple distance measurements", "lines", "line-object", ["version", "type", "lines"]),
        "POIN": single("Point", g["Point"], ["version", "type", "point"], versioned=True),
        "MPOI": _collection("Multiple points", "points", "point-object", ["version", "type", "points"]),
        "POLY": single(
            "Polygon",
            g["Polygon"],
            ["seed_point", "path_points", "sub_type", "groups", "type", "version"],
            versioned=True,
        ),
        "MPOL": _collection("Multiple polygons", "polygons", "polygon-object", ["type", "version", "polygons"]),
        "LINE": single("Line", g["Line"], ["seed_points", "path_point_lists", "type", "version"], versioned=True),
        "MLIN": _collection("Multiple lines", "lines", "spline-object", ["type", "version", "lines"]),
        "ANGL": single("Angle", g["Angle"], ["lines", "version", "type"], versioned=True),
        "MANG": _collection("Multiple angles", "angles", "angle-object", ["type", "version", "angles"]),
        "ELLI": single("Ellipse", g["Ellipse"], ["version", "type", "major_axis", "minor_axis"], versioned=True),
        "MELL": _collection("Multiple ellipses", "ellipses", "ellipse-object", ["version", "type", "ellipses"]),
        "3ANG": single("Three-point angle", g["Three-point angle"], ["version", "type", "angle"], versioned=True),
        "M3AN": _collection("Multiple three-point angles", "angles", "3-point-angle-object", ["version", "type", "angles"]),
        "ATRG": _affine_transform_registration(),
        "CHOI": {"type": "string"},  # sockets use strings; reader-study answers use numbers
        "MCHO": {"type": "array", "items": {"type": "string"}},
        "CHART": {"$schema": VEGA_LITE_V5_URL, "$ref": VEGA_LITE_V5_URL},
        # Shared building blocks: list items of the "Multiple ..." kinds carry no version.
        "version-object": _version_object(),
        "2D-bounding-box-object": single("2D bounding box", g["2D bounding box"], ["corners"], versioned=False),
        "line-object": single("Distance measurement", g["Distance measurement"], ["start", "end"], versioned=False),
        "point-object": single("Point", g["Point"], ["point"], versioned=False),
        "polygon-object": single(
            "Polygon", g["Polygon"], ["seed_point", "path_points", "sub_type", "groups"], versioned=False
        ),
        "spline-object": single("Line", g["Line"], ["seed_points", "path_point_lists"], versioned=False),
        "angle-object": single("Angle", g["Angle"], ["lines"], versioned=False),
        "ellipse-object": single("Ellipse", g["Ellipse"], ["major_axis", "minor_axis"], versioned=False),
        "3-point-angle-object": single("Three-point angle", g["Three-point angle"], ["angle"], versioned=False),
    }


#: grand-challenge's ``INTERFACE_VALUE_SCHEMA``: no root constraint, one definition per kind.
INTERFACE_VALUE_SCHEMA: dict[str, Any] = {"$schema": DRAFT7_URL, "definitions": _build_definitions()}

#: The definition name of each JSON kind's schema (the kind code itself).
JSON_KIND_CODES: tuple[str, ...] = tuple(kind.code for kind in JSON_KINDS)


def kind_schema(code: str) -> dict[str, Any]:
    """A deep copy of the built-in schema of one JSON kind (``KeyError`` for other codes)."""
    if code not in JSON_KIND_CODES:
        raise KeyError(code)
    return copy.deepcopy(INTERFACE_VALUE_SCHEMA["definitions"][code])


def compose_schema(code: str, custom_schema: Any = None, *, required: bool = True) -> dict[str, Any]:
    """The schema a value is checked against, composed as grand-challenge does (§1.2).

    The custom schema is AND-ed with the kind's schema; ``required=False`` additionally
    admits ``null``. ``None`` and ``{}`` mean "no custom schema".
    """
    kind_ref: dict[str, Any] = {"$ref": f"#/definitions/{code}"}
    has_custom = not (custom_schema is None or custom_schema == {})
    constraint: dict[str, Any] = {"allOf": [custom_schema, kind_ref]} if has_custom else {"allOf": [kind_ref]}
    if not required:
        inner = constraint if has_custom else kind_ref
        constraint = {"oneOf": [{"type": "null"}, inner]}
    return {**INTERFACE_VALUE_SCHEMA, **constraint}


# ---------------------------------------------------------------------------------------
# vega-lite v5 (CHART), from the altair distribution, without importing altair
# ---------------------------------------------------------------------------------------

_vega_lite_lock = threading.Lock()
_vega_lite_cache: dict[str, Any] = {}


class VegaLiteSchemaUnavailable(RuntimeError):
    """The vendored vega-lite schema could not be found (altair is not installed)."""


def vega_lite_schema_path() -> Path:
    """Where the pinned altair distribution keeps its vega-lite v5 JSON Schema."""
    spec = importlib.util.find_spec("altair")  # locates the package, does not import it
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location).joinpath(*_VEGA_LITE_FILE_IN_ALTAIR)
        if candidate.is_file():
            return candidate
    raise VegaLiteSchemaUnavailable(
        "the vega-lite v5 schema for Chart values was not found: install altair==5.5.0 "
        "(it ships altair/vegalite/v5/schema/vega-lite-schema.json)"
    )


def vega_lite_schema() -> dict[str, Any]:
    """The vega-lite v5 schema document (read once; treat it as read-only)."""
    with _vega_lite_lock:
        if "document" not in _vega_lite_cache:
            _vega_lite_cache["document"] = json.loads(vega_lite_schema_path().read_text(encoding="utf-8"))
        return _vega_lite_cache["document"]


def vega_lite_schema_uri_safe() -> dict[str, Any]:
    """The vega-lite schema with every local ``$ref`` fragment percent-encoded.

    vega-lite names definitions like ``RowCol<LayoutAlign>``; such fragments are not valid
    URI references, which strict resolvers (jsonschema-rs) refuse. Percent-encoding them
    (RFC 6901 §6) names the same definitions.
    """
    with _vega_lite_lock:
        cached = _vega_lite_cache.get("uri_safe")
    if cached is None:
        cached = _percent_encode_local_refs(vega_lite_schema())
        with _vega_lite_lock:
            _vega_lite_cache["uri_safe"] = cached
    return cached


def _percent_encode_local_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                "#" + quote(value[1:], safe="/~!$&'*+=:@-._")
                if key == "$ref" and isinstance(value, str) and value.startswith("#")
                else _percent_encode_local_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_percent_encode_local_refs(item) for item in node]
    return node


def python_registry(with_vega_lite: bool):
    """A ``referencing.Registry`` for Python ``jsonschema`` that never retrieves anything."""
    from referencing import Registry, Resource

    if not with_vega_lite:
        return Registry()
    with _vega_lite_lock:
        cached = _vega_lite_cache.get("py_registry")
    if cached is None:
        cached = Registry().with_resource(VEGA_LITE_V5_URL, Resource.from_contents(vega_lite_schema()))
        with _vega_lite_lock:
            _vega_lite_cache["py_registry"] = cached
    return cached


def rust_registry():
    """A ``jsonschema_rs.Registry`` holding vega-lite v5 under its canonical URL."""
    import jsonschema_rs

    with _vega_lite_lock:
        cached = _vega_lite_cache.get("rs_registry")
    if cached is None:
        cached = jsonschema_rs.Registry([(VEGA_LITE_V5_URL, vega_lite_schema_uri_safe())])
        with _vega_lite_lock:
            _vega_lite_cache["rs_registry"] = cached
    return cached


# ---------------------------------------------------------------------------------------
# One documented example per JSON kind (grand-challenge's INTERFACE_KIND_JSON_EXAMPLES)
# ---------------------------------------------------------------------------------------

_V = {"major": 1, "minor": 0}

INTERFACE_KIND_JSON_EXAMPLES: Mapping[str, Any] = MappingProxyType(
    {
        "STR": "Example String",
        "INT": 42,
        "FLT": 3.14159,
        "BOOL": True,
        "JSON": {"key": "value", "list": [1, 2, 3], "nested": {"flag": False}},
        "CHART": {
            "$schema": VEGA_LITE_V5_URL,
            "width": 300,
            "height": 300,
            "data": {
                "values": [
                    {"target": "Negative", "prediction": "Negative", "count": 10},
                    {"target": "Negative", "prediction": "Positive", "count": 2},
                    {"target": "Positive", "prediction": "Negative", "count": 3},
                    {"target": "Positive", "prediction": "Positive", "count": 15},
                ]
            },
            "mark": "rect",
            "encoding": {
                "x": {"field": "target", "type": "nominal"},
                "y": {"field": "prediction", "type": "nominal"},
                "color": {"field": "count", "type": "quantitative", "title": "Count"},
            },
        },
        "2DBB": {
            "name": "Region of interest",
            "type": "2D bounding box",
            "corners": [[130, 40, 0.5], [200, 40, 0.5], [200, 90, 0.5], [130, 90, 0.5]],
            "version": dict(_V),
            "probability": 0.95,
        },
        "M2DB": {
            "name": "Regions of interest",
            "type": "Multiple 2D bounding boxes",
            "boxes": [
                {"name": "ROI 1", "corners": [[92.7, 136.5, 0.5], [54.0, 136.5, 0.5], [54.0, 95.4, 0.5], [92.7, 95.4, 0.5]], "probability": 0.2},
                {"name": "ROI 2", "type": "2D bounding box", "corners": [[10, 10, 1], [20, 10, 1], [20, 20, 1], [10, 20, 1]]},
            ],
            "version": dict(_V),
        },
        "DIST": {
            "name": "Lesion diameter",
            "type": "Distance measurement",
            "start": [59.8, 156.8, 0.5],
            "end": [84.4, 133.1, 0.5],
            "version": dict(_V),
            "probability": 1.0,
        },
        "MDIS": {
            "name": "Lesion diameters",
            "type": "Multiple distance measurements",
            "lines": [
                {"name": "Diameter 1", "start": [49.7, 207.3, 0.5], "end": [80.2, 212.0, 0.5], "probability": 0.8},
                {"type": "Distance measurement", "start": [0, 0, 0], "end": [1, 1, 1]},
            ],
            "version": dict(_V),
        },
        "POIN": {"name": "Nodule", "type": "Point", "point": [152.2, 111.8, 0.5], "version": dict(_V), "probability": 0.7},
        "MPOI": {
            "name": "Nodules",
            "type": "Multiple points",
            "points": [
                {"name": "Nodule 1", "point": [96.0, 79.9, 0.5], "probability": 0.9},
                {"type": "Point", "point": [130.8, 115.5, 0.5]},
            ],
            "version": dict(_V),
        },
        "POLY": {
            "name": "Tumour outline",
            "type": "Polygon",
            "seed_point": [76.4, 124.3, 0.5],
            "path_points": [[76.4, 124.3, 0.5], [76.4, 124.9, 0.5], [77.0, 125.5, 0.5], [77.6, 124.3, 0.5]],
            "sub_type": "poly",
            "groups": ["tumour"],
            "version": dict(_V),
            "probability": 0.85,
        },
        "MPOL": {
            "name": "Tumour outlines",
            "type": "Multiple polygons",
            "polygons": [
                {
                    "name": "Outline 1",
                    "seed_point": [55.8, 113.4, 0.5],
                    "path_points": [[55.8, 113.4, 0.5], [55.8, 114.0, 0.5], [56.4, 114.0, 0.5]],
                    "sub_type": "poly",
                    "groups": [],
                    "probability": 0.6,
                },
                {
                    "type": "Polygon",
                    "seed_point": [90.0, 90.0, 1.5],
                    "path_points": [],
                    "sub_type": "brush",
                    "groups": ["a", "b"],
                },
            ],
            "version": dict(_V),
        },
        "LINE": {
            "name": "Vessel centreline",
            "type": "Line",
            "seed_points": [[1, 2, 3], [4, 5, 6]],
            "path_point_lists": [[[1, 2, 3], [2, 3, 4]], [[4, 5, 6]]],
            "version": dict(_V),
            "probability": 0.5,
        },
        "MLIN": {
            "name": "Vessel centrelines",
            "type": "Multiple lines",
            "lines": [
                {"name": "Vessel 1", "seed_points": [[1, 2, 3]], "path_point_lists": [[[1, 2, 3], [4, 5, 6]]], "probability": 0.9},
                {"type": "Line", "seed_points": [], "path_point_lists": []},
            ],
            "version": dict(_V),
        },
        "ANGL": {
            "name": "Joint angle",
            "type": "Angle",
            "lines": [[[180, 10, 0.5], [190, 10, 0.5]], [[180, 25, 0.5], [190, 15, 0.5]]],
            "version": dict(_V),
            "probability": 0.9,
        },
        "MANG": {
            "name": "Joint angles",
            "type": "Multiple angles",
            "angles": [
                {"name": "Knee", "lines": [[[110, 135, 0.5], [60, 165, 0.5]], [[70, 25, 0.5], [85, 65, 0.5]]], "probability": 0.4},
                {"type": "Angle", "lines": [[[0, 0, 0], [1, 0, 0]], [[0, 0, 0], [0, 1, 0]]]},
            ],
            "version": dict(_V),
        },
        "ELLI": {
            "name": "Cyst",
            "type": "Ellipse",
            "major_axis": [[-10, 606, 0.5], [39, 559, 0.5]],
            "minor_axis": [[2, 570, 0.5], [26, 595, 0.5]],
            "version": dict(_V),
            "probability": 0.92,
        },
        "MELL": {
            "name": "Cysts",
            "type": "Multiple ellipses",
            "ellipses": [
                {"name": "Cyst 1", "major_axis": [[-44, 535, 0.5], [-112, 494, 0.5]], "minor_axis": [[-88, 532, 0.5], [-68, 497, 0.5]], "probability": 0.7},
                {"type": "Ellipse", "major_axis": [[0, 0, 0], [4, 0, 0]], "minor_axis": [[2, -1, 0], [2, 1, 0]]},
            ],
            "version": dict(_V),
        },
        "3ANG": {
            "name": "Cobb angle",
            "type": "Three-point angle",
            "angle": [[177, 242, 0.5], [215, 212, 0.5], [237, 262, 0.5]],
            "version": dict(_V),
            "probability": 0.92,
        },
        "M3AN": {
            "name": "Cobb angles",
            "type": "Multiple three-point angles",
            "angles": [
                {"name": "Upper", "angle": [[300, 237, 0.5], [263, 282, 0.5], [307, 304, 0.5]], "probability": 0.6},
                {"type": "Three-point angle", "angle": [[0, 0, 0], [1, 0, 0], [1, 1, 0]]},
            ],
            "version": dict(_V),
        },
        "ATRG": {
            "3d_affine_transform": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
            "comment": "identity; any extra keys are allowed",
        },
        "CHOI": "Choice 1",
        "MCHO": ["Choice 1", "Choice 2"],
    }
)


def example_value(code: str) -> Any:
    """A private copy of the documented example of one JSON kind (callers may mutate it)."""
    return copy.deepcopy(INTERFACE_KIND_JSON_EXAMPLES[code])
