"""The generated CRDs, served by the real API server: examples round-trip, the schema and CEL
rules reject bad objects with messages that name the field, kubectl documents the fields."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from component_operator import GROUP, VERSION

from ..conftest import REPO
from .conftest import load_yaml_docs

EXAMPLES = REPO / "examples"


def _create(custom, obj, namespace):
    plural = _plural(obj["kind"])
    if obj["kind"] == "ComponentInterface":
        return custom.create_cluster_custom_object(GROUP, VERSION, plural, obj)
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, obj)


def _rejection(custom, obj, namespace) -> str:
    with pytest.raises(ApiException) as info:
        _create(custom, obj, namespace)
    assert info.value.status == 422, info.value.body
    return json.loads(info.value.body)["message"]


def _plural(kind: str) -> str:
    return {"ComponentBatch": "componentbatches"}.get(kind, kind.lower() + "s")


@pytest.mark.parametrize("example", ["image.yaml", "job.yaml", "gpu-job.yaml", "batch.yaml"])
def test_namespaced_examples_round_trip(custom, namespace, example):
    for doc in load_yaml_docs(EXAMPLES / example):
        doc["metadata"]["namespace"] = namespace
        _create(custom, doc, namespace)
        plural = _plural(doc["kind"])
        back = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, doc["metadata"]["name"])
        for key, value in doc["spec"].items():
            assert back["spec"][key] == value, key


def test_interface_examples_round_trip(custom):
    for doc in load_yaml_docs(EXAMPLES / "interfaces.yaml"):
        doc = json.loads(json.dumps(doc))
        doc["metadata"]["name"] = "rt-" + doc["metadata"]["name"]
        try:
            custom.create_cluster_custom_object(GROUP, VERSION, "componentinterfaces", doc)
            back = custom.get_cluster_custom_object(GROUP, VERSION, "componentinterfaces", doc["metadata"]["name"])
            assert back["spec"]["kind"] == doc["spec"]["kind"]
            assert back["spec"]["relativePath"] == doc["spec"]["relativePath"]
            # defaults are applied by the API server from the schema
            assert "storeInDatabase" in back["spec"]
        finally:
            custom.delete_cluster_custom_object(GROUP, VERSION, "componentinterfaces", doc["metadata"]["name"])


def _job(**spec):
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComponentJob",
        "metadata": {"name": "bad-job"},
        "spec": {"image": "algo", **spec},
    }


def test_schema_rejects_time_limit_below_minimum(custom, namespace):
    message = _rejection(custom, _job(timeLimit=10), namespace)
    assert "spec.timeLimit" in message and "300" in message


def test_schema_rejects_unknown_gpu_type(custom, namespace):
    message = _rejection(custom, _job(requiresGPUType="TPU"), namespace)
    assert "spec.requiresGPUType" in message and "TPU" in message


def test_cel_rejects_input_with_file_and_image(custom, namespace):
    inputs = [{"interface": "x", "image": {"uri": "s3://bucket/x.mha"}, "file": {"uri": "s3://bucket/x.json"}}]
    message = _rejection(custom, _job(inputs=inputs), namespace)
    assert "spec.inputs[0]" in message and "Only one of image, value and file can be defined." in message


def test_cel_makes_time_limit_immutable(custom, namespace):
    obj = _job(timeLimit=600)
    _create(custom, obj, namespace)
    with pytest.raises(ApiException) as info:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "componentjobs", "bad-job", {"spec": {"timeLimit": 900}}
        )
    assert "spec.timeLimit" in info.value.body and "timeLimit cannot be changed" in info.value.body


def test_cel_rejects_interface_path_rules(custom):
    obj = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComponentInterface",
        "metadata": {"name": "bad-path"},
        "spec": {"kind": "Float", "relativePath": "/abs/../x.json"},
    }
    message = _rejection(custom, obj, None)
    assert "spec.relativePath" in message
    assert "Path must not begin or end with '/'" in message
    assert "Relative paths are not allowed." in message


def test_cel_rejects_overlay_segments_on_non_segmentation(custom):
    obj = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComponentInterface",
        "metadata": {"name": "bad-segments"},
        "spec": {
            "kind": "Heat Map",
            "relativePath": "images/heat",
            "overlaySegments": [{"voxelValue": 1, "name": "a", "visible": True}],
        },
    }
    message = _rejection(custom, obj, None)
    assert "spec.overlaySegments" in message and "Overlay segments should only be set for segmentations" in message


def test_kubectl_get_components_lists_every_kind(testenv, custom, namespace):
    for example in ("image.yaml", "job.yaml"):
        for doc in load_yaml_docs(EXAMPLES / example):
            doc["metadata"]["namespace"] = namespace
            _create(custom, doc, namespace)
    out = testenv.kubectl("get", "components", "-n", namespace).stdout
    assert "componentimage.components.grand-challenge.org/lesion-classifier" in out
    assert "componentjob.components.grand-challenge.org/classify-lesion-1" in out


def test_kubectl_explain_documents_job_spec(testenv):
    out = testenv.kubectl("explain", "componentjob.spec").stdout
    assert "timeLimit" in out and "Seconds the algorithm may run" in out
    assert "requiresGPUType" in out
    out = testenv.kubectl("explain", "componentinterface.spec.relativePath").stdout
    assert "/input" in out
