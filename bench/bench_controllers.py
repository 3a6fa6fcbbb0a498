"""The operator's ComponentJob against kube-controller-manager's batch/v1 Job controller, side by
side in one run on the same local control plane and the same kwok nodes (issue 14, goals 1-5).

    python bench/bench_controllers.py [--jobs 1000] [--rate 50 --reaction-jobs 500]
        [--memory-steps 0,1000,10000] [--goals throughput,ceiling,reaction,memory] [--profile]

One table per goal, both sides and the ratio; the JSON goes to bench/results/controllers-<N>.json.

1. throughput: N jobs created by a 16-thread pool; wall from the first create to the last
   terminal state (seen by a watch), jobs/s, the controller's CPU seconds from /proc (the
   operator's process tree; the kube-controller-manager process, all its controllers);
2. writes per job: apiserver_request_total before/after each throughput run, attributed to the
   controller, the benchmark client, the scheduler, kwok and background (bench/write_attribution.py);
3. the API server's ceiling: the same pool creating N plain pods of the Job's pod template, until
   all are Succeeded: what any controller could at best reach here;
4. reaction: jobs arriving at a steady rate (monotonic-clock pacing, creates from the pool), job
   created (its create returned) -> its pod seen by a watch opened before the run;
5. memory (bench/bench_memory.py, last: the slow part): the controllers' RSS with 0 .. 10k jobs.

While one side runs, the other controller is idle: the operator is started for its own namespaces
only and stopped before the batch/v1 Jobs are created; the Job controller has no Jobs while the
operator runs (leftover bench namespaces are reported in the header). With --profile the
operator's throughput run is recorded by py-spy (bench/pyspy_profile.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from kubernetes import client

import bench_jobs as bj
import write_attribution as wa
from kube_raw import Rest, Watch, path_for, write_counts
from tests.support.procstat import tree_cpu_seconds  # noqa: E402 (bench_jobs puts the repo on sys.path)

CONTROL_PLANE = ("kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager", "kwok")
GOALS = ("throughput", "ceiling", "reaction", "memory")
SYSTEM_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}


class Bench:
    """The run's shared state: clients, namespaces, the operator process, pids."""

    def __init__(self, args) -> None:
        self.args = args
        self.env, self.api = bj.connect()
        self.rest = Rest(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.run_id = uuid.uuid4().hex[:6]
        self.namespaces: list[str] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-controllers-"))
        self.pids = {name: int(Path(self.env["TESTENV_DIR"], f"{name}.pid").read_text()) for name in CONTROL_PLANE}
        self.operator: subprocess.Popen | None = None
        self.pinned = ""

    def namespace(self, purpose: str) -> str:
        name = f"bench-{purpose}-{self.run_id}"
        self.rest.post("/api/v1/namespaces", {"metadata": {"name": name, "labels": {"bench.testenv/run": self.run_id}}})
        self.namespaces.append(name)

        def furnished() -> bool:  # the controller-manager's own writes into a new namespace, before any run
            return all(self.rest.request("GET", f"/api/v1/namespaces/{name}/{what}", ok=(404,)).get("kind") != "Status"
                       for what in ("serviceaccounts/default", "configmaps/kube-root-ca.crt"))

        bj.wait_all(furnished, 60, interval=0.2)
        return name

    def foreign_namespaces(self) -> dict[str, str]:
        """Namespaces that are neither the system's nor this run's, with their phase."""
        return {ns["metadata"]["name"]: ns.get("status", {}).get("phase", "")
                for ns in self.rest.get("/api/v1/namespaces")["items"]
                if ns["metadata"]["name"] not in SYSTEM_NAMESPACES and ns["metadata"]["name"] not in self.namespaces}

    def wait_foreign_terminating(self, timeout: float) -> dict[str, str]:
        """Wait (bounded) for other namespaces' deletion: the namespace controller's deletes would be counted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            foreign = self.foreign_namespaces()
            if "Terminating" not in foreign.values():
                return foreign
            time.sleep(2)
        return self.foreign_namespaces()

    def control_plane_cpu(self) -> dict[str, float]:
        return {name: bj.cpu_seconds(pid) for name, pid in self.pids.items()}

    def controller_cpu(self, side: str) -> float:
        if side == "componentjob":
            return tree_cpu_seconds(self.operator.pid)
        if side == "job":
            return bj.cpu_seconds(self.pids["kube-controller-manager"])
        return 0.0

    def start_operator(self, namespaces: list[str]) -> None:
        for ns in namespaces:
            bj.create_bench_image(self.custom, ns, self.pushed_ref)
        self.operator = bj.start_operator(self.workdir, namespaces)
        for ns in namespaces:
            self.pinned = bj.wait_image_ready(self.custom, ns)
        settle(lambda: tree_cpu_seconds(self.operator.pid))  # its start-up is not the jobs'

    def stop_operator(self) -> None:
        if self.operator is not None:
            bj.stop_operator(self.operator)
            self.operator = None

    def delete_namespaces(self, names: list[str], timeout: float) -> list[str]:
        """Delete, wait at most ``timeout`` s; the names still terminating."""
        for ns in names:
            self.rest.delete(f"/api/v1/namespaces/{ns}")
        deadline = time.monotonic() + timeout
        left = list(names)
        while left and time.monotonic() < deadline:
            time.sleep(2)
            left = [ns for ns in left
                    if self.rest.request("GET", f"/api/v1/namespaces/{ns}", ok=(404,)).get("kind") == "Namespace"]
        for ns in names:
            if ns not in left and ns in self.namespaces:
                self.namespaces.remove(ns)
        return left


def settle(cpu, timeout: float = 30.0, threshold: float = 0.05) -> None:
    """Wait until a process is idle: under ``threshold`` CPU seconds over one second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu()
        time.sleep(1.0)
        if cpu() - before < threshold:
            return


class Tracker:
    """First monotonic times, by job name: the object's terminal state, and its first pod."""

    def __init__(self, side: bj.Side) -> None:
        self.side = side
        self.terminal: dict[str, float] = {}
        self.pod: dict[str, float] = {}
        self.lock = threading.Lock()

    def on_object(self, obj: dict, now: float) -> None:
        name = obj["metadata"]["name"]
        if name not in self.terminal and self.side.terminal(obj):
            with self.lock:
                self.terminal.setdefault(name, now)
        if self.side.pod_label is None:  # the object is the pod
            self.pod.setdefault(name, now)

    def on_pod(self, obj: dict, now: float) -> None:
        job = (obj["metadata"].get("labels") or {}).get(self.side.pod_label)
        if job and job not in self.pod:
            with self.lock:
                self.pod.setdefault(job, now)

    def watches(self, rest: Rest, namespace: str) -> list[Watch]:
        found = [Watch(rest, self.side.resource, namespace, self.on_object).open()]
        if self.side.pod_label:
            found.append(Watch(rest, "pods", namespace, self.on_pod).open())
        return found


def create_all(bench: Bench, namespace: str, side: bj.Side, names: list[str], threads: int) -> list[tuple[float, float]]:
    """Create the objects from a thread pool; (issued, returned) monotonic times of each create."""
    path = path_for(side.resource, namespace)

    def one(name: str) -> tuple[float, float]:
        t = time.monotonic()
        bench.rest.post(path, side.make(name))
        return t, time.monotonic()

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, names))


def run_throughput(bench: Bench, key: str, side: bj.Side, n: int, profile: bool = False) -> dict:
    namespace = bench.namespaces_by_side[key]
    tracker = Tracker(side)
    watches = tracker.watches(bench.rest, namespace)
    names = [f"bench-{i:05d}" for i in range(n)]
    foreign0 = bench.foreign_namespaces()
    writes0, cp0, cpu0 = write_counts(bench.rest), bench.control_plane_cpu(), bench.controller_cpu(key)
    recorder = None
    if profile:
        import pyspy_profile
        recorder = pyspy_profile.Recorder(bench.operator.pid, bench.workdir / "pyspy.raw")
        time.sleep(1.0)  # attached
    try:
        t0 = time.monotonic()
        times = create_all(bench, namespace, side, names, bench.args.threads)
        t_created = max(t for _, t in times)
        bj.wait_all(lambda: len(tracker.terminal) >= n, bench.args.timeout, interval=0.2)
        t1 = max(tracker.terminal.values())
        cpu_terminal = bench.controller_cpu(key)
        settle(lambda: bench.controller_cpu(key))  # work the jobs caused after their end (clean-up, events)
        cpu_idle = bench.controller_cpu(key)
    finally:
        for w in watches:
            w.close()
        profile_summary = None
        if recorder is not None:
            import pyspy_profile
            raw = recorder.stop()
            profile_summary = pyspy_profile.summary(pyspy_profile.fold(raw), 30, seconds=time.monotonic() - t0)
            profile_summary["raw_file"] = str(raw)
    cp1, writes1 = bench.control_plane_cpu(), write_counts(bench.rest)
    foreign1 = bench.foreign_namespaces()
    own = {(side.group, side.resource, "", "POST"): n}
    wall = t1 - t0
    latencies = sorted(tracker.terminal[name] - times[i][1] for i, name in enumerate(names))
    return {
        "side": side.label, "controller": side.controller, "n": n, "namespace": namespace,
        "wall_seconds": round(wall, 3), "jobs_per_second": round(n / wall, 2),
        "create_seconds": round(t_created - t0, 3),
        "controller_cpu_seconds_to_last_terminal": round(cpu_terminal - cpu0, 3),
        "controller_cpu_seconds": round(cpu_idle - cpu0, 3),
        "controller_cpu_ms_per_job": round(1000 * (cpu_idle - cpu0) / n, 3),
        "created_to_terminal_seconds": percentiles(latencies),
        "control_plane_cpu_seconds": {k: round(cp1[k] - cp0[k], 3) for k in cp0},
        "writes": wa.summarise(writes1 - writes0, own, n),
        "profile": profile_summary,
        "foreign_activity": foreign_activity(foreign0, foreign1),
    }


def foreign_activity(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Other users of the cluster during a run (their writes are in the counter too)."""
    notes = [f"{ns} created" for ns in after if ns not in before]
    notes += [f"{ns} deleted" for ns in before if ns not in after]
    notes += [f"{ns} Terminating" for ns in {**before, **after}
              if "Terminating" in (before.get(ns), after.get(ns))]
    return sorted(set(notes))


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    values = sorted(values)

    def q(p: float) -> float:
        return round(values[min(len(values) - 1, int(p * len(values)))], 4)

    return {"p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "max": round(values[-1], 4),
            "mean": round(statistics.fmean(values), 4)}


def run_reaction(bench: Bench, key: str, side: bj.Side, n: int, rate: float) -> dict:
    """n jobs paced at ``rate``/s on the monotonic clock, each create submitted to the pool at its
    slot; the latency of each is its create's return -> the first watch event of its pod."""
    namespace = bench.namespaces_by_side[f"{key}-reaction"]
    tracker = Tracker(side)
    watches = tracker.watches(bench.rest, namespace)
    path = path_for(side.resource, namespace)
    names = [f"react-{i:05d}" for i in range(n)]
    issued: list[float] = [0.0] * n
    returned: list[float] = [0.0] * n
    slots: list[float] = [0.0] * n

    def one(i: int) -> None:
        issued[i] = time.monotonic()
        bench.rest.post(path, side.make(names[i]))
        returned[i] = time.monotonic()

    try:
        start = time.monotonic() + 0.5
        with ThreadPoolExecutor(bench.args.threads) as pool:
            for i in range(n):
                slots[i] = start + i / rate
                delay = slots[i] - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(one, i)
        bj.wait_all(lambda: len(tracker.pod) >= n, bench.args.timeout, interval=0.2)
        bj.wait_all(lambda: len(tracker.terminal) >= n, bench.args.timeout)  # the next run starts idle
    finally:
        for w in watches:
            w.close()
    latency = [tracker.pod[name] - returned[i] for i, name in enumerate(names)]
    from_issue = [tracker.pod[name] - issued[i] for i, name in enumerate(names)]
    span = max(issued) - min(issued)
    return {
        "side": side.label, "n": n, "target_rate": rate, "namespace": namespace,
        "achieved_issue_rate": round((n - 1) / span, 2) if span else None,
        "achieved_created_rate": round((n - 1) / (max(returned) - min(returned)), 2),
        "max_issue_lag_ms": round(1000 * max(i - s for i, s in zip(issued, slots)), 1),
        "create_call_seconds": percentiles([r - i for i, r in zip(issued, returned)]),
        "created_to_pod_seconds": percentiles(latency),
        "issued_to_pod_seconds": percentiles(from_issue),
    }


# -- tables ----------------------------------------------------------------------------------


def ratio(x: float, y: float) -> str:
    return f"{x / y:.2f}x" if y else "-"


def table(title: str, rows: list[tuple], heads=("ComponentJob", "batch/v1 Job", "CJ / Job")) -> None:
    print(f"\n{title}\n")
    print(f"{'':<40}" + "".join(f"{h:>16}" for h in heads))
    for label, x, y, *rest in rows:
        r = rest[0] if rest else (ratio(x, y) if isinstance(x, (int, float)) and isinstance(y, (int, float)) else "")
        print(f"{label:<40}{x:>16}{y:>16}{r:>16}")


def print_throughput(c: dict, j: dict) -> None:
    table(f"GOAL 1 - throughput: {c['n']} jobs, first create -> last terminal (watch), {c['n']} creates from "
          f"{THREADS[0]} threads", [
              ("wall s", c["wall_seconds"], j["wall_seconds"]),
              ("jobs/s", c["jobs_per_second"], j["jobs_per_second"]),
              ("creates done after s", c["create_seconds"], j["create_seconds"]),
              ("controller CPU s (until idle)", c["controller_cpu_seconds"], j["controller_cpu_seconds"]),
              ("controller CPU s (until last terminal)", c["controller_cpu_seconds_to_last_terminal"],
               j["controller_cpu_seconds_to_last_terminal"]),
              ("controller CPU ms per job", c["controller_cpu_ms_per_job"], j["controller_cpu_ms_per_job"]),
              ("created -> terminal p50 s", c["created_to_terminal_seconds"]["p50"], j["created_to_terminal_seconds"]["p50"]),
              ("created -> terminal p99 s", c["created_to_terminal_seconds"]["p99"], j["created_to_terminal_seconds"]["p99"]),
          ])
    print("\ncontroller CPU: the operator's process tree (kopf process + validation workers) | the whole"
          "\nkube-controller-manager process (its Job controller and every other controller). CPU s of the rest:")
    for name in CONTROL_PLANE:
        print(f"  {name:<38}{c['control_plane_cpu_seconds'][name]:>16}{j['control_plane_cpu_seconds'][name]:>16}")
    print("  (kube-controller-manager during the ComponentJob run: the other side's idle cost)")


def print_writes(c: dict, j: dict, p: dict | None) -> None:
    print("\nGOAL 2 - API writes per job during the throughput runs (apiserver_request_total deltas / N)\n")
    sides_ = [("ComponentJob", c["writes"]), ("batch/v1 Job", j["writes"])] + ([("plain Pod", p["writes"])] if p else [])
    wa.print_table(sides_)
    print(f"\ncontroller writes per job, ComponentJob / Job: "
          f"{ratio(c['writes']['controller_writes_per_job'], j['writes']['controller_writes_per_job'])}"
          "\n(plain Pod: goal 3's client-only run, no controller: what the scheduler, kwok and the client write per pod)")
    for label, run in (("ComponentJob", c), ("batch/v1 Job", j), ("plain Pod", p)):
        if run and run["foreign_activity"]:
            print(f"WARNING: other namespaces changed during the {label} run, their writes are counted too "
                  f"(mostly in the controller's rows): {', '.join(run['foreign_activity'])}")


def print_ceiling(c: dict, j: dict, p: dict) -> None:
    print(f"\nGOAL 3 - the API server's ceiling: {p['n']} plain pods (the Job's pod template) from the same "
          f"{THREADS[0]}-thread pool, first create -> last Succeeded\n")
    print(f"{'':<40}{'plain Pods':>16}{'ComponentJob':>16}{'batch/v1 Job':>16}")
    print(f"{'wall s':<40}{p['wall_seconds']:>16}{c['wall_seconds']:>16}{j['wall_seconds']:>16}")
    print(f"{'jobs/s':<40}{p['jobs_per_second']:>16}{c['jobs_per_second']:>16}{j['jobs_per_second']:>16}")
    print(f"{'fraction of the ceiling (jobs/s)':<40}{'1.00':>16}"
          f"{c['jobs_per_second'] / p['jobs_per_second']:>16.2f}{j['jobs_per_second'] / p['jobs_per_second']:>16.2f}")


def print_reaction(c: dict, j: dict) -> None:
    rows = [("target rate /s", c["target_rate"], j["target_rate"], ""),
            ("achieved rate, creates issued /s", c["achieved_issue_rate"], j["achieved_issue_rate"], ""),
            ("achieved rate, creates returned /s", c["achieved_created_rate"], j["achieved_created_rate"], ""),
            ("max issue lag behind its slot ms", c["max_issue_lag_ms"], j["max_issue_lag_ms"], "")]
    for q in ("p50", "p99", "max"):
        x, y = c["created_to_pod_seconds"][q] * 1000, j["created_to_pod_seconds"][q] * 1000
        rows.append((f"job created -> pod {q} ms", round(x, 1), round(y, 1)))
    rows.append(("create call p99 ms", round(c["create_call_seconds"]["p99"] * 1000, 1),
                 round(j["create_call_seconds"]["p99"] * 1000, 1)))
    table(f"GOAL 4 - reaction: {c['n']} jobs at {c['target_rate']}/s; job created (its create returned) -> "
          "its pod (first watch event)", rows)


THREADS = [16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="N for throughput, writes and the ceiling")
    parser.add_argument("--threads", type=int, default=16, help="the client's create pool")
    parser.add_argument("--rate", type=float, default=50.0, help="reaction: jobs per second")
    parser.add_argument("--reaction-jobs", type=int, default=500)
    parser.add_argument("--memory-steps", default="0,1000,10000", help="memory: jobs in the cluster at each step")
    parser.add_argument("--memory-hanging", type=float, default=0.1, help="memory: the share of jobs left running")
    parser.add_argument("--goals", default=",".join(GOALS), help="which goals (writes come with throughput)")
    parser.add_argument("--profile", action="store_true", help="record the operator's throughput run with py-spy")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for any one run")
    parser.add_argument("--cleanup-timeout", type=float, default=300, help="seconds to wait for namespaces to go")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/controllers-<N>.json")
    args = parser.parse_args(argv)
    goals = {"throughput" if g == "writes" else g for g in args.goals.split(",") if g}  # writes come with throughput
    unknown = goals - set(GOALS)
    if unknown:
        parser.error(f"unknown goals {sorted(unknown)}; known: {', '.join(GOALS)}")
    THREADS[0] = args.threads
    out = args.out or bj.REPO / f"bench/results/controllers-{args.jobs}.json"

    bench = Bench(args)
    foreign = bench.wait_foreign_terminating(args.cleanup_timeout)
    print(f"bench_controllers: {args.jobs} jobs, goals {','.join(g for g in GOALS if g in goals)}, run {bench.run_id}, "
          f"{os.cpu_count()} CPUs; other namespaces present: "
          f"{', '.join(f'{k} ({v})' for k, v in foreign.items()) or 'none'}", flush=True)
    pushed = bj.push_bench_image(bench.env, bench.workdir)
    bench.pushed_ref = pushed.ref
    bj.ensure_interface(bench.custom, "bench-bbox", bj.BBOX_INTERFACE)
    result: dict = {"benchmark": "bench/bench_controllers.py", "argv": sys.argv[1:],
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "testenv_mode": bench.env["mode"], "bench_mode": bench.env["bench_mode"],
                    "cpus": os.cpu_count(), "python": platform.python_version(), "threads": args.threads,
                    "operator_tree": tree_state(), "operator_log": str(bench.workdir / "operator.log")}
    n = args.jobs
    try:
        bench.namespaces_by_side = {}
        op_ns = []
        if "throughput" in goals:
            op_ns.append(bench.namespaces_by_side.setdefault("componentjob", bench.namespace("cjob")))
        if "reaction" in goals:
            op_ns.append(bench.namespaces_by_side.setdefault("componentjob-reaction", bench.namespace("cjob-react")))
        if op_ns:
            bench.start_operator(op_ns)
        template = bench.api.sanitize_for_serialization(bj.job_pod_template(bench.pinned or pushed.ref))
        sides = bj.sides(template)
        if "throughput" in goals:
            print("goal 1/2: ComponentJobs ...", flush=True)
            result["throughput_componentjob"] = run_throughput(bench, "componentjob", sides["componentjob"], n, args.profile)
        if "reaction" in goals:
            print("goal 4: ComponentJobs ...", flush=True)
            result["reaction_componentjob"] = run_reaction(bench, "componentjob", sides["componentjob"],
                                                           args.reaction_jobs, args.rate)
        bench.stop_operator()
        if "throughput" in goals:
            bench.namespaces_by_side["job"] = bench.namespace("job")
            print("goal 1/2: batch/v1 Jobs ...", flush=True)
            result["throughput_job"] = run_throughput(bench, "job", sides["job"], n)
        if "reaction" in goals:
            bench.namespaces_by_side["job-reaction"] = bench.namespace("job-react")
            print("goal 4: batch/v1 Jobs ...", flush=True)
            result["reaction_job"] = run_reaction(bench, "job", sides["job"], args.reaction_jobs, args.rate)
        if "ceiling" in goals:
            bench.namespaces_by_side["pod"] = bench.namespace("pods")
            print("goal 3: plain pods ...", flush=True)
            result["ceiling_pods"] = run_throughput(bench, "pod", sides["pod"], n)
        print(f"\n{bench.env['mode']}")
        if "throughput" in goals:
            print_throughput(result["throughput_componentjob"], result["throughput_job"])
            print_writes(result["throughput_componentjob"], result["throughput_job"], result.get("ceiling_pods"))
            if args.profile and result["throughput_componentjob"]["profile"]:
                import pyspy_profile
                print("\nPROFILE - the operator during the ComponentJob throughput run (py-spy record --gil)")
                pyspy_profile.print_summary(result["throughput_componentjob"]["profile"])
        if "ceiling" in goals and "throughput" in goals:
            print_ceiling(result["throughput_componentjob"], result["throughput_job"], result["ceiling_pods"])
        if "reaction" in goals:
            print_reaction(result["reaction_componentjob"], result["reaction_job"])
        save(out, result)
        left = bench.delete_namespaces(list(bench.namespaces), args.cleanup_timeout)
        if left:
            print(f"namespaces still terminating after {args.cleanup_timeout:.0f}s: {', '.join(left)}", file=sys.stderr)
        if "memory" in goals:
            import bench_memory
            steps = [int(s) for s in args.memory_steps.split(",") if s.strip()]
            result["memory"] = bench_memory.run(bench, steps, args.memory_hanging)
            bench_memory.print_table(result["memory"])
            save(out, result)
    finally:
        bench.stop_operator()
        if bench.namespaces:
            left = bench.delete_namespaces(list(bench.namespaces), args.cleanup_timeout)
            if left:
                print(f"namespaces still terminating (not waited for): {', '.join(left)}", file=sys.stderr)
    print(f"\nwritten: {out}")
    return 0


def save(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


def tree_state() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=bj.REPO, capture_output=True, text=True).stdout.strip()

    return {"head": git("rev-parse", "HEAD"), "dirty_files": git("status", "--porcelain", "--", "operator").splitlines()}


if __name__ == "__main__":
    sys.exit(main())
