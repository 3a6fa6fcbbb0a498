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

The breakdown of each pod's time comes from the node's containerd (``ctr events`` on
``$TESTENV_NODE_SOCKET``, nanosecond timestamps of every task start and exit, matched to the
pod's containers by the container IDs in its status) and from the agent's log lines as the
runtime stamped them (``kubectl logs --timestamps``):

* to first start: pod ADDED -> first container started (scheduling, sandbox, volumes);
* init container: ``prepare`` started -> exited (agent start, staging, handoff);
* gap before main: ``prepare`` exited -> algorithm container started (the kubelet sees the
  exit at its next PLEG relist, once a second, then creates and starts the container);
* agent start: algorithm container started -> the agent's ``started '<program>'`` line;
* agent after: the program's last line -> container exited (upload, signed result, exit);
* exit -> Succeeded: container exited -> the pod's Succeeded event (PLEG relist, status).

Results (every run and the medians) go to ``bench/results/realnode.json`` (``--output``).

Also prints the time from the start of `testenv.sh up` to a Ready real node, as recorded by
the testenv (`$TESTENV_DIR/node/ready-seconds`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
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
    """Local times (wall clock, comparable with containerd's) of each pod's ADDED and Succeeded
    events in one namespace."""

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
                    now, pod = time.time(), event["object"]
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


class TaskClock:
    """containerd's task start and exit times (epoch seconds) by container ID, from ``ctr events``."""

    def __init__(self, socket: str):
        self.started: dict[str, float] = {}
        self.exited: dict[str, float] = {}
        try:
            self._proc = subprocess.Popen(["ctr", "--address", socket, "--namespace", "k8s.io", "events"],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self._proc = None
            return
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def _stamp(date: str, clock: str) -> float:
        seconds, _, fraction = clock.partition(".")
        base = datetime.fromisoformat(f"{date}T{seconds}+00:00").timestamp()
        return base + (float(f"0.{fraction}") if fraction else 0.0)

    def _run(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            # 2026-01-01 00:00:00.123456789 +0000 UTC k8s.io /tasks/start {"container_id": ...}
            parts = line.split(" ", 6)
            if len(parts) < 7 or parts[5] not in ("/tasks/start", "/tasks/exit"):
                continue
            try:
                stamp, body = self._stamp(parts[0], parts[1]), json.loads(parts[6])
            except ValueError:
                continue
            target = self.started if parts[5] == "/tasks/start" else self.exited
            target.setdefault(body.get("container_id", ""), stamp)

    @property
    def available(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)


def container_ids(pod) -> dict[str, str]:
    statuses = [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
    return {s.name: (s.container_id or "").rpartition("://")[2] for s in statuses}


def log_times(core: client.CoreV1Api, namespace: str, pod: str, container: str) -> list[tuple[float, dict]]:
    """The container's JSON log lines with the runtime's timestamps (epoch seconds)."""
    text = core.read_namespaced_pod_log(pod, namespace, container=container, timestamps=True)
    lines = []
    for raw in text.splitlines():
        stamp, _, rest = raw.partition(" ")
        try:
            day, _, clock = stamp.rstrip("Z").partition("T")
            lines.append((TaskClock._stamp(day, clock), json.loads(rest)))
        except ValueError:
            continue
    return lines


def breakdown(core: client.CoreV1Api, namespace: str, name: str, pods: PodClock, tasks: TaskClock,
              agent: bool) -> dict[str, float]:
    """The pod's time in pieces (seconds; see the module docstring); empty without containerd events."""
    pod = core.read_namespaced_pod(name, namespace)
    ids = container_ids(pod)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(i in tasks.started and i in tasks.exited for i in ids.values()):
        time.sleep(0.05)
    if not all(i in tasks.started and i in tasks.exited for i in ids.values()):
        return {}
    added, done = pods.added[name], pods.succeeded[name]
    main = ids["algorithm"]
    first = min(tasks.started[i] for i in ids.values())
    parts = {"to first start": first - added}
    if "prepare" in ids:
        init = ids["prepare"]
        parts["init container"] = tasks.exited[init] - tasks.started[init]
        parts["gap before main"] = tasks.started[main] - tasks.exited[init]
    parts["main container"] = tasks.exited[main] - tasks.started[main]
    if agent:
        lines = log_times(core, namespace, name, "algorithm")
        started = [t for t, line in lines if line.get("internal") and str(line.get("log", "")).startswith("started ")]
        program = [t for t, line in lines if line.get("internal") is False]
        if started:
            parts["agent start"] = started[0] - tasks.started[main]
        if program:
            parts["agent after"] = tasks.exited[main] - program[-1]
    parts["exit -> Succeeded"] = done - tasks.exited[main]
    return parts


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


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "realnode.json",
                        help="where the results go as JSON (default: %(default)s)")
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
    tasks = TaskClock(env["TESTENV_NODE_SOCKET"])
    kinds = ("ComponentJob", "Pod", "batch/v1 Job")
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
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
                runs["ComponentJob"].append({
                    "create->done": end - start, "pod time": clock.pod_seconds(pod),
                    "algorithm": status["runtimeMetrics"]["runSeconds"],
                    "breakdown": breakdown(core, ns, pod, clock, tasks, agent=True)})

            start = time.monotonic()
            core.create_namespaced_pod(ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"pod-{i}"},
                                            "spec": pod_spec(pinned, node_config)})
            end = wait(lambda: f"pod-{i}" in clock.succeeded)
            if i:
                runs["Pod"].append({"create->done": end - start, "pod time": clock.pod_seconds(f"pod-{i}"),
                                    "breakdown": breakdown(core, ns, f"pod-{i}", clock, tasks, agent=False)})

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
                runs["batch/v1 Job"].append({"create->done": end - start, "pod time": clock.pod_seconds(job_pod),
                                             "breakdown": breakdown(core, ns, job_pod, clock, tasks, agent=False)})
    finally:
        clock.stop()
        tasks.stop()
        operator.terminate()
        operator.wait(30)
        core.delete_namespace(ns)

    medians: dict[str, dict] = {}
    for kind, values in runs.items():
        pieces = sorted({piece for run in values for piece in run["breakdown"]}, key=lambda p: list(
            next(run["breakdown"] for run in values if p in run["breakdown"])).index(p))
        medians[kind] = {
            "create->done": median([run["create->done"] for run in values]),
            "pod time": median([run["pod time"] for run in values]),
            "algorithm": median([run["algorithm"] for run in values if run.get("algorithm") is not None]),
            "breakdown": {piece: median([run["breakdown"][piece] for run in values if piece in run["breakdown"]])
                          for piece in pieces},
        }
    cj, pod, job = medians["ComponentJob"], medians["Pod"], medians["batch/v1 Job"]
    ratio = {"ComponentJob/Pod create->done": cj["create->done"] / pod["create->done"],
             "ComponentJob/Pod pod time": cj["pod time"] / pod["pod time"],
             "ComponentJob/batch Job create->done": cj["create->done"] / job["create->done"]}

    ready = Path(env["TESTENV_DIR"], "node", "ready-seconds")
    print(f"\nreal node Ready {ready.read_text().strip()} s after the start of `testenv.sh up` (this environment's start)"
          if ready.exists() else "")
    print(f"\nsmallest real algorithm, {args.runs} runs each after one warm-up, one at a time, medians (s)\n")
    print(f"{'object':<16}{'create->done':>14}{'pod time':>10}{'algorithm':>11}{'overhead':>10}")
    for kind, m in medians.items():
        algo = m["algorithm"]
        overhead = f"{m['pod time'] - algo:>10.2f}" if algo is not None else f"{'':>10}"
        algo_s = f"{algo:>11.3f}" if algo is not None else f"{'-':>11}"
        print(f"{kind:<16}{m['create->done']:>14.2f}{m['pod time']:>10.2f}{algo_s}{overhead}")
    print(f"\nratio ComponentJob / Pod: create->done {ratio['ComponentJob/Pod create->done']:.2f}x, "
          f"pod time {ratio['ComponentJob/Pod pod time']:.2f}x; "
          f"ComponentJob / batch Job: create->done {ratio['ComponentJob/batch Job create->done']:.2f}x")
    print(f"agent's share of the pod time (ComponentJob pod - bare Pod): {cj['pod time'] - pod['pod time']:.2f} s")
    if not tasks.available and not cj["breakdown"]:
        print("\n(no breakdown: `ctr events` on the node's containerd socket is not available)")
    else:
        print("\npod time in pieces, medians (s; containerd's task start/exit, the agent's log timestamps)\n")
        pieces = list(dict.fromkeys(p for m in medians.values() for p in m["breakdown"]))
        print(f"{'piece':<20}" + "".join(f"{kind:>14}" for kind in kinds))
        for piece in pieces:
            cells = [medians[kind]["breakdown"].get(piece) for kind in kinds]
            print(f"{piece:<20}" + "".join(f"{c:>14.3f}" if c is not None else f"{'-':>14}" for c in cells))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "benchmark": "bench/bench_realnode.py", "runs": args.runs, "at": datetime.now().astimezone().isoformat(),
        "medians": medians, "ratios": ratio, "samples": runs}, indent=2) + "\n")
    print(f"\nresults: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
