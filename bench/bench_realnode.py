"""Real-node latency: the smallest real algorithm as a ComponentJob vs the same program as a bare
Pod and as a batch/v1 Job, one at a time, on the testenv's real node (containerd + kubelet).

    python bench/bench_realnode.py [--runs 5]

Needs `make testenv-up` with the real node running; starts its own operator for its own
namespace (data plane on, the testenv's real-node configuration). The algorithm is the `hello`
image (testenv/images: prints two lines and exits 0), so the figures measure the platform.

Per run, times are taken on this machine from a watch on pods (monotonic clock, not the API's
1-second timestamps):

* create -> done: from the create call until the object is seen terminal (ComponentJob
  Succeeded, Pod Succeeded, Job Complete);
* pod time: from the pod's ADDED event to its Succeeded event;
* algorithm: the agent's own measurement of the program (the signed result's
  ``exec_duration_seconds``); the bare Pod and the Job have none, their program runs for
  about a millisecond;
* agent overhead: ComponentJob pod time minus algorithm time. The bare Pod's pod time is the
  same program without the agent, so the difference of the two pod times is the share of the
  agent (init container, staging, upload, signed result).

Also prints the time from the start of `testenv.sh up` to a Ready real node, as recorded by
the testenv (`$TESTENV_DIR/node/ready-seconds`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml
from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
from component_operator import GROUP, VERSION  # noqa: E402

RESTRICTED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def testenv_env() -> dict[str, str]:
    out = subprocess.run([str(REPO / "testenv/scripts/testenv.sh"), "env"], capture_output=True, text=True, check=True).stdout
    return dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines() if "=" in line)


class PodClock:
    """Local times of each pod's ADDED and Succeeded events in one namespace."""

    def __init__(self, core: client.CoreV1Api, namespace: str):
        self.core, self.namespace = core, namespace
        self.added: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(self.core.list_namespaced_pod, self.namespace, timeout_seconds=5):
                    now, pod = time.monotonic(), event["object"]
                    name = pod.metadata.name
                    self.added.setdefault(name, now)
                    if pod.status.phase == "Succeeded":
                        self.succeeded.setdefault(name, now)
                    if self._stop.is_set():
                        break
            except Exception:  # noqa: BLE001 - a broken watch is restarted
                time.sleep(0.1)

    def pod_seconds(self, name: str) -> float:
        return self.succeeded[name] - self.added[name]

    def stop(self) -> None:
        self._stop.set()


def wait(predicate, timeout: float = 180.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError("the benchmark object did not finish in time")


def pod_spec(image: str, node_config: dict) -> dict:
    return {
        "restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "nodeSelector": node_config["podNodeSelector"], "tolerations": node_config["podTolerations"],
        "containers": [{"name": "algorithm", "image": image, "imagePullPolicy": "IfNotPresent",
                        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
                        "securityContext": RESTRICTED}],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = testenv_env()
    state = Path(env["TESTENV_NODE_STATE"]).read_text().strip()
    if state != "running":
        print(f"the real node is not running: {state}", file=sys.stderr)
        return 2
    kubectl = [f"{env['TESTENV_BIN']}/kubectl", "--kubeconfig", env["KUBECONFIG"]]
    subprocess.run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds")], check=True,
                   capture_output=True)
    subprocess.run([*kubectl, "wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/name=component-operator"],
                   check=True, capture_output=True)
    api = config.new_client_from_config(config_file=env["KUBECONFIG"])
    core, custom, batch = client.CoreV1Api(api), client.CustomObjectsApi(api), client.BatchV1Api(api)
    node_config = yaml.safe_load(Path(env["TESTENV_NODE_OPERATOR_CONFIG"]).read_text())
    ns = f"bench-real-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=ns, labels={"pod-security.kubernetes.io/enforce": "restricted"})))
    workdir = Path(tempfile.mkdtemp(prefix="bench-realnode-"))
    log = open(workdir / "operator.log", "wb")
    operator = subprocess.Popen(
        [sys.executable, "-m", "component_operator.cli", "run", "--standalone", "--metrics-port", "0",
         "--config", env["TESTENV_NODE_OPERATOR_CONFIG"], "-n", ns],
        env={**os.environ, **env, "COMPONENT_OPERATOR_S3_ACCESS_KEY": env["TESTENV_S3_ACCESS_KEY"],
             "COMPONENT_OPERATOR_S3_SECRET_KEY": env["TESTENV_S3_SECRET_KEY"]},
        stdout=log, stderr=subprocess.STDOUT)
    clock = PodClock(core, ns)
    rows: dict[str, list[tuple[float, float, float | None]]] = {"ComponentJob": [], "Pod": [], "batch/v1 Job": []}
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, "componentimages", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentImage", "metadata": {"name": "hello"},
            "spec": {"image": f"{env['TESTENV_REGISTRY']}/testenv/hello:1", "insecureRegistry": True}})

        def image():
            status = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "componentimages", "hello").get("status") or {}
            return status.get("pinnedImage") if status.get("importStatus") == "Completed" else None

        wait(image, 60)
        pinned = image()
        for i in range(args.runs + 1):  # run 0 warms up (first use of the image, of the bucket)
            name = f"hello-{i}"
            start = time.monotonic()
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "componentjobs", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentJob", "metadata": {"name": name},
                "spec": {"image": "hello", "requiresMemoryGB": 1, "timeLimit": 300}})

            def job_done():
                status = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "componentjobs", name).get("status") or {}
                if status.get("phase") == "Failed":
                    raise RuntimeError(f"{name} failed: {status.get('errorMessage')} {status.get('detailedErrorMessage')}")
                return status if status.get("phase") == "Succeeded" else None

            end = wait(job_done)
            status = job_done()
            pod = status["podName"]
            wait(lambda: pod in clock.succeeded, 10)
            if i:
                rows["ComponentJob"].append((end - start, clock.pod_seconds(pod), status["runtimeMetrics"]["runSeconds"]))

            start = time.monotonic()
            core.create_namespaced_pod(ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"pod-{i}"},
                                            "spec": pod_spec(pinned, node_config)})
            end = wait(lambda: f"pod-{i}" in clock.succeeded)
            if i:
                rows["Pod"].append((end - start, clock.pod_seconds(f"pod-{i}"), None))

            start = time.monotonic()
            batch.create_namespaced_job(ns, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"job-{i}"},
                                             "spec": {"backoffLimit": 0, "template": {"spec": pod_spec(pinned, node_config)}}})

            def job_complete():
                job = batch.read_namespaced_job(f"job-{i}", ns)
                return any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or [])

            end = wait(job_complete)
            job_pod = next(p for p in clock.added if p.startswith(f"job-{i}-"))
            wait(lambda: job_pod in clock.succeeded, 10)
            if i:
                rows["batch/v1 Job"].append((end - start, clock.pod_seconds(job_pod), None))
    finally:
        clock.stop()
        operator.terminate()
        operator.wait(30)
        core.delete_namespace(ns)

    ready = Path(env["TESTENV_DIR"], "node", "ready-seconds")
    print(f"\nreal node Ready {ready.read_text().strip()} s after the start of `testenv.sh up` (this environment's start)"
          if ready.exists() else "")
    print(f"\nsmallest real algorithm, {args.runs} runs each after one warm-up, one at a time, medians (s)\n")
    print(f"{'object':<16}{'create->done':>14}{'pod time':>10}{'algorithm':>11}{'overhead':>10}")
    med = {kind: [statistics.median(col) if None not in col else None for col in zip(*values)]
           for kind, values in rows.items()}
    for kind, (e2e, pod_time, algo) in med.items():
        overhead = f"{pod_time - algo:>10.2f}" if algo is not None else f"{'':>10}"
        algo_s = f"{algo:>11.3f}" if algo is not None else f"{'-':>11}"
        print(f"{kind:<16}{e2e:>14.2f}{pod_time:>10.2f}{algo_s}{overhead}")
    cj, pod = med["ComponentJob"], med["Pod"]
    print(f"\nratio ComponentJob / Pod: create->done {cj[0] / pod[0]:.2f}x, pod time {cj[1] / pod[1]:.2f}x; "
          f"ComponentJob / batch Job: create->done {cj[0] / med['batch/v1 Job'][0]:.2f}x")
    print(f"agent's share of the pod time (ComponentJob pod - bare Pod): {cj[1] - pod[1]:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
