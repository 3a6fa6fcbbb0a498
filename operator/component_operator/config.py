"""Operator configuration: GPU node labels, prices, pod defaults.

Loaded once at start-up from a YAML file (``--config`` or ``COMPONENT_OPERATOR_CONFIG``);
every field has a default so the operator runs without one. The planning layer receives the
config as an argument and never reads the environment itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

#: GPU type -> node labels, per common cluster flavour. NVIDIA GPU feature discovery labels
#: nodes with the product name; GKE with its accelerator name; EKS/Karpenter with the GPU name.
GPU_LABEL_PRESETS: dict[str, dict[str, dict[str, str]]] = {
    "nvidia-gfd": {
        "T4": {"nvidia.com/gpu.product": "Tesla-T4"},
        "A10G": {"nvidia.com/gpu.product": "NVIDIA-A10G"},
        "L4": {"nvidia.com/gpu.product": "NVIDIA-L4"},
        "V100": {"nvidia.com/gpu.product": "Tesla-V100-SXM2-16GB"},
        "K80": {"nvidia.com/gpu.product": "Tesla-K80"},
        "A100": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        "H100": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    },
    "gke": {
        "T4": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
        "A10G": {"cloud.google.com/gke-accelerator": "nvidia-a10g"},
        "L4": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        "V100": {"cloud.google.com/gke-accelerator": "nvidia-tesla-v100"},
        "K80": {"cloud.google.com/gke-accelerator": "nvidia-tesla-k80"},
        "A100": {"cloud.google.com/gke-accelerator": "nvidia-a100-80gb"},
        "H100": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
    },
    "eks": {
        "T4": {"karpenter.k8s.aws/instance-gpu-name": "t4"},
        "A10G": {"karpenter.k8s.aws/instance-gpu-name": "a10g"},
        "L4": {"karpenter.k8s.aws/instance-gpu-name": "l4"},
        "V100": {"karpenter.k8s.aws/instance-gpu-name": "v100"},
        "K80": {"karpenter.k8s.aws/instance-gpu-name": "k80"},
        "A100": {"karpenter.k8s.aws/instance-gpu-name": "a100"},
        "H100": {"karpenter.k8s.aws/instance-gpu-name": "h100"},
    },
}


class Toleration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"


class InstancePrice(BaseModel):
    """One purchasable shape; the cheapest that fits a job sets its price (grand-challenge's rule)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    name: str
    memory_gb: int
    gpu_type: str = ""
    usd_cents_per_hour: float


#: grand-challenge's SageMaker single-GPU and CPU catalogue (components spec 3.5).
DEFAULT_PRICES: list[InstancePrice] = [
    InstancePrice(name=n, memory_gb=m, gpu_type=g, usd_cents_per_hour=c)
    for n, m, g, c in [
        ("ml.m7i.large", 8, "", 14), ("ml.r7i.large", 16, "", 18), ("ml.r7i.xlarge", 32, "", 36),
        ("ml.r7i.2xlarge", 64, "", 72), ("ml.r7i.4xlarge", 128, "", 143), ("ml.r7i.8xlarge", 256, "", 285),
        ("ml.r7i.12xlarge", 384, "", 426), ("ml.r7i.16xlarge", 512, "", 569), ("ml.r7i.24xlarge", 768, "", 853),
        ("ml.r7i.48xlarge", 1536, "", 1706),
        ("ml.g4dn.xlarge", 16, "T4", 83), ("ml.g4dn.2xlarge", 32, "T4", 105), ("ml.g4dn.4xlarge", 64, "T4", 168),
        ("ml.g4dn.8xlarge", 128, "T4", 304), ("ml.g4dn.16xlarge", 256, "T4", 607),
        ("ml.g5.xlarge", 16, "A10G", 157), ("ml.g5.2xlarge", 32, "A10G", 169), ("ml.g5.4xlarge", 64, "A10G", 227),
        ("ml.g5.8xlarge", 128, "A10G", 342), ("ml.g5.16xlarge", 256, "A10G", 572),
        ("ml.p3.2xlarge", 61, "V100", 414), ("ml.p2.xlarge", 61, "K80", 122),
    ]
]


class ObjectStorage(BaseModel):
    """Where job inputs, outputs and signed results live (any S3-compatible store).

    Credentials are read by the operator from COMPONENT_OPERATOR_S3_ACCESS_KEY and
    COMPONENT_OPERATOR_S3_SECRET_KEY (and COMPONENT_OPERATOR_S3_SESSION_TOKEN for temporary
    ones; set them from a Secret in the operator's namespace) and never leave the operator:
    each job attempt's Secret holds only presigned GET URLs of its input objects and a signed
    POST policy for its own prefix (``jobs/<namespace>/<name>/<uid>/<attempt>/``, objects of at
    most ``maxOutputBytes``), valid for the job's scheduling timeout + time limit + 20 minutes
    (at most SigV4's 7 days). They are signed for ``podEndpoint`` (SigV4 signs the host), so it
    must be the URL pods really use, and the region must be the store's. Temporary credentials
    must outlive that lifetime, or the URLs die with them.
    """

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    endpoint: str
    """URL the operator uses, e.g. http://minio.storage:9000."""
    pod_endpoint: str | None = None
    """URL job pods use, when it differs from the operator's (default: ``endpoint``)."""
    region: str = "us-east-1"
    bucket: str = "component-jobs"
    ca_file: str | None = None
    egress_cidrs: list[str] = Field(default_factory=list)
    """Addresses job pods may reach (the object store); everything else is denied."""
    egress_port: int | None = None
    """Port of the object store for the NetworkPolicy (default: from the endpoint URL)."""


class OperatorConfig(BaseModel):
    """Everything a cluster operator may want to tune (camelCase keys in the YAML file)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    gpu_label_preset: Literal["nvidia-gfd", "gke", "eks"] = "nvidia-gfd"
    gpu_node_labels: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Explicit GPU type -> node selector; overrides the preset per type."""
    gpu_tolerations: list[Toleration] = Field(default_factory=lambda: [Toleration(key="nvidia.com/gpu")])
    gpu_resource_name: str = "nvidia.com/gpu"
    pod_node_selector: dict[str, str] = Field(default_factory=dict)
    """Added to every job pod's node selector (e.g. a pool for algorithms); GPU labels win."""
    pod_tolerations: list[Toleration] = Field(default_factory=list)
    """Added to every job pod (e.g. the taint of a dedicated node pool)."""
    cpu_request: str = "1"
    default_run_as_user: int = 1000
    """Used when an image's USER is a name that cannot be checked as non-root."""
    pod_annotation_prefixes: list[str] = Field(default_factory=list)
    """Job annotations with these prefixes are copied onto the job's pods."""
    prices: list[InstancePrice] = Field(default_factory=lambda: list(DEFAULT_PRICES))
    tax_rate: float = 0.21
    usd_to_eur: float = 0.92472705
    metrics_port: int = 8080
    object_storage: ObjectStorage | None = None
    """Enables the data plane: inputs staged and outputs returned through object storage."""
    agent_image: str = "component-operator:0.1.0"
    """Image of the init container that brings the agent (the operator's own image)."""
    agent_command: list[str] = Field(default_factory=lambda: ["/usr/local/bin/component-operator-agent"])
    """How to start the agent inside the agent image."""
    max_output_bytes: int = 1024 * 1024 * 1024
    max_inline_output_bytes: int = 1024 * 1024
    """JSON outputs stored in status are limited (the object is limited to ~1.5 MiB)."""
    digest_max_bytes: int = Field(8 * 1024**3, ge=0)
    """Largest object the operator hashes to compute an inputs digest when the spec gives no
    sha256 (bytes; default 8 GiB); a larger one leaves the job without a digest and makes a batch
    item invalid (give its sha256)."""
    resync_seconds: float = 15.0
    """Every non-terminal job is reconciled at least this often (timeouts, missed events)."""
    validation_seconds: float = Field(5.0, gt=0)
    """CPU budget of one validation check in a worker process (one input value, one interface's
    schema and example value); a check still running after this is stopped and the field it was
    checking is refused with a message naming this setting."""
    validation_memory_mb: int = Field(512, ge=128, alias="validationMemoryMB")
    """Address-space limit of each validation worker process, in MiB (the ~100 MiB of imports
    included); a check that needs more is refused with a message naming this setting."""
    validation_workers: int = Field(2, ge=1)
    """Validation worker processes: checks of this many values run at the same time."""
    validation_request_seconds: float = Field(8.0, gt=0)
    """Total budget of one admission request's validation (all inputs of a job); keep it below
    the webhook's timeoutSeconds (10 in the chart), or the API server gives up first and admits
    the object unchecked (failurePolicy Ignore)."""

    def node_selector_for(self, gpu_type: str) -> dict[str, str]:
        if not gpu_type:
            return {}
        if gpu_type in self.gpu_node_labels:
            return dict(self.gpu_node_labels[gpu_type])
        return dict(GPU_LABEL_PRESETS[self.gpu_label_preset].get(gpu_type, {}))


def load_config(path: str | os.PathLike | None = None) -> OperatorConfig:
    path = path or os.environ.get("COMPONENT_OPERATOR_CONFIG")
    if not path:
        return OperatorConfig()
    data = yaml.safe_load(Path(path).read_text()) or {}
    return OperatorConfig.model_validate(data)
