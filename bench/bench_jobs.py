"""End-to-end throughput: N ComponentJobs through the operator vs N batch/v1 Jobs through the
controller-manager's Job controller, on the same local control plane and the same kwok nodes.

    python bench/bench_jobs.py [--jobs 500]

Needs the local control plane (`make testenv-up`); starts its own operator process. Prints
wall time from the first create to the last terminal state, the controller's CPU seconds
(operator process vs kube-controller-manager process, from /proc), and the ratios. Pods are
completed by kwok the moment they run (no outcome delay), so the figures measure control
planes, not algorithms.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from component_operator import GROUP, VERSION  # noqa: E402
from tests.support import oci_images  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
BBOX = {"version": {"major": 1, "minor": 0}, "type": "2D bounding box", "corners": [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]}


def testenv_env() -> dict[str, str]:
    out = subprocess.run([str(REPO / "testenv/scripts/testenv.sh"), "env"], capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def wait_all(predicate, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic()
        time.sleep(0.5)
    raise TimeoutError("benchmark did not finish in time")


#: The simulated outcome of every benchmark pod: kwok completes it the moment it runs.
SIM_ANNOTATIONS = {"sim.testenv/outcome": "succeed", "sim.testenv/after": "0s"}
BBOX_INTERFACE = {"kind": "2D bounding box", "relativePath": "bench-bbox.json"}
OPERATOR_CONFIG = 'podAnnotationPrefixes: ["sim.testenv/"]\n'


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


def connect() -> tuple[dict[str, str], client.ApiClient]:
    """The testenv's environment (also put into os.environ, for the operator) and an API client."""
    env = testenv_env()
    os.environ.update(env)
    api = config.new_client_from_config(config_file=env["KUBECONFIG"])
    api.configuration.connection_pool_maxsize = 32
    return env, api


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
    log = open(workdir / "operator.log", "wb")
    ns_args = [arg for ns in namespaces for arg in ("-n", ns)]
    return subprocess.Popen([sys.executable, "-m", "component_operator.cli", "run", "--standalone", "--metrics-port", "0",
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


def run_component_jobs(api, namespace: str, n: int, operator_pid: int) -> tuple[float, float]:
    custom = client.CustomObjectsApi(api)

    def body(i):
        return {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentJob",
            "metadata": {"name": f"bench-{i:04d}", "annotations": dict(SIM_ANNOTATIONS)},
            "spec": {"image": "bench-algo", "inputs": [{"interface": "bench-bbox", "value": BBOX}], "requiresMemoryGB": 1},
        }

    cpu0, t0 = cpu_seconds(operator_pid), time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs", body(i)), range(n)))

    def done():
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs")["items"]
        return sum((i.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Cancelled") for i in items) == n

    t1 = wait_all(done, 1800)
    return t1 - t0, cpu_seconds(operator_pid) - cpu0


def run_batch_jobs(api, namespace: str, n: int, kcm_pid: int, image: str) -> tuple[float, float]:
    batch = client.BatchV1Api(api)

    def body(i):
        return client.V1Job(metadata=client.V1ObjectMeta(name=f"bench-{i:04d}"),
                            spec=client.V1JobSpec(backoff_limit=0, template=job_pod_template(image)))

    cpu0, t0 = cpu_seconds(kcm_pid), time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: batch.create_namespaced_job(namespace, body(i)), range(n)))

    def done():
        jobs = batch.list_namespaced_job(namespace).items
        return sum(bool(j.status.succeeded or j.status.failed) for j in jobs) == n

    t1 = wait_all(done, 1800)
    return t1 - t0, cpu_seconds(kcm_pid) - cpu0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    env, api = connect()
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    run_id = uuid.uuid4().hex[:6]
    ns_c, ns_b = f"bench-cjob-{run_id}", f"bench-job-{run_id}"
    for ns in (ns_c, ns_b):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

    workdir = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    pushed = push_bench_image(env, workdir)
    ensure_interface(custom, "bench-bbox", BBOX_INTERFACE)
    create_bench_image(custom, ns_c, pushed.ref)
    operator = start_operator(workdir, [ns_c])
    try:
        pinned = wait_image_ready(custom, ns_c)
        kcm_pid = int(Path(env["TESTENV_DIR"], "kube-controller-manager.pid").read_text())
        n = args.jobs
        c_wall, c_cpu = run_component_jobs(api, ns_c, n, operator.pid)
        b_wall, b_cpu = run_batch_jobs(api, ns_b, n, kcm_pid, pinned)
    finally:
        stop_operator(operator)
        for ns in (ns_c, ns_b):
            core.delete_namespace(ns)

    print(f"\n{n} jobs from first create to last terminal state, kwok nodes, same control plane\n")
    print(f"{'controller':<42}{'wall s':>10}{'jobs/s':>10}{'CPU s':>10}")
    print(f"{'component-operator (ComponentJob)':<42}{c_wall:>10.1f}{n / c_wall:>10.1f}{c_cpu:>10.1f}")
    print(f"{'kube-controller-manager (batch/v1 Job)':<42}{b_wall:>10.1f}{n / b_wall:>10.1f}{b_cpu:>10.1f}")
    print(f"\nratio (operator / Job controller): wall {c_wall / b_wall:.2f}x, CPU {c_cpu / max(b_cpu, 0.01):.2f}x")
    print("(KCM CPU includes its other controllers; the operator's includes validation and status writes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
