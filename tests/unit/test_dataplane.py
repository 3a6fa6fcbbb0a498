"""The data-plane wiring of a job pod: init container, agent command, Secret, NetworkPolicy, invocation."""

from __future__ import annotations

import json

import pytest

from component_operator.agent.invocation import Invocation
from component_operator.config import ObjectStorage, OperatorConfig
from component_operator.planning import dataplane
from component_operator.planning.jobs import Observation, ResultObservation, decide

from .jobfixtures import INTERFACES, NOW, image, job, pod, stamp

CONFIG = OperatorConfig(
    object_storage=ObjectStorage(endpoint="http://10.1.2.3:9000", bucket="jobs", egress_cidrs=["10.1.2.3/32"]),
    agent_image="registry.example.org/component-operator:0.1.0",
)


def first_decision(**spec):
    j = job(outputs=["prob"], **spec)
    return j, decide(Observation(job=j, image=image(), interfaces=INTERFACES, pod=None, now=NOW, config=CONFIG,
                                 new_signing_key_hex="ab" * 32, s3_credentials=("AK", "SK")))


def test_children_in_creation_order():
    _, d = first_decision()
    assert [o["kind"] for o in d.create] == ["Secret", "ConfigMap", "NetworkPolicy", "Pod"]
    assert d.status["signingKeySecret"] == "j1-0-agent"


def test_agent_secret_holds_key_and_credentials_and_is_owned():
    _, d = first_decision()
    secret = d.create[0]
    assert secret["stringData"] == {"signingKey": "ab" * 32, "s3AccessKey": "AK", "s3SecretKey": "SK"}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "job-uid-1" and secret["immutable"] is True


def test_invocation_is_valid_for_the_agent():
    _, d = first_decision()
    invocation = json.loads(d.create[1]["data"]["invocation.json"])
    parsed = Invocation.model_validate(invocation)
    assert parsed.job_id == "ns/j1/job-uid-1/0"
    assert parsed.result_uri == "s3://jobs/jobs/ns/j1/job-uid-1/0/result.json"
    assert parsed.output_prefix.startswith("s3://jobs/jobs/ns/j1/job-uid-1/0/output/")
    assert [i.interface for i in parsed.inputs] == ["bbox", "threshold"]
    assert parsed.outputs[0].relative_path == "prob.json" and parsed.outputs[0].super_kind == "Value"
    assert [e["interface"]["slug"] for e in parsed.inputs_json] == ["bbox", "threshold"]


def test_pod_runs_the_image_program_through_the_agent():
    _, d = first_decision()
    pod_ = d.create[-1]
    (init,) = pod_["spec"]["initContainers"]
    assert init["image"] == CONFIG.agent_image and init["command"][-1] == "prepare"
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    algo = pod_["spec"]["containers"][0]
    assert algo["command"] == ["/agent/agent", "run", "--", "/bin/algorithm"]
    env = {e["name"]: e for e in algo["env"]}
    assert env["COMPONENT_OPERATOR_SIGNING_KEY_HEX"]["valueFrom"]["secretKeyRef"] == {"name": "j1-0-agent", "key": "signingKey"}
    assert "COMPONENT_OPERATOR_SIGNING_KEY_HEX" not in {e["name"] for e in init["env"]}
    mounts = {m["mountPath"]: m for m in algo["volumeMounts"]}
    assert mounts["/input"]["readOnly"] and mounts["/agent"]["readOnly"] and not mounts["/output"].get("readOnly")
    assert pod_["spec"]["activeDeadlineSeconds"] == 600 + 300


@pytest.mark.parametrize(("entrypoint", "cmd", "expected"), [
    (["/bin/sh", "-c"], ["run.sh"], ["/bin/sh", "-c", "run.sh"]),
    (None, ["python", "app.py"], ["python", "app.py"]),
    (["/entry"], None, ["/entry"]),
])
def test_program_combines_entrypoint_and_cmd(entrypoint, cmd, expected):
    assert dataplane.program(entrypoint, cmd) == expected


def test_no_program_fails_the_job():
    img = image()
    img["status"]["entrypoint"] = None
    img["status"]["cmd"] = None
    j = job(outputs=["prob"])
    d = decide(Observation(job=j, image=img, interfaces=INTERFACES, pod=None, now=NOW, config=CONFIG,
                           new_signing_key_hex="ab" * 32, s3_credentials=("AK", "SK")))
    assert d.status["phase"] == "Failed" and d.status["reason"] == "NoEntrypoint"


def test_network_policy_allows_only_the_object_store():
    _, d = first_decision()
    policy = d.create[2]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"components.grand-challenge.org/job-uid": "job-uid-1"}}
    assert policy["ingress"] == [] and set(policy["policyTypes"]) == {"Ingress", "Egress"}
    store_rule = policy["egress"][1]
    assert store_rule["to"] == [{"ipBlock": {"cidr": "10.1.2.3/32"}}] and store_rule["ports"] == [{"protocol": "TCP", "port": 9000}]


def _finished(result: ResultObservation, phase="Succeeded", exit_code=0):
    state = {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                            "startedAt": stamp(-20), "finishedAt": stamp(-5)}}
    p = pod(phase, node="n", start=-25, container_state=state)
    status = {"phase": "Executing", "attempt": 0, "podName": "j1-0", "createdAt": stamp(-60)}
    return decide(Observation(job=job(status=status, outputs=["prob"]), image=image(), interfaces=INTERFACES, pod=p,
                              now=NOW, config=CONFIG, result=result))


RESULT = {"pk": "ns/j1/job-uid-1/0", "return_code": 0, "timed_out": False, "exec_duration_seconds": 12.5,
          "peak_memory_bytes": 1234, "outputs": [], "agent_version": "0.1.0"}


def test_valid_outputs_succeed_with_outputs_in_status():
    d = _finished(ResultObservation(result=RESULT, outputs=[{"interface": "prob", "value": 0.7}]))
    assert d.status["phase"] == "Succeeded" and d.status["outputs"] == [{"interface": "prob", "value": 0.7}]
    assert d.status["execDuration"] == "12.5s" and d.status["runtimeMetrics"]["peakMemoryBytes"] == 1234


def test_missing_output_fails():
    d = _finished(ResultObservation(result=RESULT, output_error="Output file 'prob.json' was not produced",
                                    output_detail={"prob": "not in the result"}))
    assert (d.status["phase"], d.status["reason"]) == ("Failed", "OutputMissing")
    assert d.status["errorMessage"] == "Output file 'prob.json' was not produced"


def test_invalid_output_fails():
    msg = "The output file 'prob.json' is not valid. JSON does not fulfill schema: instance 'x' is not of type 'number'"
    d = _finished(ResultObservation(result=RESULT, output_error=msg))
    assert (d.status["reason"], d.status["errorMessage"]) == ("OutputInvalid", msg)


@pytest.mark.parametrize(("reason", "error"), [
    ("ResultMissing", "An unexpected error occurred"),
    ("ResultTampered", "The invocation response object has been tampered with"),
    ("ResultInvalid", "The invocation request did not return valid json"),
])
def test_result_problems_fail_the_job(reason, error):
    d = _finished(ResultObservation(reason=reason, error=error))
    assert (d.status["phase"], d.status["reason"], d.status["errorMessage"]) == ("Failed", reason, error)


def test_agent_timeout_is_time_limit():
    d = _finished(ResultObservation(result={**RESULT, "return_code": 1, "timed_out": True}), phase="Failed", exit_code=1)
    assert (d.status["reason"], d.status["errorMessage"]) == ("DeadlineExceeded", "Time limit exceeded")


def test_staging_failure_reports_the_agent_message():
    state = {"waiting": {"reason": "PodInitializing"}}
    p = pod("Failed", node="n", container_state=state, init_statuses=[{"name": "prepare", "state": {"terminated": {
        "exitCode": 1, "message": json.dumps({"error": "Contents of zip file too large", "detail": "2 GiB > 1 GiB"})}}}])
    status = {"phase": "Provisioned", "attempt": 0, "podName": "j1-0", "createdAt": stamp(-60)}
    d = decide(Observation(job=job(status=status, outputs=["prob"]), image=image(), interfaces=INTERFACES, pod=p,
                           now=NOW, config=CONFIG, result=ResultObservation(reason="ResultMissing", error="x")))
    assert (d.status["reason"], d.status["errorMessage"]) == ("InputStagingFailed", "Contents of zip file too large")
