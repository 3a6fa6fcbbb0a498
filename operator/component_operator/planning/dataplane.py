"""The data plane of a job pod (pure builders): invocation, agent Secret, NetworkPolicy.

With object storage configured, a job's pod is wired as grand-challenge's sagemaker-shim
wires an algorithm, the Kubernetes way (as Tekton and Argo inject their entrypoint): an init
container ``prepare`` from the operator's image copies the agent into a shared volume and
stages the inputs; the algorithm container runs ``<agent> run -- <entrypoint + cmd>``; the
agent uploads /output and a result signed with a per-job key that only the operator and the
agent hold. The contract is in ``component_operator.agent``'s docstring.

Least privilege: the operator's object-store credentials never leave its namespace. The
per-attempt Secret holds what that attempt needs and nothing else (``build_agent_secret``):
the signing key, one presigned GET URL per input object and one signed POST policy that
allows creating objects only below ``jobs/<namespace>/<name>/<uid>/<attempt>/``, each at most
``maxOutputBytes``; all of them expire (``grant_lifetime``). Presigning needs the credentials
and the time: both are passed in (``PresignContext``, ``now``), so ``planning.jobs.decide``
stays pure. The Secret reaches only the init container (environment from ``secretKeyRef``);
the algorithm container's environment holds no secret (``agent_env``).

The invocation (a ConfigMap, limited to 1 MiB by Kubernetes) holds each inline JSON value
once: ``inputsJson`` entries point at their input (``inputsJsonValueFrom``) and the agent
fills them in for ``/input/inputs.json``. A job whose invocation would still exceed
``MAX_INVOCATION_BYTES`` is refused with ``InvocationTooLargeError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping
from urllib.parse import urlparse

from .. import kinds
from ..adapters.s3 import MAX_POST_BYTES, MAX_PRESIGN_SECONDS, Credentials, Presigner
from ..agent.invocation import (
    DEFAULT_HANDOFF_FILE,
    ENV_AGENT_DIR,
    ENV_DOWNLOAD_PREFIX,
    ENV_HANDOFF_FILE,
    ENV_INVOCATION_FILE,
    ENV_SIGNING_KEY,
    ENV_UPLOAD,
)
from ..config import OperatorConfig
from . import names, pods
from .pods import child_labels, inputs_json, owner_reference

AGENT_DIR = "/agent"
INVOCATION_DIR = "/etc/component-operator"
#: Secret keys: the HMAC key (the operator reads it back), the POST policy, GET URLs by index.
SIGNING_KEY = "signingKey"
UPLOAD = "upload"
DOWNLOAD = "download-{index}"
EXPIRES = "expiresAt"
#: Where ``prepare`` leaves the key and the upload policy for ``run`` (the shared /tmp emptyDir).
HANDOFF_FILE = DEFAULT_HANDOFF_FILE
#: User metadata the agent may set on uploads: the result's signature.
UPLOAD_METADATA_KEYS = ("signature-hmac-sha256",)

#: Seconds between the pod's start and its ``activeDeadlineSeconds`` beyond the time limit
#: (``planning.pods``: staging before, uploading after the algorithm).
POD_DEADLINE_MARGIN_SECONDS = 300
#: Extra lifetime of the grants: clock skew between the operator and the store, the time
#: between this decision and the pod's creation, the agent's last retries.
GRANT_SLACK_SECONDS = 900
#: The invocation ConfigMap is refused above this many bytes of JSON (Kubernetes limits a
#: ConfigMap's data to 1 MiB; metadata and the rest of the object need the remainder).
MAX_INVOCATION_BYTES = 900 * 1024


#: The agent Secret (signing key, upload policy, one GET URL per input object) is refused
#: above this many bytes (Kubernetes limits a Secret's data to 1 MiB).
MAX_AGENT_SECRET_BYTES = 900 * 1024


class InputsTooLargeError(pods.InputsTooLargeError):
    """The job's inputs do not fit the objects that carry them to the pod (it cannot run as given).

    A ``pods.InputsTooLargeError`` (a ``ValueError``), so one ``except`` serves both data paths.
    ``field`` is ``spec.inputs``; ``size`` and ``limit`` are bytes; ``what`` names the object
    (``invocation ConfigMap`` or ``agent Secret``); ``largest`` the largest inline value
    (interface, bytes of JSON) when there is one. The job ends Failed, reason ``InputsTooLarge``.
    """

    field = "spec.inputs"

    def __init__(self, size: int, limit: int, *, what: str = "invocation ConfigMap",
                 largest: tuple[str, int] | None = None) -> None:
        self.size = size
        self.limit = limit
        self.what = what
        self.largest = largest
        if what == "invocation ConfigMap":
            hint = f"; the largest inline value is {largest[0]!r} ({largest[1]} bytes of JSON)" if largest else ""
            advice = "pass large values as files in object storage (file: {uri: s3://...}) instead of inline"
        else:
            hint = ""
            advice = "use fewer file and image inputs, or shorter object keys"
        ValueError.__init__(
            self, f"{self.field}: the job's inputs make an {what} of {size} bytes, more than the limit of {limit} "
                  f"bytes (Kubernetes limits it to 1 MiB){hint}: {advice}")


@dataclass(frozen=True)
class PresignContext:
    """What presigning needs besides the clock: the store as job pods reach it (SigV4 signs the
    Host header, so URLs are made for ``objectStorage.podEndpoint``) and the operator's credentials."""

    endpoint: str
    region: str
    credentials: Credentials

    @classmethod
    def for_config(cls, config: OperatorConfig, credentials: Credentials) -> "PresignContext":
        storage = config.object_storage
        if storage is None:
            raise ValueError("objectStorage is not configured: there is nothing to presign")
        return cls(endpoint=storage.pod_endpoint or storage.endpoint, region=storage.region, credentials=credentials)

    def presigner(self) -> Presigner:
        return Presigner(self.endpoint, self.region, self.credentials)


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


def download_sources(job: Mapping[str, Any]) -> list[str]:
    """Every object the attempt reads, once each, in order: file and image inputs, model, ground truth."""
    spec = job["spec"]
    uris: list[str] = []
    candidates = [(item.get("file") or item.get("image") or {}).get("uri") for item in spec.get("inputs") or []]
    candidates += [(spec.get(key) or {}).get("uri") for key in ("model", "groundTruth")]
    for uri in candidates:
        if uri and uri not in uris:
            uris.append(uri)
    return uris


def grant_lifetime(job: Mapping[str, Any]) -> timedelta:
    """How long the attempt's URLs and upload policy are valid, from the decision that makes them.

    The pod may wait ``schedulingTimeoutSeconds`` to be scheduled (then the job fails); once
    the kubelet has it, ``activeDeadlineSeconds`` (time limit + ``POD_DEADLINE_MARGIN_SECONDS``)
    bounds staging, the run and the uploads; ``GRANT_SLACK_SECONDS`` covers clock skew and
    latency. SigV4 caps it at 7 days (``MAX_PRESIGN_SECONDS``); with the API's bounds (24 h
    each) the sum stays below 49 h.
    """
    spec = job["spec"]
    seconds = (int(spec.get("schedulingTimeoutSeconds", 600)) + int(spec.get("timeLimit", 3600))
               + POD_DEADLINE_MARGIN_SECONDS + GRANT_SLACK_SECONDS)
    return timedelta(seconds=min(seconds, MAX_PRESIGN_SECONDS))


def build_invocation(job: Mapping[str, Any], attempt: int, interfaces: Mapping[str, Mapping[str, Any]],
                     config: OperatorConfig) -> dict[str, Any]:
    """The invocation document; raises ``InputsTooLargeError`` above ``MAX_INVOCATION_BYTES``."""
    spec = job["spec"]
    prefixes = spec.get("inputPrefixes") or {}
    inputs = []
    value_sizes: dict[str, int] = {}
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
            value_sizes[item["interface"]] = len(json.dumps(item.get("value")))
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
    # Each inline value once: the inputs.json entry points at its input (same value, same
    # key order once the agent fills it in, so /input/inputs.json is byte-identical).
    entries, value_from = [], []
    inline = {entry["interface"] for entry in inputs if entry["superKind"] == "Value"}
    for listed in inputs_json(job, interfaces):
        slug = listed["interface"]["slug"]
        if listed.get("value") is not None and slug in inline:
            entries.append({**listed, "value": None})
            value_from.append(slug)
        else:
            entries.append(listed)
            value_from.append(None)
    invocation = {
        "jobId": job_id(job, attempt),
        "inputs": inputs,
        "inputsJson": entries,
        "inputsJsonValueFrom": value_from if any(value_from) else [],
        "outputs": outputs,
        "outputPrefix": output_prefix(job, attempt, config),
        "resultUri": result_uri(job, attempt, config),
        "timeLimitSeconds": int(spec.get("timeLimit", 3600)),
        "model": (spec.get("model") or {}).get("uri"),
        "groundTruth": (spec.get("groundTruth") or {}).get("uri"),
    }
    size = len(json.dumps(invocation).encode())
    if size > MAX_INVOCATION_BYTES:
        largest = max(value_sizes.items(), key=lambda kv: kv[1]) if value_sizes else None
        raise InputsTooLargeError(size, MAX_INVOCATION_BYTES, what="invocation ConfigMap", largest=largest)
    return invocation


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


def build_agent_secret(job: Mapping[str, Any], attempt: int, signing_key_hex: str, presign: PresignContext | None,
                       now: datetime, config: OperatorConfig) -> dict[str, Any]:
    """The attempt's Secret: the signing key, a presigned GET URL per input object and the POST
    policy for ``jobs/<ns>/<name>/<uid>/<attempt>/`` (objects of at most ``maxOutputBytes``), all
    valid ``grant_lifetime(job)`` from ``now``. No long-lived credential is in it.

    Raises ``ValueError`` without ``presign`` (the operator has no credentials to sign with) and
    ``InputsTooLargeError`` when the Secret would exceed ``MAX_AGENT_SECRET_BYTES``.
    """
    storage = config.object_storage
    if storage is None:
        raise ValueError("objectStorage is not configured: job pods get no agent Secret")
    if presign is None:
        raise ValueError("the operator has no object-store credentials to presign the job's URLs with "
                         "(COMPONENT_OPERATOR_S3_ACCESS_KEY and COMPONENT_OPERATOR_S3_SECRET_KEY)")
    presigner = presign.presigner()
    lifetime = grant_lifetime(job)
    upload = presigner.post_form(storage.bucket, job_prefix(job, attempt) + "/", now=now, expires=lifetime,
                                 max_bytes=min(config.max_output_bytes, MAX_POST_BYTES),
                                 metadata_keys=UPLOAD_METADATA_KEYS)
    data = {SIGNING_KEY: signing_key_hex, UPLOAD: json.dumps(upload.to_json()), EXPIRES: upload.expires_at}
    for index, uri in enumerate(download_sources(job)):
        data[DOWNLOAD.format(index=index)] = json.dumps({"source": uri, "url": presigner.get_url(uri, now=now,
                                                                                                 expires=lifetime)})
    size = sum(len(key) + len(value.encode()) for key, value in data.items())
    if size > MAX_AGENT_SECRET_BYTES:
        raise InputsTooLargeError(size, MAX_AGENT_SECRET_BYTES, what="agent Secret")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _child_meta(job, attempt, agent_secret_name(job["metadata"]["name"], attempt)),
        "stringData": data,
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
    """The agent's environment in one of the pod's containers.

    ``signing=False``: the init container ``prepare``, which gets the attempt's grants and the
    signing key from the Secret (an init container's environment is gone when it exits).
    ``signing=True``: the algorithm container, whose agent signs the result: it gets no secret
    in its environment (a program of the same uid can read its PID 1's environment there); the
    key and the upload policy come from ``prepare`` in the handoff file, deleted before the
    algorithm starts.
    """
    storage = config.object_storage
    assert storage is not None
    secret = agent_secret_name(job["metadata"]["name"], attempt)

    def from_secret(name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    env = [
        {"name": ENV_INVOCATION_FILE, "value": f"{INVOCATION_DIR}/invocation.json"},
        {"name": ENV_AGENT_DIR, "value": AGENT_DIR},
        {"name": ENV_HANDOFF_FILE, "value": HANDOFF_FILE},
    ]
    if not signing:
        env.append(from_secret(ENV_SIGNING_KEY, SIGNING_KEY))
        env.append(from_secret(ENV_UPLOAD, UPLOAD))
        env += [from_secret(f"{ENV_DOWNLOAD_PREFIX}{index}", DOWNLOAD.format(index=index))
                for index in range(len(download_sources(job)))]
    return env
