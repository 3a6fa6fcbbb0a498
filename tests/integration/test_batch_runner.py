"""The Python QuerySetRunner and ``component-operator batch`` against the real control plane, with
the operator running as its own process and kwok simulating the job pods.

We test these aspects:
* a runner over 8 items, 3 of which already ran, finds them by digest, starts the other 5 as one
  ComponentBatch, logs django-analyses' stages with those counts, and the batch ends Complete;
* ``run(dry=True)`` reads but creates nothing;
* a second ``run()`` finds nothing pending;
* the image must be Ready (a clear error otherwise);
* the command line: ``batch run --dry-run`` prints the operator's plan and leaves nothing behind,
  ``batch run`` is idempotent, ``batch status`` and ``batch wait`` report and follow the batch, with
  the documented exit codes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from component_operator import API_VERSION, GROUP, VERSION
from component_operator.batch import ImageNotReadyError, QuerySetRunner

from .conftest import ensure_interfaces, wait_until

CLI = str(Path(sys.executable).with_name("component-operator"))
CONFIG = {"it-prob": 0.5}
SETTINGS = {"requiresMemoryGB": 4, "timeLimit": 300}
SUCCEED = {"sim.testenv/outcome": "succeed", "sim.testenv/after": "1s"}
BATCH_LABEL = "components.grand-challenge.org/batch"


@pytest.fixture(scope="session")
def count_interface(custom):
    """A JSON Integer interface for the items (job_interfaces has a Float, it-prob, for the configuration)."""
    ensure_interfaces(custom, {"it-count": {"kind": "Integer", "relativePath": "it-count.json"}})
    return "it-count"


@pytest.fixture()
def ns(namespace, ready_image, job_interfaces, count_interface):
    ready_image(namespace, "algo")
    return namespace


def counting_runner(namespace: str, **attributes):
    class Counting(QuerySetRunner):
        IMAGE = "algo"
        NAMESPACE = namespace
        CONFIGURATION = CONFIG
        INPUT_KEY = "it-count"
        JOB_SETTINGS = {**SETTINGS, "parallelism": 3}
        ANNOTATIONS = SUCCEED
        DATA = range(8)
        DATA_NAME = "count"

        def filter_queryset(self, queryset, log_level=logging.INFO):
            self.log_filter_start(log_level)
            self.log_filter_end(len(queryset), log_level)
            return queryset

    return type("Counting", (Counting,), attributes)


def run_job(custom, namespace, name, value):
    body = {
        "apiVersion": API_VERSION,
        "kind": "ComponentJob",
        "metadata": {"name": name, "annotations": SUCCEED},
        "spec": {"image": "algo", **SETTINGS,
                 "inputs": [{"interface": "it-count", "value": value}, {"interface": "it-prob", "value": CONFIG["it-prob"]}]},
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs", body)


def wait_succeeded_with_digest(custom, namespace, name):
    def done():
        status = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs", name).get("status") or {}
        return status if status.get("phase") == "Succeeded" and status.get("inputsDigest") else None

    return wait_until(done, timeout=90, message=f"job {name} Succeeded with status.inputsDigest")


def batches(custom, namespace):
    return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "componentbatches")["items"]


def get_batch(custom, namespace, name):
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "componentbatches", name)


def cli(testenv, *args, timeout=180):
    return subprocess.run([CLI, "batch", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **testenv.env})


def logged(caplog):
    return "\n".join(r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------
# The Python runner
# ---------------------------------------------------------------------------------------


def test_runner_skips_what_ran_and_starts_the_rest(api_client, custom, ns, operator_process, caplog):
    for value in range(3):
        run_job(custom, ns, f"done-{value}", value)
    done = {value: wait_succeeded_with_digest(custom, ns, f"done-{value}") for value in range(3)}
    runner = counting_runner(ns)(api_client)
    # The runner's digest of an item is the one the operator recorded for the same run.
    assert runner.item_digest(0) == done[0]["inputsDigest"]
    assert runner.item_digest(3) not in {s["inputsDigest"] for s in done.values()}

    caplog.set_level(logging.INFO, logger="component_operator.batch")
    dry = runner.run(dry=True, prep_progressbar=False)
    assert (dry.candidates, dry.existing, dry.pending, dry.inputs, dry.failures) == (8, 3, 5, 5, 0)
    assert dry.batch_name is None and batches(custom, ns) == []
    assert "Dry run: would have started algo execution over 5 count instances" in logged(caplog)
    assert "Successfully started" not in logged(caplog)

    caplog.clear()
    result = runner.run(prep_progressbar=False)
    text = logged(caplog)
    for expected in ["8 instances found.", "8 execution candidates found.", "3 existing runs found.",
                     "5 instances pending execution.", "5 input specifications prepared.",
                     "Successfully started algo execution over 5 count instances", f"{ns}/{result.batch_name}"]:
        assert expected in text, expected
    assert (result.existing, result.pending, result.inputs) == (3, 5, 5)
    assert result.batch_name == runner.get_batch_name()
    batch = get_batch(custom, ns, result.batch_name)
    assert batch["spec"]["items"] == [{"value": v} for v in range(3, 8)]
    assert batch["spec"]["inputs"] == [{"interface": "it-prob", "value": 0.5}]
    assert batch["metadata"]["annotations"]["sim.testenv/outcome"] == "succeed"

    # From here on the operator's batch side answers: conditions, counts, the jobs it made.
    assert runner.wait(timeout=180, progressbar=False) == "Complete"
    status = get_batch(custom, ns, result.batch_name)["status"]
    assert status["counts"]["succeeded"] == 5 and status["counts"]["existing"] == 0
    assert status["counts"]["total"] == 5 and status["counts"]["failed"] == 0
    assert status["progress"] == "5/5"
    jobs = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "componentjobs",
                                                label_selector=f"{BATCH_LABEL}={result.batch_name}")["items"]
    assert len(jobs) == 5

    caplog.clear()
    again = runner.run(prep_progressbar=False)
    assert (again.existing, again.pending, again.batch_name) == (8, 0, None)
    assert "Congratulations! No pending count instances were detected in the dataset" in logged(caplog)


def test_runner_needs_a_ready_image(api_client, custom, namespace, testenv):
    body = {"apiVersion": API_VERSION, "kind": "ComponentImage", "metadata": {"name": "missing"},
            "spec": {"image": f"{testenv.env['TESTENV_REGISTRY']}/tests/does-not-exist:v1", "insecureRegistry": True}}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "componentimages", body)
    runner = counting_runner(namespace, IMAGE="missing")(api_client)
    with pytest.raises(ImageNotReadyError, match=f"ComponentImage {namespace}/missing is not usable"):
        runner.run(dry=True, prep_progressbar=False)
    assert batches(custom, namespace) == []


# ---------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------


def write_manifest(path: Path, name: str, values, annotations=None, **spec) -> str:
    document = {
        "apiVersion": API_VERSION,
        "kind": "ComponentBatch",
        "metadata": {"name": name, "annotations": annotations or SUCCEED},
        "spec": {"image": "algo", "itemInterface": "it-count", **SETTINGS,
                 "inputs": [{"interface": "it-prob", "value": CONFIG["it-prob"]}],
                 "items": [{"value": v} for v in values], **spec},
    }
    path.write_text(yaml.safe_dump(document))
    return str(path)


def test_cli_dry_run_run_status_wait(testenv, custom, ns, operator_process, tmp_path):
    run_job(custom, ns, "done-0", 0)
    wait_succeeded_with_digest(custom, ns, "done-0")
    path = write_manifest(tmp_path / "nightly.yaml", "cli-nightly", range(4), parallelism=2)

    plan = cli(testenv, "run", "--dry-run", "-f", path, "-n", ns, "--timeout", "60")
    assert plan.returncode == 0, plan.stderr
    for count, value in [("found", 4), ("total", 4), ("existing", 1), ("pending", 3), ("invalid", 0)]:
        assert re.search(rf"^\s+{count}\s+{value}\s", plan.stdout, re.M), (count, plan.stdout)
    assert batches(custom, ns) == []  # the suspended twin is gone

    started = cli(testenv, "run", "-f", path, "-n", ns, "--wait", "--timeout", "180", "--no-progress")
    assert started.returncode == 0, started.stderr
    assert started.stdout.splitlines()[0] == "cli-nightly"
    assert "cli-nightly: Complete" in started.stderr
    generation = get_batch(custom, ns, "cli-nightly")["metadata"]["generation"]
    again = cli(testenv, "run", "-f", path, "-n", ns)
    assert again.returncode == 0 and again.stdout.strip() == "cli-nightly"
    assert get_batch(custom, ns, "cli-nightly")["metadata"]["generation"] == generation  # applying twice: no change

    shown = cli(testenv, "status", "cli-nightly", "-n", ns, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["counts"]["succeeded"] == 3 and document["counts"]["existing"] == 1
    assert document["counts"]["total"] == 4 and document["progress"] == "4/4"
    assert {c["type"]: c["status"] for c in document["conditions"]}["Complete"] == "True"
    table = cli(testenv, "status", "cli-nightly", "-n", ns)
    assert table.returncode == 0 and "succeeded 3" in table.stdout and "Complete" in table.stdout

    assert cli(testenv, "wait", "cli-nightly", "-n", ns, "--timeout", "30", "--no-progress").returncode == 0
    assert cli(testenv, "wait", "cli-nightly", "-n", ns, "--for", "Failed", "--timeout", "30").returncode == 1
    assert cli(testenv, "wait", "no-such-batch", "-n", ns, "--timeout", "5").returncode == 4


def test_cli_wait_times_out_on_a_hanging_batch(testenv, ns, operator_process, tmp_path):
    path = write_manifest(tmp_path / "hang.yaml", "hangs", [42], annotations={"sim.testenv/outcome": "hang"})
    waited = cli(testenv, "run", "-f", path, "-n", ns, "--wait", "--timeout", "5", "--no-progress")
    assert waited.returncode == 3, waited.stderr
    assert "neither Complete nor Failed after 5s" in waited.stderr


def test_cli_dry_run_lists_invalid_items(testenv, custom, ns, operator_process, tmp_path):
    """An item whose object cannot be read (no sha256, so the operator must hash it) is invalid in the plan."""
    path = tmp_path / "invalid.yaml"
    write_manifest(path, "with-invalid", [1])
    document = yaml.safe_load(path.read_text())
    document["spec"]["items"].append({"file": {"uri": f"s3://no-such-bucket-{ns}/missing.json"}})
    path.write_text(yaml.safe_dump(document))
    plan = cli(testenv, "run", "--dry-run", "-f", str(path), "-n", ns, "--timeout", "60")
    assert plan.returncode == 1, (plan.stdout, plan.stderr)
    assert re.search(r"^\s+invalid\s+1\s", plan.stdout, re.M) and "Invalid items (first 1 of 1)" in plan.stdout
    assert "missing.json" in plan.stdout
    assert batches(custom, ns) == []
