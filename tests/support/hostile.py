"""Hostile inputs for the operator (issue 12): what any user may send, and what must not hurt.

The suite in ``tests/integration/test_hostile_inputs.py`` sends thousands of objects to the
real API server, with the admission webhook out of the way, and checks that the operator
handles whatever the API server admits. This module holds everything but the test itself:

* **Schema translation** (``to_json_schema``): a CRD's structural OpenAPI v3 schema as plain
  JSON Schema, for hypothesis-jsonschema. ``x-kubernetes-preserve-unknown-fields`` without
  properties is any JSON, ``nullable`` allows null, ``x-kubernetes-int-or-string`` is an integer
  or a string; CEL rules (``x-kubernetes-validations``) are dropped, since the API server
  enforces them (what it refuses is counted, not lost).
* **Generation** (``generate_corpus``): ``hypothesis.given`` with a fixed, derandomized profile
  draws the objects. Objects are built structurally from the CRD schemas (``strategy_for``:
  fixed dictionaries, lists, maps), every leaf comes from hypothesis-jsonschema's
  ``from_schema`` of the translated leaf schema. (hypothesis-jsonschema on a whole ComponentJob
  schema re-canonicalises its object schemas on every draw: 70 ms an object, ten minutes for
  the storm; built this way it is about 2 ms.) Names of interfaces and images, memory and
  timeouts are steered part of the time towards objects that exist, so that the operator's
  deep paths (validation, pods, outputs) run and not only "waiting for an interface"; a share
  of the objects is mutated after generation (wrong types, out-of-range numbers, lost required
  fields) to exercise admission.
* **Hand-written cases** (``hand_written_cases``): pathological schemas and values (ReDoS,
  deep nesting, 520 KB values, path traversal in ``inputPrefixes``, names at the length
  limits, numbers at the extremes, name collisions with foreign objects, objects deleted right
  after admission) and the minimised objects that broke the operator before (``KNOWN_BREAKERS``).
* **A fast sender** (``Kube``): plain urllib3 with the admin client certificate and a thread
  pool. Bodies are bytes, so values nested deeper than Python's json module can encode (or
  decode: ``deep_loads``) still go out and come back.
* **Checks** (``classify_job``): terminal, legitimately waiting (a condition says what for),
  progressing (its pod is still pending or running), or stuck.

Placeholders ``@P@`` (the run's prefix) and ``@N@`` (the object's index) are rendered into the
serialised bodies at send time, so the corpus itself does not depend on the run.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

import urllib3
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

GROUP = "components.grand-challenge.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {"ComponentJob": "componentjobs", "ComponentImage": "componentimages", "ComponentInterface": "componentinterfaces"}
CLUSTER_SCOPED = {"ComponentInterface"}
TERMINAL = {"Succeeded", "Failed", "Cancelled"}
#: Condition reasons that mean "waiting for something outside the operator" (legitimate).
WAITING_REASONS = {"WaitingForInterfaces", "ImageNotFound", "ImageNotReady", "Unschedulable", "Retrying"}
PREFIX = b"@P@"
INDEX = b"@N@"
#: Objects nested deeper than this are written by hand (Python's json recursion limit is 1000).
DEEP = 100

# ---------------------------------------------------------------------------------------------
# Schema translation


_K8S_ONLY = {
    "x-kubernetes-validations", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
    "x-kubernetes-embedded-resource", "nullable",
}
# Annotations (no effect on validity) and Kubernetes formats that JSON Schema tools read differently.
_DROPPED = {"description", "default", "example", "format"}


def load_crd_schemas(crd_dir: Path) -> dict[str, dict[str, Any]]:
    """kind -> the openAPIV3Schema of its first version, from ``crds/*.yaml``."""
    schemas = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        schemas[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schemas


def to_json_schema(schema: Any) -> Any:
    """A structural schema (with Kubernetes' extensions) as plain JSON Schema.

    Objects with ``properties`` and without ``x-kubernetes-preserve-unknown-fields`` get
    ``additionalProperties: false``: the API server prunes unknown fields, so generating them
    only costs time.
    """
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _K8S_ONLY or key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(s) for s in value]
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    elif schema.get("x-kubernetes-preserve-unknown-fields"):
        if "properties" not in out and "additionalProperties" not in out:
            out.pop("type", None)  # any JSON value (an object when it says so)
            if schema.get("type") == "object":
                out["type"] = "object"
    elif "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if schema.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


# ---------------------------------------------------------------------------------------------
# Strategies

#: Numbers where JSON, Go (int64/float64) and Python disagree or overflow.
EXTREME_NUMBERS = [
    0, -0.0, 1, -1, 0.1, 1e-7, 2**31 - 1, -(2**31), 2**32, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**64,
    -(2**64), 10**30, -(10**30), 10**308, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -5e-324,
    2.2250738585072014e-308, 1e300, 123456789.123456789,
]
#: Strings that are hostile to paths, terminals, encodings and regular expressions.
NASTY_STRINGS = [
    "", " ", "\x00", "a\x00b", "\x00" * 64, "\u0000\u0001\u001f\u007f", "\ud800", "\udfff", "\ud83d", "\ufeff",
    "\u202eevil", "\u200b", "e\u0301" * 50, "🙂" * 200, "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ｆｕｌｌｗｉｄｔｈ", "\\", "\\\\\\", "\"", "'", "`", "${jndi:ldap://x}",
    "{{.}}", "%s%s%n", "../../etc/passwd", "/etc/shadow", "C:\\Windows\\System32", "\r\n\r\n", "\t" * 100,
    "<script>alert(1)</script>", "' OR 1=1 --", "a" * 31 + "!", "NaN", "Infinity", "-0", "1e999", "true", "null",
    "LPT1", "CON", ".", "..", "...", "/", "//", "a/../../b", "inputs.json", "INPUTS.JSON",
]


@functools.lru_cache(maxsize=None)
def json_values(max_leaves: int = 12) -> st.SearchStrategy:
    """Any JSON value, with the extremes (numbers, unicode, NUL) over-represented."""
    text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=40)
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(EXTREME_NUMBERS), text, st.sampled_from(NASTY_STRINGS),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=6), st.dictionaries(text, children, max_size=6)),
        max_leaves=max_leaves,
    )


def strategy_for(schema: dict[str, Any], overrides: dict[tuple, st.SearchStrategy] | None = None,
                 path: tuple = ()) -> st.SearchStrategy:
    """Values valid for ``schema`` (the CRD's, OpenAPI + extensions), as a strategy.

    The structure (objects, maps, lists) is built here; every leaf comes from
    hypothesis-jsonschema's ``from_schema`` of the translated leaf. ``overrides`` maps a path
    (property names, ``[]`` for list items, ``{}`` for map values) to a strategy used instead.
    Collections are capped at 6 items (large ones are hand-written cases).
    """
    overrides = overrides or {}
    if path in overrides:
        return overrides[path]
    inner: st.SearchStrategy
    kind = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        inner = st.one_of(st.integers(), st.text(max_size=20))
    elif schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
        inner = st.dictionaries(st.text(max_size=30), json_values(), max_size=6) if kind == "object" else json_values()
    elif kind == "object" and "properties" in schema:
        required = set(schema.get("required") or [])
        props = {name: strategy_for(sub, overrides, (*path, name)) for name, sub in schema["properties"].items()}
        inner = st.fixed_dictionaries({k: v for k, v in props.items() if k in required},
                                      optional={k: v for k, v in props.items() if k not in required})
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        values = strategy_for(schema["additionalProperties"], overrides, (*path, "{}"))
        keys = overrides.get((*path, "keys"), st.text(max_size=30))
        inner = st.dictionaries(keys, values, max_size=min(schema.get("maxProperties", 6), 6))
    elif kind == "array":
        items = strategy_for(schema.get("items") or {}, overrides, (*path, "[]"))
        low = schema.get("minItems", 0)
        inner = st.lists(items, min_size=low, max_size=max(low, min(schema.get("maxItems", 6), 6)))
    else:
        leaf = {k: v for k, v in schema.items() if k not in ("nullable",)}
        inner = from_schema(to_json_schema(leaf))
    if schema.get("nullable"):
        return st.one_of(inner, st.none())
    return inner


def _spec_schema(schemas: dict[str, dict], kind: str) -> dict[str, Any]:
    return schemas[kind]["properties"]["spec"]


# Interfaces that exist before the storm (name suffix -> spec), and strategies of values valid
# for them. Names are rendered as "@P@-<suffix>".
_VERSION = {"type": "object", "properties": {"major": {"type": "integer", "minimum": 0}, "minor": {"type": "integer", "minimum": 0}},
            "required": ["major", "minor"], "additionalProperties": False}
_NUM = {"type": "number", "minimum": -1e6, "maximum": 1e6}
BBOX_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "type": {"const": "2D bounding box"},
        "corners": {"type": "array", "items": {"type": "array", "items": _NUM, "minItems": 3, "maxItems": 3}, "minItems": 4, "maxItems": 4},
        "version": _VERSION,
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["version", "type", "corners"],
    "additionalProperties": False,
}
POINTS_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"const": "Multiple points"},
        "points": {"type": "array", "maxItems": 5, "items": {
            "type": "object", "properties": {"point": {"type": "array", "items": _NUM, "minItems": 3, "maxItems": 3},
                                             "probability": {"type": "number", "minimum": 0, "maximum": 1}},
            "required": ["point"], "additionalProperties": False}},
        "version": _VERSION,
    },
    "required": ["version", "type", "points"],
    "additionalProperties": False,
}
BBOX = {"version": {"major": 1, "minor": 0}, "type": "2D bounding box", "corners": [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]}

FIXTURE_INTERFACES: dict[str, dict[str, Any]] = {
    "f-float": {"kind": "Float", "relativePath": "f-float.json"},
    "f-int": {"kind": "Integer", "relativePath": "f-int.json"},
    "f-str": {"kind": "String", "relativePath": "f-str.json"},
    "f-bool": {"kind": "Bool", "relativePath": "f-bool.json"},
    "f-any": {"kind": "Anything", "relativePath": "f-any.json"},
    "f-any-nodb": {"kind": "Anything", "relativePath": "f-any-nodb.json", "storeInDatabase": False},
    "f-bbox": {"kind": "2D bounding box", "relativePath": "f-bbox.json", "title": "Hostile box"},
    "f-points": {"kind": "Multiple points", "relativePath": "f-points.json"},
    "f-choice": {"kind": "Choice", "relativePath": "f-choice.json", "schema": {"enum": ["a", "b"]}},
    "f-prob": {"kind": "Float", "relativePath": "f-prob.json", "schema": {"minimum": 0, "maximum": 1}},
    "f-word": {"kind": "String", "relativePath": "f-word.json", "schema": {"type": "string", "pattern": "^[a-z]{1,20}$"}},
    "f-csv": {"kind": "CSV file (legacy)", "relativePath": "f-csv.csv", "storeInDatabase": False},
    "f-heat": {"kind": "Heat Map", "relativePath": "images/f-heat", "storeInDatabase": False},
    "f-seg": {"kind": "Segmentation", "relativePath": "images/f-seg", "storeInDatabase": False,
              "overlaySegments": [{"voxelValue": 0, "name": "bg", "visible": False}, {"voxelValue": 1, "name": "fg", "visible": True}]},
    # An output interface (jobs that declare outputs cannot succeed without the data plane).
    "f-out": {"kind": "Float", "relativePath": "f-out.json"},
}

VALID_VALUES: dict[str, st.SearchStrategy] = {
    "f-float": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([v for v in EXTREME_NUMBERS])),
    "f-int": st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 2**63 - 1, -(2**63)])),
    "f-str": st.one_of(st.text(max_size=60), st.sampled_from(NASTY_STRINGS)),
    "f-bool": st.booleans(),
    "f-any": json_values(),
    "f-any-nodb": json_values(),
    "f-bbox": from_schema(BBOX_SCHEMA),
    "f-points": from_schema(POINTS_SCHEMA),
    "f-choice": st.sampled_from(["a", "b"]),
    "f-prob": st.floats(0, 1),
    "f-word": from_schema({"type": "string", "pattern": "^[a-z]{1,20}$"}),
}
#: Interface names in the pool that generated ComponentInterfaces draw from (collisions are 409s).
GENERATED_INTERFACE_POOL = 60
GENERATED_IMAGE_POOL = 40
SIM_OUTCOMES = ["succeed", "succeed", "succeed", "fail", "oomkilled", "deadline", "imagepull"]


@functools.lru_cache(maxsize=None)
def _dns_label(max_size: int = 40) -> st.SearchStrategy:
    return st.from_regex(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?", fullmatch=True).map(lambda s: s[:max_size])


@functools.lru_cache(maxsize=None)
def _name_suffix() -> st.SearchStrategy:
    """The part of a generated name after its unique index: mostly valid DNS-1123, sometimes not."""
    dotted = st.lists(_dns_label(), min_size=1, max_size=6).map(lambda labels: "-" + ".".join(labels))
    invalid = st.sampled_from(["-UPPER", "-under_score", "-", ".", "-" + "a" * 260, "-é", "..", "-a..b"])
    # Invalid names are common (the API server refuses them): the odd ones, and the 240-character
    # single label (DNS labels stop at 63), which is about one name in eight.
    return st.one_of(st.just(""), dotted, dotted, dotted, st.just("-" + "a" * 240), dotted, dotted, invalid)


@functools.lru_cache(maxsize=None)
def _annotations() -> st.SearchStrategy:
    sim = st.fixed_dictionaries({}, optional={
        "sim.testenv/outcome": st.sampled_from(SIM_OUTCOMES),
        "sim.testenv/after": st.sampled_from(["0s", "1s", "2s"]),
        "sim.testenv/exit-code": st.sampled_from(["1", "3", "255"]),
        "sim.testenv/message": st.sampled_from(["", "ValueError: no lesion found\n", "\x00", "é" * 300, "line\n" * 50]),
    })
    valid_key = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]{0,30}[A-Za-z0-9])?", fullmatch=True)
    extra = st.dictionaries(
        st.one_of(valid_key, valid_key, valid_key, valid_key, valid_key, valid_key, st.text(max_size=20)),
        st.one_of(st.text(max_size=80), st.sampled_from(NASTY_STRINGS)),
        max_size=3,
    )
    return st.tuples(sim, extra).map(lambda t: {**t[1], **t[0]})


@functools.lru_cache(maxsize=None)
def _interface_ref() -> st.SearchStrategy:
    """An interface name: a fixture one (so values are validated), a generated one, or anything."""
    fixture = st.sampled_from(sorted(FIXTURE_INTERFACES)).map(lambda s: f"@P@-{s}")
    pooled = st.integers(0, GENERATED_INTERFACE_POOL - 1).map(lambda i: f"@P@-g{i}")
    return st.one_of(fixture, fixture, fixture, pooled, st.text(min_size=1, max_size=30))


@st.composite
def _job_input(draw, generated: st.SearchStrategy) -> dict[str, Any]:
    item = dict(draw(generated))
    name = draw(_interface_ref())
    item["interface"] = name
    short = name.removeprefix("@P@-")
    how = draw(st.sampled_from(["valid", "valid", "generated", "null", "absent"]))
    if how == "valid" and short in VALID_VALUES:
        item["value"] = draw(VALID_VALUES[short])
        item.pop("file", None), item.pop("image", None)
    elif how == "null":
        item["value"] = None
    elif how == "absent":
        item.pop("value", None)
    return item


def _job_overrides(schemas: dict[str, dict]) -> dict[tuple, st.SearchStrategy]:
    spec = _spec_schema(schemas, "ComponentJob")
    item_schema = spec["properties"]["inputs"]["items"]
    generated_item = strategy_for(item_schema)
    image = st.one_of(st.just("algo"), st.just("algo"), st.just("algo"), st.just("missing"),
                      st.integers(0, GENERATED_IMAGE_POOL - 1).map(lambda i: f"img-{i}"),
                      strategy_for(spec["properties"]["image"]))
    outputs = st.one_of(st.just([]), st.lists(_interface_ref(), max_size=3),
                        strategy_for(spec["properties"]["outputs"]))
    prefixes = st.dictionaries(_interface_ref(), st.one_of(
        st.sampled_from(["sub", "a/b/c", "../../etc", "/etc", "/", ".", "..", "a/../../..", "x" * 255, "\x00", "é/ü"]),
        strategy_for(spec["properties"]["inputPrefixes"]["additionalProperties"])), max_size=3)
    timeout = st.one_of(st.integers(10, 40), st.integers(10, 40), st.integers(10, 40),
                        strategy_for(spec["properties"]["schedulingTimeoutSeconds"]))
    memory = st.one_of(st.sampled_from([1, 1, 2, 4, 8, 16]), st.sampled_from([1, 2, 4]),
                       strategy_for(spec["properties"]["requiresMemoryGB"]))
    return {
        ("inputs", "[]"): _job_input(generated_item),
        ("image",): image,
        ("outputs",): outputs,
        ("inputPrefixes",): prefixes,
        ("schedulingTimeoutSeconds",): timeout,
        ("requiresMemoryGB",): memory,
        ("cancel",): st.sampled_from([False] * 12 + [True]),
    }


def _image_overrides(schemas: dict[str, dict], registry: str) -> dict[tuple, st.SearchStrategy]:
    spec = _spec_schema(schemas, "ComponentImage")
    generated = strategy_for(spec["properties"]["image"])
    local = st.tuples(_dns_label(), _dns_label()).map(lambda t: f"{registry}/hx/{t[0]}:{t[1]}")
    return {
        ("image",): st.one_of(local, local, st.just("@GOOD_IMAGE@"), generated),
        ("insecureRegistry",): st.sampled_from([True, True, True, False]),
        ("followTag",): st.sampled_from([False] * 9 + [True]),
    }


def _custom_schemas() -> st.SearchStrategy:
    """Custom JSON Schemas for interfaces: mostly schema-like, sometimes anything."""
    keyword = st.sampled_from(["type", "minimum", "maximum", "pattern", "enum", "items", "properties", "required",
                               "maxLength", "$ref", "$schema", "multipleOf", "exclusiveMaximum", "format", "not", "anyOf"])
    leaf = st.one_of(st.sampled_from(["string", "number", "integer", "object", "array", "boolean", "null"]),
                     st.sampled_from(EXTREME_NUMBERS), st.sampled_from(["^[a-z]+$", "(a|aa)+$", "[", "\\", "#/definitions/x",
                                                                        "http://json-schema.org/draft-04/schema#",
                                                                        "https://example.invalid/s.json"]),
                     st.booleans())
    schema_like = st.recursive(st.dictionaries(keyword, leaf, max_size=4),
                               lambda c: st.dictionaries(keyword, st.one_of(leaf, c, st.lists(c, max_size=3)), max_size=4),
                               max_leaves=8)
    return st.one_of(st.just({}), schema_like, schema_like, st.dictionaries(st.text(max_size=20), json_values(), max_size=4))


def _interface_overrides(schemas: dict[str, dict]) -> dict[tuple, st.SearchStrategy]:
    spec = _spec_schema(schemas, "ComponentInterface")
    kind = st.one_of(st.sampled_from(["Float", "Integer", "String", "Bool", "Anything", "2D bounding box", "2DBB", "MPOI",
                                      "Choice", "CSV file (legacy)", "Segmentation", "Heat Map", "PDF file", "Chart",
                                      "No such kind", "float", "SEG"]),
                     strategy_for(spec["properties"]["kind"]))
    return {
        ("kind",): kind,
        ("schema",): _custom_schemas(),
        ("relativePath",): st.one_of(_dns_label().map(lambda s: s + ".json"), _dns_label().map(lambda s: "images/" + s),
                                     strategy_for(spec["properties"]["relativePath"])),
    }


_MUTATIONS = st.sampled_from(["value", "negative", "huge", "long", "delete", "type"])


@st.composite
def _mutated(draw, body: dict[str, Any]) -> dict[str, Any]:
    """One structural mutation of a generated object: the API server refuses most of them."""
    body = copy.deepcopy(body)
    paths: list[tuple] = []

    def walk(node: Any, path: tuple) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key))
        elif isinstance(node, list):
            for index, value in enumerate(node[:4]):
                walk(value, (*path, index))

    walk(body["spec"], ("spec",))
    path = paths[draw(st.integers(0, len(paths) - 1))]
    how = draw(_MUTATIONS)
    replacement = {
        "value": lambda: draw(json_values(max_leaves=4)),
        "negative": lambda: -1,
        "huge": lambda: 10**12,
        "long": lambda: "x" * 5000,
        "delete": lambda: None,
        "type": lambda: [] if not isinstance(_get(body, path), list) else "not a list",
    }[how]()
    parent, last = _get(body, path[:-1]), path[-1]
    if how == "delete" and isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, (dict, list)):
        parent[last] = replacement
    return body


def _get(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


@dataclass
class Case:
    """One object to send: kind, namespace slot (None: cluster-scoped), body with placeholders."""

    label: str
    kind: str
    body: bytes
    namespace: str | None = None  # a slot ("s0".."s3", "hc") rendered to a real namespace
    tags: frozenset[str] = frozenset()
    after: Callable[["Storm", "Case", int], None] | None = None  # run in the scenario thread after the create


def _body(kind: str, metadata: dict[str, Any], spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


# The mix of the hypothesis-drawn objects (crossovers add jobs and images; interfaces stay few).
_WHAT = st.sampled_from(["job"] * 50 + ["job-mutated"] * 30 + ["image"] * 6 + ["image-mutated"] * 2
                        + ["interface"] * 7 + ["interface-mutated"] * 5)


def object_strategy(schemas: dict[str, dict], registry: str, namespaces: int) -> st.SearchStrategy:
    """(label, kind, namespace slot or None, body) drawn from the CRDs' own schemas."""
    job_spec = strategy_for(_spec_schema(schemas, "ComponentJob"), _job_overrides(schemas))
    image_spec = strategy_for(_spec_schema(schemas, "ComponentImage"), _image_overrides(schemas, registry))
    iface_spec = strategy_for(_spec_schema(schemas, "ComponentInterface"), _interface_overrides(schemas))
    slot = st.integers(0, namespaces - 1).map(lambda i: f"s{i}")
    image_name = st.one_of(st.integers(0, GENERATED_IMAGE_POOL - 1).map(lambda i: f"img-{i}"),
                           _name_suffix().map(lambda s: "@N@" + s))
    iface_name = st.integers(0, GENERATED_INTERFACE_POOL - 1).map(lambda i: f"@P@-g{i}")

    @st.composite
    def one(draw) -> tuple[str, str, str | None, dict[str, Any]]:
        what = draw(_WHAT)
        if what.startswith("job"):
            meta = {"name": "@N@" + draw(_name_suffix()), "annotations": draw(_annotations())}
            body = _body("ComponentJob", meta, draw(job_spec))
            ns: str | None = draw(slot)
        elif what.startswith("image"):
            meta = {"name": draw(image_name)}
            body = _body("ComponentImage", meta, draw(image_spec))
            ns = draw(slot)
        else:
            meta = {"name": draw(iface_name)}
            body = _body("ComponentInterface", meta, draw(iface_spec))
            ns = None
        if what.endswith("mutated"):
            body = draw(_mutated(body))
        return what, body["kind"], ns, body

    return one()


def generate_corpus(schemas: dict[str, dict], registry: str, count: int, namespaces: int = 4,
                    base: int = 1000, seed: int = 12) -> list[Case]:
    """``count`` objects, always the same ones for the same schemas and code.

    hypothesis draws ``base`` objects (derandomized: a fixed seed from this function's code);
    the rest are crossovers of two of them of the same kind (each top-level spec field, the
    inputs, the annotations and the namespace from either parent), drawn with a seeded
    ``random.Random``. Generating every object with hypothesis would cost about 20 ms an
    object (its engine's bookkeeping per choice): minutes for the storm, seconds this way.
    """
    drawn: list[tuple[str, str, str | None, dict[str, Any]]] = []
    if count <= 0:
        return []
    strategy = object_strategy(schemas, registry, namespaces)

    @settings(max_examples=min(base, count), derandomize=True, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(strategy)
    def collect(example) -> None:
        drawn.append(example)

    collect()
    out = [Case(label=label, kind=kind, namespace=ns, body=dumps(body)) for label, kind, ns, body in drawn]
    rng = random.Random(seed)
    by_kind: dict[str, list[tuple[str, str, str | None, dict[str, Any]]]] = {}
    for example in drawn:
        by_kind.setdefault(example[1], []).append(example)
    # Interfaces are cluster-wide and stay few: crossovers are of jobs (mostly) and images.
    kinds = ["ComponentJob"] * 12 + ["ComponentImage"]
    while len(out) < count:
        pool = by_kind[rng.choice(kinds)]
        (label_a, kind, ns_a, a), (label_b, _, ns_b, b) = rng.choice(pool), rng.choice(pool)
        out.append(Case(label=f"{kind.removeprefix('Component').lower()}-crossover", kind=kind,
                        namespace=rng.choice([ns_a, ns_b]), body=dumps(crossover(a, b, rng))))
    return out


def crossover(a: dict[str, Any], b: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A child of two objects of the same kind: every top-level field of spec from either parent."""
    spec_a, spec_b = a.get("spec"), b.get("spec")
    if not isinstance(spec_a, dict) or not isinstance(spec_b, dict):
        return copy.deepcopy(rng.choice([a, b]))
    spec: dict[str, Any] = {}
    for key in sorted(set(spec_a) | set(spec_b)):
        source = rng.choice([spec_a, spec_b])
        if key in source:
            spec[key] = copy.deepcopy(source[key])
    inputs_a, inputs_b = spec_a.get("inputs"), spec_b.get("inputs")
    if isinstance(inputs_a, list) and isinstance(inputs_b, list) and rng.random() < 0.5:
        spec["inputs"] = copy.deepcopy(inputs_a[: rng.randint(0, len(inputs_a))] + inputs_b[: rng.randint(0, len(inputs_b))])[:6]
    meta = copy.deepcopy(rng.choice([a, b])["metadata"])
    if "annotations" in a["metadata"] or "annotations" in b["metadata"]:
        meta["annotations"] = copy.deepcopy(rng.choice([a, b])["metadata"].get("annotations") or {})
    return {**a, "metadata": meta, "spec": spec}


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


# ---------------------------------------------------------------------------------------------
# Hand-written cases


def nested(depth: int, kind: str = "array", leaf: str = "1") -> str:
    """A JSON text nested ``depth`` levels (built as text: Python's json cannot encode it)."""
    if kind == "array":
        return "[" * depth + leaf + "]" * depth
    return '{"a":' * depth + leaf + "}" * depth


def nested_schema(levels: int) -> str:
    """A custom JSON Schema with ``levels`` nested subschemas (``properties.a``), valid for {"a": {"a": ... 1}}.

    Each level is two JSON levels (the subschema and its ``properties`` object).
    """
    return '{"type":"object","properties":{"a":' * levels + '{"type":"integer"}' + "}}" * levels


def _raw_job(name: str, inputs: str = "[]", spec_extra: str = "", annotations: dict | None = None) -> bytes:
    meta = json.dumps({"name": name, "annotations": annotations or {"sim.testenv/outcome": "succeed", "sim.testenv/after": "0s"}})
    return (f'{{"apiVersion":"{API_VERSION}","kind":"ComponentJob","metadata":{meta},'
            f'"spec":{{"image":"algo","requiresMemoryGB":1,"timeLimit":300,"schedulingTimeoutSeconds":30,'
            f'"inputs":{inputs}{spec_extra}}}}}').encode()


def _job(name: str, inputs: list | None = None, **spec: Any) -> bytes:
    body = _body("ComponentJob", {"name": name, "annotations": {"sim.testenv/outcome": "succeed", "sim.testenv/after": "0s"}},
                 {"image": "algo", "requiresMemoryGB": 1, "timeLimit": 300, "schedulingTimeoutSeconds": 30,
                  "inputs": inputs if inputs is not None else [], **spec})
    return dumps(body)


def _iface(name: str, **spec: Any) -> bytes:
    return dumps(_body("ComponentInterface", {"name": name}, spec))


def _raw_iface(name: str, kind: str, relative_path: str, schema_text: str) -> bytes:
    return (f'{{"apiVersion":"{API_VERSION}","kind":"ComponentInterface","metadata":{{"name":"{name}"}},'
            f'"spec":{{"kind":"{kind}","relativePath":"{relative_path}","schema":{schema_text}}}}}').encode()


def _value_input(iface: str, value_text: str) -> str:
    return f'[{{"interface":"@P@-{iface}","value":{value_text}}}]'


#: The minimised objects that broke the operator at commit e07e551 (issue 12): each stays a case.
#: ``depth`` is how deep ``spec.inputs[0].value`` is nested (an array of arrays).
KNOWN_BREAKERS = {
    # kopf's diffbase (copy.deepcopy of the body: two Python frames per level; from about 490
    # levels, depending on the stack the event arrives on) raises
    # RecursionError before any handler runs; kopf swallows it ("Throttling for N seconds due
    # to an unexpected error") and never calls the handler: the job never gets a phase, and
    # the operator's own unexpected-error counter does not move.
    "kopf-deepcopy-throttled": 520,
    # json.loads of the watch event in kopf's watcher raises RecursionError (from 971 levels;
    # from 970 in the initial LIST at start-up): the watcher for
    # ALL ComponentJobs fails, the operator stops; on restart the initial LIST fails the same
    # way, so it can never start while the object exists.
    "kopf-watcher-killed": 975,
}


def hand_written_cases(good_image: str, registry: str, other_images: tuple[str, str] | None = None) -> list[Case]:
    """The pathological cases of issue 12, each a named object (names say what they are).

    ``other_images`` are two more pushable references with digests of their own (a second
    image of the same digest in a namespace is refused as a duplicate).
    """
    late_image, gone_image = other_images or (good_image, good_image)
    cases: list[Case] = []

    def job(label: str, body: bytes, *tags: str, after=None) -> None:
        cases.append(Case(label, "ComponentJob", body, "hc", frozenset({"hand", *tags}), after))

    def iface(label: str, body: bytes, *tags: str, after=None) -> None:
        cases.append(Case(label, "ComponentInterface", body, None, frozenset({"hand", *tags}), after))

    # ReDoS: Python's re backtracks exponentially on ^(a+)+$ against a...a!
    iface("redos-iface", _iface("@P@-redos", kind="String", relativePath="redos.json",
                                schema={"type": "string", "pattern": "^(a+)+$"}), "freeze")
    job("redos-job", _job("redos", [{"interface": "@P@-redos", "value": "a" * 31 + "!"}]), "freeze")
    iface("redos-pattern-properties", _iface("@P@-redos-pp", kind="Anything", relativePath="redos-pp.json",
                                             schema={"type": "object", "patternProperties": {"^(a|aa)+$": {"type": "string"}}}),
          "freeze")
    job("redos-pattern-properties-job", _job("redos-pp", [{"interface": "@P@-redos-pp", "value": {"a" * 40 + "!": 1}}]), "freeze")

    # Custom schemas with deeply nested subschemas (validators recurse per level), with a shallow value.
    for levels in (50, 100, 150):
        iface(f"deep-schema-{levels}", _raw_iface(f"@P@-deep-schema-{levels}", "Anything", f"deep-schema-{levels}.json",
                                                   nested_schema(levels)), "deep")
        job(f"deep-schema-{levels}-job", _job(f"deep-schema-{levels}", [{"interface": f"@P@-deep-schema-{levels}", "value": {"a": 1}}]),
            "deep")
    iface("deep-schema-300", _raw_iface("@P@-deep-schema-300", "Anything", "deep-schema-300.json", nested_schema(300)),
          "deep", "kopf-deepcopy")

    # Values nested deeply, for an Anything interface.
    for depth in (120, 300, 450):
        job(f"deep-value-{depth}", _raw_job(f"deep-value-{depth}", _value_input("f-any", nested(depth))), "deep")
    job("deep-value-object-200", _raw_job("deep-value-object-200", _value_input("f-any", nested(200, "object"))), "deep")
    depth = KNOWN_BREAKERS["kopf-deepcopy-throttled"]
    job("breaker-kopf-deepcopy-throttled", _raw_job("breaker-deepcopy", _value_input("f-any", nested(depth))),
        "deep", "kopf-deepcopy")
    job("deep-value-700", _raw_job("deep-value-700", _value_input("f-any", nested(700))), "deep", "kopf-deepcopy")
    depth = KNOWN_BREAKERS["kopf-watcher-killed"]
    job("breaker-kopf-watcher-killed", _raw_job("breaker-watcher", _value_input("f-any", nested(depth))),
        "deep", "killer")
    job("deep-value-9990", _raw_job("deep-value-9990", _value_input("f-any", nested(9990))), "deep", "killer")
    iface("deep-schema-490", _raw_iface("@P@-deep-schema-490", "Anything", "deep-schema-490.json", nested_schema(490)),
          "deep", "killer")

    # inputPrefixes: traversal, absolute, very long, odd.
    for i, prefix in enumerate(["../../etc", "/etc", "/", "..", ".", "a/../../..", "/abs/" + "p/" * 60, "x" * 255,
                                "/".join(["d" * 20] * 12), "\x00", "é/ü/🙂", "a//b", " ", "inputs.json"]):
        job(f"prefix-{i}", _job(f"prefix-{i}", [{"interface": "@P@-f-float", "value": 0.5}],
                                inputPrefixes={"@P@-f-float": prefix}), "prefix")

    # Output interface of an unknown kind (the API server admits any kind string).
    iface("unknown-kind-iface", _iface("@P@-unknown-kind", kind="Not a kind", relativePath="unknown.json"))
    job("unknown-kind-output", _job("unknown-kind-out", [{"interface": "@P@-f-float", "value": 0.5}], outputs=["@P@-unknown-kind"]))
    job("unknown-kind-input", _job("unknown-kind-in", [{"interface": "@P@-unknown-kind", "value": 1}]))
    job("unknown-interface-output", _job("missing-out", [{"interface": "@P@-f-float", "value": 0.5}], outputs=["@P@-nope"]))

    # Sizes: a ~520 KB value (stored twice in the inputs ConfigMap: over 1 MiB), a big list, huge lists.
    job("value-525kb-string", _job("big-string", [{"interface": "@P@-f-str", "value": "x" * 525_000}]), "size")
    job("value-520kb-list", _job("big-list", [{"interface": "@P@-f-any", "value": [12345678] * 58_000}]), "size")
    job("value-1100kb", _job("too-big", [{"interface": "@P@-f-any", "value": "y" * 1_100_000}]), "size")
    job("points-20k", _job("many-points", [{"interface": "@P@-f-points", "value": {
        "version": {"major": 1, "minor": 0}, "type": "Multiple points", "points": [{"point": [i, i, 0]} for i in range(20_000)]}}]),
        "size")
    job("inputs-empty", _job("no-inputs", []))
    job("inputs-256", _job("inputs-256", [{"interface": f"@P@-many-{i}", "value": i} for i in range(256)]), "size")
    job("inputs-257", _job("inputs-257", [{"interface": f"@P@-many-{i}", "value": i} for i in range(257)]), "size")
    job("outputs-256", _job("outputs-256", [], outputs=[f"@P@-out-{i}" for i in range(256)]), "size")
    job("prefixes-256", _job("prefixes-256", [{"interface": "@P@-f-float", "value": 0.5}],
                             inputPrefixes={f"k{i}": "p" for i in range(256)}), "size")
    job("value-empty-list", _job("empty-list", [{"interface": "@P@-f-any", "value": []}]))
    job("value-empty-object", _job("empty-object", [{"interface": "@P@-f-any", "value": {}}]))
    job("value-null-json", _job("null-json", [{"interface": "@P@-f-any", "value": None}]))

    # Unicode and NUL-ish strings.
    for i, text in enumerate(["\x00", "a\x00b", "\ud800", "\u202egnp.exe", "🙂" * 1000, "e\u0301" * 500, "\ufeff\u200b"]):
        job(f"unicode-{i}", _job(f"unicode-{i}", [{"interface": "@P@-f-str", "value": text}]), "unicode")
    job("unicode-annotation", dumps(_body("ComponentJob", {"name": "unicode-ann", "annotations": {"sim.testenv/message": "\x00\ud800🙂"}},
                                          {"image": "algo", "requiresMemoryGB": 1, "inputs": []})), "unicode")
    job("unicode-image-name", _job("unicode-image", [], image="algo\u202e"), "unicode")

    # Names at the length limits (DNS-1123 subdomain: 253; pods and labels: 63).
    job("name-253", _job("n" * 253, [{"interface": "@P@-f-float", "value": 0.5}]), "names")
    job("name-253-dots", _job(".".join(["d" * 62] * 4)[:253].rstrip("."), [{"interface": "@P@-f-float", "value": 0.5}]), "names")
    job("name-63", _job("m" * 63, [{"interface": "@P@-f-float", "value": 0.5}]), "names")
    job("name-62-dash", _job("q" * 61 + "-x", [{"interface": "@P@-f-float", "value": 0.5}]), "names")
    job("name-254", _job("o" * 254), "names")
    job("image-name-253", _job("image-name-253", [], image="i" * 253), "names")
    iface("iface-name-253", _iface("@P@-" + "l" * (253 - 12), kind="Float", relativePath="long-name.json"), "names")

    # Numbers at float and int extremes.
    for i, number in enumerate(["1e308", "-1e308", "5e-324", "1.7976931348623157e308", "9223372036854775807",
                                "-9223372036854775808", "9223372036854775808", "18446744073709551616", "1e400", "-0.0",
                                "123456789012345678901234567890", "0.1e-400"]):
        job(f"number-float-{i}", _raw_job(f"number-float-{i}", _value_input("f-float", number)), "numbers")
        job(f"number-int-{i}", _raw_job(f"number-int-{i}", _value_input("f-int", number)), "numbers")
    job("memory-2048", _job("memory-2048", [], requiresMemoryGB=2048), "numbers")
    job("memory-max-a100", _job("memory-a100", [], requiresMemoryGB=500, requiresGPUType="A100"), "numbers")
    job("limits-max", _job("limits-max", [], timeLimit=86400, maxAttempts=99, schedulingTimeoutSeconds=86400), "numbers")
    job("gpu-absent-type", _job("gpu-h100", [], requiresGPUType="H100", schedulingTimeoutSeconds=15), "numbers")

    # Name collisions with foreign objects holding the deterministic child names (created first).
    job("collision-pod", _job("coll-pod", [{"interface": "@P@-f-float", "value": 0.5}]), "collision")
    job("collision-configmap", _job("coll-cm", [{"interface": "@P@-f-float", "value": 0.5}]), "collision")
    job("collision-secret", _job("coll-secret", [{"interface": "@P@-f-float", "value": 0.5}]), "collision")

    # Objects deleted right after admission.
    iface("deleted-iface", _iface("@P@-deleted", kind="Float", relativePath="deleted.json"), "deleted",
          after=lambda storm, case, status: storm.delete_later(case, 0.0))
    job("deleted-iface-job", _job("deleted-iface", [{"interface": "@P@-deleted", "value": 0.5}]), "deleted")
    # ... and after the job was validated but before its image was ready: the pod is built then.
    iface("late-deleted-iface", _iface("@P@-late-deleted", kind="Float", relativePath="late-deleted.json"), "deleted",
          after=lambda storm, case, status: storm.delete_later(case, 6.0))
    job("late-deleted-iface-job", _job("late-deleted", [{"interface": "@P@-late-deleted", "value": 0.5}], image="late-image"),
        "deleted")
    cases.append(Case("late-image", "ComponentImage",
                      dumps(_body("ComponentImage", {"name": "late-image"}, {"image": late_image, "insecureRegistry": True})),
                      "hc", frozenset({"hand", "deleted", "delayed:9"})))
    cases.append(Case("deleted-image", "ComponentImage",
                      dumps(_body("ComponentImage", {"name": "gone-image"}, {"image": gone_image, "insecureRegistry": True})),
                      "hc", frozenset({"hand", "deleted"}), after=lambda storm, case, status: storm.delete_later(case, 3.0)))
    job("deleted-image-job", _job("gone-image", [{"interface": "@P@-f-float", "value": 0.5}], image="gone-image"), "deleted")

    # Images: odd references.
    for i, ref in enumerate([f"{registry}/hx/none:v1", "a", "UPPER/Case:tag", "x" * 1024, "localhost:1/x:y",
                             f"{registry}/hx/x@sha256:" + "0" * 64, "registry.invalid/x:y", "::::", "a" * 300 + "/b:c"]):
        cases.append(Case(f"image-ref-{i}", "ComponentImage",
                          dumps(_body("ComponentImage", {"name": f"odd-{i}"}, {"image": ref, "insecureRegistry": True})),
                          "hc", frozenset({"hand", "image"})))
    return cases


# ---------------------------------------------------------------------------------------------
# Talking to the API server


class Kube:
    """A minimal, thread-safe API client: bytes in, (status, bytes) out, client certificate auth."""

    def __init__(self, kubeconfig: str, maxsize: int = 16):
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        self.host = cfg.host.rstrip("/")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if cfg.api_key.get("authorization"):
            headers["Authorization"] = cfg.api_key["authorization"]
        self.headers = headers
        self.http = urllib3.PoolManager(num_pools=2, maxsize=maxsize, block=True, cert_reqs="CERT_REQUIRED",
                                        ca_certs=cfg.ssl_ca_cert, cert_file=cfg.cert_file, key_file=cfg.key_file,
                                        retries=False, timeout=urllib3.Timeout(connect=10, read=60))

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                query: dict | None = None) -> tuple[int, bytes]:
        url = self.host + path + ("?" + urlencode(query) if query else "")
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        for attempt in range(5):
            try:
                r = self.http.request(method, url, body=body, headers=headers)
                if r.status == 429 and attempt < 4:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                return r.status, r.data
            except urllib3.exceptions.HTTPError:
                if attempt == 4:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def path(self, kind: str, namespace: str | None, name: str | None = None, status: bool = False) -> str:
        if kind in PLURALS:
            base = f"/apis/{GROUP}/{VERSION}"
            plural = PLURALS[kind]
        else:
            base, plural = "/api/v1", {"Pod": "pods", "ConfigMap": "configmaps", "Secret": "secrets"}[kind]
        ns = f"/namespaces/{namespace}" if namespace and kind not in CLUSTER_SCOPED else ""
        return f"{base}{ns}/{plural}" + (f"/{name}" if name else "") + ("/status" if status else "")

    def create(self, kind: str, namespace: str | None, body: bytes) -> tuple[int, bytes]:
        return self.request("POST", self.path(kind, namespace), body)

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        status, data = self.request("GET", self.path(kind, namespace, name))
        return deep_loads(data) if status == 200 else None

    def delete(self, kind: str, namespace: str | None, name: str) -> int:
        return self.request("DELETE", self.path(kind, namespace, name))[0]

    def patch(self, kind: str, namespace: str | None, name: str, patch: dict) -> int:
        return self.request("PATCH", self.path(kind, namespace, name), dumps(patch), "application/merge-patch+json")[0]

    def list(self, kind: str, namespace: str | None = None, **query: str) -> list[dict]:
        items: list[dict] = []
        token = None
        while True:
            q = {"limit": "500", **query, **({"continue": token} if token else {})}
            status, data = self.request("GET", self.path(kind, namespace), query=q)
            if status != 200:
                raise AssertionError(f"list {kind} in {namespace}: {status} {data[:300]!r}")
            page = deep_loads(data)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items


_DEEP_LOCK = threading.Lock()


def deep_loads(data: bytes) -> Any:
    """``json.loads`` for documents nested up to the API server's limit (10,000 levels).

    Runs in a thread with a big stack and a raised recursion limit (restored afterwards), so
    objects that Python's default limit cannot parse can still be checked.
    """
    try:
        return json.loads(data)
    except RecursionError:
        pass
    result: list[Any] = []
    with _DEEP_LOCK:
        old_stack = threading.stack_size(512 * 1024 * 1024)
        old_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(60_000)
        try:
            thread = threading.Thread(target=lambda: result.append(json.loads(data)))
            thread.start()
            thread.join()
        finally:
            sys.setrecursionlimit(old_limit)
            threading.stack_size(old_stack)
    if not result:
        raise ValueError("could not parse a deeply nested document")
    return result[0]


# ---------------------------------------------------------------------------------------------
# The storm: send, record, probe


@dataclass
class Sent:
    case: Case
    name: str
    namespace: str | None
    status: int
    message: str = ""
    at: float = 0.0


@dataclass
class Storm:
    """Sends the corpus with a thread pool; runs the cases' follow-up actions (deletes) on the side."""

    kube: Kube
    prefix: str
    namespaces: dict[str, str]  # slot -> namespace
    good_image: str
    threads: int = 12
    sent: list[Sent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _later: list[tuple[float, Callable[[], None]]] = field(default_factory=list)

    def render(self, case: Case, index: int) -> tuple[bytes, str, str | None]:
        body = case.body.replace(PREFIX, self.prefix.encode()).replace(INDEX, f"g{index}".encode())
        body = body.replace(b"@GOOD_IMAGE@", self.good_image.encode())
        namespace = self.namespaces.get(case.namespace) if case.namespace else None
        name = _name_of(body)
        return body, name, namespace

    def send_one(self, case: Case, index: int) -> Sent:
        body, name, namespace = self.render(case, index)
        started = time.monotonic()
        status, data = self.kube.create(case.kind, namespace, body)
        message = ""
        if status >= 300:
            try:
                message = str(deep_loads(data).get("message", ""))[:300]
            except ValueError:
                message = data[:300].decode(errors="replace")
        sent = Sent(case, name, namespace, status, message, started)
        with self._lock:
            self.sent.append(sent)
        if case.after is not None and status < 300:
            case.after(self, case, status)
        return sent

    def delete_later(self, case: Case, delay: float) -> None:
        body, name, namespace = self.render(case, 0)
        with self._lock:
            self._later.append((time.monotonic() + delay, lambda: self.kube.delete(case.kind, namespace, name)))

    def run_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [fn for when, fn in self._later if when <= now]
            self._later = [(when, fn) for when, fn in self._later if when > now]
        for fn in due:
            fn()

    def send_all(self, cases: list[tuple[int, Case]]) -> float:
        """Send every case (index, case); returns the wall time. Delayed cases wait their turn."""
        started = time.monotonic()
        delayed = [(i, c) for i, c in cases if any(t.startswith("delayed:") for t in c.tags)]
        now = [(i, c) for i, c in cases if (i, c) not in delayed]
        stop = threading.Event()

        def side() -> None:
            while not stop.is_set():
                self.run_due()
                for i, c in list(delayed):
                    wait = float(next(t for t in c.tags if t.startswith("delayed:")).split(":")[1])
                    if time.monotonic() - started >= wait:
                        delayed.remove((i, c))
                        self.send_one(c, i)
                time.sleep(0.1)

        side_thread = threading.Thread(target=side, daemon=True)
        side_thread.start()
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(lambda ic: self.send_one(ic[1], ic[0]), now))
        while delayed or self._later:
            time.sleep(0.2)
            if time.monotonic() - started > 120:
                break
        stop.set()
        side_thread.join()
        return time.monotonic() - started


def _name_of(body: bytes) -> str:
    """metadata.name of a serialised object without parsing all of it (bodies may be deep)."""
    marker = b'"metadata":'
    start = body.index(marker) + len(marker)
    end = body.index(b'"name":', start) + len(b'"name":')
    return json.JSONDecoder().raw_decode(body[end:].decode(errors="replace").lstrip())[0]


# ---------------------------------------------------------------------------------------------
# Checks


def classify_job(job: dict, pods_by_job: dict[str, list[dict]], ready_images: set[str] | None = None,
                 interfaces: set[str] | None = None) -> tuple[str, str]:
    """(verdict, why): terminal | waiting | progressing | stuck.

    * terminal: Succeeded, Failed or Cancelled;
    * waiting: a condition that is not True says, with a message, that the job waits for
      something outside the operator (an interface, an image, a node), and that thing is indeed
      missing (``ready_images``: names of the Ready images of the job's namespace;
      ``interfaces``: names of the existing interfaces; None: not checked);
    * progressing: its current pod exists and has not finished (pending on a node or running);
    * stuck: anything else (no phase at all; a phase whose pod finished or vanished; a wait
      for something that is there: the operator stopped looking).
    """
    status = job.get("status") or {}
    spec = job.get("spec") if isinstance(job.get("spec"), dict) else {}
    phase = status.get("phase")
    if phase in TERMINAL:
        return "terminal", phase
    if not phase:
        return "stuck", "no phase"
    stale = ""
    for cond in status.get("conditions") or []:
        reason = cond.get("reason")
        if cond.get("status") == "True" or reason not in WAITING_REASONS or not cond.get("message"):
            continue
        if reason == "WaitingForInterfaces" and interfaces is not None:
            wanted = {i.get("interface") for i in spec.get("inputs") or [] if isinstance(i, dict)} | set(spec.get("outputs") or [])
            if wanted <= interfaces:
                stale = f"waits for interfaces that exist ({cond['message'][:80]})"
                continue
        if reason in ("ImageNotFound", "ImageNotReady") and ready_images is not None and spec.get("image") in ready_images:
            stale = f"waits for image {spec.get('image')!r}, which is Ready"
            continue
        return "waiting", f"{cond['type']}={cond['status']} {reason}"
    pod_name = status.get("podName")
    pods = {p["metadata"]["name"]: p for p in pods_by_job.get(job["metadata"]["name"], [])}
    pod = pods.get(pod_name) if pod_name else None
    if pod is not None and (pod.get("status") or {}).get("phase") in ("Pending", "Running"):
        return "progressing", f"{phase}, pod {pod_name} {(pod.get('status') or {}).get('phase')}"
    if stale:
        return "stuck", f"{phase}, {stale}"
    return "stuck", f"{phase}, pod {pod_name}: {(pod or {}).get('status', {}).get('phase', 'absent')}"


def refused_by_operator_ok(job: dict) -> tuple[bool, str]:
    """A job the operator ended without success carries a reason and a message for people."""
    status = job.get("status") or {}
    if status.get("phase") not in ("Failed", "Cancelled"):
        return True, ""
    messages = [c.get("message") for c in status.get("conditions") or [] if c.get("message")]
    ok = bool(status.get("reason")) and bool(status.get("errorMessage") or messages)
    return ok, f"reason={status.get('reason')!r} errorMessage={status.get('errorMessage')!r}"


def scrape_unexpected(port: int) -> float | None:
    """Sum of component_operator_reconcile_errors_total{error="unexpected"} (None: unreachable)."""
    try:
        r = urllib3.PoolManager().request("GET", f"http://127.0.0.1:{port}/metrics", timeout=5, retries=False)
    except urllib3.exceptions.HTTPError:
        return None
    total = 0.0
    for line in r.data.decode().splitlines():
        if line.startswith("component_operator_reconcile_errors_total{") and 'error="unexpected"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def summarize(latencies: Iterable[float]) -> dict[str, float | int | None]:
    values = sorted(latencies)
    if not values:
        return {"n": 0, "median": None, "max": None}
    return {"n": len(values), "median": round(statistics.median(values), 2), "max": round(values[-1], 2)}


def table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)


def finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value
