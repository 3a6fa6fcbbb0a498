"""What one create costs the API server, by kind, with no controller acting on the objects.

    python bench/bench_create_cost.py [--objects 1000] [--threads 16]

Why it exists: during the controller benchmark the same client needs longer to create 1000
ComponentJobs than 1000 Jobs. That could be the custom resource's own cost (its OpenAPI schema,
CEL rules, JSON storage) or contention with the controller's work on two cores. This measures
the first alone: ``--objects`` POSTs from ``--threads`` threads into a fresh namespace that no
operator watches, for a ComponentJob (the controller benchmark's body), a batch/v1 Job with
``suspend: true`` (the Job controller does nothing for it) and a ConfigMap of the same input
value; it prints the wall time and the CPU seconds kube-apiserver and etcd spent, and each
kind's ratio to the Job. Run it with no operator running (the bench testenv, `make bench-env`).
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import bench_jobs as bj
import kube_raw
from bench_batch import control_plane_cpu, control_plane_pids


def kinds(api) -> dict[str, tuple[str, object]]:
    template = api.sanitize_for_serialization(bj.job_pod_template("bench"))

    def suspended_job(name: str) -> dict:
        body = bj.batch_job(name, template)
        body["spec"]["suspend"] = True
        return body

    def configmap(name: str) -> dict:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"value": json.dumps(bj.BBOX)}}

    return {
        "ComponentJob": (f"/apis/{bj.GROUP}/{bj.VERSION}/namespaces/{{ns}}/componentjobs", bj.component_job),
        "batch/v1 Job (suspended)": ("/apis/batch/v1/namespaces/{ns}/jobs", suspended_job),
        "ConfigMap": ("/api/v1/namespaces/{ns}/configmaps", configmap),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    env, api = bj.connect()
    rest = kube_raw.Rest(api)
    pids = control_plane_pids(env)
    rows = {}
    for label, (path, make) in kinds(api).items():
        namespace = f"bench-create-{uuid.uuid4().hex[:6]}"
        rest.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        try:
            before, started = control_plane_cpu(pids), time.monotonic()
            with ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(lambda i: rest.post(path.format(ns=namespace), make(f"c-{i:05d}")), range(args.objects)))
            wall = time.monotonic() - started
            after = control_plane_cpu(pids)
        finally:
            rest.request("DELETE", f"/api/v1/namespaces/{namespace}", ok=(404,))
        rows[label] = {"wall": wall, **{name: after[name] - before[name] for name in ("kube-apiserver", "etcd")}}
    base = rows["batch/v1 Job (suspended)"]
    print(f"\n{args.objects} creates from {args.threads} threads, no controller acting ({env['mode']})\n")
    print(f"{'kind':28} {'wall s':>8} {'apiserver CPU s':>16} {'etcd CPU s':>11} {'wall / Job':>11} {'apiserver / Job':>16}")
    for label, row in rows.items():
        print(f"{label:28} {row['wall']:8.2f} {row['kube-apiserver']:16.2f} {row['etcd']:11.2f} "
              f"{row['wall'] / base['wall']:10.2f}x {row['kube-apiserver'] / base['kube-apiserver']:15.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
