"""One ComponentBatch of N items through the operator vs one Indexed batch/v1 Job of N completions
through the controller-manager's Job controller, on the same local control plane and kwok nodes.

    python bench/bench_batch.py [--items 1000] [--parallelism 200] [--out bench/results/batch-1000.json]

Needs the local control plane (`make testenv-up`); starts its own operator process (watching only
the batch's namespace) and stops it before the Job runs. The two run one after the other, each in
a fresh namespace (both deleted at the end). Each pod is placed and completed as in
bench/bench_jobs.py (the untainted kwok CPU nodes, 1 CPU and 1 GiB requested, succeeding the
moment it runs), so the figures measure control planes, not algorithms.

Measured for each, from the create to condition Complete True:

* wall time;
* CPU seconds of the controller that drove it: for the batch, the operator's process tree (the
  kopf process, which runs the batch *and* its N ComponentJobs: validation, ConfigMaps, pods,
  status; plus its validation worker processes); for the Indexed Job, the kube-controller-manager
  process (its Job controller, and also its other controllers: garbage collector, pod GC, ...).
  The job pods are simulated by kwok and cost nothing themselves; the CPU seconds of the
  API server, etcd, scheduler and kwok during each run are reported too;
* for the batch: the operator's peak RSS (VmRSS, sampled every 0.5 s);
* API writes (POST/PUT/PATCH/DELETE/APPLY), from the API server's own apiserver_request_total:
  every client's writes during the run (the scheduler's bindings and kwok's pod status writes
  are included on both sides), by resource.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from kubernetes import client

from bench_jobs import (BBOX, BBOX_INTERFACE, GROUP, REPO, SIM_ANNOTATIONS, VERSION, connect, cpu_seconds,
                        create_bench_image, ensure_interface, job_pod_template, push_bench_image, start_operator,
                        stop_operator, wait_all, wait_image_ready)
from tests.support.procstat import descendants, rss_mib, tree_cpu_seconds  # noqa: E402 (bench_jobs puts the repo on sys.path)

PROB_INTERFACE = {"kind": "Float", "relativePath": "bench-prob.json"}
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"}
CONTROL_PLANE = ("kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager", "kwok")
_METRIC = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


class RssSampler:
    """VmRSS of a process (and of it with its descendants) every ``interval`` seconds, in a thread."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float, float]] = []  # (t, process MiB, process tree MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            own = rss_mib(self.pid)
            tree = own + sum(rss_mib(p) for p in descendants(self.pid))
            self.samples.append((round(time.monotonic() - t0, 2), round(own, 1), round(tree, 1)))
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        own = [s[1] for s in self.samples] or [0.0]
        tree = [s[2] for s in self.samples] or [0.0]
        return {"samples": len(self.samples), "start_mib": own[0], "peak_mib": max(own), "end_mib": own[-1],
                "tree_start_mib": tree[0], "tree_peak_mib": max(tree), "tree_end_mib": tree[-1]}


def settle(pid: int, timeout: float = 60.0) -> None:
    """Wait until a process tree is idle: under 0.05 CPU seconds over one second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = tree_cpu_seconds(pid)
        time.sleep(1.0)
        if tree_cpu_seconds(pid) - before < 0.05:
            return


def control_plane_pids(env: dict[str, str]) -> dict[str, int]:
    return {name: int(Path(env["TESTENV_DIR"], f"{name}.pid").read_text()) for name in CONTROL_PLANE}


def control_plane_cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


# -- the API server's request counter ----------------------------------------------------------


def apiserver_writes(api: client.ApiClient) -> Counter:
    """apiserver_request_total of the write verbs, by (resource, subresource, verb)."""
    response = api.call_api("GET", api.configuration.host + "/metrics")
    response.read()
    counts: Counter = Counter()
    for line in response.data.decode().splitlines():
        match = _METRIC.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("verb") in WRITE_VERBS and labels.get("dry_run", "") == "":
            counts[(labels.get("resource", ""), labels.get("subresource", ""), labels["verb"])] += int(float(match["value"]))
    return counts


def writes_delta(before: Counter, after: Counter) -> dict:
    delta = after - before
    by_resource: Counter = Counter()
    for (resource, subresource, verb), n in delta.items():
        by_resource[f"{resource}{'/' + subresource if subresource else ''} {verb}"] += n
    return {"total": sum(delta.values()), "by_resource": dict(by_resource.most_common())}


# -- the two runs ------------------------------------------------------------------------------


def is_complete(status: dict | None) -> bool:
    return any(c.get("type") == "Complete" and c.get("status") == "True" for c in (status or {}).get("conditions") or [])


def run_batch(api, namespace: str, n: int, parallelism: int, operator_pid: int, cp_pids: dict[str, int]) -> dict:
    custom = client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentBatch",
        "metadata": {"name": "bench-batch", "annotations": dict(SIM_ANNOTATIONS)},  # carried to the jobs' pods
        "spec": {"image": "bench-algo", "inputs": [{"interface": "bench-bbox", "value": BBOX}],
                 "itemInterface": "bench-prob", "items": [{"value": i / 100000} for i in range(n)],
                 "requiresMemoryGB": 1, "parallelism": parallelism},
    }
    max_running = 0
    writes0, cp0 = apiserver_writes(api), control_plane_cpu(cp_pids)
    with RssSampler(operator_pid) as rss:
        cpu0, t0 = tree_cpu_seconds(operator_pid), time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "componentbatches", body)

        def done():
            nonlocal max_running
            status = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "componentbatches", "bench-batch").get("status")
            max_running = max(max_running, ((status or {}).get("counts") or {}).get("running", 0))
            return is_complete(status)

        t1 = wait_all(done, 3600)
        cpu1 = tree_cpu_seconds(operator_pid)
        main_cpu = cpu_seconds(operator_pid)
    cp1, writes1 = control_plane_cpu(cp_pids), apiserver_writes(api)
    batch = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "componentbatches", "bench-batch")
    status = batch["status"]
    return {
        "wall_seconds": round(t1 - t0, 2),
        "controller": "component-operator process tree (kopf process + validation workers)",
        "controller_cpu_seconds": round(cpu1 - cpu0, 2),
        "operator_main_process_cpu_seconds_total": round(main_cpu, 2),
        "rss": rss.summary(),
        "rss_samples": rss.samples,
        "control_plane_cpu_seconds": {k: round(cp1[k] - cp0[k], 2) for k in cp0},
        "api_writes": writes_delta(writes0, writes1),
        "counts": status.get("counts"),
        "max_counts_running_seen": max_running,
        "batch_object_bytes": len(json.dumps(batch)),
        "batch_status_bytes": len(json.dumps(status)),
        "started_at": status.get("startedAt"), "completed_at": status.get("completedAt"),
    }


def run_indexed_job(api, namespace: str, n: int, parallelism: int, image: str, cp_pids: dict[str, int]) -> dict:
    batch = client.BatchV1Api(api)
    job = client.V1Job(metadata=client.V1ObjectMeta(name="bench-indexed"),
                       spec=client.V1JobSpec(completion_mode="Indexed", completions=n, parallelism=parallelism,
                                             backoff_limit=0, template=job_pod_template(image)))
    kcm = cp_pids["kube-controller-manager"]
    writes0, cp0 = apiserver_writes(api), control_plane_cpu(cp_pids)
    with RssSampler(kcm) as rss:
        t0 = time.monotonic()
        batch.create_namespaced_job(namespace, job)

        def done():
            status = batch.read_namespaced_job_status("bench-indexed", namespace).status
            return any(c.type == "Complete" and c.status == "True" for c in status.conditions or [])

        t1 = wait_all(done, 3600)
    cp1, writes1 = control_plane_cpu(cp_pids), apiserver_writes(api)
    status = batch.read_namespaced_job_status("bench-indexed", namespace).status
    return {
        "wall_seconds": round(t1 - t0, 2),
        "controller": "kube-controller-manager process (Job controller and all its other controllers)",
        "controller_cpu_seconds": round(cp1["kube-controller-manager"] - cp0["kube-controller-manager"], 2),
        "rss": rss.summary(),
        "control_plane_cpu_seconds": {k: round(cp1[k] - cp0[k], 2) for k in cp0},
        "api_writes": writes_delta(writes0, writes1),
        "succeeded": status.succeeded, "failed": status.failed,
        "started_at": str(status.start_time), "completed_at": str(status.completion_time),
    }


def _kcm_flags(pid: int) -> list[str]:
    args = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    return [a for a in args if a.startswith(("--kube-api-qps", "--kube-api-burst", "--concurrent-job-syncs"))]


def _tree_state() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {"head": git("rev-parse", "HEAD"), "dirty_files": git("status", "--porcelain", "--", "operator").splitlines()}


def print_table(n: int, parallelism: int, b: dict, j: dict) -> None:
    def ratio(x: float, y: float) -> str:
        return f"{x / y:.2f}x" if y else "-"

    rows = [
        ("wall s, create -> Complete", b["wall_seconds"], j["wall_seconds"]),
        ("items/s", round(n / b["wall_seconds"], 1), round(n / j["wall_seconds"], 1)),
        ("controller CPU s", b["controller_cpu_seconds"], j["controller_cpu_seconds"]),
        ("controller CPU ms per item", round(1000 * b["controller_cpu_seconds"] / n, 1),
         round(1000 * j["controller_cpu_seconds"] / n, 1)),
        ("controller peak RSS MiB", b["rss"]["tree_peak_mib"], j["rss"]["peak_mib"]),
        ("API writes (all clients)", b["api_writes"]["total"], j["api_writes"]["total"]),
    ]
    print(f"\n{n} items, parallelism {parallelism}, kwok nodes, same control plane\n")
    print(f"{'':<30}{'ComponentBatch':>16}{'Indexed Job':>14}{'batch / Job':>13}")
    for label, x, y in rows:
        print(f"{label:<30}{x:>16}{y:>14}{ratio(x, y):>13}")
    print("\ncontroller: the operator's process tree (kopf process + validation workers) for the batch;"
          "\n            kube-controller-manager (all its controllers) for the Indexed Job."
          f"\noperator RSS: kopf process peak {b['rss']['peak_mib']} MiB (start {b['rss']['start_mib']}),"
          f" with its workers {b['rss']['tree_peak_mib']} MiB; max status.counts.running seen {b['max_counts_running_seen']}")
    print("\nCPU s of the rest of the control plane during each run:")
    for name in CONTROL_PLANE:
        print(f"  {name:<26}{b['control_plane_cpu_seconds'][name]:>10}{j['control_plane_cpu_seconds'][name]:>10}")
    print("\nAPI writes by resource (batch | Indexed Job):")
    keys = sorted(set(b["api_writes"]["by_resource"]) | set(j["api_writes"]["by_resource"]),
                  key=lambda k: -(b["api_writes"]["by_resource"].get(k, 0) + j["api_writes"]["by_resource"].get(k, 0)))
    for key in keys:
        print(f"  {key:<40}{b['api_writes']['by_resource'].get(key, 0):>8}{j['api_writes']['by_resource'].get(key, 0):>8}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/batch-1000.json")
    args = parser.parse_args()
    env, api = connect()
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    run_id = uuid.uuid4().hex[:6]
    ns_b, ns_j = f"bench-cbatch-{run_id}", f"bench-ijob-{run_id}"
    for ns in (ns_b, ns_j):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))

    workdir = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    cp_pids = control_plane_pids(env)
    operator = None
    try:
        pushed = push_bench_image(env, workdir)
        ensure_interface(custom, "bench-bbox", BBOX_INTERFACE)
        ensure_interface(custom, "bench-prob", PROB_INTERFACE)
        create_bench_image(custom, ns_b, pushed.ref)
        operator = start_operator(workdir, [ns_b])
        pinned = wait_image_ready(custom, ns_b)
        settle(operator.pid)  # its start-up (e.g. the interfaces' status) is not the batch's
        b = run_batch(api, ns_b, args.items, args.parallelism, operator.pid, cp_pids)
        stop_operator(operator)
        operator = None
        j = run_indexed_job(api, ns_j, args.items, args.parallelism, pinned, cp_pids)
    finally:
        if operator is not None:
            stop_operator(operator)
        for ns in (ns_b, ns_j):
            core.delete_namespace(ns)

    print_table(args.items, args.parallelism, b, j)
    result = {
        "benchmark": "bench/bench_batch.py", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "items": args.items, "parallelism": args.parallelism, "cpus": os.cpu_count(), "python": platform.python_version(),
        "pod": {"annotations": SIM_ANNOTATIONS, "requests": {"cpu": "1", "memory": "1Gi"}, "placement": "untainted kwok CPU nodes"},
        "kube_controller_manager_flags": _kcm_flags(cp_pids["kube-controller-manager"]),
        "operator_tree": _tree_state(), "operator_log": str(workdir / "operator.log"),
        "component_batch": b, "indexed_job": j,
        "ratios_batch_over_job": {
            "wall": round(b["wall_seconds"] / j["wall_seconds"], 3),
            "controller_cpu": round(b["controller_cpu_seconds"] / max(j["controller_cpu_seconds"], 0.01), 3),
            "api_writes": round(b["api_writes"]["total"] / max(j["api_writes"]["total"], 1), 3),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten: {args.out}")

    def gone():
        return all(ns not in {n.metadata.name for n in core.list_namespace().items} for ns in (ns_b, ns_j))

    try:  # the next user of the shared control plane gets it without our objects
        wait_all(gone, 600)
    except TimeoutError:
        print(f"namespaces {ns_b}, {ns_j} still terminating", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
