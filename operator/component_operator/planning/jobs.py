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
  unexpected -- a bug; the handler logs it with context and retries, and the reconcile
                error counter goes up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from ..api.job import Phase
from ..config import OperatorConfig
from . import cost, dataplane, logs, names
from .conditions import get_condition, is_true, set_condition
from .inputs import check_inputs
from .pods import build_inputs_configmap, build_pod

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

WAIT_POLL_SECONDS = 5.0


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
    #: Object-store credentials copied into the agent Secret (data plane only).
    s3_credentials: tuple[str, str] | None = None


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

    def __init__(self, obs: Observation):
        self.obs = obs
        self.job = obs.job
        self.spec = obs.job.get("spec", {})
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
        if self.phase != phase or self.current.get("phase") is None:
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
            self.status["detailedErrorMessage"] = {str(k): str(v) for k, v in detail.items()}
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
    b = _Builder(obs)
    if b.phase.is_terminal:
        return Decision(status=dict(b.current))  # never leave, never rewrite a terminal state
    if b.spec.get("cancel"):
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
    wanted = [i.get("interface") for i in b.spec.get("inputs", [])] + list(b.spec.get("outputs", []))
    missing = sorted({name for name in wanted if name not in obs.interfaces})
    if missing:
        message = "waiting for ComponentInterface " + ", ".join(repr(m) for m in missing)
        if b.seconds_since(b.status["createdAt"]) > b.spec.get("schedulingTimeoutSeconds", 600):
            detail = {m: f"ComponentInterface {m!r} does not exist" for m in missing}
            b.condition("InputsValid", False, "InterfaceNotFound", "; ".join(detail.values()))
            return b.finish(Phase.CANCELLED, "InterfaceNotFound", MSG_INVALID_INPUTS, detail)
        b.condition("InputsValid", "Unknown", "WaitingForInterfaces", message)
        return b.wait()
    problems = check_inputs(b.spec, obs.interfaces)
    if problems:
        detail = {p.title: p.message for p in problems}
        b.condition("InputsValid", False, "InvalidInputs", "; ".join(str(p) for p in problems))
        return b.finish(Phase.CANCELLED, "InvalidInputs", MSG_INVALID_INPUTS, detail)
    b.condition("InputsValid", True, "Valid", "every input is valid for its interface")
    b.move(Phase.QUEUED, "Queued")
    return _start_attempt(b)


def _start_attempt(b: _Builder) -> Decision:
    obs = b.obs
    image = obs.image
    name = b.spec.get("image", "")
    image_status = (image or {}).get("status") or {}
    if image is None or not is_true(image_status.get("conditions"), "Ready"):
        failed = image_status.get("importStatus") in ("Failed", "Cancelled")
        waited_too_long = b.seconds_since(b.status["createdAt"]) > b.spec.get("schedulingTimeoutSeconds", 600)
        why = "does not exist" if image is None else (image_status.get("message") or image_status.get("importStatus") or "is not ready")
        b.condition("ImageReady", False, "ImageNotFound" if image is None else "ImageNotReady", f"ComponentImage {name!r}: {why}")
        if failed or waited_too_long:
            return b.finish(Phase.FAILED, "ImageNotReady", MSG_IMAGE_NOT_READY.format(name=name), {name: why})
        return b.wait()
    b.condition("ImageReady", True, "Ready", f"running {image_status.get('pinnedImage')}")
    if obs.config.object_storage is not None:
        try:
            dataplane.program(image_status.get("entrypoint"), image_status.get("cmd"))
        except ValueError as err:
            return b.finish(Phase.FAILED, "NoEntrypoint", MSG_IMAGE_NOT_READY.format(name=name), {name: str(err)})
        access, secret = obs.s3_credentials or ("", "")
        invocation = dataplane.build_invocation(b.job, b.attempt, obs.interfaces, obs.config)
        b.decision.create.extend([
            dataplane.build_agent_secret(b.job, b.attempt, obs.new_signing_key_hex or "", access, secret),
            dataplane.build_invocation_configmap(b.job, b.attempt, invocation),
            dataplane.build_network_policy(b.job, obs.config),
        ])
        b.status["signingKeySecret"] = dataplane.agent_secret_name(b.meta["name"], b.attempt)
        items: list[dict[str, str]] = []
    else:
        configmap, items = build_inputs_configmap(b.job, b.attempt, obs.interfaces)
        b.decision.create.append(configmap)
    pod = build_pod(b.job, image, b.attempt, items, obs.config)
    b.decision.create.append(pod)
    b.status["podName"] = pod["metadata"]["name"]
    b.condition("Scheduled", "Unknown", "Pending", f"pod {pod['metadata']['name']} created")
    b.move(Phase.PROVISIONING, "Provisioning", f"created pod {pod['metadata']['name']} (attempt {b.attempt})")
    return b.wait()


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
        timeout = b.spec.get("schedulingTimeoutSeconds", 600)
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
    cfg, spec = b.obs.config, b.spec
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
    memory, gpu = int(spec.get("requiresMemoryGB", 8)), spec.get("requiresGPUType", "")
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
    outputs = b.spec.get("outputs") or []
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
    max_attempts = int(b.spec.get("maxAttempts", 3))
    if b.attempt + 1 >= max_attempts:
        return b.finish(Phase.FAILED, reason, f"{message}; no attempts left ({max_attempts} allowed)", {"pod": message})
    b.status["attempt"] = b.attempt + 1
    b.status["podName"] = None
    for key in ("startedAt", "execDuration", "duration"):
        b.status.pop(key, None)
    b.condition("Scheduled", "Unknown", "Retrying", message)
    b.move(Phase.RE_QUEUED, reason, f"{message}; starting attempt {b.attempt} of {max_attempts}", "Warning")
    return b.wait(0.0)
