"""Build a job's pod and its inputs ConfigMap (pure).

The pod is locked down by default (Pod Security "restricted"): non-root, no privilege
escalation, all capabilities dropped, seccomp RuntimeDefault, read-only root filesystem with
writable /output and /tmp, no service-account token, memory request = limit. JSON inputs are
mounted from a ConfigMap at /input/<prefix>/<relativePath>, next to /input/inputs.json in
grand-challenge's format.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Mapping

from .. import API_VERSION, kinds
from ..config import OperatorConfig
from . import names

INPUT_DIR = "/input"
OUTPUT_DIR = "/output"
ALGORITHM_CONTAINER = "algorithm"


def owner_reference(job: Mapping[str, Any]) -> dict[str, Any]:
    meta = job["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "ComponentJob",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_labels(job: Mapping[str, Any], attempt: int) -> dict[str, str]:
    meta, spec = job["metadata"], job["spec"]
    return {
        **names.MANAGED_BY,
        "app.kubernetes.io/name": "component-job",
        names.JOB_LABEL: names.label_value(meta["name"]),
        names.JOB_UID_LABEL: meta["uid"],
        names.ATTEMPT_LABEL: str(attempt),
        names.IMAGE_LABEL: names.label_value(spec["image"]),
    }


def input_path(relative_path: str, prefix: str | None) -> str:
    """Where an input lands below /input (prefix first, as grand-challenge's input_prefixes)."""
    parts = [p for p in (prefix or "").strip("/").split("/") if p] + [relative_path]
    return posixpath.normpath(posixpath.join(*parts))


def inputs_json(job: Mapping[str, Any], interfaces: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """/input/inputs.json: values first, then files, then images; each group sorted by slug."""
    order = {"Value": 0, "File": 1, "Image": 2}
    entries = []
    for item in job["spec"].get("inputs", []):
        iface = interfaces[item["interface"]]
        spec = iface["spec"]
        kind = kinds.resolve_kind(spec["kind"])
        super_kind = kinds.super_kind(kind, spec.get("storeInDatabase", True)).value
        entries.append(
            (
                order[super_kind],
                iface["metadata"]["name"],
                {
                    "interface": {
                        "title": spec.get("title") or iface["metadata"]["name"],
                        "description": spec.get("description", ""),
                        "slug": iface["metadata"]["name"],
                        "kind": kind.label,
                        "pk": iface["metadata"].get("uid"),
                        "default_value": spec.get("defaultValue"),
                        "super_kind": super_kind,
                        "relative_path": spec["relativePath"],
                        "overlay_segments": [
                            {"voxel_value": s["voxelValue"], "name": s["name"], "visible": s["visible"]}
                            for s in spec.get("overlaySegments", [])
                        ],
                        "look_up_table": spec.get("lookUpTable"),
                    },
                    "value": item.get("value") if super_kind == "Value" else None,
                    "file": (item.get("file") or {}).get("uri"),
                    "image": {"pk": None, "name": (item.get("image") or {}).get("uri")} if item.get("image") else None,
                    "pk": f"{job['metadata']['uid']}/{iface['metadata']['name']}",
                },
            )
        )
    return [entry for _, _, entry in sorted(entries, key=lambda e: (e[0], e[1]))]


#: Bytes of JSON inputs one job's ConfigMap may hold (Kubernetes refuses ConfigMaps over 1 MiB;
#: the rest is left for keys, metadata and inputs.json's framing).
CONFIGMAP_DATA_LIMIT = 900 * 1024


class InputsTooLargeError(ValueError):
    """The job's JSON inputs do not fit in its ConfigMap."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"spec.inputs: the JSON values take {size} bytes in the job's ConfigMap, over the limit of "
                         f"{limit} bytes; pass large values as files (spec.inputs[].file) in object storage")
        self.size, self.limit = size, limit


def build_inputs_configmap(
    job: Mapping[str, Any], attempt: int, interfaces: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The ConfigMap holding JSON inputs and inputs.json, and the volume items mapping keys to paths."""
    data: dict[str, str] = {"inputs.json": json.dumps(inputs_json(job, interfaces))}
    items = [{"key": "inputs.json", "path": "inputs.json"}]
    prefixes = job["spec"].get("inputPrefixes", {})
    for index, item in enumerate(job["spec"].get("inputs", [])):
        if item.get("file") or item.get("image"):
            continue  # staged from object storage by the data plane
        spec = interfaces[item["interface"]]["spec"]
        key = f"input-{index}.json"
        data[key] = json.dumps(item.get("value"))
        items.append({"key": key, "path": input_path(spec["relativePath"], prefixes.get(item["interface"]))})
    size = sum(len(k) + len(v.encode()) for k, v in data.items())
    if size > CONFIGMAP_DATA_LIMIT:
        raise InputsTooLargeError(size, CONFIGMAP_DATA_LIMIT)
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.inputs_configmap_name(job["metadata"]["name"], attempt),
            "namespace": job["metadata"]["namespace"],
            "labels": child_labels(job, attempt),
            "ownerReferences": [owner_reference(job)],
        },
        "data": data,
        "immutable": True,
    }
    return configmap, items


RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
MODEL_DIR = "/opt/ml/model"
GROUND_TRUTH_DIR = "/opt/ml/input/data/ground_truth"


def _wire_data_plane(pod_spec: dict[str, Any], container: dict[str, Any], job: Mapping[str, Any],
                     image_status: Mapping[str, Any], attempt: int, config: OperatorConfig) -> None:
    """Init container `prepare` (the agent and the inputs), the algorithm run through the agent."""
    from . import dataplane  # local import: dataplane imports this module

    name = job["metadata"]["name"]
    pod_spec["volumes"] = [
        {"name": "agent", "emptyDir": {}},
        {"name": "input", "emptyDir": {}},
        {"name": "output", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "model", "emptyDir": {}},
        {"name": "ground-truth", "emptyDir": {}},
        {"name": "invocation", "configMap": {"name": dataplane.invocation_configmap_name(name, attempt)}},
    ]
    mounts = {
        "agent": dataplane.AGENT_DIR, "input": INPUT_DIR, "model": MODEL_DIR,
        "ground-truth": GROUND_TRUTH_DIR, "invocation": dataplane.INVOCATION_DIR,
    }
    prepare_mounts = [{"name": v, "mountPath": p, **({"readOnly": True} if v == "invocation" else {})} for v, p in mounts.items()]
    prepare_mounts.append({"name": "tmp", "mountPath": "/tmp"})
    pod_spec["initContainers"] = [{
        "name": "prepare",
        "image": config.agent_image,
        "imagePullPolicy": "IfNotPresent",
        "command": [*config.agent_command, "prepare"],
        "env": dataplane.agent_env(job, attempt, config, signing=False),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": prepare_mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }]
    container["command"] = [f"{dataplane.AGENT_DIR}/agent", "run", "--",
                            *dataplane.program(image_status.get("entrypoint"), image_status.get("cmd"))]
    container["args"] = []
    container["env"] = container["env"] + dataplane.agent_env(job, attempt, config, signing=True)
    container["volumeMounts"] = [
        {"name": "agent", "mountPath": dataplane.AGENT_DIR, "readOnly": True},
        {"name": "input", "mountPath": INPUT_DIR, "readOnly": True},
        {"name": "output", "mountPath": OUTPUT_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "model", "mountPath": MODEL_DIR, "readOnly": True},
        {"name": "ground-truth", "mountPath": GROUND_TRUTH_DIR, "readOnly": True},
        {"name": "invocation", "mountPath": dataplane.INVOCATION_DIR, "readOnly": True},
    ]
    # The agent enforces the time limit itself and still uploads a signed result; the pod's
    # deadline is the backstop, so it leaves room for staging and upload.
    pod_spec["activeDeadlineSeconds"] = int(job["spec"].get("timeLimit", 3600)) + 300


def _run_as(image_status: Mapping[str, Any], config: OperatorConfig) -> dict[str, int]:
    """runAsUser/runAsGroup as the image inspection resolved them (status.runAsUser/runAsGroup:
    USER's numbers, or a name's ids from the image's /etc/passwd and /etc/group).

    Images inspected before those fields existed have only status.user: a numeric USER is used
    as it is, a name falls back to ``config.default_run_as_user`` (such images are re-inspected
    on the operator's next start, see planning.images.needs_inspection).
    """
    uid, gid = image_status.get("runAsUser"), image_status.get("runAsGroup")
    if isinstance(uid, int) and not isinstance(uid, bool) and uid > 0:
        ids = {"runAsUser": uid}
        if isinstance(gid, int) and not isinstance(gid, bool) and gid >= 0:
            ids["runAsGroup"] = gid
        return ids
    user, _, group = str(image_status.get("user") or "").partition(":")
    ids = {"runAsUser": int(user) if user.isascii() and user.isdigit() and int(user) != 0 else config.default_run_as_user}
    if group.isascii() and group.isdigit():
        ids["runAsGroup"] = int(group)
    return ids


def build_pod(
    job: Mapping[str, Any],
    image: Mapping[str, Any],
    attempt: int,
    input_items: list[dict[str, str]],
    config: OperatorConfig,
) -> dict[str, Any]:
    meta, spec = job["metadata"], job["spec"]
    image_status = image.get("status", {})
    memory = f"{int(spec.get('requiresMemoryGB', 8))}Gi"
    gpu_type = spec.get("requiresGPUType", "")
    limits: dict[str, str] = {"memory": memory}
    if gpu_type:
        limits[config.gpu_resource_name] = "1"
    annotations = {
        key: value
        for key, value in (meta.get("annotations") or {}).items()
        if any(key.startswith(prefix) for prefix in config.pod_annotation_prefixes)
    }
    container: dict[str, Any] = {
        "name": ALGORITHM_CONTAINER,
        "image": image_status["pinnedImage"],
        "imagePullPolicy": "IfNotPresent",
        "env": [
            {"name": "LOG_LEVEL", "value": "INFO"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "GRAND_CHALLENGE_COMPONENT_MAX_MEMORY_MB", "value": str(int(spec.get("requiresMemoryGB", 8)) * 1024)},
        ],
        "resources": {"requests": {"cpu": config.cpu_request, **limits}, "limits": limits},
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [
            {"name": "input", "mountPath": INPUT_DIR, "readOnly": True},
            {"name": "output", "mountPath": OUTPUT_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "activeDeadlineSeconds": int(spec.get("timeLimit", 3600)),
        "securityContext": {
            "runAsNonRoot": True,
            **_run_as(image_status, config),
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {
                "name": "input",
                "configMap": {
                    "name": names.inputs_configmap_name(meta["name"], attempt),
                    "items": input_items,
                },
            },
            {"name": "output", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if config.object_storage is not None:
        _wire_data_plane(pod_spec, container, job, image_status, attempt, config)
    node_selector = {**config.pod_node_selector, **config.node_selector_for(gpu_type)}
    tolerations = [*config.pod_tolerations, *(config.gpu_tolerations if gpu_type else [])]
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if tolerations:
        pod_spec["tolerations"] = [t.model_dump(exclude_none=True) for t in tolerations]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names.pod_name(meta["name"], attempt),
            "namespace": meta["namespace"],
            "labels": child_labels(job, attempt),
            "annotations": annotations,
            "ownerReferences": [owner_reference(job)],
        },
        "spec": pod_spec,
    }
