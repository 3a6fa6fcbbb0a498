"""The ComponentJob state machine: observation in, decision out (pure).

``decide`` is the whole policy of the operator for a job. It is given everything observed
(the job, its image, its interfaces, the pod of the current attempt read fresh from the API
server, the pod's logs) and returns the complete desired status plus a few idempotent
actions. The handler only gathers and acts, so a restart at any moment re-derives the same
decision from the same observation:

* child names are deterministic (``names.pod_name(job, attempt)``), so a repeated create is a
  409, never a second pod;
* a terminal phase is never left, and once written it is never written again;
* a new attempt starts only when the platform lost the pod (deleted, evicted, node lost),
  never for the algorithm's own failure, and only up to ``spec.maxAttempts``.

Error taxonomy (for the whole operator):
  permanent  -- the user's fault (invalid input, root image, OOM, time limit); the job ends
                with grand-challenge's message and a specific condition reason;
  temporary  -- the platform's (API conflicts, registry down, pod lost); retried with delay
                or with a new attempt, never reported as the user's failure;
  unexpected -- a bug; the handler logs it with context and retries a bounded number of
                times, then ends the job Failed with reason InternalError (see
                ``component_operator.errors`` for the bounds).

The job's spec is parsed once, at the handler's edge, into ``api.job.ComponentJobSpec``
(``parse_spec``); an object the API server admitted but the model refuses ends Cancelled
with reason ``InvalidSpec`` and pydantic's field-by-field message. The builders below then
see a complete spec with every default filled in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ValidationError

from .. import kinds
from ..api.job import ComponentJobSpec, ComponentJobStatus, Phase
from ..config import OperatorConfig
from ..errors import INTERNAL_ERROR
from ..kinds.limits import depth_message, too_deep
from . import cost, dataplane, identity, logs, names
from .conditions import get_condition, is_true, set_condition
from .inputs import InputProblem, check_inputs
from .pods import InputsTooLargeError, build_inputs_configmap, build_pod

# grand-challenge's messages (components spec section 5)
MSG_INVALID_INPUTS = "One or more of the inputs failed validation."
MSG_OOM = "The container was killed as it exceeded its memory limit"
MSG_TIME_LIMIT = "Time limit exceeded"
MSG_IMAGE_NOT_READY = "Container Image {name} was not ready to be used"
MSG_WOULD_NOT_START = "Algorithm container image would not start"
MSG_UNEXPECTED = "An unexpected error occurred"
MSG_NO_RESULT = "The invocation request did not return a result"

#: Pod failure reasons that mean the platform lost the pod, not that the algorithm failed.
LOST_POD_REASONS = {"Evicted", "NodeLost", "NodeAffinity", "NodeShutdown", "Shutdown", "Terminated",
                    "UnexpectedAdmissionError", "Preempting", "OutOfcpu", "OutOfmemory", "OutOfpods"}
#: Container waiting reasons after which the container will not start without a change.
FATAL_WAITING_REASONS = {"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                         "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
PULL_REASONS = {"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "ErrImagePull"}

#: Phases announced by an Event besides the terminal ones: the pod's creation and each retry.
#: The others are in the status only (a job's events are the writes users look at; one per
#: phase would be about as many writes as the job's own).
EVENT_PHASES = frozenset({Phase.PROVISIONING, Phase.RE_QUEUED})

WAIT_POLL_SECONDS = 5.0
IMAGE_WAIT_POLL_SECONDS = 30.0
#: The whole status is kept below this many bytes of JSON (etcd refuses objects over 1.5 MiB;
#: the spec, metadata and kopf's bookkeeping need the rest). Logs are trimmed first; a status
#: that is still too large (inline outputs) fails the job with reason StatusTooLarge.
STATUS_BUDGET_BYTES = 512 * 1024
#: Errors shown in status.detailedErrorMessage: entries and characters per entry.
DETAIL_ENTRIES = 64
DETAIL_CHARS = 2048


M = TypeVar("M", bound=BaseModel)


class SpecError(ValueError):
    """The spec the API server admitted does not fit the operator's model."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


def parse_spec(spec: Any, model: type[M] = ComponentJobSpec) -> M:  # type: ignore[assignment]
    """The one parse of a job's (or a batch's: ``model``) spec; raises ``SpecError`` naming each bad field."""
    # Free-form values are measured first, without recursion: anything deeper than the limit
    # would make pydantic's (and json's) recursive walks fail on what the API server admitted.
    deep = _too_deep_values(spec)
    if deep:
        raise SpecError(deep)
    try:
        return model.model_validate(spec if spec is not None else {})
    except ValidationError as err:
        messages = []
        for problem in err.errors()[:10]:
            where = ".".join(str(part) for part in ("spec", *problem["loc"]))
            value = repr(problem.get("input"))
            value = value if len(value) <= 80 else value[:77] + "..."
            messages.append(f"{where}: {problem['msg']} (got {value})")
        raise SpecError(messages) from None


def _too_deep_values(spec: Any) -> list[str]:
    """Free-form values nested too deep, in ``spec.inputs`` (jobs, batches) and ``spec.items`` (batches)."""
    if not isinstance(spec, dict):
        return []
    problems = []
    for key in ("inputs", "items"):
        entries = spec.get(key)
        for index, item in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(item, dict) and "value" in item:
                found = too_deep(item["value"])
                if found is not None:
                    problems.append(f"spec.{key}[{index}].value: " + depth_message(found, "the value"))
    return problems


def spec_wire(spec: ComponentJobSpec) -> dict[str, Any]:
    """The parsed spec as the builders read it: camelCase keys, every default present."""
    return spec.model_dump(by_alias=True, mode="json")


def check_input_prefixes(prefixes: Mapping[str, str]) -> list[InputProblem]:
    """Each ``spec.inputPrefixes`` value must be a safe relative path (the CRD's CEL says the same)."""
    problems = []
    for interface, prefix in prefixes.items():
        why = names.unsafe_relative_path(prefix)
        if why:
            problems.append(InputProblem(interface, interface, f"spec.inputPrefixes[{interface!r}]",
                                         f"{prefix!r} is not a safe relative directory: {why}"))
    return problems


@dataclass(frozen=True)
class PodLogs:
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True)
class ResultObservation:
    """What the handler found of the agent's signed result (data plane only).

    ``reason``/``error``/``detail`` are set when the result could not be used (missing,
    tampered, unreadable, for another job); otherwise ``result`` is the verified document and,
    for a zero exit, ``outputs`` or ``output_error``/``output_detail`` the parsed outputs.
    """

    result: Mapping[str, Any] | None = None
    reason: str | None = None
    error: str | None = None
    detail: Mapping[str, str] = field(default_factory=dict)
    outputs: list[dict[str, Any]] | None = None
    output_error: str | None = None
    output_detail: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    job: Mapping[str, Any]
    image: Mapping[str, Any] | None
    interfaces: Mapping[str, Mapping[str, Any]]
    pod: Mapping[str, Any] | None
    now: datetime
    config: OperatorConfig
    logs: PodLogs | None = None
    result: ResultObservation | None = None
    #: A fresh random key, used only if this decision creates the job's agent Secret.
    new_signing_key_hex: str | None = None
    #: What presigning the attempt's URLs and upload policy needs besides ``now`` (data plane
    #: only): the pods' endpoint and the operator's credentials, which never leave its namespace.
    presign: dataplane.PresignContext | None = None
    #: The spec, parsed once by the handler (``parse_spec``); None: ``decide`` parses it.
    spec: ComponentJobSpec | None = None
    #: Input problems found by the bounded validation pool; None: checked in-process.
    input_problems: list[InputProblem] | None = None
    #: SHA-256 of input, model and ground-truth objects whose spec gives none (hashed by the handler).
    sha256_of: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Decision:
    status: dict[str, Any]
    create: list[dict[str, Any]] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def rfc3339(value: datetime) -> str:
    return value.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class _Builder:
    """Accumulates the next status, conditions and actions while ``decide`` walks the phases."""

    def __init__(self, obs: Observation, spec: ComponentJobSpec):
        self.obs = obs
        self.typed = spec
        self.spec = spec_wire(spec)
        self.job = {**obs.job, "spec": self.spec}
        self.meta = obs.job.get("metadata", {})
        self.generation = self.meta.get("generation")
        self.current = dict(obs.job.get("status") or {})
        self.status = dict(self.current)
        self.status["observedGeneration"] = self.generation
        self.status.setdefault("attempt", 0)
        self.status.setdefault("createdAt", self.meta.get("creationTimestamp") or rfc3339(obs.now))
        self.decision = Decision(status=self.status)
        self.now = rfc3339(obs.now)

    @property
    def attempt(self) -> int:
        return int(self.status.get("attempt", 0))

    @property
    def phase(self) -> Phase:
        return Phase(self.status.get("phase", Phase.VALIDATING_INPUTS.value))

    def condition(self, type_: str, ok: bool | str, reason: str, message: str = "") -> None:
        self.status["conditions"] = set_condition(
            self.status.get("conditions"), type_, ok, reason, message, generation=self.generation, now=self.now
        )

    def move(self, phase: Phase, reason: str | None = None, message: str = "", event_type: str = "Normal") -> None:
        entering = self.phase != phase or self.current.get("phase") is None
        if entering and (phase in EVENT_PHASES or phase.is_terminal):
            text = message or phase.value
            self.decision.events.append(Event(event_type, reason or phase.value.replace(" ", ""), text))
        self.status["phase"] = phase.value
        if reason is not None:
            self.status["reason"] = reason

    def finish(self, phase: Phase, reason: str, error: str = "", detail: dict[str, str] | None = None) -> Decision:
        """Enter a terminal phase with its conditions, durations and cost."""
        self.move(phase, reason, error or phase.value, "Normal" if phase is Phase.SUCCEEDED else "Warning")
        if phase is Phase.SUCCEEDED:
            self.condition("Succeeded", True, reason, "the algorithm ran and every output is valid")
            self.status["errorMessage"] = ""
        else:
            self.condition("Failed", True, reason, error)
            self.status["errorMessage"] = error[:1024]
        if detail:
            items = list(detail.items())[:DETAIL_ENTRIES]
            self.status["detailedErrorMessage"] = {str(k)[:253]: str(v)[:DETAIL_CHARS] for k, v in items}
        self.status["completedAt"] = self.now
        self.decision.requeue_after = None
        return self.decision

    def wait(self, seconds: float = WAIT_POLL_SECONDS) -> Decision:
        self.decision.requeue_after = seconds
        return self.decision

    def seconds_since(self, stamp: str | None) -> float:
        start = parse_time(stamp)
        return (self.obs.now - start).total_seconds() if start else 0.0


def decide(obs: Observation) -> Decision:
    decision = _decide(obs)
    return _bounded(decision)


def _decide(obs: Observation) -> Decision:
    current = dict(obs.job.get("status") or {})
    if current.get("phase") in TERMINAL_PHASES:
        return Decision(status=current)  # never leave, never rewrite a terminal state
    try:
        ComponentJobStatus.model_validate(current)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in ("status", *first["loc"]))
        return fail(obs, "InvalidStatus", f"{where}: {first['msg']} (the status was edited by hand?)")
    try:
        spec = obs.spec if obs.spec is not None else parse_spec(obs.job.get("spec"))
    except SpecError as err:
        b = _Builder(obs, ComponentJobSpec.model_construct(image=""))
        b.condition("InputsValid", False, "InvalidSpec", str(err))
        return b.finish(Phase.CANCELLED, "InvalidSpec", f"The job's spec is not valid: {err}",
                        {f"spec[{i}]": m for i, m in enumerate(err.messages)})
    b = _Builder(obs, spec)
    if b.typed.cancel:
        if obs.pod is not None:
            b.decision.delete_pods.append(obs.pod["metadata"]["name"])
        return b.finish(Phase.CANCELLED, "Cancelled", "The job was cancelled (spec.cancel is true).")
    if b.phase in (Phase.VALIDATING_INPUTS,):
        return _validate_inputs(b)
    if b.phase in (Phase.QUEUED, Phase.RE_QUEUED):
        return _start_attempt(b)
    return _follow_pod(b)


def _validate_inputs(b: _Builder) -> Decision:
    obs = b.obs
    b.move(Phase.VALIDATING_INPUTS)
    wanted = [i.interface for i in b.typed.inputs] + list(b.typed.outputs)
    missing = sorted({name for name in wanted if name not in obs.interfaces})
    if missing:
        message = "waiting for ComponentInterface " + ", ".join(repr(m) for m in missing)
        if b.seconds_since(b.status["createdAt"]) > b.typed.scheduling_timeout_seconds:
            detail = {m: f"ComponentInterface {m!r} does not exist" for m in missing}
            b.condition("InputsValid", False, "InterfaceNotFound", "; ".join(detail.values()))
            return b.finish(Phase.CANCELLED, "InterfaceNotFound", MSG_INVALID_INPUTS, detail)
        b.condition("InputsValid", "Unknown", "WaitingForInterfaces", message)
        return b.wait()
    problems = check_input_prefixes(b.typed.input_prefixes) + _output_problems(b)
    problems += obs.input_problems if obs.input_problems is not None else check_inputs(b.spec, obs.interfaces)
    if problems:
        detail = {p.title: p.message for p in problems}
        b.condition("InputsValid", False, "InvalidInputs", "; ".join(str(p) for p in problems))
        return b.finish(Phase.CANCELLED, "InvalidInputs", MSG_INVALID_INPUTS, detail)
    b.condition("InputsValid", True, "Valid", "every input is valid for its interface")
    b.move(Phase.QUEUED, "Queued")
    return _start_attempt(b)


def _output_problems(b: _Builder) -> list[InputProblem]:
    """Outputs must name usable interfaces: a known kind, and not marked invalid."""
    problems = []
    for index, name in enumerate(b.typed.outputs):
        iface = b.obs.interfaces.get(name) or {}
        field_name = f"spec.outputs[{index}]"
        try:
            kinds.resolve_kind((iface.get("spec") or {}).get("kind", ""))
        except Exception as err:  # noqa: BLE001 - any unusable kind is the interface's problem
            problems.append(InputProblem(name, name, field_name, f"ComponentInterface {name!r} cannot be an output: {err}"))
            continue
        conditions = (iface.get("status") or {}).get("conditions")
        if conditions and not is_true(conditions, "Ready"):
            problems.append(InputProblem(name, name, field_name, f"ComponentInterface {name!r} is not valid"))
    return problems


def _start_attempt(b: _Builder) -> Decision:
    obs = b.obs
    image = obs.image
    name = b.typed.image
    wanted = sorted({i.interface for i in b.typed.inputs} | set(b.typed.outputs))
    gone = [n for n in wanted if n not in obs.interfaces]
    if gone:  # deleted after the inputs were validated
        detail = {n: f"ComponentInterface {n!r} was deleted after the job's inputs were validated" for n in gone}
        b.condition("InputsValid", False, "InterfaceNotFound", "; ".join(detail.values()))
        return b.finish(Phase.FAILED, "InterfaceNotFound", MSG_INVALID_INPUTS, detail)
    image_status = (image or {}).get("status") or {}
    if image is None or not is_true(image_status.get("conditions"), "Ready"):
        failed = image_status.get("importStatus") in ("Failed", "Cancelled")
        waited_too_long = b.seconds_since(b.status["createdAt"]) > b.typed.scheduling_timeout_seconds
        why = "does not exist" if image is None else (image_status.get("message") or image_status.get("importStatus") or "is not ready")
        b.condition("ImageReady", False, "ImageNotFound" if image is None else "ImageNotReady", f"ComponentImage {name!r}: {why}")
        if failed or waited_too_long:
            return b.finish(Phase.FAILED, "ImageNotReady", MSG_IMAGE_NOT_READY.format(name=name), {name: why})
        # The image's own events wake this job; the poll only bounds the scheduling timeout.
        left = b.typed.scheduling_timeout_seconds - b.seconds_since(b.status["createdAt"])
        return b.wait(min(IMAGE_WAIT_POLL_SECONDS, max(left + 0.5, 1.0)))
    b.condition("ImageReady", True, "Ready", f"running {image_status.get('pinnedImage')}")
    _record_identity(b, image_status)
    if obs.config.object_storage is not None:
        try:
            dataplane.program(image_status.get("entrypoint"), image_status.get("cmd"))
        except ValueError as err:
            return b.finish(Phase.FAILED, "NoEntrypoint", MSG_IMAGE_NOT_READY.format(name=name), {name: str(err)})
        if obs.presign is None:  # the operator's own configuration, not the user's: say so plainly
            message = ("The operator has no object-storage credentials (COMPONENT_OPERATOR_S3_ACCESS_KEY and "
                       "COMPONENT_OPERATOR_S3_SECRET_KEY), so it cannot grant the job access to its data")
            return b.finish(Phase.FAILED, "NoStorageCredentials", message, {"operator": message})
        try:
            invocation = dataplane.build_invocation(b.job, b.attempt, obs.interfaces, obs.config)
            secret = dataplane.build_agent_secret(b.job, b.attempt, obs.new_signing_key_hex or "", obs.presign,
                                                  obs.now, obs.config)
        except InputsTooLargeError as err:  # dataplane's is a pods.InputsTooLargeError too
            return b.finish(Phase.FAILED, "InputsTooLarge", str(err), {"spec.inputs": str(err)})
        b.decision.create.extend([
            secret,
            dataplane.build_invocation_configmap(b.job, b.attempt, invocation),
            dataplane.build_network_policy(b.job, obs.config),
        ])
        b.status["signingKeySecret"] = dataplane.agent_secret_name(b.meta["name"], b.attempt)
        items: list[dict[str, str]] = []
    else:
        try:
            configmap, items = build_inputs_configmap(b.job, b.attempt, obs.interfaces)
        except InputsTooLargeError as err:
            return b.finish(Phase.FAILED, "InputsTooLarge", str(err), {"spec.inputs": str(err)})
        b.decision.create.append(configmap)
    pod = build_pod(b.job, image, b.attempt, items, obs.config)
    b.decision.create.append(pod)
    b.status["podName"] = pod["metadata"]["name"]
    b.condition("Scheduled", "Unknown", "Pending", f"pod {pod['metadata']['name']} created")
    b.move(Phase.PROVISIONING, "Provisioning", f"created pod {pod['metadata']['name']} (attempt {b.attempt})")
    return b.wait()


def _record_identity(b: _Builder, image_status: Mapping[str, Any]) -> None:
    """Record the run's inputs digest in the status once the pinned image is known.

    Status only: the batch index reads ``status.inputsDigest`` (or the label a batch puts on
    the jobs it creates), so a user's job gets no metadata write (and one write less).
    """
    if not b.status.get("inputsDigest") and image_status.get("imageSha256"):
        try:
            digest = identity.inputs_digest(identity.job_identity(b.typed, image_status["imageSha256"]), b.obs.sha256_of)
        except identity.UnknownContentError:
            return  # an object without a known SHA-256 (no object storage to hash it): no identity
        b.status["inputsDigest"] = digest


def _container_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == "algorithm":
            return cs
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def _pod_condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return get_condition((pod.get("status") or {}).get("conditions"), type_)


def _follow_pod(b: _Builder) -> Decision:
    pod = b.obs.pod
    if pod is None or pod.get("metadata", {}).get("deletionTimestamp"):
        if pod is not None:
            return b.wait(1.0)  # being deleted by someone else: wait until it is gone
        return _retry_or_fail(b, "PodDeleted", f"pod {b.status.get('podName')} was deleted")
    pod_status = pod.get("status") or {}
    phase = pod_status.get("phase", "Pending")
    disrupted = _pod_condition(pod, "DisruptionTarget")
    if phase == "Failed" and (pod_status.get("reason") in LOST_POD_REASONS or (disrupted and disrupted.get("status") == "True")):
        why = pod_status.get("message") or (disrupted or {}).get("message") or pod_status.get("reason")
        return _retry_or_fail(b, pod_status.get("reason") or "PodDisrupted", f"pod {pod['metadata']['name']} was lost: {why}")
    if phase == "Pending":
        return _pending(b, pod)
    _record_start(b, pod)
    if phase == "Running":
        b.condition("Scheduled", True, "Scheduled", f"running on node {pod['spec'].get('nodeName')}")
        b.move(Phase.EXECUTING, "Executing", f"algorithm running on node {pod['spec'].get('nodeName')}")
        return b.wait(max(b.obs.config.resync_seconds, 1.0))
    _record_end(b, pod)
    if phase == "Succeeded":
        b.move(Phase.EXECUTED, "Executed")
        return _parse_outputs(b)
    return _classify_failure(b, pod)


def _pending(b: _Builder, pod: Mapping[str, Any]) -> Decision:
    scheduled = _pod_condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        message = scheduled.get("message", "")
        b.condition("Scheduled", False, "Unschedulable", message)
        b.status["reason"] = "Unschedulable"
        timeout = b.typed.scheduling_timeout_seconds
        if b.seconds_since(pod["metadata"].get("creationTimestamp")) > timeout:
            b.decision.delete_pods.append(pod["metadata"]["name"])
            error = f"No node could run this job within {timeout}s: {message}"
            return b.finish(Phase.FAILED, "SchedulingTimeout", error, {"scheduler": message})
        return b.wait()
    if pod["spec"].get("nodeName"):
        b.condition("Scheduled", True, "Scheduled", f"assigned to node {pod['spec']['nodeName']}")
        b.move(Phase.PROVISIONED, "Provisioned", f"pod assigned to node {pod['spec']['nodeName']}")
        for cs in (pod.get("status") or {}).get("initContainerStatuses", []) + (pod.get("status") or {}).get("containerStatuses", []):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FATAL_WAITING_REASONS:
                b.decision.delete_pods.append(pod["metadata"]["name"])
                reason = "ImagePullFailed" if waiting["reason"] in PULL_REASONS else "ContainerCreateFailed"
                detail = f"{cs.get('name')}: {waiting.get('reason')}: {waiting.get('message', '')}".strip()
                return b.finish(Phase.FAILED, reason, MSG_WOULD_NOT_START, {"pod": detail})
    return b.wait()


def _record_start(b: _Builder, pod: Mapping[str, Any]) -> None:
    state = _container_status(pod).get("state") or {}
    started = (state.get("running") or state.get("terminated") or {}).get("startedAt")
    if started and not b.status.get("startedAt"):
        b.status["startedAt"] = started
        queue = b.seconds_since(b.status["createdAt"]) - b.seconds_since(started)
        metrics = dict(b.status.get("runtimeMetrics") or {})
        metrics["queueSeconds"] = round(max(queue, 0.0), 3)
        b.status["runtimeMetrics"] = metrics


def _record_end(b: _Builder, pod: Mapping[str, Any]) -> None:
    cfg = b.obs.config
    terminated = (_container_status(pod).get("state") or {}).get("terminated") or {}
    started = parse_time(terminated.get("startedAt") or b.status.get("startedAt"))
    finished = parse_time(terminated.get("finishedAt")) or b.obs.now
    pod_started = parse_time((pod.get("status") or {}).get("startTime")) or started
    metrics = dict(b.status.get("runtimeMetrics") or {})
    if started:
        run = (finished - started).total_seconds()
        b.status["execDuration"] = logs.format_duration(run)
        metrics["runSeconds"] = round(run, 3)
    duration = (finished - pod_started).total_seconds() if pod_started else None
    b.status["duration"] = logs.format_duration(duration)
    memory, gpu = b.typed.requires_memory_gb, b.typed.requires_gpu_type
    instance = cost.instance_for(memory, gpu, cfg)
    metrics["instance"] = {
        "name": instance.name if instance else None,
        "memory": memory,
        "gpus": 1 if gpu else 0,
        "gpu_type": gpu,
        "node": pod["spec"].get("nodeName"),
    }
    b.status["runtimeMetrics"] = metrics
    b.status["computeCostEuroMillicents"] = cost.cost_euro_millicents(duration, memory, gpu, cfg)
    if b.obs.logs is not None:
        if b.obs.logs.stdout:
            b.status["stdout"] = logs.last_lines(b.obs.logs.stdout)
        if b.obs.logs.stderr:
            b.status["stderr"] = logs.last_lines(b.obs.logs.stderr)


def _result_problem(b: _Builder) -> Decision | None:
    """End the job when the signed result is missing, forged, unreadable or someone else's."""
    res = b.obs.result
    if res is None or res.reason is None:
        return None
    b.condition("OutputsValid", False, res.reason, res.error or "")
    return b.finish(Phase.FAILED, res.reason, res.error or MSG_UNEXPECTED, dict(res.detail))


def _apply_result_metrics(b: _Builder) -> None:
    res = b.obs.result
    if res is None or res.result is None:
        return
    result = res.result
    metrics = dict(b.status.get("runtimeMetrics") or {})
    if result.get("exec_duration_seconds") is not None:
        b.status["execDuration"] = logs.format_duration(float(result["exec_duration_seconds"]))
        metrics["runSeconds"] = round(float(result["exec_duration_seconds"]), 3)
    if result.get("invoke_duration_seconds") is not None:
        b.status["invokeDuration"] = logs.format_duration(float(result["invoke_duration_seconds"]))
    if result.get("peak_memory_bytes") is not None:
        metrics["peakMemoryBytes"] = int(result["peak_memory_bytes"])
    metrics["agentVersion"] = result.get("agent_version")
    b.status["runtimeMetrics"] = metrics


def _parse_outputs(b: _Builder) -> Decision:
    outputs = b.typed.outputs
    if b.obs.config.object_storage is not None:
        problem = _result_problem(b)
        if problem is not None:
            return problem
        _apply_result_metrics(b)
        res = b.obs.result
        if res is None or res.result is None:
            return b.wait(1.0)  # the handler fetches the result on the next look
        if int(res.result.get("return_code", 1)) != 0:
            # The kubelet saw exit 0 but the agent recorded a failure: trust neither blindly.
            return b.finish(Phase.FAILED, "NonZeroExitCode", logs.user_error(b.status.get("stderr")),
                            {"exitCode": str(res.result.get("return_code"))})
        b.move(Phase.PARSING_OUTPUTS, "ParsingOutputs")
        if res.output_error is not None:
            b.condition("OutputsValid", False, "OutputInvalid", res.output_error)
            reason = "OutputMissing" if "was not produced" in res.output_error or "is empty" in res.output_error else "OutputInvalid"
            return b.finish(Phase.FAILED, reason, res.output_error, dict(res.output_detail))
        b.status["outputs"] = list(res.outputs or [])
        b.condition("OutputsValid", True, "Valid", f"{len(outputs)} output(s) valid")
        return b.finish(Phase.SUCCEEDED, "Succeeded")
    if not outputs:
        b.condition("OutputsValid", True, "NoOutputs", "the job declares no outputs")
        return b.finish(Phase.SUCCEEDED, "Succeeded")
    # Outputs come back through the signed result of the in-pod agent (the data plane);
    # without a result nothing can be validated, so nothing is reported as successful.
    b.condition("OutputsValid", False, "ResultMissing", MSG_NO_RESULT)
    return b.finish(Phase.FAILED, "ResultMissing", MSG_UNEXPECTED, {"result": MSG_NO_RESULT})


def _classify_failure(b: _Builder, pod: Mapping[str, Any]) -> Decision:
    pod_status = pod.get("status") or {}
    terminated = (_container_status(pod).get("state") or {}).get("terminated") or {}
    res = b.obs.result
    if res is not None and res.result is not None:
        _apply_result_metrics(b)
        if res.result.get("timed_out"):
            return b.finish(Phase.FAILED, "DeadlineExceeded", MSG_TIME_LIMIT, {"agent": "the agent stopped the algorithm"})
    init_failure = _init_failure(pod)
    if init_failure is not None:
        return b.finish(Phase.FAILED, "InputStagingFailed", init_failure[0], {"prepare": init_failure[1]})
    if pod_status.get("reason") == "DeadlineExceeded":
        return b.finish(Phase.FAILED, "DeadlineExceeded", MSG_TIME_LIMIT,
                        {"pod": pod_status.get("message") or "Pod was active on the node longer than the specified deadline"})
    if terminated.get("reason") == "OOMKilled" or terminated.get("exitCode") == 137:
        return b.finish(Phase.FAILED, "OOMKilled", MSG_OOM)
    if terminated.get("exitCode") not in (None, 0):
        stderr = (b.obs.logs.stderr if b.obs.logs else "") or terminated.get("message") or ""
        if stderr and not b.status.get("stderr"):
            b.status["stderr"] = logs.last_lines(stderr)
        return b.finish(Phase.FAILED, "NonZeroExitCode", logs.user_error(stderr),
                        {"exitCode": str(terminated.get("exitCode"))})
    why = pod_status.get("message") or pod_status.get("reason") or "the pod failed without a container exit code"
    return b.finish(Phase.FAILED, "PodFailed", MSG_UNEXPECTED, {"pod": why})


def _init_failure(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(message, detail) when the `prepare` init container failed staging the inputs."""
    for cs in (pod.get("status") or {}).get("initContainerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated") or {}
        if terminated.get("exitCode") not in (None, 0):
            text = (terminated.get("message") or "").strip()
            try:
                record = json.loads(text.splitlines()[-1]) if text else {}
            except ValueError:
                record = {}
            message = record.get("error") or logs.user_error(text)
            detail = record.get("detail") or text or f"exit code {terminated.get('exitCode')}"
            return message, detail
    return None


def _retry_or_fail(b: _Builder, reason: str, message: str) -> Decision:
    max_attempts = b.typed.max_attempts
    if b.attempt + 1 >= max_attempts:
        return b.finish(Phase.FAILED, reason, f"{message}; no attempts left ({max_attempts} allowed)", {"pod": message})
    b.status["attempt"] = b.attempt + 1
    b.status["podName"] = None
    for key in ("startedAt", "execDuration", "duration"):
        b.status.pop(key, None)
    b.condition("Scheduled", "Unknown", "Retrying", message)
    b.move(Phase.RE_QUEUED, reason, f"{message}; starting attempt {b.attempt} of {max_attempts}", "Warning")
    return b.wait(0.0)


TERMINAL_PHASES = {p.value for p in Phase if p.is_terminal}


def fail(obs: Observation, reason: str, message: str, detail: Mapping[str, str] | None = None) -> Decision:
    """End a job ``Failed`` whatever its spec (an error the reconciler could not get past).

    Used for ``InternalError`` after bounded retries and for permanent errors raised while
    acting (e.g. the API server refusing the pod). The pod of the current attempt, if any, is
    deleted: no job is left terminal with its algorithm still running.
    """
    current = dict(obs.job.get("status") or {})
    if current.get("phase") in TERMINAL_PHASES:
        return Decision(status=current)
    try:
        spec = obs.spec or parse_spec(obs.job.get("spec"))
    except SpecError:
        spec = ComponentJobSpec.model_construct(image="")
    try:
        ComponentJobStatus.model_validate(current)
        usable = current
    except ValidationError:  # the status itself is unusable: start from a clean one
        usable = {}
    b = _Builder(Observation(**{**obs.__dict__, "job": {**obs.job, "status": usable}}), spec)
    if current.get("podName"):
        b.decision.delete_pods.append(str(current["podName"]))
    b.condition("Failed", True, reason, message)
    return _bounded(b.finish(Phase.FAILED, reason, message, detail or {reason: message}))


def status_size(status: Mapping[str, Any]) -> int:
    return len(json.dumps(status, separators=(",", ":"), default=str).encode())


def _bounded(decision: Decision) -> Decision:
    """Keep the status under ``STATUS_BUDGET_BYTES``: trim logs, then refuse what is left."""
    status = decision.status
    if status_size(status) <= STATUS_BUDGET_BYTES:
        return decision
    for key in ("stdout", "stderr"):
        if status.get(key):
            status[key] = logs.last_lines(status[key], limit_bytes=logs.LOG_BYTES // 4)
    if status_size(status) <= STATUS_BUDGET_BYTES:
        return decision
    size = status_size(status)
    status["outputs"] = []
    status["phase"] = Phase.FAILED.value
    status["reason"] = "StatusTooLarge"
    message = (f"The job's status would be {size} bytes, over the operator's budget of {STATUS_BUDGET_BYTES} "
               "bytes: store large outputs as files (storeInDatabase: false) instead of inline values")
    status["errorMessage"] = message[:1024]
    status["detailedErrorMessage"] = {"status": message}
    decision.requeue_after = None
    return decision
