"""Shared test configuration: paths and tier markers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# One control plane, one set of API clients and one operator for the whole session, whichever
# tiers run (the fixtures start nothing unless a test asks for them).
from .support.cluster import api_client, core, custom, namespace, operator_process, testenv  # noqa: E402,F401


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if "integration" in path.parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in path.parts:
            item.add_marker(pytest.mark.e2e)
        elif "chaos" in path.parts:
            item.add_marker(pytest.mark.chaos)
