"""What a fault did to the jobs: the figures each chaos test reports and asserts.

Per fault: jobs submitted, jobs terminal, jobs lost (submitted and, when the run ends, neither
terminal nor following a pod that still runs), pods duplicated (more than one pod for one attempt of one job: the operator
must never create a pod twice), and the time to recover (from the moment the broken part
answered again to the first job that reached a terminal phase after it; the worst over the
test's faults; to the poll's resolution of about a second).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field

import pytest

from component_operator import GROUP, VERSION

from ..support.cluster import TESTENV

TERMINAL = ("Succeeded", "Failed", "Cancelled")
#: Phases in which a job follows a live pod.
FOLLOWING = ("Provisioning", "Provisioned", "Executing")
JOB_LABEL = "components.grand-challenge.org/job"
ATTEMPT_LABEL = "components.grand-challenge.org/attempt"
REPORTS = pytest.StashKey[list]()


@dataclass
class FaultReport:
    fault: str
    submitted: int = 0
    terminal: int = 0
    succeeded: int = 0
    lost: int = 0
    #: Not terminal, correctly: following a pod that is still Pending or Running because the
    #: simulated node dropped the pod's next stage (see ``settle``). Such a job ends at its
    #: scheduling timeout or time limit with that reason; it is not lost.
    stranded: int = 0
    duplicated: int = 0
    faults: int = 0
    recover_seconds: list[float] = field(default_factory=list)
    outage_seconds: list[float] = field(default_factory=list)
    #: Jobs not terminal when the run ended: their status and pods, for the failure message.
    unfinished: dict[str, object] = field(default_factory=dict)


def table(reports: list[FaultReport]) -> list[str]:
    head = f"{'fault':58} {'faults':>6} {'submitted':>9} {'terminal':>8} {'succeeded':>9} {'stranded':>8} {'lost':>4} " \
           f"{'dup pods':>8} {'outage s':>8} {'recover s':>9}"
    lines = [head, "-" * len(head)]
    for r in reports:
        outage = f"{max(r.outage_seconds):.1f}" if r.outage_seconds else "-"
        recover = f"{max(r.recover_seconds):.1f}" if r.recover_seconds else "-"
        lines.append(f"{r.fault:58} {r.faults:>6} {r.submitted:>9} {r.terminal:>8} {r.succeeded:>9} {r.stranded:>8} {r.lost:>4} "
                     f"{r.duplicated:>8} {outage:>8} {recover:>9}")
    return lines


def phases(custom, namespace: str) -> dict[str, str | None]:
    # resourceVersion "0": from the API server's watch cache, cheap enough to poll.
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs",
                                                 resource_version="0")["items"]
    return {i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in items}


def serves(custom, namespace: str) -> bool:
    try:
        phases(custom, namespace)
    except Exception:  # noqa: BLE001 - any refusal or error means: not yet
        return False
    return True


def terminal_count(custom, namespace: str) -> int | None:
    try:
        return sum(1 for p in phases(custom, namespace).values() if p in TERMINAL)
    except Exception:  # noqa: BLE001 - the API is still coming back
        return None


def started_not_ended(custom, namespace: str) -> int:
    """Jobs that have started and not ended: the ones a fault now hits mid-run."""
    return sum(1 for p in phases(custom, namespace).values() if p is not None and p not in TERMINAL)


def restart(component: str, signal: str = "TERM", down_seconds: float = 0) -> float:
    """``testenv.sh restart``: returns once the component answers again; the seconds it was out."""
    started = time.monotonic()
    proc = subprocess.run([str(TESTENV), "restart", component, signal, str(down_seconds)],
                          capture_output=True, text=True, timeout=300 + down_seconds)
    assert proc.returncode == 0, f"testenv.sh restart {component} failed:\n{proc.stderr[-3000:]}"
    return time.monotonic() - started


def until_progress(custom, namespace: str, before: int | None, timeout: float) -> float | None:
    """Seconds until more jobs are terminal than ``before`` (None: none within ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        now = terminal_count(custom, namespace)
        if now is not None and before is not None and now > before:
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def settle(custom, core, namespace: str, report: FaultReport, timeout: float,
           quiet_seconds: float | None = None) -> dict[str, str | None]:
    """Wait for every submitted job to end (or ``timeout``), then fill in the report's counts.

    ``quiet_seconds``: also stop once no job has ended for that long while every job left has
    a pod. kwok, the simulated kubelets, does not retry a pod stage whose status write failed
    (during an etcd outage), so such a pod stays Pending or Running until the job's scheduling
    timeout or time limit (600 s and 300 s at least); a real kubelet keeps syncing its pods'
    status. A job that follows such a pod (``Provisioning``, ``Provisioned`` or ``Executing``,
    its pod Pending or Running) is correct: it is counted ``stranded``, not lost. A job is lost when it is not
    terminal and has no live pod to follow.
    """
    deadline = time.monotonic() + timeout
    seen: dict[str, str | None] = {}
    last_change, last_done = time.monotonic(), -1
    while time.monotonic() < deadline:
        seen = phases(custom, namespace)
        done = sum(1 for p in seen.values() if p in TERMINAL)
        if len(seen) >= report.submitted and done == len(seen):
            break
        if done != last_done:
            last_change, last_done = time.monotonic(), done
        elif quiet_seconds is not None and time.monotonic() - last_change > quiet_seconds and \
                all(p in TERMINAL or p in FOLLOWING for p in seen.values()):
            break
        time.sleep(2)
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/managed-by=component-operator").items
    per_attempt: dict[tuple[str, str], int] = {}
    running: set[str] = set()
    for pod in pods:
        labels = pod.metadata.labels or {}
        key = (labels.get(JOB_LABEL, "?"), labels.get(ATTEMPT_LABEL, "?"))
        per_attempt[key] = per_attempt.get(key, 0) + 1
        if pod.status.phase in ("Pending", "Running") and pod.metadata.deletion_timestamp is None:
            running.add(key[0])
    report.duplicated = sum(n - 1 for n in per_attempt.values() if n > 1)
    report.terminal = sum(1 for p in seen.values() if p in TERMINAL)
    report.succeeded = sum(1 for p in seen.values() if p == "Succeeded")
    report.stranded = sum(1 for n, p in seen.items() if p in FOLLOWING and n in running)
    report.lost = report.submitted - report.terminal - report.stranded
    for name in sorted(n for n, p in seen.items() if p not in TERMINAL)[:5]:
        job = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs", name)
        status = {k: v for k, v in (job.get("status") or {}).items() if k != "kopf"}
        job_pods = [(p.metadata.name, p.status.phase) for p in pods if (p.metadata.labels or {}).get(JOB_LABEL) == name]
        report.unfinished[name] = {"status": status, "pods": job_pods}
    return seen
