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


def run_component_jobs(api, namespace: str, n: int, operator_pid: int) -> tuple[float, float]:
    custom = client.CustomObjectsApi(api)

    def body(i):
        return {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentJob",
            "metadata": {"name": f"bench-{i:04d}", "annotations": {"sim.testenv/outcome": "succeed", "sim.testenv/after": "0s"}},
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
        return client.V1Job(
            metadata=client.V1ObjectMeta(name=f"bench-{i:04d}"),
            spec=client.V1JobSpec(
                backoff_limit=0,
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(annotations={"sim.testenv/outcome": "succeed", "sim.testenv/after": "0s"}),
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        automount_service_account_token=False,
                        containers=[client.V1Container(name="algorithm", image=image,
                                                       resources=client.V1ResourceRequirements(
                                                           requests={"cpu": "1", "memory": "1Gi"}, limits={"memory": "1Gi"}))],
                    ),
                ),
            ),
        )

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
    env = testenv_env()
    os.environ.update(env)
    api = config.new_client_from_config(config_file=env["KUBECONFIG"])
    api.configuration.connection_pool_maxsize = 32
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    run_id = uuid.uuid4().hex[:6]
    ns_c, ns_b = f"bench-cjob-{run_id}", f"bench-job-{run_id}"
    for ns in (ns_c, ns_b):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

    workdir = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    pushed = oci_images.push(f"{env['TESTENV_REGISTRY']}/bench/algo:v1", [oci_images.ImageSpec(label="bench")], workdir / "img",
                             env={**os.environ})
    iface = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentInterface", "metadata": {"name": "bench-bbox"},
             "spec": {"kind": "2D bounding box", "relativePath": "bench-bbox.json"}}
    try:
        custom.create_cluster_custom_object(GROUP, VERSION, "componentinterfaces", iface)
    except client.exceptions.ApiException as err:
        if err.status != 409:
            raise
    custom.create_namespaced_custom_object(GROUP, VERSION, ns_c, "componentimages", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentImage", "metadata": {"name": "bench-algo"},
        "spec": {"image": pushed.ref, "insecureRegistry": True}})

    (workdir / "config.yaml").write_text('podAnnotationPrefixes: ["sim.testenv/"]\n')
    log = open(workdir / "operator.log", "wb")
    operator = subprocess.Popen([sys.executable, "-m", "component_operator.cli", "run", "--standalone", "--metrics-port", "0",
                                 "--config", str(workdir / "config.yaml"), "-n", ns_c],
                                env={**os.environ}, stdout=log, stderr=subprocess.STDOUT)
    try:
        def image_ready():
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, ns_c, "componentimages", "bench-algo")
            return any(c["type"] == "Ready" and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions", []))

        wait_all(image_ready, 120)
        kcm_pid = int(Path(env["TESTENV_DIR"], "kube-controller-manager.pid").read_text())
        pinned = custom.get_namespaced_custom_object(GROUP, VERSION, ns_c, "componentimages", "bench-algo")["status"]["pinnedImage"]
        n = args.jobs
        c_wall, c_cpu = run_component_jobs(api, ns_c, n, operator.pid)
        b_wall, b_cpu = run_batch_jobs(api, ns_b, n, kcm_pid, pinned)
    finally:
        operator.terminate()
        operator.wait(30)
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
