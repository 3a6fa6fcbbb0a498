"""The operator SIGKILLed every few seconds while 1000 jobs run on kwok nodes: nothing is lost.

A kill comes ``KILL_EVERY_SECONDS`` after the restarted operator has made progress (a job
ended), until every job has ended or ``MAX_KILLS`` kills.

Every kill drops whatever the operator held in memory (its watch caches, the work queue,
half-done reconciles between a pod's create and the status write that records it). What must
hold: every job ends ``Succeeded``, no job is lost, no attempt of any job has a second pod (pod
names are deterministic; a create that meets an existing pod is a 409, checked for ownership),
and each restarted operator makes progress before the next kill.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ..integration.test_jobs import create, make_job
from .faults import FaultReport, settle, terminal_count, until_progress

JOBS = 1000
KILL_EVERY_SECONDS = 4.0
MAX_KILLS = 20


@pytest.fixture()
def ns(namespace, ready_image, job_interfaces):
    ready_image(namespace, "algo")
    return namespace


def test_1000_jobs_survive_sigkill_every_few_seconds(custom, core, ns, operator_process, fault_report):
    report = fault_report(FaultReport(f"operator SIGKILLed every {KILL_EVERY_SECONDS:.0f} s, {JOBS} jobs"))
    rng = random.Random(19)
    bodies = [make_job(f"kill-{i:04d}", after=f"{rng.randint(1, 3)}s", requiresMemoryGB=1) for i in range(JOBS)]
    created = threading.Event()
    lock = threading.Lock()

    def submit_all():
        def one(body):
            create(custom, ns, body)
            with lock:
                report.submitted += 1
        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(one, bodies))
        finally:
            created.set()

    submitter = threading.Thread(target=submit_all, name="submit", daemon=True)
    submitter.start()
    while report.faults < MAX_KILLS:
        time.sleep(KILL_EVERY_SECONDS)
        done = terminal_count(custom, ns)
        if created.is_set() and done is not None and done >= JOBS:
            break
        operator_process.kill(signal.SIGKILL)
        report.faults += 1
        operator_process.start()
        recovered = until_progress(custom, ns, terminal_count(custom, ns), timeout=KILL_EVERY_SECONDS * 4)
        assert recovered is not None, f"no job ended within {KILL_EVERY_SECONDS * 4:.0f} s of restart {report.faults}"
        report.recover_seconds.append(recovered)
    submitter.join(timeout=300)
    assert created.is_set(), "the submitting thread did not finish"
    assert report.submitted == JOBS, f"{JOBS - report.submitted} creates failed"
    settle(custom, core, ns, report, timeout=600)
    assert report.faults >= 4, f"only {report.faults} kills landed during the run"
    assert report.lost == 0, f"{report.lost} of {report.submitted} jobs did not end: {report}"
    assert report.duplicated == 0, f"{report.duplicated} duplicated pods: {report}"
    assert report.succeeded == report.submitted, f"jobs failed because of the kills: {report}"
