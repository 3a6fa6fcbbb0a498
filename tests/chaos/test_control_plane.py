"""The control plane fails under a running operator: nothing is lost.

Each test runs jobs on kwok nodes with the operator as its own process, and in the middle of
the run breaks what the operator depends on (``testenv.sh restart``):

* kube-apiserver stopped and started again, twice: every connection, watch and in-flight
  request of the operator breaks at once, and the API is refused until it is back;
* kube-apiserver down for 90 s, longer than kopf's own retries of one request (about 54 s):
  the operator must keep running and pick up where it was;
* etcd killed (SIGKILL, data kept) and started again: the API server stays up but answers
  errors and its watches end.

What must hold, whatever the timing: every job ends ``Succeeded`` (the fault is the
platform's, never reported as the user's failure), no job is lost, no attempt has a second
pod, the operator process never exited (nobody restarts it here: it rides out the outage with
the bounded retries of ``component_operator.errors``), and no reconcile ended in the
``unexpected`` error class (an unreachable API is a temporary error). Each test also checks
that the fault hit jobs mid-run, so it cannot pass vacuously.
"""

from __future__ import annotations

import random

import pytest

from ..integration.test_jobs import create, make_job
from ..support.cluster import wait_until
from ..support.hostile import scrape_unexpected
from .faults import FaultReport, restart, serves, settle, started_not_ended, terminal_count, until_progress

MID_RUN = 10  # jobs started and not ended when a fault strikes, at least


@pytest.fixture()
def ns(namespace, ready_image, job_interfaces):
    ready_image(namespace, "algo")
    return namespace


def submit(custom, namespace: str, names: list[str], rng: random.Random, report: FaultReport) -> None:
    for name in names:
        create(custom, namespace, make_job(name, after=f"{rng.randint(1, 4)}s"))
        report.submitted += 1


def strike(custom, namespace: str, report: FaultReport, component: str, signal: str = "TERM",
           down_seconds: float = 0) -> int:
    """One fault once enough jobs run; how many were running when it struck."""
    wait_until(lambda: started_not_ended(custom, namespace) >= MID_RUN, timeout=120, message="jobs running")
    hit = started_not_ended(custom, namespace)
    before = terminal_count(custom, namespace)
    report.outage_seconds.append(restart(component, signal, down_seconds))
    report.faults += 1
    wait_until(lambda: serves(custom, namespace), timeout=120, interval=1, message="the API serving again")
    recovered = until_progress(custom, namespace, before, timeout=120)
    assert recovered is not None, "no job ended within 120 s of the API serving again"
    report.recover_seconds.append(recovered)
    return hit


def check(custom, core, namespace: str, report: FaultReport, hits: list[int], operator_process, unexpected_before,
          quiet_seconds: float | None = None):
    settle(custom, core, namespace, report, timeout=300, quiet_seconds=quiet_seconds)
    assert min(hits) >= MID_RUN, f"the faults hit too few running jobs: {hits}"
    assert report.lost == 0, f"{report.lost} of {report.submitted} jobs did not end: {report}"
    assert report.duplicated == 0, f"{report.duplicated} duplicated pods: {report}"
    assert report.succeeded + report.stranded == report.submitted, f"jobs failed because of the fault: {report}"
    if quiet_seconds is None:
        assert report.stranded == 0, f"jobs still running long after the fault: {report}"
    assert report.stranded <= report.submitted // 10, f"too many pods stranded by kwok to say much: {report}"
    assert operator_process.proc.poll() is None, f"the operator exited:\n{operator_process.log_tail()}"
    assert unexpected_before is not None, "the operator's metrics were unreachable before the fault"
    unexpected_after = scrape_unexpected(operator_process.metrics_port)
    assert unexpected_after == unexpected_before, (
        f"reconciles in the unexpected error class went from {unexpected_before} to {unexpected_after}:\n"
        f"{operator_process.log_tail()}")


def faults_between_waves(custom, core, namespace: str, operator_process, report: FaultReport, *, prefix: str,
                         waves: list[int], seed: int, strike_args: dict, quiet_seconds: float | None = None) -> None:
    """Submit ``waves`` of jobs with one fault after each wave but the last, then check."""
    rng = random.Random(seed)
    unexpected_before = scrape_unexpected(operator_process.metrics_port)
    start, hits = 0, []
    for index, size in enumerate(waves):
        submit(custom, namespace, [f"{prefix}-{i:03d}" for i in range(start, start + size)], rng, report)
        start += size
        if index < len(waves) - 1:
            hits.append(strike(custom, namespace, report, **strike_args))
    check(custom, core, namespace, report, hits, operator_process, unexpected_before, quiet_seconds)


def test_jobs_survive_two_apiserver_restarts(custom, core, ns, operator_process, fault_report):
    report = fault_report(FaultReport("kube-apiserver restarted (SIGTERM), twice"))
    faults_between_waves(custom, core, ns, operator_process, report, prefix="api", waves=[50, 50, 50], seed=11,
                         strike_args={"component": "kube-apiserver"})


def test_jobs_survive_a_long_apiserver_outage(custom, core, ns, operator_process, fault_report):
    report = fault_report(FaultReport("kube-apiserver down 90 s (beyond kopf's request retries)"))
    faults_between_waves(custom, core, ns, operator_process, report, prefix="long", waves=[50, 30], seed=17,
                         strike_args={"component": "kube-apiserver", "down_seconds": 90})


def test_jobs_survive_etcd_killed_and_restarted(custom, core, ns, operator_process, fault_report):
    report = fault_report(FaultReport("etcd killed (SIGKILL) and restarted, data kept"))
    # kwok may drop a pod's outcome whose write failed while etcd was gone (``faults.settle``).
    faults_between_waves(custom, core, ns, operator_process, report, prefix="etcd", waves=[60, 40], seed=13,
                         strike_args={"component": "etcd", "signal": "KILL"}, quiet_seconds=30)
