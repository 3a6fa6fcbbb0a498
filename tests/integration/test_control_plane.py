"""The local control plane is real: the scheduler places pods by node labels and extended
resources, and kwok's stages give every pod outcome the job tests rely on."""

from __future__ import annotations

import pytest
from kubernetes import client

from .conftest import wait_until


def _pod(name: str, *, annotations=None, node_selector=None, gpu: int = 0, tolerate_gpu: bool = False) -> client.V1Pod:
    resources = client.V1ResourceRequirements(
        requests={"cpu": "100m", "memory": "64Mi"},
        limits={"memory": "64Mi", **({"nvidia.com/gpu": str(gpu)} if gpu else {})},
    )
    tolerations = (
        [client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")] if tolerate_gpu else None
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations or {}),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="main", image="example.invalid/algo:1", resources=resources)],
            node_selector=node_selector,
            tolerations=tolerations,
            restart_policy="Never",
            automount_service_account_token=False,
        ),
    )


def test_simulated_fleet_has_cpu_and_gpu_nodes(core):
    nodes = core.list_node().items
    products = {n.metadata.labels.get("nvidia.com/gpu.product") for n in nodes}
    assert {"Tesla-T4", "NVIDIA-A10G", "NVIDIA-L4", "NVIDIA-A100-SXM4-80GB"} <= products
    gpu_nodes = [n for n in nodes if "nvidia.com/gpu" in (n.status.allocatable or {})]
    assert gpu_nodes and all(int(n.status.allocatable["nvidia.com/gpu"]) > 0 for n in gpu_nodes)
    for n in nodes:
        ready = next(c for c in n.status.conditions if c.type == "Ready")
        assert ready.status == "True", n.metadata.name


def test_scheduler_places_gpu_pod_on_matching_node(core, namespace):
    pod = _pod(
        "needs-l4",
        node_selector={"nvidia.com/gpu.product": "NVIDIA-L4"},
        gpu=1,
        tolerate_gpu=True,
        annotations={"sim.testenv/outcome": "hang"},
    )
    core.create_namespaced_pod(namespace, pod)
    node = wait_until(lambda: core.read_namespaced_pod("needs-l4", namespace).spec.node_name, message="pod bound")
    labels = core.read_node(node).metadata.labels
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-L4"
    assert node.startswith("gpu-l4-")
    # kwok runs it: the pod is Running on the simulated node.
    wait_until(lambda: core.read_namespaced_pod("needs-l4", namespace).status.phase == "Running", message="Running")


def test_gpu_pod_without_matching_node_stays_unschedulable(core, namespace):
    pod = _pod("needs-v100", node_selector={"nvidia.com/gpu.product": "Tesla-V100"}, gpu=1, tolerate_gpu=True)
    core.create_namespaced_pod(namespace, pod)

    def unschedulable_message():
        p = core.read_namespaced_pod("needs-v100", namespace)
        for c in p.status.conditions or []:
            if c.type == "PodScheduled" and c.reason == "Unschedulable":
                return c.message
        return None

    message = wait_until(unschedulable_message, message="Unschedulable condition")
    assert "didn't match Pod's node affinity/selector" in message


def test_cpu_pod_avoids_tainted_gpu_nodes(core, namespace):
    core.create_namespaced_pod(namespace, _pod("cpu-only", annotations={"sim.testenv/outcome": "hang"}))
    node = wait_until(lambda: core.read_namespaced_pod("cpu-only", namespace).spec.node_name, message="pod bound")
    assert node.startswith("cpu-node-")


@pytest.mark.parametrize(
    ("outcome", "extra", "phase", "exit_code", "reason"),
    [
        ("succeed", {}, "Succeeded", 0, "Completed"),
        ("fail", {"sim.testenv/exit-code": "3"}, "Failed", 3, "Error"),
        ("oomkilled", {}, "Failed", 137, "OOMKilled"),
    ],
)
def test_kwok_outcome_stages(core, namespace, outcome, extra, phase, exit_code, reason):
    name = f"outcome-{outcome}"
    annotations = {"sim.testenv/outcome": outcome, "sim.testenv/after": "1s", **extra}
    core.create_namespaced_pod(namespace, _pod(name, annotations=annotations))
    pod = wait_until(
        lambda: (p := core.read_namespaced_pod(name, namespace)).status.phase in ("Succeeded", "Failed") and p,
        message=f"{outcome} pod terminal",
    )
    assert pod.status.phase == phase
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (exit_code, reason)


def test_kwok_hang_outcome_keeps_pod_running(core, namespace):
    import time

    core.create_namespaced_pod(namespace, _pod("hangs", annotations={"sim.testenv/outcome": "hang"}))
    wait_until(lambda: core.read_namespaced_pod("hangs", namespace).status.phase == "Running", message="Running")
    time.sleep(3)
    assert core.read_namespaced_pod("hangs", namespace).status.phase == "Running"


def test_job_controller_and_garbage_collector_run(api_client, core, namespace):
    batch = client.BatchV1Api(api_client)
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="plain-job"),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(spec=_pod("x").spec),
        ),
    )
    batch.create_namespaced_job(namespace, job)
    wait_until(lambda: (batch.read_namespaced_job("plain-job", namespace).status.succeeded or 0) == 1, message="Job done")
    batch.delete_namespaced_job("plain-job", namespace, propagation_policy="Background")
    wait_until(
        lambda: not core.list_namespaced_pod(namespace, label_selector="job-name=plain-job").items,
        message="pods garbage-collected",
    )
