"""Prometheus metrics of the operator (names follow Prometheus conventions: base units,
``_total`` for counters, ``_seconds`` for durations)."""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)

JOB_TRANSITIONS = Counter(
    "component_operator_job_transitions_total",
    "ComponentJob phase transitions written by the operator.",
    ["from_phase", "to_phase"],
)
JOB_EXEC_DURATION = Histogram(
    "component_operator_job_exec_duration_seconds",
    "Wall time of the algorithm container of finished ComponentJobs.",
    ["outcome"],
    buckets=_DURATION_BUCKETS,
)
JOB_QUEUE_DURATION = Histogram(
    "component_operator_job_queue_duration_seconds",
    "Time from ComponentJob creation to its algorithm container starting.",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
JOB_TOTAL_DURATION = Histogram(
    "component_operator_job_total_duration_seconds",
    "Time from ComponentJob creation to its terminal phase.",
    ["phase"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 86400),
)
RECONCILE_ERRORS = Counter(
    "component_operator_reconcile_errors_total",
    "Reconciliations that raised, by resource and error class.",
    ["resource", "error"],
)
RECONCILE_DURATION = Histogram(
    "component_operator_reconcile_duration_seconds",
    "Time spent in one reconciliation.",
    ["resource"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class PhaseTracker:
    """Current phase of every ComponentJob seen, exported as ``component_operator_jobs``."""

    def __init__(self) -> None:
        self.phase_of: dict[tuple[str, str], str] = {}

    def observe(self, key: tuple[str, str], phase: str | None) -> None:
        if phase is None:
            self.phase_of.pop(key, None)
        else:
            self.phase_of[key] = phase

    def collect(self):
        family = GaugeMetricFamily("component_operator_jobs", "ComponentJobs by phase.", labels=["phase"])
        counts: dict[str, int] = {}
        for phase in self.phase_of.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in sorted(counts.items()):
            family.add_metric([phase], count)
        yield family


PHASES = PhaseTracker()
REGISTRY.register(PHASES)


def serve(port: int, addr: str = "127.0.0.1") -> None:
    if port:
        start_http_server(port, addr=addr)
