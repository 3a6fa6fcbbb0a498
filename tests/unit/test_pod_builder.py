"""build_pod and the inputs ConfigMap, field by field."""

from __future__ import annotations

import json

import pytest

from component_operator.config import OperatorConfig
from component_operator.planning import names
from component_operator.planning.pods import build_inputs_configmap, build_pod, input_path, inputs_json

from .jobfixtures import CONFIG, INTERFACES, image, job


def _pod(**spec):
    j = job(**spec)
    _, items = build_inputs_configmap(j, 0, INTERFACES)
    return build_pod(j, image(), 0, items, CONFIG)


def test_pod_security_is_restricted():
    pod = _pod()
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = spec["containers"][0]["securityContext"]
    assert ctx == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["/input"]["readOnly"] is True
    assert "readOnly" not in mounts["/output"] and "readOnly" not in mounts["/tmp"]


def test_image_is_pinned_by_digest():
    assert _pod()["spec"]["containers"][0]["image"].endswith("@sha256:" + "a" * 64)


def test_memory_request_equals_limit():
    res = _pod(requiresMemoryGB=16)["spec"]["containers"][0]["resources"]
    assert res["requests"]["memory"] == res["limits"]["memory"] == "16Gi"
    assert "nvidia.com/gpu" not in res["limits"]


def test_time_limit_becomes_active_deadline():
    assert _pod(timeLimit=1200)["spec"]["activeDeadlineSeconds"] == 1200


@pytest.mark.parametrize(
    ("preset", "gpu", "selector"),
    [
        ("nvidia-gfd", "T4", {"nvidia.com/gpu.product": "Tesla-T4"}),
        ("nvidia-gfd", "A100", {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}),
        ("gke", "L4", {"cloud.google.com/gke-accelerator": "nvidia-l4"}),
        ("eks", "A10G", {"karpenter.k8s.aws/instance-gpu-name": "a10g"}),
    ],
)
def test_gpu_selector_resource_and_toleration(preset, gpu, selector):
    config = OperatorConfig(gpu_label_preset=preset)
    j = job(requiresGPUType=gpu)
    _, items = build_inputs_configmap(j, 0, INTERFACES)
    pod = build_pod(j, image(), 0, items, config)
    assert pod["spec"]["nodeSelector"] == selector
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_pool_selector_and_tolerations_apply_to_every_pod():
    config = OperatorConfig.model_validate({
        "podNodeSelector": {"example.org/pool": "algorithms", "nvidia.com/gpu.product": "ignored-for-gpu-jobs"},
        "podTolerations": [{"key": "example.org/pool", "operator": "Equal", "value": "algorithms"}],
    })
    cpu_job, gpu_job = job(), job(requiresGPUType="T4")
    cpu = build_pod(cpu_job, image(), 0, build_inputs_configmap(cpu_job, 0, INTERFACES)[1], config)["spec"]
    gpu = build_pod(gpu_job, image(), 0, build_inputs_configmap(gpu_job, 0, INTERFACES)[1], config)["spec"]
    pool = {"key": "example.org/pool", "operator": "Equal", "value": "algorithms", "effect": "NoSchedule"}
    assert cpu["nodeSelector"] == {"example.org/pool": "algorithms", "nvidia.com/gpu.product": "ignored-for-gpu-jobs"}
    assert cpu["tolerations"] == [pool]
    # The GPU type's labels win over the pool's; both tolerations are kept.
    assert gpu["nodeSelector"] == {"example.org/pool": "algorithms", "nvidia.com/gpu.product": "Tesla-T4"}
    assert gpu["tolerations"] == [pool, {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_cpu_pods_have_no_selector_by_default():
    spec = _pod()["spec"]
    assert "nodeSelector" not in spec and "tolerations" not in spec


def test_gpu_mapping_override():
    config = OperatorConfig(gpu_node_labels={"T4": {"example.org/gpu": "t4"}})
    assert config.node_selector_for("T4") == {"example.org/gpu": "t4"}
    assert config.node_selector_for("") == {}


def test_labels_owner_and_name_are_deterministic():
    pod = _pod()
    assert pod["metadata"]["name"] == "j1-0" == names.pod_name("j1", 0)
    labels = pod["metadata"]["labels"]
    assert labels[names.JOB_LABEL] == "j1" and labels[names.ATTEMPT_LABEL] == "0"
    assert labels[names.JOB_UID_LABEL] == "job-uid-1" and labels[names.IMAGE_LABEL] == "algo"
    (owner,) = pod["metadata"]["ownerReferences"]
    assert owner["kind"] == "ComponentJob" and owner["uid"] == "job-uid-1" and owner["controller"] is True


def test_long_names_are_shortened_stably():
    long = "x" * 250
    assert len(names.pod_name(long, 3)) <= 63
    assert names.pod_name(long, 3) == names.pod_name(long, 3) != names.pod_name(long, 4)
    assert len(names.label_value(long)) <= 63


@pytest.mark.parametrize(("user", "expected"), [("1000", 1000), ("1001:1002", 1001), ("algo", 1000), ("", 1000)])
def test_run_as_user_from_image(user, expected):
    j = job()
    _, items = build_inputs_configmap(j, 0, INTERFACES)
    pod = build_pod(j, image(user=user), 0, items, CONFIG)
    assert pod["spec"]["securityContext"]["runAsUser"] == expected


def test_json_inputs_land_at_relative_path_with_prefix():
    j = job(inputPrefixes={"threshold": "params/"})
    configmap, items = build_inputs_configmap(j, 0, INTERFACES)
    paths = {item["path"]: configmap["data"][item["key"]] for item in items}
    assert json.loads(paths["bbox.json"])["type"] == "2D bounding box"
    assert json.loads(paths["params/threshold.json"]) == 0.5
    assert "inputs.json" in paths
    assert configmap["immutable"] is True
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == "job-uid-1"


def test_inputs_json_has_grand_challenge_shape():
    entries = inputs_json(job(), INTERFACES)
    assert [e["interface"]["slug"] for e in entries] == ["bbox", "threshold"]  # values sorted by slug
    first = entries[0]
    assert set(first) == {"interface", "value", "file", "image", "pk"}
    assert set(first["interface"]) == {
        "title", "description", "slug", "kind", "pk", "default_value", "super_kind",
        "relative_path", "overlay_segments", "look_up_table",
    }
    assert first["interface"]["kind"] == "2D bounding box" and first["interface"]["super_kind"] == "Value"
    assert first["interface"]["title"] == "Lesion box"


def test_input_path_normalises():
    assert input_path("a.json", None) == "a.json"
    assert input_path("a.json", "/p/q/") == "p/q/a.json"


def test_pod_annotations_copied_by_prefix():
    j = job()
    j["metadata"]["annotations"] = {"sim.testenv/outcome": "fail", "other": "x"}
    _, items = build_inputs_configmap(j, 0, INTERFACES)
    pod = build_pod(j, image(), 0, items, OperatorConfig(pod_annotation_prefixes=["sim.testenv/"]))
    assert pod["metadata"]["annotations"] == {"sim.testenv/outcome": "fail"}
