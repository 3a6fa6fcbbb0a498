"""Fixtures of the chaos tier: the integration tier's images and interfaces, reused as they are,
and the table of faults printed at the end of the session.

The chaos tests break the shared control plane on purpose (``testenv.sh restart``) under the
session's own operator process (``operator_process``). The README's test command runs them
after the integration tier and before the end-to-end tier, whose session fixture swaps that
operator for a data-plane one for the rest of the session; ``nodes_ready`` starts each test,
and hands the next tier, a control plane whose nodes are all Ready again.
"""

from __future__ import annotations

import pytest

from ..integration.conftest import good_image_ref, job_interfaces, push_image, ready_image  # noqa: F401
from ..support.cluster import wait_until
from .faults import REPORTS, FaultReport, table

#: Taints the node lifecycle controller puts on a node that stopped reporting.
LIFECYCLE_TAINTS = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


@pytest.fixture(autouse=True)
def sole_operator(operator_process):
    """The tests kill and read the session's operator: it must be the one running."""
    if operator_process.proc is None or operator_process.proc.poll() is not None:
        pytest.fail("the session's operator is not running (the e2e tier swaps it for its own until the "
                    "session ends): run tests/chaos before tests/e2e, as `make test` does")
    yield


@pytest.fixture(autouse=True)
def nodes_ready(core):
    """Before and after each test: every node Ready and untainted by the node lifecycle
    controller. A long API outage outlasts the node grace period (40 s here), so the nodes are
    NotReady, and tainted unschedulable, until their agents report again; the next test (or
    tier) must not start on such a cluster."""
    wait_until(lambda: all_nodes_ready(core), timeout=180, interval=1, message="every node Ready and untainted")
    yield
    wait_until(lambda: all_nodes_ready(core), timeout=180, interval=1, message="every node Ready and untainted")


def all_nodes_ready(core) -> bool:
    try:
        nodes = core.list_node().items
    except Exception:  # noqa: BLE001 - the API is still coming back
        return False
    for node in nodes:
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        tainted = any(t.key in LIFECYCLE_TAINTS for t in node.spec.taints or [])
        if not ready or tainted:
            return False
    return bool(nodes)
@pytest.fixture()
def fault_report(request):
    """Record a test's FaultReport for the session's table (kept even when the test fails)."""
    def record(report: FaultReport) -> FaultReport:
        request.config.stash.setdefault(REPORTS, []).append(report)
        return report
    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reports = config.stash.get(REPORTS, [])
    if reports:
        terminalreporter.write_sep("=", "faults: jobs submitted, terminal, lost, duplicated pods, recovery")
        for line in table(reports):
            terminalreporter.write_line(line)
