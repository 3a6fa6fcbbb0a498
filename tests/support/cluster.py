"""Fixtures and helpers for tests against the local control plane (testenv/), shared by the
integration and end-to-end tiers (registered in tests/conftest.py, so one control plane and one
operator serve a whole test session).

The control plane starts once per test session (``testenv.sh up`` builds the binaries on
first use, then reuses them from the cache). If it was already running, it is reused and
left running; if this session started it, this session stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]


TESTENV = REPO / "testenv" / "scripts" / "testenv.sh"


@dataclass
class Testenv:
    kubeconfig: str
    env: dict[str, str]
    bin_dir: str

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [f"{self.bin_dir}/kubectl", *args],
            input=input,
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc


def _read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="session")
def testenv() -> Testenv:
    was_running = subprocess.run([str(TESTENV), "status"], capture_output=True).returncode == 0
    proc = subprocess.run([str(TESTENV), "up"], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"testenv up failed ({proc.returncode}):\n{proc.stderr[-5000:]}")
    kubeconfig = proc.stdout.strip().splitlines()[-1]
    env = _read_env(Path(kubeconfig).parent / "env")
    env["PATH"] = f"{env['TESTENV_BIN']}:{os.environ['PATH']}"
    env_obj = Testenv(kubeconfig=kubeconfig, env=env, bin_dir=env["TESTENV_BIN"])
    env_obj.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    env_obj.kubectl("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/name=component-operator", "--timeout=60s")
    # The aggregated discovery document (what `kubectl get components` reads) lags a moment behind.
    wait_until(
        lambda: env_obj.kubectl("api-resources", "--categories=components", "-o", "name", check=False).stdout.count("\n") >= 3,
        message="the components category in discovery",
    )
    yield env_obj
    if not was_running and not os.environ.get("TESTENV_KEEP"):
        subprocess.run([str(TESTENV), "down"], capture_output=True, timeout=300)


@pytest.fixture(scope="session")
def api_client(testenv: Testenv) -> client.ApiClient:
    return config.new_client_from_config(config_file=testenv.kubeconfig)


@pytest.fixture(scope="session")
def core(api_client) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture()
def namespace(core) -> str:
    """A fresh namespace per test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def _die_with_parent() -> None:
    """In the child: SIGTERM when pytest dies (even by SIGKILL), so no orphaned operator keeps
    reconciling (and fighting the next test run's operator over the same jobs)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class OperatorProcess:
    """The operator as a separate local process (`component-operator run`), as users run it."""

    def __init__(self, testenv: Testenv, log_path: Path, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None):
        self.testenv = testenv
        self.log_path = log_path
        self.extra_args = extra_args or []
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "component_operator.cli", "run", "--standalone", "--metrics-port", "0", *self.extra_args],
            # Images that follow a tag are re-inspected on a timer; a short period keeps tests short.
            env={**os.environ, **self.testenv.env, "COMPONENT_OPERATOR_IMAGE_RECHECK_SECONDS": "3", **self.env},
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        self.log_file.close()

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


OPERATOR_CONFIG = """
# Tests choose kwok outcomes per job through pod annotations.
podAnnotationPrefixes: ["sim.testenv/"]
resyncSeconds: 5
"""


@pytest.fixture(scope="session")
def operator_process(testenv: Testenv, tmp_path_factory) -> OperatorProcess:
    """The operator with its admission webhook on loopback, as the demo runs it."""
    workdir = tmp_path_factory.mktemp("operator")
    config_path = workdir / "config.yaml"
    config_path.write_text(OPERATOR_CONFIG)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        metrics_port = sock.getsockname()[1]
    args = [
        "--config", str(config_path),
        "--metrics-port", str(metrics_port),
        "--webhook", "local",
        "--webhook-cert", testenv.env["TESTENV_WEBHOOK_CERT"],
        "--webhook-key", testenv.env["TESTENV_WEBHOOK_KEY"],
        "--webhook-ca", testenv.env["TESTENV_CA"],
    ]
    op = OperatorProcess(testenv, workdir / "operator.log", args)
    op.metrics_port = metrics_port
    op.start()
    # Ready once the webhook configuration points at us and a trivial object is admitted.
    wait_until(
        lambda: testenv.kubectl("get", "validatingwebhookconfiguration", "validate.components.grand-challenge.org",
                                check=False).returncode == 0 or (op.proc.poll() is not None and _dead(op)),
        timeout=60,
        message="the operator's webhook configuration",
    )
    yield op
    op.stop()
    print(f"operator log: {op.log_path}")


def _dead(op: "OperatorProcess") -> bool:
    raise AssertionError(f"the operator exited ({op.proc.returncode}):\n{op.log_tail()}")


def ensure_interfaces(custom, specs: dict[str, dict]) -> None:
    """Create cluster-scoped ComponentInterfaces; existing ones (409) are fine."""
    from component_operator import GROUP, VERSION

    for name, spec in specs.items():
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentInterface", "metadata": {"name": name}, "spec": spec}
        try:
            custom.create_cluster_custom_object(GROUP, VERSION, "componentinterfaces", body)
        except client.exceptions.ApiException as err:
            if err.status != 409:
                raise


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.3, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; raise with ``message`` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}; last value: {last!r}")


def load_yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def dump(obj) -> str:
    return json.dumps(obj, indent=2, default=str)
