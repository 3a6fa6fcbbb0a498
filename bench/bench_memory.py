"""Goal 5 of the controller benchmarks: the controllers' resident memory as jobs pile up.

    python bench/bench_controllers.py --goals memory --memory-steps 0,1000,10000

Why it exists (and is separate): memory is what a controller pays for every object it watches,
not per job run, so it is measured on a cluster that holds many jobs at once, terminal and not;
and it is the slow part (10k ComponentJobs at the operator's pace), so it runs last, in its own
module. Run from bench/bench_controllers.py, which owns the connection and the operator process.

At each step the cluster holds that many jobs of one side: (1 - h) of them succeed at once, a
share h (default 10%) has a pod that kwok keeps running for an hour (``sim.testenv/after``), on a
T4 GPU node; the testenv has 8 T4 GPUs, so most of those pods stay Pending for lack of capacity,
and capacity on the CPU nodes stays free for the succeeding jobs. A step is reached when every
succeeding job is terminal and every hanging one has its pod, then the controller is left to
settle (idle, at most 30 s) and its VmRSS is read from /proc/<pid>/status; the peak while the step
filled up is reported too.

* operator: a fresh process watching only the memory namespace (RSS at 0 is its start-up);
  "tree" adds its validation workers;
* kube-controller-manager: the one process of the testenv, with all its controllers and
  informers (it caches every pod, and its garbage collector every object with an owner, of the
  whole cluster). Its "0" is what it holds before the step, after the earlier goals' namespaces
  were deleted; Go returns freed memory to the OS lazily, so RSS falls late, if at all.

The operator's side is deleted (bounded wait) before the Job side starts, so that neither the
kwok GPU capacity nor the controller-manager's caches still hold its objects. Clean-up is
bounded: namespaces are deleted, waited for at most --cleanup-timeout s, and left terminating.
"""

from __future__ import annotations

import os
import signal
import time

import yaml

import bench_jobs as bj
from kube_raw import Watch
from tests.support.procstat import descendants, rss_mib  # noqa: E402

HANG = {"sim.testenv/outcome": "succeed", "sim.testenv/after": "3600s"}
GPU_TYPE = "T4"


def hanging(i: int, share: float) -> bool:
    """Every 1/share-th job hangs (i = 9, 19, 29 ... for 10%)."""
    return int((i + 1) * share) > int(i * share)


def job_hang_template(template: dict) -> dict:
    """The Job's pod template placed as the operator places a ``requiresGPUType: T4`` job's pod."""
    from component_operator.config import OperatorConfig
    config = OperatorConfig.model_validate(yaml.safe_load(bj.OPERATOR_CONFIG) or {})
    spec = dict(template["spec"])
    container = dict(spec["containers"][0])
    resources = {k: dict(v) for k, v in container["resources"].items()}
    resources["limits"][config.gpu_resource_name] = "1"
    resources["requests"][config.gpu_resource_name] = "1"
    container["resources"] = resources
    spec["containers"] = [container]
    spec["nodeSelector"] = config.node_selector_for(GPU_TYPE)
    spec["tolerations"] = [t.model_dump(exclude_none=True) for t in config.gpu_tolerations]
    return {"metadata": {"annotations": dict(HANG)}, "spec": spec}


class State:
    """What the watches saw: terminal jobs, jobs that have a pod, each pod's phase."""

    def __init__(self, side: bj.Side) -> None:
        self.side = side
        self.terminal: set[str] = set()
        self.with_pod: set[str] = set()
        self.pod_phase: dict[str, str] = {}

    def on_object(self, obj: dict, _now: float) -> None:
        name = obj["metadata"]["name"]
        if self.side.terminal(obj):
            self.terminal.add(name)
        if self.side.resource == "jobs" and (obj.get("status") or {}).get("active"):
            self.with_pod.add(name)

    def on_pod(self, obj: dict, _now: float) -> None:
        job = (obj["metadata"].get("labels") or {}).get(self.side.pod_label)
        if job:
            self.with_pod.add(job)
            self.pod_phase[obj["metadata"]["name"]] = (obj.get("status") or {}).get("phase", "")


def _measure_side(bench, key: str, namespace: str, steps: list[int], share: float, pid, make) -> list[dict]:
    side = bj.sides({"spec": {}})[key]
    state = State(side)
    watches = [Watch(bench.rest, side.resource, namespace, state.on_object).open(),
               Watch(bench.rest, "pods", namespace, state.on_pod).open()]
    rows, created = [], 0
    try:
        for step in steps:
            t0 = time.monotonic()
            names = [f"mem-{i:05d}" for i in range(created, step)]
            hang = {f"mem-{i:05d}" for i in range(created, step) if hanging(i, share)}
            from bench_controllers import create_all
            if names:
                create_all(bench, namespace, bj.Side(side.label, side.controller, side.resource, side.group,
                                                     lambda name: make(name, name in hang), side.terminal,
                                                     side.pod_label), names, bench.args.threads)
            created = step
            want_hang = sum(hanging(i, share) for i in range(step))
            want_terminal = step - want_hang
            peak = 0.0
            deadline = time.monotonic() + 120 + len(names) / 5
            while time.monotonic() < deadline:
                peak = max(peak, rss_mib(pid()))
                hung = len(state.with_pod - state.terminal)
                if len(state.terminal) >= want_terminal and hung >= want_hang:
                    break
                time.sleep(0.5)
            reached = len(state.terminal) >= want_terminal and len(state.with_pod - state.terminal) >= want_hang
            filled = time.monotonic() - t0
            from bench_controllers import settle
            settle(lambda: bj.cpu_seconds(pid()))
            own = rss_mib(pid())
            trace = os.environ.get("BENCH_TRACEMALLOC")
            if trace and key == "componentjob":  # tracemalloc_operator.py: where the memory is held
                before = os.path.getsize(trace) if os.path.exists(trace) else 0
                os.kill(pid(), signal.SIGUSR1)
                bj.wait_all(lambda: os.path.exists(trace) and os.path.getsize(trace) > before, 300, 1)
            phases = [p for p in state.pod_phase.values() if p in ("Pending", "Running")]
            row = {"jobs": step, "terminal": len(state.terminal), "hanging_with_pod": len(state.with_pod - state.terminal),
                   "pods_pending": phases.count("Pending"), "pods_running": phases.count("Running"),
                   "reached": reached, "fill_seconds": round(filled, 1),
                   "rss_mib": round(own, 1), "peak_rss_mib": round(max(peak, own), 1),
                   "tree_rss_mib": round(own + sum(rss_mib(p) for p in descendants(pid())), 1) if key == "componentjob" else None}
            rows.append(row)
            print(f"  memory {side.label:<13} {step:>6} jobs: RSS {row['rss_mib']:>7.1f} MiB (peak {row['peak_rss_mib']:.1f}),"
                  f" {row['terminal']} terminal, {row['hanging_with_pod']} hanging ({row['pods_pending']} pods Pending,"
                  f" {row['pods_running']} Running), {filled:.0f}s{'' if reached else ' - NOT REACHED (timeout)'}",
                  flush=True)
    finally:
        for w in watches:
            w.close()
    return rows


def run(bench, steps: list[int], share: float) -> dict:
    """Both sides, the operator's first; each in its own namespace, deleted (bounded) afterwards."""
    template = bench.api.sanitize_for_serialization(bj.job_pod_template(bench.pinned or bench.pushed_ref))
    hang_template = job_hang_template(template)
    result = {"steps": steps, "hanging_share": share, "gpu_type": GPU_TYPE}
    print(f"goal 5: memory, steps {steps} ({share:.0%} of the jobs left running) ...", flush=True)

    ns = bench.namespace("cjob-mem")
    bench.start_operator([ns])
    try:
        def make_cjob(name: str, hang: bool) -> dict:
            if hang:
                return bj.component_job(name, HANG, requiresGPUType=GPU_TYPE)
            return bj.component_job(name)

        result["componentjob"] = _measure_side(bench, "componentjob", ns, steps, share, lambda: bench.operator.pid, make_cjob)
    finally:
        bench.stop_operator()
    left = bench.delete_namespaces([ns], bench.args.cleanup_timeout)
    result["componentjob_cleanup_left"] = left

    ns = bench.namespace("job-mem")
    kcm = bench.pids["kube-controller-manager"]

    def make_job(name: str, hang: bool) -> dict:
        return bj.batch_job(name, hang_template if hang else template)

    result["job"] = _measure_side(bench, "job", ns, steps, share, lambda: kcm, make_job)
    result["job_cleanup_left"] = bench.delete_namespaces([ns], bench.args.cleanup_timeout)
    return result


def print_table(m: dict) -> None:
    print(f"\nGOAL 5 - memory: VmRSS with N jobs in the cluster ({m['hanging_share']:.0%} left running on "
          f"{m['gpu_type']} nodes, mostly Pending; the rest Succeeded)\n")
    print(f"{'jobs':>8}{'operator MiB':>16}{'(+workers)':>12}{'KCM MiB':>12}{'op / KCM':>12}"
          f"{'operator +MiB':>16}{'KCM +MiB':>12}")
    c0, j0 = m["componentjob"][0], m["job"][0]
    for c, j in zip(m["componentjob"], m["job"]):
        flag = "" if c["reached"] and j["reached"] else "  (a step was NOT reached: see the progress lines)"
        print(f"{c['jobs']:>8}{c['rss_mib']:>16}{c['tree_rss_mib']:>12}{j['rss_mib']:>12}"
              f"{c['rss_mib'] / j['rss_mib']:>11.2f}x{c['rss_mib'] - c0['rss_mib']:>16.1f}"
              f"{j['rss_mib'] - j0['rss_mib']:>12.1f}{flag}")
    per = [(c, j) for c, j in zip(m["componentjob"], m["job"]) if c["jobs"] > c0["jobs"]]
    if per:
        c, j = per[-1]
        n = c["jobs"] - c0["jobs"]
        print(f"\nper job (last step over the first): operator {1024 * (c['rss_mib'] - c0['rss_mib']) / n:.1f} KiB,"
              f" kube-controller-manager {1024 * (j['rss_mib'] - j0['rss_mib']) / n:.1f} KiB")
    print("KCM: the whole kube-controller-manager (all controllers and informers, cluster-wide); its first row is"
          "\nits RSS after the earlier goals, not a fresh process's.")
