"""Fixtures of the chaos tier: the integration tier's images and interfaces, reused as they are,
and the table of faults printed at the end of the session.

The chaos tests break the shared control plane on purpose (``testenv.sh restart``) under the
session's own operator process (``operator_process``). The README's test command runs them
after the integration tier and before the end-to-end tier, whose session fixture swaps that
operator for a data-plane one for the rest of the session; ``after_the_faults`` hands the next
tier a control plane whose nodes are all Ready again.
"""

from __future__ import annotations

import pytest

from ..integration.conftest import good_image_ref, job_interfaces, push_image, ready_image  # noqa: F401
from .faults import REPORTS, FaultReport, table


@pytest.fixture(autouse=True)
def sole_operator(operator_process):
    """The tests kill and read the session's operator: it must be the one running."""
    if operator_process.proc is None or operator_process.proc.poll() is not None:
        pytest.fail("the session's operator is not running (the e2e tier swaps it for its own until the "
                    "session ends): run tests/chaos before tests/e2e, as `make test` does")
    yield


@pytest.fixture(scope="session", autouse=True)
def after_the_faults(testenv):
    """After the tier: every node Ready again (a 90 s API outage outlasts the node grace period)."""
    yield
    testenv.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=180s")


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
