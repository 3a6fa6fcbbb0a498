"""Generate the CustomResourceDefinitions from the pydantic models.

``crds/*.yaml`` are never edited by hand: ``component-operator crds --write crds/`` writes
them and a unit test fails when the committed files differ from what this module produces.

pydantic emits JSON Schema (2020-12 flavoured); the API server wants a *structural* OpenAPI
v3 schema: no ``$ref``, ``nullable`` instead of ``anyOf: [X, null]``, no ``const``, no
``additionalProperties`` next to ``properties``, ``x-kubernetes-preserve-unknown-fields`` for
free-form JSON. ``to_structural`` does that translation and nothing else.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import yaml

from .. import GROUP, VERSION
from .base import Model
from .batch import ComponentBatchSpec, ComponentBatchStatus
from .image import ComponentImageSpec, ComponentImageStatus
from .interface import ComponentInterfaceSpec, ComponentInterfaceStatus
from .job import ComponentJobSpec, ComponentJobStatus

CATEGORY = "components"

_DROP = {"title", "$defs", "examples"}


@dataclass(frozen=True)
class ResourceDefinition:
    kind: str
    plural: str
    singular: str
    short_names: list[str]
    scope: str
    spec_model: type[Model]
    status_model: type[Model]
    description: str
    printer_columns: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _ready_column(name: str = "Ready") -> dict[str, Any]:
    return {"name": name, "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

RESOURCES: list[ResourceDefinition] = [
    ResourceDefinition(
        kind="ComponentInterface",
        plural="componentinterfaces",
        singular="componentinterface",
        short_names=["iface", "interface"],
        scope="Cluster",
        spec_model=ComponentInterfaceSpec,
        status_model=ComponentInterfaceStatus,
        description="A typed input or output socket of algorithms (grand-challenge's ComponentInterface).",
        printer_columns=[
            {"name": "Kind", "type": "string", "jsonPath": ".spec.kind"},
            {"name": "Path", "type": "string", "jsonPath": ".spec.relativePath"},
            {"name": "Super-Kind", "type": "string", "jsonPath": ".status.superKind"},
            _ready_column(),
            {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason', "priority": 1},
            _AGE,
        ],
    ),
    ResourceDefinition(
        kind="ComponentImage",
        plural="componentimages",
        singular="componentimage",
        short_names=["cimg"],
        scope="Namespaced",
        spec_model=ComponentImageSpec,
        status_model=ComponentImageStatus,
        description="A container image of an algorithm, checked in its OCI registry before jobs may use it.",
        printer_columns=[
            {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
            {"name": "Status", "type": "string", "jsonPath": ".status.importStatus"},
            _ready_column(),
            {"name": "Digest", "type": "string", "jsonPath": ".status.imageSha256"},
            {"name": "Size", "type": "integer", "jsonPath": ".status.sizeInRegistry"},
            {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
            _AGE,
        ],
    ),
    ResourceDefinition(
        kind="ComponentJob",
        plural="componentjobs",
        singular="componentjob",
        short_names=["cjob"],
        scope="Namespaced",
        spec_model=ComponentJobSpec,
        status_model=ComponentJobStatus,
        description="One run of a ComponentImage on typed inputs, producing validated outputs.",
        printer_columns=[
            {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
            {"name": "GPU", "type": "string", "jsonPath": ".spec.requiresGPUType"},
            {"name": "Memory", "type": "integer", "jsonPath": ".spec.requiresMemoryGB", "priority": 1},
            {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt", "priority": 1},
            {"name": "Duration", "type": "string", "jsonPath": ".status.execDuration"},
            {"name": "Error", "type": "string", "jsonPath": ".status.errorMessage", "priority": 1},
            _AGE,
        ],
    ),
    ResourceDefinition(
        kind="ComponentBatch",
        plural="componentbatches",
        singular="componentbatch",
        short_names=["cbatch"],
        scope="Namespaced",
        spec_model=ComponentBatchSpec,
        status_model=ComponentBatchStatus,
        description="One ComponentImage run over a dataset, skipping the items that already ran (django-analyses' QuerySetRunner).",
        printer_columns=[
            {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            {"name": "Total", "type": "integer", "jsonPath": ".status.counts.total"},
            {"name": "Existing", "type": "integer", "jsonPath": ".status.counts.existing"},
            {"name": "Running", "type": "integer", "jsonPath": ".status.counts.running"},
            {"name": "Succeeded", "type": "integer", "jsonPath": ".status.counts.succeeded"},
            {"name": "Failed", "type": "integer", "jsonPath": ".status.counts.failed"},
            {"name": "Invalid", "type": "integer", "jsonPath": ".status.counts.invalid"},
            {"name": "Complete", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Complete")].status'},
            {"name": "Pending", "type": "integer", "jsonPath": ".status.counts.pending", "priority": 1},
            {"name": "Deferred", "type": "integer", "jsonPath": ".status.counts.deferred", "priority": 1},
            _AGE,
        ],
    ),
]


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline every $ref (the models are not recursive)."""
    if isinstance(node, list):
        return [_resolve(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].split("/")[-1]])
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        merged = _resolve(target, defs)
        # The field's own description and rules win over the referenced model's.
        extra_rules = siblings.pop("x-kubernetes-validations", [])
        merged.update(_resolve(siblings, defs))
        if extra_rules:
            merged["x-kubernetes-validations"] = merged.get("x-kubernetes-validations", []) + extra_rules
        return merged
    return {k: _resolve(v, defs) for k, v in node.items()}


def to_structural(node: Any, *, keep_defaults: bool = True) -> Any:
    """Translate one resolved JSON Schema node into structural OpenAPI v3."""
    if isinstance(node, list):
        return [to_structural(n, keep_defaults=keep_defaults) for n in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    for variant_key in ("anyOf", "oneOf"):
        variants = node.get(variant_key)
        if variants and any(v.get("type") == "null" for v in variants):
            rest = [v for v in variants if v.get("type") != "null"]
            if len(rest) == 1:
                del node[variant_key]
                merged = dict(rest[0])
                rules = merged.get("x-kubernetes-validations", []) + node.pop("x-kubernetes-validations", [])
                merged.update(node)
                if rules:
                    merged["x-kubernetes-validations"] = rules
                merged["nullable"] = True
                node = merged
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "properties" in node:
        node.pop("additionalProperties", None)
        node.setdefault("type", "object")
    if not keep_defaults or isinstance(node.get("default"), (list, dict)) or node.get("default", 0) is None:
        node.pop("default", None)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: to_structural(sub, keep_defaults=keep_defaults) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_structural(value, keep_defaults=keep_defaults)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_structural(v, keep_defaults=keep_defaults) for v in value]
        else:
            out[key] = value
    return out


def model_schema(model: type[Model], *, keep_defaults: bool) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    resolved = _resolve({k: v for k, v in raw.items() if k != "$defs"}, raw.get("$defs", {}))
    return to_structural(resolved, keep_defaults=keep_defaults)


def build_crd(resource: ResourceDefinition) -> dict[str, Any]:
    spec_schema = model_schema(resource.spec_model, keep_defaults=True)
    status_schema = model_schema(resource.status_model, keep_defaults=False)
    root = {
        "type": "object",
        "description": resource.description,
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of the object."},
            "kind": {"type": "string", "description": "Kind of the object."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "required": ["spec"],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": resource.name,
            "labels": {"app.kubernetes.io/name": "component-operator", "app.kubernetes.io/part-of": "component-operator"},
        },
        "spec": {
            "group": GROUP,
            "scope": resource.scope,
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.singular,
                "shortNames": resource.short_names,
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": resource.printer_columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


HEADER = "# Generated by `component-operator crds --write crds/` from the pydantic models. Do not edit.\n"


def render(resource: ResourceDefinition) -> str:
    return HEADER + yaml.safe_dump(build_crd(resource), sort_keys=False, width=120)


def render_all() -> str:
    return "---\n".join(render(r) for r in RESOURCES)


def file_name(resource: ResourceDefinition) -> str:
    return f"{GROUP}_{resource.plural}.yaml"
