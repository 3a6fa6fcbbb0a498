"""Shared pieces of the controller benchmarks: the testenv connection, the bench image and
interfaces, the operator process, and the two kinds of job under comparison.

    python bench/bench_jobs.py [options]     (the same as bench/bench_controllers.py)

Why it exists: bench/bench_controllers.py (ComponentJob vs batch/v1 Job: throughput, writes per
job, the API server's ceiling, reaction, memory), bench/bench_memory.py and bench/bench_batch.py
(ComponentBatch vs Indexed Job) drive the same operator against the same control plane with the
same pods; the helpers live here once. ``connect`` also runs the preflight of bench/benchenv.py
(installs the CRDs, prints the testenv's mode), so every benchmark works on a fresh environment
and says whether the API rate limits were lifted. Pods are completed by kwok the moment they run
(no outcome delay), so the figures measure control planes, not algorithms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from component_operator import GROUP, VERSION  # noqa: E402
from tests.support import oci_images  # noqa: E402

import benchenv  # noqa: E402 (bench/ is on sys.path: the scripts run from it)

TICKS = os.sysconf("SC_CLK_TCK")
BBOX = {"version": {"major": 1, "minor": 0}, "type": "2D bounding box", "corners": [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]}
testenv_env = benchenv.testenv_env


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def wait_all(predicate, timeout: float, interval: float = 0.5) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError("benchmark did not finish in time")


#: The simulated outcome of every benchmark pod: kwok completes it the moment it runs.
SIM_ANNOTATIONS = {"sim.testenv/outcome": "succeed", "sim.testenv/after": "0s"}
BBOX_INTERFACE = {"kind": "2D bounding box", "relativePath": "bench-bbox.json"}
OPERATOR_CONFIG = 'podAnnotationPrefixes: ["sim.testenv/"]\n'
#: The label by which each side's pods name their job.
COMPONENT_JOB_LABEL = f"{GROUP}/job"
BATCH_JOB_LABEL = "batch.kubernetes.io/job-name"
TERMINAL_PHASES = {"Succeeded", "Failed", "Cancelled"}


def job_pod_template(image: str) -> client.V1PodTemplateSpec:
    """The pod of a benchmark batch/v1 Job: the kwok placement (no selector: the untainted kwok
    CPU nodes) and the resources of a ComponentJob with requiresMemoryGB 1, succeeding at once."""
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(annotations=dict(SIM_ANNOTATIONS)),
        spec=client.V1PodSpec(
            restart_policy="Never",
            automount_service_account_token=False,
            containers=[client.V1Container(name="algorithm", image=image,
                                           resources=client.V1ResourceRequirements(
                                               requests={"cpu": "1", "memory": "1Gi"}, limits={"memory": "1Gi"}))],
        ),
    )


def connect(*, quiet: bool = False) -> tuple[dict[str, str], client.ApiClient]:
    """The testenv's environment (also put into os.environ, for the operator) and an API client,
    after the preflight: the CRDs installed and the testenv's mode printed (``env["mode"]``
    holds it, as benchenv.describe's text)."""
    env = testenv_env()
    os.environ.update(env)
    mode = benchenv.preflight(env, quiet=quiet)
    api = config.new_client_from_config(config_file=env["KUBECONFIG"])
    api.configuration.connection_pool_maxsize = 32
    return {**env, "mode": benchenv.describe(mode), "bench_mode": str(mode["bench"])}, api


def ensure_interface(custom, name: str, spec: dict) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentInterface", "metadata": {"name": name}, "spec": spec}
    try:
        custom.create_cluster_custom_object(GROUP, VERSION, "componentinterfaces", body)
    except client.exceptions.ApiException as err:
        if err.status != 409:
            raise


def push_bench_image(env: dict[str, str], workdir: Path):
    return oci_images.push(f"{env['TESTENV_REGISTRY']}/bench/algo:v1", [oci_images.ImageSpec(label="bench")], workdir / "img",
                           env={**os.environ})


def create_bench_image(custom, namespace: str, ref: str, name: str = "bench-algo") -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "componentimages", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentImage", "metadata": {"name": name},
        "spec": {"image": ref, "insecureRegistry": True}})


def start_operator(workdir: Path, namespaces: list[str], config_text: str = OPERATOR_CONFIG) -> subprocess.Popen:
    """`component-operator run --standalone` for these namespaces, logging to workdir/operator.log."""
    (workdir / "config.yaml").write_text(config_text)
    log = open(workdir / "operator.log", "ab")
    ns_args = [arg for ns in namespaces for arg in ("-n", ns)]
    # BENCH_TRACEMALLOC=FILE: the operator runs under tracemalloc_operator.py (SIGUSR1 dumps to FILE).
    trace = os.environ.get("BENCH_TRACEMALLOC")
    command = ([sys.executable, str(REPO / "bench" / "tracemalloc_operator.py"), trace, "--"] if trace
               else [sys.executable, "-m", "component_operator.cli"])
    return subprocess.Popen([*command, "run", "--standalone", "--metrics-port", "0",
                             "--config", str(workdir / "config.yaml"), *ns_args],
                            env={**os.environ}, stdout=log, stderr=subprocess.STDOUT)


def stop_operator(operator: subprocess.Popen) -> None:
    operator.terminate()
    try:
        operator.wait(30)
    except subprocess.TimeoutExpired:
        operator.kill()
        operator.wait(30)


def wait_image_ready(custom, namespace: str, name: str = "bench-algo", timeout: float = 120) -> str:
    """Wait for the ComponentImage to be Ready; its pinned image reference."""
    def image_ready():
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "componentimages", name)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))

    wait_all(image_ready, timeout)
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "componentimages", name)["status"]["pinnedImage"]


# -- the two kinds of job under comparison (and the plain pod), as plain dicts -----------------


def component_job(name: str, annotations: dict | None = None, **spec) -> dict:
    """A benchmark ComponentJob: the bench image, one bounding box, 1 GiB (the pod: 1 CPU, 1 GiB)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentJob",
        "metadata": {"name": name, "annotations": dict(annotations or SIM_ANNOTATIONS)},
        "spec": {"image": "bench-algo", "inputs": [{"interface": "bench-bbox", "value": BBOX}], "requiresMemoryGB": 1,
                 **spec},
    }


def batch_job(name: str, template: dict) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": template}}


def plain_pod(name: str, template: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **template.get("metadata", {})},
            "spec": template["spec"]}


def component_job_terminal(obj: dict) -> bool:
    return ((obj.get("status") or {}).get("phase")) in TERMINAL_PHASES


def batch_job_terminal(obj: dict) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def pod_terminal(obj: dict) -> bool:
    return (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")


@dataclass(frozen=True)
class Side:
    """One way of running N jobs: what to create, how to tell it ended, which label its pods carry."""

    label: str           # column header
    controller: str      # who drives it
    resource: str        # what the benchmark creates (kube_raw.path_for)
    group: str           # the created resource's API group (for the write counter)
    make: Callable[[str], dict]
    terminal: Callable[[dict], bool]
    pod_label: str | None  # the pods' label naming their job (None: the object is the pod)


def sides(template: dict) -> dict[str, Side]:
    """The operator's ComponentJob, the Job controller's batch/v1 Job, and the plain pod (no controller)."""
    return {
        "componentjob": Side("ComponentJob", "component-operator", "componentjobs", GROUP, component_job,
                             component_job_terminal, COMPONENT_JOB_LABEL),
        "job": Side("batch/v1 Job", "kube-controller-manager", "jobs", "batch", lambda n: batch_job(n, template),
                    batch_job_terminal, BATCH_JOB_LABEL),
        "pod": Side("plain Pod", "none (the client's own pods)", "pods", "", lambda n: plain_pod(n, template),
                    pod_terminal, None),
    }


def main() -> int:
    import bench_controllers  # the benchmark that used to live here (throughput only) grew there
    return bench_controllers.main()


if __name__ == "__main__":
    sys.exit(main())
