"""The data plane of a job pod (pure builders): invocation, agent Secret, NetworkPolicy.

With object storage configured, a job's pod is wired as grand-challenge's sagemaker-shim
wires an algorithm, the Kubernetes way (as Tekton and Argo inject their entrypoint): an init
container ``prepare`` from the operator's image copies the agent into a shared volume and
stages the inputs; the algorithm container runs ``<agent> run -- <entrypoint + cmd>``; the
agent uploads /output and a result signed with a per-job key that only the operator and the
agent hold. The contract is in ``component_operator.agent``'s docstring.
"""

from __future__ import annotations

import json
from typing import Any, Mapping
from urllib.parse import urlparse

from .. import kinds
from ..config import OperatorConfig
from . import names
from .pods import child_labels, inputs_json, owner_reference

AGENT_DIR = "/agent"
INVOCATION_DIR = "/etc/component-operator"
SIGNING_KEY = "signingKey"
ACCESS_KEY = "s3AccessKey"
SECRET_KEY = "s3SecretKey"


def job_prefix(job: Mapping[str, Any], attempt: int) -> str:
    meta = job["metadata"]
    return f"jobs/{meta['namespace']}/{meta['name']}/{meta['uid']}/{attempt}"


def job_id(job: Mapping[str, Any], attempt: int) -> str:
    meta = job["metadata"]
    return f"{meta['namespace']}/{meta['name']}/{meta['uid']}/{attempt}"


def result_uri(job: Mapping[str, Any], attempt: int, config: OperatorConfig) -> str:
    assert config.object_storage is not None
    return f"s3://{config.object_storage.bucket}/{job_prefix(job, attempt)}/result.json"


def output_prefix(job: Mapping[str, Any], attempt: int, config: OperatorConfig) -> str:
    assert config.object_storage is not None
    return f"s3://{config.object_storage.bucket}/{job_prefix(job, attempt)}/output/"


def agent_secret_name(job_name: str, attempt: int) -> str:
    return names._short(f"{job_name}-{attempt}-agent", 253)


def invocation_configmap_name(job_name: str, attempt: int) -> str:
    return names._short(f"{job_name}-{attempt}-invocation", 253)


def network_policy_name(job_name: str) -> str:
    return names._short(f"{job_name}-network", 253)


def program(entrypoint: list[str] | None, cmd: list[str] | None) -> list[str]:
    """The command the image would run (Docker's rule): entrypoint + cmd, or cmd alone."""
    if entrypoint:
        return list(entrypoint) + list(cmd or [])
    if cmd:
        return list(cmd)
    raise ValueError("Either cmd or entrypoint must be set")


def build_invocation(job: Mapping[str, Any], attempt: int, interfaces: Mapping[str, Mapping[str, Any]],
                     config: OperatorConfig) -> dict[str, Any]:
    spec = job["spec"]
    prefixes = spec.get("inputPrefixes") or {}
    inputs = []
    for item in spec.get("inputs") or []:
        ispec = interfaces[item["interface"]]["spec"]
        kind = kinds.resolve_kind(ispec["kind"])
        source = (item.get("file") or item.get("image") or {}).get("uri")
        super_kind = "Image" if kind.group.value == "image" else ("File" if source else "Value")
        entry: dict[str, Any] = {
            "interface": item["interface"],
            "relativePath": ispec["relativePath"],
            "prefix": prefixes.get(item["interface"], ""),
            "superKind": super_kind,
            "kind": kind.code,
            "decompress": kind.code == "ZIP",
        }
        if source:
            entry["source"] = source
            sha = (item.get("file") or item.get("image") or {}).get("sha256")
            if sha:
                entry["sha256"] = sha
        else:
            entry["value"] = item.get("value")
        inputs.append(entry)
    outputs = []
    for name in spec.get("outputs") or []:
        ispec = interfaces[name]["spec"]
        kind = kinds.resolve_kind(ispec["kind"])
        outputs.append({
            "interface": name,
            "relativePath": ispec["relativePath"],
            "kind": kind.code,
            "superKind": kinds.super_kind(kind, ispec.get("storeInDatabase", True)).value,
        })
    return {
        "jobId": job_id(job, attempt),
        "inputs": inputs,
        "inputsJson": inputs_json(job, interfaces),
        "outputs": outputs,
        "outputPrefix": output_prefix(job, attempt, config),
        "resultUri": result_uri(job, attempt, config),
        "timeLimitSeconds": int(spec.get("timeLimit", 3600)),
        "model": (spec.get("model") or {}).get("uri"),
        "groundTruth": (spec.get("groundTruth") or {}).get("uri"),
    }


def _child_meta(job: Mapping[str, Any], attempt: int, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": job["metadata"]["namespace"],
        "labels": child_labels(job, attempt),
        "ownerReferences": [owner_reference(job)],
    }


def build_invocation_configmap(job: Mapping[str, Any], attempt: int, invocation: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _child_meta(job, attempt, invocation_configmap_name(job["metadata"]["name"], attempt)),
        "data": {"invocation.json": json.dumps(invocation)},
        "immutable": True,
    }


def build_agent_secret(job: Mapping[str, Any], attempt: int, signing_key_hex: str, access_key: str,
                       secret_key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _child_meta(job, attempt, agent_secret_name(job["metadata"]["name"], attempt)),
        "stringData": {SIGNING_KEY: signing_key_hex, ACCESS_KEY: access_key, SECRET_KEY: secret_key},
        "immutable": True,
    }


def build_network_policy(job: Mapping[str, Any], config: OperatorConfig) -> dict[str, Any]:
    """Deny all ingress; allow egress only to the object store (and DNS to resolve it)."""
    storage = config.object_storage
    assert storage is not None
    url = urlparse(storage.pod_endpoint or storage.endpoint)
    port = storage.egress_port or url.port or (443 if url.scheme == "https" else 80)
    egress: list[dict[str, Any]] = [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
    ]
    if storage.egress_cidrs:
        egress.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in storage.egress_cidrs],
                       "ports": [{"protocol": "TCP", "port": port}]})
    else:
        egress.append({"ports": [{"protocol": "TCP", "port": port}]})
    meta = job["metadata"]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": network_policy_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {**names.MANAGED_BY, names.JOB_LABEL: names.label_value(meta["name"])},
            "ownerReferences": [owner_reference(job)],
        },
        "spec": {
            "podSelector": {"matchLabels": {names.JOB_UID_LABEL: meta["uid"]}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress,
        },
    }


def agent_env(job: Mapping[str, Any], attempt: int, config: OperatorConfig, *, signing: bool) -> list[dict[str, Any]]:
    storage = config.object_storage
    assert storage is not None
    secret = agent_secret_name(job["metadata"]["name"], attempt)

    def from_secret(name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    env = [
        {"name": "COMPONENT_OPERATOR_INVOCATION_FILE", "value": f"{INVOCATION_DIR}/invocation.json"},
        {"name": "COMPONENT_OPERATOR_S3_ENDPOINT", "value": storage.pod_endpoint or storage.endpoint},
        {"name": "COMPONENT_OPERATOR_S3_REGION", "value": storage.region},
        from_secret("COMPONENT_OPERATOR_S3_ACCESS_KEY", ACCESS_KEY),
        from_secret("COMPONENT_OPERATOR_S3_SECRET_KEY", SECRET_KEY),
        {"name": "COMPONENT_OPERATOR_AGENT_DIR", "value": AGENT_DIR},
    ]
    if signing:
        env.append(from_secret("COMPONENT_OPERATOR_SIGNING_KEY_HEX", SIGNING_KEY))
    return env
