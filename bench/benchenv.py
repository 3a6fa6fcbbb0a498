"""Preflight shared by every cluster benchmark: the CRDs installed, and the testenv's mode known.

    python bench/benchenv.py [--require-bench]

Why it exists: `make testenv-up` starts a control plane without the project's CRDs (the tests
install them themselves), so a benchmark run on a fresh environment failed with a 404; and an
environment started without TESTENV_BENCH=1 keeps the API rate limits (API server inflight limits
and priority-and-fairness on, controller-manager and scheduler at client-go's 20-50 QPS), under
which the controller comparison measures the limits, not the controllers. `testenv.sh up` reuses a
healthy environment whatever mode it was started in, so the mode is read from the running
processes' own command lines (/proc) and printed in every benchmark's header.

With --require-bench it exits 3 when the running environment keeps the rate limits (the Makefile's
bench targets use that to refuse, unless BENCH_ALLOW_LIMITS=1).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def testenv_env() -> dict[str, str]:
    """The exports of `testenv.sh env` (the running environment)."""
    out = subprocess.run([str(REPO / "testenv/scripts/testenv.sh"), "env"], capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


def install_crds(env: dict[str, str]) -> None:
    """The project's CRDs, as the tests install them (server-side apply owns every field), then
    wait until they are Established (a create right after the apply could still 404)."""
    kubectl = [str(Path(env.get("TESTENV_BIN", "")) / "kubectl") if env.get("TESTENV_BIN") else "kubectl",
               "--kubeconfig", env["KUBECONFIG"]]
    if not Path(kubectl[0]).exists():
        kubectl[0] = "kubectl"
    subprocess.run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds")],
                   check=True, capture_output=True, text=True)
    subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds")],
                   check=True, capture_output=True, text=True)


def _cmdline(env: dict[str, str], component: str) -> list[str]:
    try:
        pid = int(Path(env["TESTENV_DIR"], f"{component}.pid").read_text())
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except (OSError, ValueError, KeyError):
        return []


def _flag(args: list[str], name: str) -> str | None:
    for arg in args:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def testenv_mode(env: dict[str, str]) -> dict:
    """What the running control plane enforces, read from its processes' command lines:
    ``bench`` is True when the API server's inflight limits and APF are off and the
    controller-manager's client QPS is lifted (TESTENV_BENCH=1), None when unknown."""
    apiserver = _cmdline(env, "kube-apiserver")
    kcm = _cmdline(env, "kube-controller-manager")
    scheduler_qps = scheduler_burst = None
    try:
        text = Path(env["TESTENV_DIR"], "scheduler.yaml").read_text()
        scheduler_qps = (re.search(r"^\s*qps:\s*(\S+)", text, re.M) or [None, None])[1]
        scheduler_burst = (re.search(r"^\s*burst:\s*(\S+)", text, re.M) or [None, None])[1]
    except (OSError, KeyError):
        pass
    mode = {
        "apiserver_max_requests_inflight": _flag(apiserver, "max-requests-inflight"),
        "apiserver_max_mutating_requests_inflight": _flag(apiserver, "max-mutating-requests-inflight"),
        "apiserver_priority_and_fairness": _flag(apiserver, "enable-priority-and-fairness") or "true (default)",
        "kcm_kube_api_qps": _flag(kcm, "kube-api-qps"), "kcm_kube_api_burst": _flag(kcm, "kube-api-burst"),
        "kcm_concurrent_job_syncs": _flag(kcm, "concurrent-job-syncs"),
        "scheduler_qps": scheduler_qps, "scheduler_burst": scheduler_burst,
    }
    if not apiserver or not kcm:
        mode["bench"] = None
    else:
        qps = float(mode["kcm_kube_api_qps"] or 20)
        mode["bench"] = mode["apiserver_max_requests_inflight"] == "0" and qps >= 500
    return mode


def describe(mode: dict) -> str:
    """One header line saying which mode the benchmark ran in."""
    if mode["bench"] is None:
        what = "UNKNOWN (the control plane's processes are not readable here)"
    elif mode["bench"]:
        what = "bench (TESTENV_BENCH=1: API rate limits lifted)"
    else:
        what = ("RATE-LIMITED (started without TESTENV_BENCH=1): the figures measure client-side and API server "
                "limits, not the controllers; restart with `make testenv-down && make bench`")
    return (f"testenv mode: {what}\n  kube-apiserver max-requests-inflight={mode['apiserver_max_requests_inflight']} "
            f"max-mutating={mode['apiserver_max_mutating_requests_inflight']} APF={mode['apiserver_priority_and_fairness']}; "
            f"kube-controller-manager qps={mode['kcm_kube_api_qps']} burst={mode['kcm_kube_api_burst']} "
            f"concurrent-job-syncs={mode['kcm_concurrent_job_syncs']}; "
            f"kube-scheduler qps={mode['scheduler_qps']} burst={mode['scheduler_burst']}")


def preflight(env: dict[str, str] | None = None, *, quiet: bool = False) -> dict:
    """Install the CRDs and return (and unless quiet, print) the mode."""
    env = env or testenv_env()
    install_crds(env)
    mode = testenv_mode(env)
    if not quiet:
        print(describe(mode), flush=True)
    return mode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--require-bench", action="store_true",
                        help="exit 3 when the running environment keeps the API rate limits")
    args = parser.parse_args()
    mode = preflight()
    if args.require_bench and not mode["bench"] and not os.environ.get("BENCH_ALLOW_LIMITS"):
        print("\nbench: the running testenv was started WITHOUT TESTENV_BENCH=1 (API rate limits on); the benchmarks'\n"
              "goals are defined with the limits lifted. It is not restarted for you, since other work may use it:\n"
              "  make testenv-down && make bench        (restarts it in bench mode)\n"
              "  BENCH_ALLOW_LIMITS=1 make bench         (runs anyway; every header says RATE-LIMITED)",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
