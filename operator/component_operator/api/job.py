"""ComponentJob: one execution of a ComponentImage on typed inputs, producing typed outputs.

grand-challenge field -> here: status -> status.phase (its display names), attempt,
stdout/stderr (last 500 lines), exec_duration / invoke_duration, runtime_metrics,
error_message (<= 1024 chars), detailed_error_message, input_prefixes -> spec.inputPrefixes,
signing_key -> a Secret named in status.signingKeySecret (never in the object itself),
time_limit -> spec.timeLimit, requires_gpu_type -> spec.requiresGPUType,
requires_memory_gb -> spec.requiresMemoryGB, use_warm_pool -> spec.useWarmPool,
inputs / outputs -> spec.inputs / spec.outputs and status.outputs, the utilization row's
duration and compute_cost_euro_millicents -> status.duration, status.computeCostEuroMillicents,
task_on_success / task_on_failure -> Kubernetes Events and status conditions (watchers react
to them instead of a serialized Celery signature).

timeLimit, requiresGPUType and requiresMemoryGB are immutable, as grand-challenge's save()
enforces; CEL transition rules say so at admission time.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Literal

from pydantic import Field

from ..planning.names import SAFE_RELATIVE_DIR, SAFE_RELATIVE_DIR_MAX
from .base import Condition, JsonObject, JsonValue, Model, StatusModel, cel, validations

#: Bounds of grand-challenge's COMPONENTS_MINIMUM/MAXIMUM_JOB_DURATION validators.
MIN_TIME_LIMIT_SECONDS = 300
MAX_TIME_LIMIT_SECONDS = 86400

GPUType = Literal["", "T4", "A10G", "L4", "V100", "K80", "A100", "H100"]


class Phase(str, Enum):
    """grand-challenge's job states (display names), the values of status.phase."""

    VALIDATING_INPUTS = "Validating inputs"
    QUEUED = "Queued"
    RE_QUEUED = "Re-Queued"
    PROVISIONING = "Provisioning"
    PROVISIONED = "Provisioned"
    EXECUTING = "Executing"
    EXECUTED = "Executed"
    PARSING_OUTPUTS = "Parsing outputs"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED)


def _immutable(field: str) -> dict:
    return cel("self == oldSelf", f"{field} cannot be changed")


class ObjectSource(Model):
    """A file or image stored in S3-compatible object storage."""

    uri: str = Field(min_length=6, max_length=2048, pattern=r"^s3://[^/]+/.+$")
    """s3://bucket/key of the file (or of the image file: .mha, .mhd+.raw/.zraw, .tif)."""
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """Expected SHA-256 of the content; the stager refuses a mismatch."""


class JobInput(Model):
    """A value for one input interface: inline JSON, a file or an image."""

    model_config = Model.model_config | {
        "json_schema_extra": validations(
            cel(
                # `value` is free-form JSON, invisible to CEL; the webhook and the operator
                # check value-versus-file/image, the API server checks file-versus-image.
                "!(has(self.file) && has(self.image))",
                "Only one of image, value and file can be defined.",
            )
        )
    }

    interface: str = Field(min_length=1, max_length=253)
    """Name of the ComponentInterface this value is for."""
    value: JsonValue = None
    """Inline JSON value for a JSON interface."""
    file: ObjectSource | None = None
    """A file in object storage, for file interfaces and JSON interfaces not stored in the database."""
    image: ObjectSource | None = None
    """An image file in object storage, for image interfaces."""


class ArtifactRef(Model):
    """Where an output file or image was stored, with its size and digest."""

    uri: str
    size: int = Field(ge=0)
    sha256: str


class JobOutput(StatusModel):
    """A validated output value."""

    interface: str
    value: JsonValue = None
    """The JSON value, for interfaces stored in the database."""
    file: ArtifactRef | None = None
    image: ArtifactRef | None = None


class JobSettings(Model):
    """How each run goes: shared by a ComponentJob and a ComponentBatch (whose jobs get them).

    Immutable (CEL transition rules) where grand-challenge's save() makes them so."""

    input_prefixes: dict[str, Annotated[str, Field(max_length=SAFE_RELATIVE_DIR_MAX, pattern=SAFE_RELATIVE_DIR)]] = Field(
        default_factory=dict, max_length=256)
    """Per input interface, a directory prefix: the value lands at /input/<prefix>/<relativePath>.
    A safe relative directory: components of letters, digits, '.', '_' and '-' that do not start
    with '.', separated by '/' (no absolute paths, no '..')."""
    time_limit: int = Field(
        default=3600,
        ge=MIN_TIME_LIMIT_SECONDS,
        le=MAX_TIME_LIMIT_SECONDS,
        json_schema_extra=validations(_immutable("timeLimit")),
    )
    """Seconds the algorithm may run (300 to 86400); exceeding it fails the job with "Time limit exceeded"."""
    requires_gpu_type: GPUType = Field(default="", alias="requiresGPUType", json_schema_extra=validations(_immutable("requiresGPUType")))
    """GPU type the algorithm needs ("" for none); mapped to node labels by the operator's configuration."""
    requires_memory_gb: int = Field(
        default=8, ge=1, le=2048, alias="requiresMemoryGB", json_schema_extra=validations(_immutable("requiresMemoryGB"))
    )
    """Memory in GB; the pod's request and limit (exceeding it is an OOM kill)."""
    use_warm_pool: bool = False
    """Keep the node warm for following jobs where the platform supports it."""
    model: ObjectSource | None = None
    """Model tarball (.tar.gz) extracted into /opt/ml/model."""
    ground_truth: ObjectSource | None = None
    """Ground-truth tarball (.tar.gz) extracted into /opt/ml/input/data/ground_truth."""
    max_attempts: int = Field(default=3, ge=1, le=99)
    """Attempts allowed when the platform loses the pod (deleted, evicted, node lost); never for the algorithm's own failures."""
    scheduling_timeout_seconds: int = Field(default=600, ge=10, le=86400)
    """How long the pod may stay unschedulable before the job fails."""


class ComponentJobSpec(JobSettings):
    """Desired state of a ComponentJob."""

    image: str = Field(min_length=1, max_length=253)
    """Name of the ComponentImage (same namespace) to run; it must be Ready."""
    inputs: list[JobInput] = Field(
        default_factory=list,
        max_length=256,
        json_schema_extra=validations(
            cel("self.all(i, self.exists_one(j, j.interface == i.interface))", "each interface may be given only once")
        ),
    )
    """Input values, one per input interface."""
    outputs: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(default_factory=list, max_length=256)
    """Names of the ComponentInterfaces the algorithm must produce."""
    cancel: bool = False
    """Set to true to stop the job; it ends Cancelled."""


class ComponentJobStatus(StatusModel):
    """Observed state of a ComponentJob."""

    phase: Phase = Phase.VALIDATING_INPUTS
    """grand-challenge's job state: Validating inputs, Queued, Provisioning, ... Succeeded, Failed, Cancelled."""
    reason: str | None = None
    """Reason of the latest significant condition (e.g. OOMKilled, InvalidInputs), for listings."""
    attempt: int = Field(default=0, ge=0)
    """Attempt number; a new attempt starts when the platform lost the previous pod."""
    pod_name: str | None = None
    """Name of the pod of the current attempt."""
    conditions: list[Condition] = Field(default_factory=list)
    """InputsValid, ImageReady, Scheduled, OutputsValid, Succeeded, Failed ..."""
    error_message: str = Field(default="", max_length=1024)
    """Short message for people, in grand-challenge's words."""
    detailed_error_message: dict[str, str] = Field(default_factory=dict)
    """Per interface (or file path), what was wrong."""
    stdout: str = ""
    """Last 500 lines of the algorithm's standard output."""
    stderr: str = ""
    """Last 500 lines of the algorithm's standard error."""
    created_at: datetime | None = None
    started_at: datetime | None = None
    """When the algorithm container started."""
    completed_at: datetime | None = None
    exec_duration: str | None = None
    """Wall time of the algorithm's process, e.g. 12.3s."""
    invoke_duration: str | None = None
    duration: str | None = None
    """Pod start to end (includes staging), the basis of the cost."""
    runtime_metrics: JsonObject = Field(default_factory=dict)
    """Queue time, run time, peak memory and the instance description."""
    compute_cost_euro_millicents: int | None = Field(default=None, ge=0)
    """Cost of the run from the configured price table."""
    outputs: list[JobOutput] = Field(default_factory=list)
    """Validated outputs: JSON values inline, files and images as references."""
    signing_key_secret: str | None = None
    """Name of the Secret holding this job's result signing key."""
    inputs_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """SHA-256 over the image's pinned digest, the canonical inputs (values by content, files and
    images by their SHA-256), the model and the ground truth: the "same run" identity batches skip
    by. The jobs a batch creates carry its first 63 hex digits as the label
    components.grand-challenge.org/inputs-digest."""
    observed_generation: int | None = None
