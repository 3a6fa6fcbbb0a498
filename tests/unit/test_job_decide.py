"""The job state machine, one test per outcome (pure: no cluster)."""

from __future__ import annotations

import copy

import pytest

from component_operator.config import OperatorConfig
from component_operator.planning import cost, logs
from component_operator.planning.conditions import get_condition
from component_operator.planning.jobs import (
    MSG_IMAGE_NOT_READY,
    MSG_INVALID_INPUTS,
    MSG_OOM,
    MSG_TIME_LIMIT,
    MSG_WOULD_NOT_START,
    Observation,
    PodLogs,
    decide,
)

from .jobfixtures import BBOX, CONFIG, INTERFACES, NOW, image, job, pod, stamp


def observe(j, *, img=None, the_pod=None, interfaces=INTERFACES, pod_logs=None, config=CONFIG):
    return decide(Observation(job=j, image=img if img is not None else image(), interfaces=interfaces,
                              pod=the_pod, now=NOW, config=config, logs=pod_logs))


def running_status(phase="Executing", attempt=0):
    return {"phase": phase, "attempt": attempt, "podName": f"j1-{attempt}", "createdAt": stamp(-60)}


def cond(decision, type_):
    return get_condition(decision.status.get("conditions"), type_)


def test_valid_job_creates_configmap_then_pod():
    d = observe(job())
    assert d.status["phase"] == "Provisioning"
    assert [o["kind"] for o in d.create] == ["ConfigMap", "Pod"]
    assert d.status["podName"] == "j1-0"
    assert cond(d, "InputsValid")["status"] == "True"
    assert cond(d, "ImageReady")["status"] == "True"
    assert [e.reason for e in d.events][-1] == "Provisioning"


def test_invalid_input_cancels_with_grand_challenge_message_and_detail():
    j = job()
    j["spec"]["inputs"][0]["value"]["corners"] = j["spec"]["inputs"][0]["value"]["corners"][:3]
    d = observe(j)
    assert d.status["phase"] == "Cancelled"
    assert d.status["errorMessage"] == MSG_INVALID_INPUTS
    assert "Lesion box" in d.status["detailedErrorMessage"]
    assert "corners" in cond(d, "InputsValid")["message"]
    assert d.create == []


def test_custom_schema_is_enforced():
    j = job()
    j["spec"]["inputs"][1]["value"] = 1.5  # threshold interface has maximum: 1
    d = observe(j)
    assert d.status["phase"] == "Cancelled" and "threshold" in d.status["detailedErrorMessage"]


def test_missing_interface_waits_then_cancels():
    interfaces = {k: v for k, v in INTERFACES.items() if k != "bbox"}
    d = observe(job(), interfaces=interfaces)
    assert d.status["phase"] == "Validating inputs" and d.requeue_after
    assert cond(d, "InputsValid")["reason"] == "WaitingForInterfaces"
    late = job()
    late["metadata"]["creationTimestamp"] = stamp(-10_000)
    d = observe(late, interfaces=interfaces)
    assert d.status["phase"] == "Cancelled" and d.status["reason"] == "InterfaceNotFound"


def test_waits_for_image_then_fails_when_import_failed():
    d = observe(job(status={"phase": "Queued", "createdAt": stamp(-60)}), img=image(ready=False, import_status="Started"))
    assert d.status["phase"] == "Queued" and d.requeue_after and not d.create
    d = observe(job(status={"phase": "Queued", "createdAt": stamp(-60)}), img=image(ready=False, import_status="Failed"))
    assert d.status["phase"] == "Failed" and d.status["errorMessage"] == MSG_IMAGE_NOT_READY.format(name="algo")


def test_unschedulable_reports_scheduler_words_then_times_out():
    msg = "0/12 nodes are available: 12 Insufficient memory."
    p = pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg}])
    d = observe(job(status=running_status("Provisioning")), the_pod=p)
    assert d.status["phase"] == "Provisioning" and d.status["reason"] == "Unschedulable"
    assert cond(d, "Scheduled")["message"] == msg
    p_old = copy.deepcopy(p)
    p_old["metadata"]["creationTimestamp"] = stamp(-301)
    d = observe(job(status=running_status("Provisioning")), the_pod=p_old)
    assert d.status["phase"] == "Failed" and d.status["reason"] == "SchedulingTimeout"
    assert msg in d.status["errorMessage"] and d.delete_pods == ["j1-0"]


def test_running_pod_is_executing_with_queue_time():
    p = pod("Running", node="cpu-node-0", container_state={"running": {"startedAt": stamp(-10)}})
    d = observe(job(status=running_status("Provisioning")), the_pod=p)
    assert d.status["phase"] == "Executing" and d.status["startedAt"] == stamp(-10)
    assert d.status["runtimeMetrics"]["queueSeconds"] == 50.0


def _terminated(exit_code, reason, started=-20, finished=-5, message=None):
    state = {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": stamp(started), "finishedAt": stamp(finished)}}
    if message:
        state["terminated"]["message"] = message
    return state


def test_success_without_outputs_succeeds_with_durations_and_cost():
    p = pod("Succeeded", node="n", start=-25, container_state=_terminated(0, "Completed"))
    d = observe(job(status=running_status()), the_pod=p, pod_logs=PodLogs(stdout="hello\n", stderr=""))
    assert d.status["phase"] == "Succeeded" and cond(d, "Succeeded")["status"] == "True"
    assert d.status["execDuration"] == "15s" and d.status["duration"] == "20s"
    assert d.status["stdout"] == "hello"
    assert d.status["computeCostEuroMillicents"] == cost.cost_euro_millicents(20, 4, "", CONFIG)
    assert d.status["completedAt"] == stamp(0)


def test_success_with_outputs_but_no_result_is_not_success():
    p = pod("Succeeded", node="n", start=-25, container_state=_terminated(0, "Completed"))
    d = observe(job(status=running_status(), outputs=["prob"]), the_pod=p)
    assert d.status["phase"] == "Failed" and d.status["reason"] == "ResultMissing"


def test_non_zero_exit_uses_last_stderr_line():
    p = pod("Failed", node="n", container_state=_terminated(3, "Error"))
    stderr = "2026-11-23T11:59:50Z loading\n2026-11-23T11:59:51Z ValueError: bad input\n\n"
    d = observe(job(status=running_status()), the_pod=p, pod_logs=PodLogs(stderr=stderr))
    assert d.status["phase"] == "Failed" and d.status["reason"] == "NonZeroExitCode"
    assert d.status["errorMessage"] == "ValueError: bad input"


def test_non_zero_exit_falls_back_to_termination_message_then_default():
    p = pod("Failed", node="n", container_state=_terminated(1, "Error", message="boom\n"))
    assert observe(job(status=running_status()), the_pod=p).status["errorMessage"] == "boom"
    p = pod("Failed", node="n", container_state=_terminated(1, "Error"))
    assert observe(job(status=running_status()), the_pod=p).status["errorMessage"] == logs.NO_ERRORS


def test_oom_killed():
    p = pod("Failed", node="n", container_state=_terminated(137, "OOMKilled"))
    d = observe(job(status=running_status()), the_pod=p)
    assert (d.status["phase"], d.status["reason"], d.status["errorMessage"]) == ("Failed", "OOMKilled", MSG_OOM)


def test_time_limit():
    p = pod("Failed", node="n", reason="DeadlineExceeded", message="Pod was active on the node longer than the specified deadline",
            container_state=_terminated(137, "Error"))
    d = observe(job(status=running_status()), the_pod=p)
    assert (d.status["reason"], d.status["errorMessage"]) == ("DeadlineExceeded", MSG_TIME_LIMIT)


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "InvalidImageName"])
def test_image_pull_failure(reason):
    p = pod("Pending", node="n", container_state={"waiting": {"reason": reason, "message": "not found"}})
    d = observe(job(status=running_status("Provisioned")), the_pod=p)
    assert d.status["phase"] == "Failed" and d.status["reason"] == "ImagePullFailed"
    assert d.status["errorMessage"] == MSG_WOULD_NOT_START and d.delete_pods == ["j1-0"]


def test_transient_pull_error_waits():
    p = pod("Pending", node="n", container_state={"waiting": {"reason": "ErrImagePull"}})
    d = observe(job(status=running_status("Provisioned")), the_pod=p)
    assert d.status["phase"] == "Provisioned" and d.requeue_after


def test_deleted_pod_starts_new_attempt_then_gives_up():
    d = observe(job(status=running_status()), the_pod=None)
    assert d.status["phase"] == "Re-Queued" and d.status["attempt"] == 1 and d.status["podName"] is None
    assert d.requeue_after == 0.0
    d2 = observe(job(status=d.status))  # Re-Queued -> new pod for attempt 1
    assert d2.status["phase"] == "Provisioning" and d2.create[-1]["metadata"]["name"] == "j1-1"
    d3 = observe(job(status=running_status(attempt=2)), the_pod=None)
    assert d3.status["phase"] == "Failed" and d3.status["reason"] == "PodDeleted"


def test_evicted_pod_is_retried_not_blamed_on_algorithm():
    p = pod("Failed", node="n", reason="Evicted", message="The node was low on resource: memory.")
    d = observe(job(status=running_status()), the_pod=p)
    assert d.status["phase"] == "Re-Queued" and d.status["attempt"] == 1


def test_pod_being_deleted_by_someone_else_waits():
    p = pod("Running", node="n", deleting=True)
    d = observe(job(status=running_status()), the_pod=p)
    assert d.status["phase"] == "Executing" and d.requeue_after


def test_cancel_stops_pod():
    p = pod("Running", node="n", container_state={"running": {"startedAt": stamp(-5)}})
    d = observe(job(status=running_status(), cancel=True), the_pod=p)
    assert d.status["phase"] == "Cancelled" and d.delete_pods == ["j1-0"] and d.status["reason"] == "Cancelled"


def test_terminal_state_is_never_rewritten():
    done = {"phase": "Succeeded", "attempt": 0, "completedAt": stamp(-1)}
    d = observe(job(status=done, cancel=True), the_pod=None)
    assert d.status == done and not d.create and not d.delete_pods and not d.events


def test_same_observation_same_decision():
    p = pod("Running", node="n", container_state={"running": {"startedAt": stamp(-10)}})
    first = observe(job(status=running_status("Provisioning")), the_pod=p)
    second = observe(job(status=first.status), the_pod=p)
    assert second.status == first.status and not second.events


@pytest.mark.parametrize(
    ("seconds", "memory", "gpu", "expected"),
    [(3600, 8, "", 15665), (600, 10, "T4", 15479), (1, 8, "", 5), (90, 16, "A10G", 4392)],
)
def test_cost_matches_grand_challenge_examples(seconds, memory, gpu, expected):
    assert cost.cost_euro_millicents(seconds, memory, gpu, OperatorConfig()) == expected


def test_no_instance_means_no_cost():
    assert cost.cost_euro_millicents(60, 10, "A100", OperatorConfig()) is None


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [("foo\nbar\n\n", "bar"), ("2022-06-08T10:23:58+00:00 foo\n2022-06-08T10:23:58Z    a b\n\n", "a b"), ("", logs.NO_ERRORS)],
)
def test_user_error(stderr, expected):
    assert logs.user_error(stderr) == expected


def test_last_lines_keeps_500():
    text = "\n".join(str(i) for i in range(1000))
    kept = logs.last_lines(text).splitlines()
    assert len(kept) == 500 and kept[0] == "500"
