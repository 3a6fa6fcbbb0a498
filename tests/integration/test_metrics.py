"""The operator's Prometheus endpoint reports jobs by phase, transitions, durations and errors."""

from __future__ import annotations

import urllib.request

from .conftest import wait_until
from .test_jobs import create, make_job, wait_phase


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_metrics_after_a_job(custom, namespace, ready_image, job_interfaces, operator_process):
    ready_image(namespace, "algo")
    create(custom, namespace, make_job("metered"))
    wait_phase(custom, namespace, "metered", "Succeeded")
    text = wait_until(
        lambda: (t := scrape(operator_process.metrics_port)) and 'to_phase="Succeeded"' in t and t,
        message="a Succeeded transition in the metrics",
    )
    for name in (
        "component_operator_jobs{",
        "component_operator_job_transitions_total{",
        "component_operator_job_exec_duration_seconds_bucket{",
        "component_operator_job_queue_duration_seconds_bucket{",
        "component_operator_job_total_duration_seconds_bucket{",
        "component_operator_reconcile_duration_seconds_bucket{",
        "# TYPE component_operator_reconcile_errors_total counter",
    ):
        assert name in text, name
    assert 'component_operator_jobs{phase="Succeeded"}' in text
