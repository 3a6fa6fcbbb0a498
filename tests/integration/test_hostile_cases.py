"""The hostile cases of issue 12, one test each, against the real API server and the operator
process: each object ends in a clear state with the message a user needs, and an unrelated
valid job keeps running meanwhile. (The property-based storm is test_hostile_inputs.py.)"""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from component_operator import GROUP, VERSION

from .conftest import ensure_interfaces, wait_until
from .test_jobs import create, get_job, make_job, wait_phase

REDOS_SCHEMA = {"type": "string", "pattern": "^(a+)+$"}
REDOS_VALUE = "a" * 31 + "!"


@pytest.fixture()
def ns(namespace, ready_image, job_interfaces):
    ready_image(namespace, "algo")
    return namespace


def _iface(name: str, spec: dict) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentInterface", "metadata": {"name": name}, "spec": spec}


def _delete_iface(custom, name: str) -> None:
    try:
        custom.delete_cluster_custom_object(GROUP, VERSION, "componentinterfaces", name)
    except client.exceptions.ApiException as err:
        if err.status != 404:
            raise


def test_catastrophic_pattern_does_not_stall_other_jobs(custom, ns, operator_process):
    # The job comes first (interfaces that do not exist yet are admitted: GitOps applies in any
    # order), so the webhook never sees the value with the schema: the reconciler must cope.
    name = f"redos-{ns}"[:60]
    try:
        create(custom, ns, make_job("redos", inputs=[{"interface": name, "value": REDOS_VALUE}]))
        custom.create_cluster_custom_object(GROUP, VERSION, "componentinterfaces",
                                            _iface(name, {"kind": "String", "relativePath": f"{name}.json",
                                                          "schema": REDOS_SCHEMA}))
        time.sleep(1)
        create(custom, ns, make_job("bystander"))
        bystander = wait_phase(custom, ns, "bystander", "Succeeded", timeout=60)
        assert bystander["reason"] == "Succeeded"
        status = wait_phase(custom, ns, "redos", "Cancelled", timeout=60)
        assert status["reason"] == "InvalidInputs"
        assert "must match the pattern" in " ".join(status["detailedErrorMessage"].values())
    finally:
        _delete_iface(custom, name)


def test_unsafe_input_prefix_is_refused_by_the_api_server(custom, ns):
    with pytest.raises(client.exceptions.ApiException) as refused:
        create(custom, ns, make_job("prefix", inputPrefixes={"it-bbox": "../../etc"}))
    assert refused.value.status == 422
    assert "spec.inputPrefixes" in refused.value.body and "should match" in refused.value.body


def test_interface_deleted_after_validation_fails_the_job(custom, ns, operator_process):
    name = f"gone-{ns}"[:60]
    ensure_interfaces(custom, {name: {"kind": "Float", "relativePath": f"{name}.json"}})
    wait_until(lambda: (custom.get_cluster_custom_object(GROUP, VERSION, "componentinterfaces", name).get("status") or {})
               .get("conditions"), message="interface checked")
    # The image does not exist yet, so the job waits in Queued after its inputs were validated.
    create(custom, ns, make_job("orphan", image="later", inputs=[{"interface": name, "value": 0.5}]))
    wait_phase(custom, ns, "orphan", "Queued")
    _delete_iface(custom, name)
    status = wait_phase(custom, ns, "orphan", "Failed", timeout=60)
    assert status["reason"] == "InterfaceNotFound"
    assert "was deleted after the job's inputs were validated" in status["detailedErrorMessage"][name]


def test_image_that_never_comes_fails_after_the_scheduling_timeout(custom, ns, operator_process):
    create(custom, ns, make_job("noimage", image="never", schedulingTimeoutSeconds=10))
    status = wait_phase(custom, ns, "noimage", "Failed", timeout=60)
    assert status["reason"] == "ImageNotReady"
    assert status["errorMessage"] == "Container Image never was not ready to be used"


def test_interface_of_unknown_kind_is_refused_at_admission(custom, operator_process):
    # Without the webhook (failurePolicy Ignore) it would be stored; the reconciler then ends a
    # job that outputs it Cancelled/InvalidInputs (tests/unit/test_error_bounds.py).
    name = "weird-kind-probe"
    with pytest.raises(client.exceptions.ApiException) as refused:
        custom.create_cluster_custom_object(GROUP, VERSION, "componentinterfaces",
                                            _iface(name, {"kind": "No Such Kind", "relativePath": f"{name}.json"}))
    assert "Unknown interface kind 'No Such Kind'" in refused.value.body


def test_name_collision_with_a_foreign_object_fails_with_the_name(custom, core, ns, operator_process):
    from component_operator.planning import names

    core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=names.inputs_configmap_name("clash", 0)), data={"mine": "yes"}))
    create(custom, ns, make_job("clash"))
    status = wait_phase(custom, ns, "clash", "Failed")
    assert status["reason"] == "NameCollision"
    assert names.inputs_configmap_name("clash", 0) in status["errorMessage"]
    assert "not owned by this job" in status["errorMessage"]
    # the foreign object is untouched
    assert core.read_namespaced_config_map(names.inputs_configmap_name("clash", 0), ns).data == {"mine": "yes"}


def test_too_large_json_inputs_fail_with_the_sizes(custom, ns, operator_process):
    name = f"big-{ns}"[:60]
    try:
        ensure_interfaces(custom, {name: {"kind": "Anything", "relativePath": f"{name}.json"}})
        create(custom, ns, make_job("big", inputs=[{"interface": name, "value": {"blob": "z" * 520_000}}]))
        status = wait_phase(custom, ns, "big", "Failed", timeout=60)
        assert status["reason"] == "InputsTooLarge"
        assert "over the limit of" in status["errorMessage"]
    finally:
        _delete_iface(custom, name)


def test_no_case_counted_an_unexpected_error(operator_process):
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{operator_process.metrics_port}/metrics", timeout=5).read().decode()
    unexpected = [line for line in text.splitlines()
                  if line.startswith("component_operator_reconcile_errors_total") and 'error="unexpected"' in line]
    assert all(line.rstrip().endswith(" 0.0") for line in unexpected), unexpected


def test_value_nested_deeper_than_python_parses_by_default_keeps_the_watch_alive(custom, testenv, ns, operator_process):
    # The API server admits JSON nested up to 10,000 levels; Python's json stops at 1,000 by
    # default, and a watch event kopf cannot decode stopped its stream for every ComponentJob.
    import json

    name = f"deep-{ns}"[:60]
    body = make_job("deep", inputs=[{"interface": name, "value": "DEEP"}])
    body["metadata"]["namespace"] = ns
    text = json.dumps(body).replace('"DEEP"', "[" * 5000 + "0" + "]" * 5000)  # written by hand: json.dumps would recurse
    try:
        testenv.kubectl("create", "-f", "-", input=text)
        ensure_interfaces(custom, {name: {"kind": "Anything", "relativePath": f"{name}.json",
                                          "schema": {"type": "array"}}})
        create(custom, ns, make_job("after-deep"))
        assert wait_phase(custom, ns, "after-deep", "Succeeded", timeout=60)["reason"] == "Succeeded"
        done = wait_until(lambda: _phase_reason(testenv, ns, "deep"), timeout=60, message="job deep terminal")
        assert done == ("Cancelled", "InvalidSpec")
        message = testenv.kubectl("get", "componentjob", "deep", "-n", ns, "-o", "jsonpath={.status.errorMessage}").stdout
        assert "spec.inputs[0].value" in message and "more than the limit of 64 levels" in message
    finally:
        _delete_iface(custom, name)


def _phase_reason(testenv, ns: str, name: str):
    out = testenv.kubectl("get", "componentjob", name, "-n", ns, "-o",
                          "jsonpath={.status.phase},{.status.reason}", check=False).stdout.strip()
    phase, _, reason = out.partition(",")
    return (phase, reason) if phase in ("Cancelled", "Failed", "Succeeded") else None
