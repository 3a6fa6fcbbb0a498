"""Fixtures of the chaos tier: the integration tier's images and interfaces, reused as they are,
and the table of faults printed at the end of the session.

The chaos tests break the shared control plane on purpose (``testenv.sh restart``), so the
README's test command runs this tier last: whatever a restart disturbs cannot leak into the
other tiers' tests.
"""

from __future__ import annotations

import pytest

from ..integration.conftest import good_image_ref, job_interfaces, push_image, ready_image  # noqa: F401
from .faults import REPORTS, FaultReport, table


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
