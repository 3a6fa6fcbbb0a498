"""Plain-dict builders of jobs, images, interfaces and pods for planning tests."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

from component_operator.config import OperatorConfig

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
CONFIG = OperatorConfig()


def stamp(delta_seconds: float = 0) -> str:
    return (NOW + timedelta(seconds=delta_seconds)).isoformat().replace("+00:00", "Z")


def interface(name, kind, path, store=True, **spec):
    return {
        "metadata": {"name": name, "uid": f"uid-{name}"},
        "spec": {"kind": kind, "relativePath": path, "storeInDatabase": store, **spec},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Valid"}]},
    }


INTERFACES = {
    "bbox": interface("bbox", "2D bounding box", "bbox.json", title="Lesion box"),
    "threshold": interface("threshold", "Float", "threshold.json", schema={"maximum": 1}),
    "prob": interface("prob", "Float", "prob.json"),
    "ct": interface("ct", "Image", "images/ct", store=False),
}

BBOX = {
    "version": {"major": 1, "minor": 0},
    "type": "2D bounding box",
    "corners": [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]],
}


def job(name="j1", status=None, **spec):
    body = {
        "apiVersion": "components.grand-challenge.org/v1alpha1",
        "kind": "ComponentJob",
        "metadata": {"name": name, "namespace": "ns", "uid": "job-uid-1", "generation": 1, "creationTimestamp": stamp(-60)},
        "spec": {
            "image": "algo",
            "inputs": [{"interface": "bbox", "value": copy.deepcopy(BBOX)}, {"interface": "threshold", "value": 0.5}],
            "outputs": [],
            "timeLimit": 600,
            "requiresGPUType": "",
            "requiresMemoryGB": 4,
            "maxAttempts": 3,
            "schedulingTimeoutSeconds": 300,
            **spec,
        },
    }
    if status is not None:
        body["status"] = status
    return body


def image(ready=True, user="1000", import_status="Completed"):
    return {
        "metadata": {"name": "algo", "namespace": "ns"},
        "spec": {"image": "127.0.0.1:5000/algo:1"},
        "status": {
            "importStatus": import_status,
            "pinnedImage": "127.0.0.1:5000/algo@sha256:" + "a" * 64,
            "user": user,
            "entrypoint": ["/bin/algorithm"],
            "cmd": None,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "Ready" if ready else "RootUser"}],
            "message": "" if ready else "The container runs as root.",
        },
    }


def pod(phase="Pending", *, name="j1-0", node=None, conditions=None, container_state=None, reason=None, message=None,
        created=-30, start=None, deleting=False, init_statuses=None):
    status = {"phase": phase, "conditions": conditions or []}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if start is not None:
        status["startTime"] = stamp(start)
    if container_state is not None:
        status["containerStatuses"] = [{"name": "algorithm", "state": container_state}]
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    meta = {"name": name, "namespace": "ns", "creationTimestamp": stamp(created)}
    if deleting:
        meta["deletionTimestamp"] = stamp(0)
    return {"metadata": meta, "spec": {"nodeName": node}, "status": status}
