"""crds/ is generated from the models and must not drift; the models and the CRD schema agree."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from component_operator.api import crdgen
from component_operator.api.batch import ComponentBatchSpec
from component_operator.api.interface import ComponentInterfaceSpec
from component_operator.api.job import ComponentJobSpec

from ..conftest import REPO


@pytest.mark.parametrize("resource", crdgen.RESOURCES, ids=lambda r: r.kind)
def test_committed_crd_is_up_to_date(resource):
    committed = (REPO / "crds" / crdgen.file_name(resource)).read_text()
    assert committed == crdgen.render(resource), (
        "crds/ is out of date: run `component-operator crds --write crds/` and commit the result"
    )


def _walk(node, path="$"):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


@pytest.mark.parametrize("resource", crdgen.RESOURCES, ids=lambda r: r.kind)
def test_schema_is_structural(resource):
    schema = crdgen.build_crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node, path
        assert "const" not in node, path
        if "properties" in node and path.endswith(("properties", "items")) is False:
            assert "additionalProperties" not in node, path


@pytest.mark.parametrize("resource", crdgen.RESOURCES, ids=lambda r: r.kind)
def test_every_field_is_documented(resource):
    schema = crdgen.build_crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    for name, prop in spec["properties"].items():
        assert prop.get("description"), f"{resource.kind}.spec.{name} has no description"


def test_crd_names_and_categories():
    for resource in crdgen.RESOURCES:
        crd = crdgen.build_crd(resource)
        assert crd["spec"]["names"]["categories"] == ["components"]
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
    scopes = {r.kind: r.scope for r in crdgen.RESOURCES}
    assert scopes == {"ComponentInterface": "Cluster", "ComponentImage": "Namespaced", "ComponentJob": "Namespaced",
                      "ComponentBatch": "Namespaced"}


def _spec_schema(kind):
    resource = next(r for r in crdgen.RESOURCES if r.kind == kind)
    return crdgen.build_crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


# One schema, two gates: the same bad specs fail in pydantic and are out of bounds in the CRD.
@pytest.mark.parametrize(
    ("field", "value"),
    [("timeLimit", 299), ("timeLimit", 86401), ("requiresMemoryGB", 0), ("requiresGPUType", "TPU")],
)
def test_job_bounds_agree(field, value):
    with pytest.raises(ValidationError):
        ComponentJobSpec.model_validate({"image": "x", field: value})
    prop = _spec_schema("ComponentJob")["properties"][field]
    if "enum" in prop:
        assert value not in prop["enum"]
    else:
        assert value < prop.get("minimum", float("-inf")) or value > prop.get("maximum", float("inf"))


def test_models_accept_examples():
    for doc in yaml.safe_load_all((REPO / "examples" / "interfaces.yaml").read_text()):
        ComponentInterfaceSpec.model_validate(doc["spec"])
    for name in ("job.yaml", "gpu-job.yaml"):
        for doc in yaml.safe_load_all((REPO / "examples" / name).read_text()):
            ComponentJobSpec.model_validate(doc["spec"])
    for doc in yaml.safe_load_all((REPO / "examples" / "batch.yaml").read_text()):
        ComponentBatchSpec.model_validate(doc["spec"])


def test_models_forbid_unknown_fields():
    with pytest.raises(ValidationError) as info:
        ComponentJobSpec.model_validate({"image": "x", "timelimit": 400})
    assert "timelimit" in str(info.value)
