"""ComponentJobs through the real API server, scheduler and kwok nodes, with the operator running
as its own process: one test per outcome, GPU placement, unschedulable jobs, cancellation,
deletion, and 200 jobs surviving two operator kills."""

from __future__ import annotations

import json
import random
import signal
import time

import pytest
from kubernetes import client

from component_operator import GROUP, VERSION

from .conftest import wait_until

BBOX = {
    "version": {"major": 1, "minor": 0},
    "type": "2D bounding box",
    "corners": [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]],
}


def make_job(name, *, outcome="succeed", after="1s", annotations=None, **spec):
    ann = {"sim.testenv/outcome": outcome, "sim.testenv/after": after, **(annotations or {})}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComponentJob",
        "metadata": {"name": name, "annotations": ann},
        "spec": {
            "image": "algo",
            "inputs": [{"interface": "it-bbox", "value": BBOX}],
            "requiresMemoryGB": 4,
            "timeLimit": 300,
            **spec,
        },
    }


def get_job(custom, namespace, name):
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs", name)


def wait_phase(custom, namespace, name, phases, timeout=60):
    phases = {phases} if isinstance(phases, str) else set(phases)

    def check():
        status = get_job(custom, namespace, name).get("status") or {}
        return status if status.get("phase") in phases else None

    return wait_until(check, timeout=timeout, message=f"job {name} in {phases}")


def create(custom, namespace, body):
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs", body)


def job_pods(core, namespace, name):
    return core.list_namespaced_pod(namespace, label_selector=f"components.grand-challenge.org/job={name}").items


@pytest.fixture()
def ns(namespace, ready_image, job_interfaces):
    ready_image(namespace, "algo")
    return namespace


def test_success(custom, core, ns, operator_process):
    create(custom, ns, make_job("ok"))
    status = wait_phase(custom, ns, "ok", "Succeeded")
    assert status["reason"] == "Succeeded"
    assert {c["type"]: c["status"] for c in status["conditions"]}.items() >= {"InputsValid": "True", "ImageReady": "True", "Succeeded": "True"}.items()
    assert status["startedAt"] and status["completedAt"] and status["execDuration"]
    assert status["computeCostEuroMillicents"] is not None
    assert status["runtimeMetrics"]["queueSeconds"] >= 0
    (pod,) = job_pods(core, ns, "ok")
    assert pod.spec.containers[0].image.split("@")[1].startswith("sha256:")
    assert pod.spec.automount_service_account_token is False


def test_non_zero_exit_reports_last_error_line(custom, ns, operator_process):
    ann = {"sim.testenv/exit-code": "3", "sim.testenv/message": "loading model\nValueError: no lesion found\n"}
    create(custom, ns, make_job("fails", outcome="fail", annotations=ann))
    status = wait_phase(custom, ns, "fails", "Failed")
    assert status["reason"] == "NonZeroExitCode"
    assert status["errorMessage"] == "ValueError: no lesion found"
    assert status["detailedErrorMessage"]["exitCode"] == "3"


def test_oom_killed(custom, ns, operator_process):
    create(custom, ns, make_job("oom", outcome="oomkilled"))
    status = wait_phase(custom, ns, "oom", "Failed")
    assert status["reason"] == "OOMKilled"
    assert status["errorMessage"] == "The container was killed as it exceeded its memory limit"


def test_time_limit(custom, ns, operator_process):
    create(custom, ns, make_job("slow", outcome="deadline"))
    status = wait_phase(custom, ns, "slow", "Failed")
    assert (status["reason"], status["errorMessage"]) == ("DeadlineExceeded", "Time limit exceeded")


def test_image_pull_failure(custom, ns, operator_process):
    create(custom, ns, make_job("nopull", outcome="imagepull"))
    status = wait_phase(custom, ns, "nopull", "Failed")
    assert status["reason"] == "ImagePullFailed"
    assert status["errorMessage"] == "Algorithm container image would not start"
    assert "ImagePullBackOff" in status["detailedErrorMessage"]["pod"]


def test_invalid_input_is_cancelled_with_detail(custom, ns, operator_process):
    """The webhook cannot check a value whose interface does not exist yet (GitOps applies in any
    order); the operator waits for the interface, then validates and cancels, as grand-challenge."""
    iface = f"late-bbox-{ns}"
    body = make_job("badinput")
    body["spec"]["inputs"] = [{"interface": iface, "value": {**BBOX, "corners": BBOX["corners"][:3]}}]
    create(custom, ns, body)
    assert wait_phase(custom, ns, "badinput", "Validating inputs")
    spec = {"kind": "2D bounding box", "relativePath": f"{iface}.json", "title": "Late box"}
    custom.create_cluster_custom_object(
        GROUP, VERSION, "componentinterfaces",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentInterface", "metadata": {"name": iface}, "spec": spec},
    )
    try:
        status = wait_phase(custom, ns, "badinput", "Cancelled")
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "componentinterfaces", iface)
    assert status["errorMessage"] == "One or more of the inputs failed validation."
    assert status["reason"] == "InvalidInputs"
    assert "corners" in status["detailedErrorMessage"]["Late box"]


def test_gpu_job_lands_on_matching_gpu_node(custom, core, ns, operator_process):
    create(custom, ns, make_job("gpu", outcome="hang", requiresGPUType="A10G", requiresMemoryGB=16))
    wait_phase(custom, ns, "gpu", "Executing")
    (pod,) = job_pods(core, ns, "gpu")
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-A10G"
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"


def test_unschedulable_then_scheduling_timeout(custom, ns, operator_process):
    create(custom, ns, make_job("huge", requiresMemoryGB=2000, schedulingTimeoutSeconds=10))
    status = wait_phase(custom, ns, "huge", "Provisioning", timeout=30)
    wait_until(lambda: (get_job(custom, ns, "huge").get("status") or {}).get("reason") == "Unschedulable", timeout=30,
               message="Unschedulable reason")
    status = get_job(custom, ns, "huge")["status"]
    scheduled = next(c for c in status["conditions"] if c["type"] == "Scheduled")
    assert scheduled["reason"] == "Unschedulable" and "Insufficient memory" in scheduled["message"]
    status = wait_phase(custom, ns, "huge", "Failed", timeout=40)
    assert status["reason"] == "SchedulingTimeout" and "Insufficient memory" in status["errorMessage"]


def test_deleted_pod_gets_a_new_attempt(custom, core, ns, operator_process):
    create(custom, ns, make_job("lost", outcome="hang"))
    wait_phase(custom, ns, "lost", "Executing")
    core.delete_namespaced_pod("lost-0", ns, grace_period_seconds=0)
    wait_until(lambda: (get_job(custom, ns, "lost").get("status") or {}).get("attempt") == 1, message="attempt 1")
    wait_phase(custom, ns, "lost", "Executing")
    names = sorted(p.metadata.name for p in job_pods(core, ns, "lost") if not p.metadata.deletion_timestamp)
    assert names == ["lost-1"]


def test_evicted_pod_gets_a_new_attempt(custom, core, ns, operator_process):
    create(custom, ns, make_job("evicted", outcome="hang"))
    wait_phase(custom, ns, "evicted", "Executing")
    core.patch_namespaced_pod_status(
        "evicted-0", ns, {"status": {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}}
    )
    wait_until(lambda: (get_job(custom, ns, "evicted").get("status") or {}).get("attempt") == 1, message="attempt 1")
    assert wait_phase(custom, ns, "evicted", "Executing")["attempt"] == 1


def test_cancel_stops_the_pod(custom, core, ns, operator_process):
    create(custom, ns, make_job("stopme", outcome="hang"))
    wait_phase(custom, ns, "stopme", "Executing")
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "componentjobs", "stopme", {"spec": {"cancel": True}})
    status = wait_phase(custom, ns, "stopme", "Cancelled")
    assert status["reason"] == "Cancelled"
    wait_until(lambda: not [p for p in job_pods(core, ns, "stopme") if not p.metadata.deletion_timestamp], message="pod gone")


def test_deleting_the_job_removes_its_pod(custom, core, ns, operator_process):
    create(custom, ns, make_job("bye", outcome="hang"))
    wait_phase(custom, ns, "bye", "Executing")
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "componentjobs", "bye")
    wait_until(lambda: not job_pods(core, ns, "bye"), timeout=60, message="pod garbage-collected")


def test_events_and_listing(custom, core, testenv, ns, operator_process):
    create(custom, ns, make_job("listed"))
    wait_phase(custom, ns, "listed", "Succeeded")
    # Events are posted just after the status they tell of: wait for them (bounded).
    wait_until(lambda: {"Provisioning", "Succeeded"} <= {e.reason for e in core.list_namespaced_event(
        ns, field_selector="involvedObject.name=listed").items}, timeout=30, message="the job's events")
    out = testenv.kubectl("get", "cjob", "-n", ns).stdout
    header = out.splitlines()[0].split()
    assert header[:6] == ["NAME", "IMAGE", "PHASE", "REASON", "GPU", "DURATION"]
    assert "Succeeded" in out


def test_200_jobs_survive_two_operator_kills(custom, core, ns, operator_process):
    rng = random.Random(7)
    for i in range(200):
        create(custom, ns, make_job(f"many-{i:03d}", after=f"{rng.randint(1, 4)}s"))
        if i in (60, 140):
            operator_process.kill(signal.SIGKILL)
            time.sleep(1)
            operator_process.start()

    def all_terminal():
        items = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "componentjobs")["items"]
        phases = [(i.get("status") or {}).get("phase") for i in items]
        return len(items) == 200 and all(p in ("Succeeded", "Failed", "Cancelled") for p in phases) and phases

    phases = wait_until(all_terminal, timeout=240, interval=2, message="200 terminal jobs")
    assert phases.count("Succeeded") == 200
    pods = core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/managed-by=component-operator").items
    per_job: dict[str, int] = {}
    for pod in pods:
        job = pod.metadata.labels["components.grand-challenge.org/job"]
        per_job[job] = per_job.get(job, 0) + 1
    assert len(per_job) == 200 and set(per_job.values()) == {1}
