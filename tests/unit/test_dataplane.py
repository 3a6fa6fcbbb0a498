"""The data-plane wiring of a job pod: init container, agent command, Secret, NetworkPolicy, invocation.

We test these aspects too: the agent Secret holds no long-lived credential, only the signing
key, presigned GET URLs of exactly the job's input objects (signed for the pods' endpoint) and
a POST policy limited to the attempt's prefix and ``maxOutputBytes``, all expiring after the
documented lifetime; the algorithm container's environment holds no secret; each inline value
is stored once in the invocation and ``inputs.json`` comes out byte-identical; too large inputs
are refused with ``InputsTooLarge``.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from component_operator.adapters.s3 import MAX_PRESIGN_SECONDS, Credentials
from component_operator.agent.invocation import Invocation
from component_operator.config import ObjectStorage, OperatorConfig
from component_operator.planning import dataplane, pods
from component_operator.planning.jobs import Observation, ResultObservation, decide

from .jobfixtures import INTERFACES, NOW, image, interface, job, pod, stamp

CONFIG = OperatorConfig(
    object_storage=ObjectStorage(endpoint="http://minio.storage:9000", pod_endpoint="http://10.1.2.3:9000",
                                 bucket="jobs", egress_cidrs=["10.1.2.3/32"]),
    agent_image="registry.example.org/component-operator:0.1.0",
)
PRESIGN = dataplane.PresignContext.for_config(CONFIG, Credentials("OPERATOR-ACCESS-KEY", "OPERATOR-SECRET-KEY"))
FILE_INPUTS = {**INTERFACES, "ct": interface("ct", "Image", "images/ct", store=False),
               "table": interface("table", "CSV file (legacy)", "table.csv", store=False)}


def first_decision(interfaces=INTERFACES, **spec):
    j = job(outputs=["prob"], **spec)
    return j, decide(Observation(job=j, image=image(), interfaces=interfaces, pod=None, now=NOW, config=CONFIG,
                                 new_signing_key_hex="ab" * 32, presign=PRESIGN))


def with_files():
    return first_decision(FILE_INPUTS, inputs=[
        {"interface": "threshold", "value": 0.5},
        {"interface": "table", "file": {"uri": "s3://inputs/ns/table.csv"}},
        {"interface": "ct", "image": {"uri": "s3://inputs/ns/ct.mha", "sha256": "c" * 64}},
    ], model={"uri": "s3://inputs/ns/model.tar.gz"}, groundTruth={"uri": "s3://inputs/ns/table.csv"})


def test_children_in_creation_order():
    _, d = first_decision()
    assert [o["kind"] for o in d.create] == ["Secret", "ConfigMap", "NetworkPolicy", "Pod"]
    assert d.status["signingKeySecret"] == "j1-0-agent"


def test_agent_secret_holds_no_credential_only_this_attempts_grants():
    _, d = with_files()
    secret = d.create[0]
    data = secret["stringData"]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "job-uid-1" and secret["immutable"] is True
    assert set(data) == {"signingKey", "upload", "expiresAt", "download-0", "download-1", "download-2"}
    assert data["signingKey"] == "ab" * 32
    everything = json.dumps(d.create)
    assert "OPERATOR-SECRET-KEY" not in everything  # the secret key is never copied, anywhere
    # One GET URL per object the attempt reads (the ground truth is the table: listed once).
    downloads = [json.loads(data[f"download-{i}"]) for i in range(3)]
    assert [g["source"] for g in downloads] == ["s3://inputs/ns/table.csv", "s3://inputs/ns/ct.mha",
                                                 "s3://inputs/ns/model.tar.gz"]
    for grant in downloads:
        url = urlsplit(grant["url"])
        query = parse_qs(url.query)
        # Signed for the endpoint pods use (SigV4 signs the Host header), path-style.
        assert (url.scheme, url.netloc) == ("http", "10.1.2.3:9000")
        assert url.path == "/" + grant["source"][len("s3://"):]
        assert query["X-Amz-SignedHeaders"] == ["host"] and query["X-Amz-Date"] == ["20261123T120000Z"]
        assert int(query["X-Amz-Expires"][0]) == 300 + 600 + 300 + 900
        assert query["X-Amz-Credential"][0].startswith("OPERATOR-ACCESS-KEY/20261123/us-east-1/s3/")


def test_upload_policy_allows_only_the_attempts_prefix_and_size():
    _, d = with_files()
    upload = json.loads(d.create[0]["stringData"]["upload"])
    assert upload["url"] == "http://10.1.2.3:9000/jobs" and upload["keyPrefix"] == "jobs/ns/j1/job-uid-1/0/"
    assert upload["maxBytes"] == CONFIG.max_output_bytes
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    assert policy["expiration"] == "2026-11-23T12:35:00.000Z"  # now + 2100 s
    conditions = policy["conditions"]
    assert ["eq", "$bucket", "jobs"] in conditions
    assert ["starts-with", "$key", "jobs/ns/j1/job-uid-1/0/"] in conditions
    assert ["content-length-range", 0, CONFIG.max_output_bytes] in conditions
    assert ["starts-with", "$x-amz-meta-signature-hmac-sha256", ""] in conditions
    assert d.create[0]["stringData"]["expiresAt"] == "2026-11-23T12:35:00.000Z"


def test_grant_lifetime_is_bounded_by_sigv4():
    j = job()
    assert dataplane.grant_lifetime(j) == timedelta(seconds=300 + 600 + dataplane.POD_DEADLINE_MARGIN_SECONDS
                                                    + dataplane.GRANT_SLACK_SECONDS)
    j["spec"].update(timeLimit=86400, schedulingTimeoutSeconds=86400)
    assert dataplane.grant_lifetime(j).total_seconds() == 2 * 86400 + 1200 < MAX_PRESIGN_SECONDS
    j["spec"].update(timeLimit=10 * 86400)
    assert dataplane.grant_lifetime(j).total_seconds() == MAX_PRESIGN_SECONDS == 7 * 24 * 3600


def test_without_credentials_no_secret_can_be_made():
    j = job()
    with pytest.raises(ValueError, match="no object-store credentials"):
        dataplane.build_agent_secret(j, 0, "ab" * 32, None, NOW, CONFIG)


def test_only_the_init_container_gets_the_secret():
    _, d = with_files()
    pod_ = d.create[-1]
    (init,) = pod_["spec"]["initContainers"]
    algo = pod_["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in init["env"] if "valueFrom" in e}
    assert refs == {"COMPONENT_OPERATOR_SIGNING_KEY_HEX": "signingKey", "COMPONENT_OPERATOR_UPLOAD": "upload",
                    "COMPONENT_OPERATOR_DOWNLOAD_0": "download-0", "COMPONENT_OPERATOR_DOWNLOAD_1": "download-1",
                    "COMPONENT_OPERATOR_DOWNLOAD_2": "download-2"}
    assert set(refs.values()) == set(d.create[0]["stringData"]) - {"expiresAt"}
    # The algorithm container's PID 1 environment is readable by the algorithm: nothing secret.
    assert not [e for e in algo["env"] if "valueFrom" in e]
    algo_env = {e["name"]: e.get("value") for e in algo["env"]}
    init_env = {e["name"]: e.get("value") for e in init["env"] if "value" in e}
    assert algo_env["COMPONENT_OPERATOR_HANDOFF_FILE"] == init_env["COMPONENT_OPERATOR_HANDOFF_FILE"]
    assert algo_env["COMPONENT_OPERATOR_HANDOFF_FILE"].startswith("/tmp/")
    tmp_mounts = [[m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"] for c in (init, algo)]
    assert tmp_mounts[0][0]["name"] == tmp_mounts[1][0]["name"]  # the handoff's shared volume
    assert not any(k.startswith("COMPONENT_OPERATOR_S3_") for k in {**algo_env, **init_env})


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


BIG = {"type": "Multiple points", "version": {"major": 1, "minor": 0},
       "points": [{"point": [i * 0.5, i * 0.25, 1.0], "name": f"point number {i}"} for i in range(9_600)]}


def big_job(size_factor=1):
    points = copy.deepcopy(BIG)
    points["points"] = points["points"] * size_factor
    interfaces = {**INTERFACES, "points": interface("points", "Multiple points", "points.json")}
    return interfaces, job(outputs=["prob"], inputs=[{"interface": "threshold", "value": 0.5},
                                                     {"interface": "points", "value": points}])


def test_each_inline_value_is_stored_once_and_inputs_json_is_unchanged():
    interfaces, j = big_job()
    value_bytes = len(json.dumps(j["spec"]["inputs"][1]["value"]))
    assert 550_000 < value_bytes < 650_000  # ~600 KB: twice would overflow 1 MiB
    d = decide(Observation(job=j, image=image(), interfaces=interfaces, pod=None, now=NOW, config=CONFIG,
                           new_signing_key_hex="ab" * 32, presign=PRESIGN))
    configmap = next(o for o in d.create if o["kind"] == "ConfigMap")
    size = sum(len(k) + len(v.encode()) for k, v in configmap["data"].items())
    assert value_bytes < size < 1024 * 1024 - 100 * 1024, size
    invocation = Invocation.from_json(configmap["data"]["invocation.json"])
    assert invocation.inputs_json_value_from == ["points", "threshold"]
    assert all(entry["value"] is None for entry in invocation.inputs_json)
    # What the agent writes to /input/inputs.json: exactly what the non-data-plane ConfigMap holds.
    assert json.dumps(invocation.inputs_json_document()) == json.dumps(pods.inputs_json(j, interfaces))


def test_too_large_inputs_are_refused():
    interfaces, j = big_job(size_factor=2)
    with pytest.raises(dataplane.InputsTooLargeError) as err:
        dataplane.build_invocation(j, 0, interfaces, CONFIG)
    assert isinstance(err.value, ValueError) and err.value.field == "spec.inputs"
    assert err.value.size > err.value.limit == dataplane.MAX_INVOCATION_BYTES == 900 * 1024
    assert err.value.largest[0] == "points"
    assert str(err.value).startswith("spec.inputs: the job's inputs make an invocation ConfigMap of ")
    assert "the largest inline value is 'points'" in str(err.value)
    d = decide(Observation(job=j, image=image(), interfaces=interfaces, pod=None, now=NOW, config=CONFIG,
                           new_signing_key_hex="ab" * 32, presign=PRESIGN))
    assert (d.status["phase"], d.status["reason"]) == ("Failed", "InputsTooLarge") and d.create == []


def test_pod_runs_the_image_program_through_the_agent():
    _, d = first_decision()
    pod_ = d.create[-1]
    (init,) = pod_["spec"]["initContainers"]
    assert init["image"] == CONFIG.agent_image and init["command"][-1] == "prepare"
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    algo = pod_["spec"]["containers"][0]
    assert algo["command"] == ["/agent/agent", "run", "--", "/bin/algorithm"]
    init_env = {e["name"]: e for e in init["env"]}
    assert init_env["COMPONENT_OPERATOR_SIGNING_KEY_HEX"]["valueFrom"]["secretKeyRef"] == {"name": "j1-0-agent",
                                                                                          "key": "signingKey"}
    assert "COMPONENT_OPERATOR_SIGNING_KEY_HEX" not in {e["name"] for e in algo["env"]}
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
                           new_signing_key_hex="ab" * 32, presign=PRESIGN))
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


# ---------------------------------------------------------------------------------------
# The operator's side: every output is checked against the signed result
# ---------------------------------------------------------------------------------------

MHA = (b"ObjectType = Image\nNDims = 2\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n"
       b"DimSize = 2 2\nElementSpacing = 1 1\nOffset = 0 0\nElementNumberOfChannels = 1\nElementType = MET_UCHAR\n"
       b"ElementDataFile = LOCAL\n" + bytes([0, 1, 1, 0]))
OUTPUT_INTERFACES = {
    **INTERFACES,
    "metrics": interface("metrics", "CSV file (legacy)", "metrics.csv", store=False),
    "heat": interface("heat", "Heat Map", "images/heat", store=False),
}
KEY = "cd" * 32


class OperatorStore:
    """The operator's ObjectStore calls ``handlers.results`` makes, over a dict."""

    def __init__(self):
        self.objects: dict[str, tuple[bytes, dict]] = {}
        self.calls: list[tuple[str, str]] = []

    def get_bytes_and_metadata(self, uri, *, max_bytes):
        from component_operator.adapters.s3 import ObjectInfo, ObjectNotFoundError

        if uri not in self.objects:
            raise ObjectNotFoundError(f"{uri}: NoSuchKey", uri=uri, code="NoSuchKey")
        data, metadata = self.objects[uri]
        return data, ObjectInfo(uri=uri, key=uri, size=len(data), metadata=metadata)

    def download_file(self, uri, path, *, max_bytes=None, sha256=False):
        import hashlib
        from pathlib import Path

        from component_operator.adapters.s3 import ObjectNotFoundError, ObjectTooLargeError

        self.calls.append(("download", uri))
        if uri not in self.objects:
            raise ObjectNotFoundError(f"{uri}: NoSuchKey", uri=uri, code="NoSuchKey")
        data = self.objects[uri][0]
        if max_bytes is not None and len(data) > max_bytes:
            raise ObjectTooLargeError(uri, len(data), max_bytes)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
        return len(data), hashlib.sha256(data).hexdigest()

    def hash_object(self, uri, *, max_bytes):
        import hashlib

        from component_operator.adapters.s3 import ObjectNotFoundError, ObjectTooLargeError

        self.calls.append(("hash", uri))
        if uri not in self.objects:
            raise ObjectNotFoundError(f"{uri}: NoSuchKey", uri=uri, code="NoSuchKey")
        data = self.objects[uri][0]
        if len(data) > max_bytes:
            raise ObjectTooLargeError(uri, len(data), max_bytes)
        return len(data), hashlib.sha256(data).hexdigest()


def finished_job_with_outputs(files: dict[str, bytes], *, recorded: dict[str, bytes] | None = None,
                              uris: dict[str, str] | None = None):
    """A job whose agent uploaded ``files`` and signed a result recording ``recorded`` (default: the same)."""
    import hashlib

    from component_operator.agent import result as res

    j = job(outputs=["prob", "metrics", "heat"])
    store = OperatorStore()
    prefix = dataplane.output_prefix(j, 0, CONFIG)
    for rp, data in files.items():
        store.objects[prefix + rp] = (data, {})
    recorded = files if recorded is None else recorded
    result = res.Result(pk=dataplane.job_id(j, 0), return_code=0, exec_duration_seconds=1.0, started_at="s",
                        finished_at="f", outputs=[res.OutputFile(relative_path=rp, size=len(data),
                                                                 sha256=hashlib.sha256(data).hexdigest(),
                                                                 uri=(uris or {}).get(rp, prefix + rp))
                                                  for rp, data in recorded.items()])
    body = res.encode(result)
    store.objects[dataplane.result_uri(j, 0, CONFIG)] = (body, {"signature-hmac-sha256": res.sign(body, KEY)})
    return j, store


GOOD = {"prob.json": b"0.25", "metrics.csv": b"metric,value\ndice,0.9\n", "images/heat/heat.mha": MHA}


def observe(j, store):
    from component_operator.handlers import results

    return results._observe(store, j, 0, OUTPUT_INTERFACES, CONFIG, KEY, True)


def test_outputs_matching_the_signed_result_are_accepted_each_read_once():
    j, store = finished_job_with_outputs(GOOD)
    observation = observe(j, store)
    assert observation.reason is None and observation.output_error is None, observation
    assert {o["interface"] for o in observation.outputs} == {"prob", "metrics", "heat"}
    downloads = [uri for kind, uri in store.calls if kind == "download"]
    assert sorted(u.rsplit("/output/", 1)[1] for u in downloads) == sorted(GOOD)  # each once, none twice
    assert not [c for c in store.calls if c[0] == "hash"]  # everything was read, so nothing is left to hash


@pytest.mark.parametrize(("rp", "interface_name"), [
    ("metrics.csv", "metrics"), ("prob.json", "prob"), ("images/heat/heat.mha", "heat")])
def test_an_output_that_differs_from_the_signed_result_fails_the_job(rp, interface_name):
    import hashlib

    stored = {**GOOD, rp: GOOD[rp].replace(b"0", b"1", 1)}
    j, store = finished_job_with_outputs(stored, recorded=GOOD)
    observation = observe(j, store)
    assert observation.reason == "OutputDigestMismatch"
    expected, actual = hashlib.sha256(GOOD[rp]).hexdigest(), hashlib.sha256(stored[rp]).hexdigest()
    assert observation.error == (
        f"Output {interface_name!r} does not match the signed result: {rp!r} should be {len(GOOD[rp])} bytes with "
        f"sha256 {expected}, the stored object is {len(stored[rp])} bytes with sha256 {actual}")
    assert observation.detail == {interface_name: observation.error}
    d = _finished(observation)
    assert (d.status["phase"], d.status["reason"], d.status["errorMessage"]) == (
        "Failed", "OutputDigestMismatch", observation.error[:1024])


def test_a_missing_or_foreign_output_object_fails_the_job():
    j, store = finished_job_with_outputs({k: v for k, v in GOOD.items() if k != "metrics.csv"}, recorded=GOOD)
    observation = observe(j, store)
    assert observation.reason == "OutputDigestMismatch" and observation.error.endswith("the stored object is missing")
    j, store = finished_job_with_outputs(GOOD, uris={"prob.json": "s3://jobs/jobs/ns/other-job/x/0/output/prob.json"})
    observation = observe(j, store)
    assert observation.reason == "ResultInvalid" and "not below the job's" in observation.detail["result"]


def test_unread_files_are_hashed():
    from component_operator.handlers import results

    j, store = finished_job_with_outputs({**GOOD, "images/heat/notes.txt": b"extra"})
    produced = {rp: results.outputs.ProducedFile(rp, dataplane.output_prefix(j, 0, CONFIG) + rp, 0, "0" * 64)
                for rp in ("images/heat/heat.mha", "images/heat/notes.txt")}
    spec = results.outputs.OutputSpec.from_interface("heat", OUTPUT_INTERFACES["heat"])
    assert results._referenced(spec, produced) == ["images/heat/heat.mha", "images/heat/notes.txt"]
    observation = observe(j, store)
    assert observation.outputs is not None
    assert ("hash", dataplane.output_prefix(j, 0, CONFIG) + "images/heat/notes.txt") in store.calls


def test_an_agent_secret_over_its_limit_is_refused():
    interfaces = {f"f{i}": interface(f"f{i}", "CSV file (legacy)", f"f{i}.csv", store=False) for i in range(256)}
    j = job(inputs=[{"interface": f"f{i}", "file": {"uri": f"s3://inputs/{i:03d}/" + "k" * 2000}} for i in range(256)])
    with pytest.raises(dataplane.InputsTooLargeError) as err:
        dataplane.build_agent_secret(j, 0, "ab" * 32, PRESIGN, NOW, CONFIG)
    assert err.value.what == "agent Secret" and err.value.limit == dataplane.MAX_AGENT_SECRET_BYTES
    assert str(err.value).startswith("spec.inputs: the job's inputs make an agent Secret of ")
    assert isinstance(err.value, pods.InputsTooLargeError)  # one except in planning.jobs serves both
    small = dataplane.build_agent_secret({**j, "spec": {**j["spec"], "inputs": j["spec"]["inputs"][:50]}}, 0,
                                         "ab" * 32, PRESIGN, NOW, CONFIG)
    assert len([k for k in small["stringData"] if k.startswith("download-")]) == 50
