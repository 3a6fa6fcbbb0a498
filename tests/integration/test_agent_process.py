"""The agent as processes, against the real MinIO of the local control plane.

We test these aspects, running ``agent prepare`` and then the installed ``agent run -- python3
<algorithm>`` exactly as the two containers of a job pod would (roots in a temporary
directory): a grand-challenge-style algorithm reads ``inputs.json`` and its staged inputs
(value, file under an input prefix, image, decompressed ZIP, model and ground truth) and
writes a JSON value, a CSV and an MHA image; the signed result verifies, the outputs are in
object storage with the right SHA-256 and pass output parsing; logs are structured with
source and internal flags; the signing key never reaches the algorithm; a tampered, a
foreign and a missing result are each rejected with grand-challenge's message; prepare
refuses zip-slip, oversized inputs, too many entries, missing objects and checksum
mismatches with the contract's one JSON error line; the time limit kills a sleeping
algorithm; a failing algorithm uploads nothing but still gets a signed result; an
unreachable store makes the agent exit 125 without a result.

The agent holds no credential: ``prepare`` gets the grants the operator's real builder makes
(``planning.dataplane.build_agent_secret``: presigned GET URLs, a POST policy for the job's
prefix) in its environment, and hands the signing key and the policy to ``run`` in the
handoff file, which ``run`` deletes before the program starts; ``run``'s environment holds
no secret, and ``run`` refuses to start when it does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
import textwrap
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from component_operator.adapters.s3 import Credentials, ObjectNotFoundError, ObjectStore, ObjectTooLargeError, S3Settings
from component_operator.agent import result as res
from component_operator.config import ObjectStorage, OperatorConfig
from component_operator.planning import dataplane
from component_operator.planning.outputs import OutputSpec, OutputTooLargeError, parse_outputs


def store_for(testenv) -> ObjectStore:
    return ObjectStore(S3Settings(
        endpoint=testenv.env["TESTENV_S3_ENDPOINT"],
        access_key=testenv.env["TESTENV_S3_ACCESS_KEY"],
        secret_key=testenv.env["TESTENV_S3_SECRET_KEY"],
    ))


def job_for(job_id: str, invocation: dict) -> dict:
    """The ComponentJob an invocation was made from, as far as the grants need it."""
    namespace, name, uid, _ = job_id.split("/")
    inputs = [{"interface": i["interface"], "file": {"uri": i["source"]}} for i in invocation.get("inputs", [])
              if i.get("source")]
    spec: dict = {"image": "algo", "inputs": inputs, "timeLimit": invocation.get("timeLimitSeconds", 60),
                  "schedulingTimeoutSeconds": 60}
    for key in ("model", "groundTruth"):
        if invocation.get(key):
            spec[key] = {"uri": invocation[key]}
    return {"metadata": {"namespace": namespace, "name": name, "uid": uid}, "spec": spec}


def grants_env(testenv_env: dict, bucket: str, job_id: str, invocation: dict, key: bytes, *,
               endpoint: str | None = None, max_output_bytes: int | None = None, now: datetime | None = None) -> dict:
    """`prepare`'s environment from the agent Secret the operator's real builder makes for this job."""
    storage = ObjectStorage(endpoint=testenv_env["TESTENV_S3_ENDPOINT"], pod_endpoint=endpoint, bucket=bucket)
    config = OperatorConfig(object_storage=storage, **({"max_output_bytes": max_output_bytes} if max_output_bytes else {}))
    presign = dataplane.PresignContext.for_config(config, Credentials(testenv_env["TESTENV_S3_ACCESS_KEY"],
                                                                      testenv_env["TESTENV_S3_SECRET_KEY"]))
    job = job_for(job_id, invocation)
    attempt = int(job_id.rsplit("/", 1)[1])
    secret = dataplane.build_agent_secret(job, attempt, key.hex(), presign, now or datetime.now(timezone.utc), config)
    env = {}
    for item in dataplane.agent_env(job, attempt, config, signing=False):
        if "valueFrom" in item:
            env[item["name"]] = secret["stringData"][item["valueFrom"]["secretKeyRef"]["key"]]
    return env


@pytest.fixture()
def store(testenv) -> ObjectStore:
    return store_for(testenv)


@pytest.fixture()
def bucket(store):
    name = f"agent-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(name)
    yield name
    store.remove_bucket(name, force=True)


@dataclass
class Proc:
    returncode: int
    stdout: list[dict]
    stderr: list[dict]
    raw_stderr: str
    seconds: float

    def program(self, source: str) -> list[str]:
        lines = self.stdout if source == "stdout" else self.stderr
        return [r["log"] for r in lines if not r["internal"]]

    def internal(self) -> list[str]:
        return [r["log"] for r in self.stdout + self.stderr if r["internal"]]


def _records(text: str) -> list[dict]:
    # Every line the agent writes is one JSON object: parsing fails the test otherwise.
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class AgentHarness:
    """The two containers of a job pod, as local processes with their roots below ``root``."""

    root: Path
    store: ObjectStore
    bucket: str
    testenv_env: dict
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    job_id: str = field(default_factory=lambda: f"ns/job/{uuid.uuid4()}/0")

    def __post_init__(self) -> None:
        for name in ("input", "output", "agent", "model", "ground_truth", "work", "tmp"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    @property
    def handoff(self) -> Path:
        return self.root / "tmp" / ".component-operator" / "handoff.json"

    @property
    def output_prefix(self) -> str:
        return f"s3://{self.bucket}/jobs/{self.job_id}/output/"

    @property
    def result_uri(self) -> str:
        return f"s3://{self.bucket}/jobs/{self.job_id}/result.json"

    def upload(self, key: str, data: bytes) -> str:
        uri = f"s3://{self.bucket}/inputs/{key}"
        self.store.put_bytes(uri, data)
        return uri

    def invocation(self, **overrides) -> dict:
        doc = {
            "jobId": self.job_id, "inputs": [], "inputsJson": [], "outputs": [],
            "outputPrefix": self.output_prefix, "resultUri": self.result_uri, "timeLimitSeconds": 60,
        }
        doc.update(overrides)
        (self.root / "invocation.json").write_text(json.dumps(doc))
        return doc

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPONENT_OPERATOR_", "GRAND_CHALLENGE_"))}
        env.update({
            "COMPONENT_OPERATOR_INVOCATION_FILE": str(self.root / "invocation.json"),
            "COMPONENT_OPERATOR_HANDOFF_FILE": str(self.handoff),
            "COMPONENT_OPERATOR_INPUT_ROOT": str(self.root / "input"),
            "COMPONENT_OPERATOR_OUTPUT_ROOT": str(self.root / "output"),
            "COMPONENT_OPERATOR_MODEL_ROOT": str(self.root / "model"),
            "COMPONENT_OPERATOR_GROUND_TRUTH_ROOT": str(self.root / "ground_truth"),
            "COMPONENT_OPERATOR_AGENT_DIR": str(self.root / "agent"),
            "COMPONENT_OPERATOR_TERMINATION_GRACE_SECONDS": "1",
            "GRAND_CHALLENGE_COMPONENT_SIGNING_KEY_HEX": "should-never-be-seen",
        })
        env.update(extra)
        return env

    def _call(self, argv: list[str], env: dict, timeout: float) -> Proc:
        start = time.monotonic()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=self.root / "work")
        return Proc(proc.returncode, _records(proc.stdout), _records(proc.stderr), proc.stderr,
                    time.monotonic() - start)

    def grants(self, **options) -> dict:
        invocation = json.loads((self.root / "invocation.json").read_text())
        return grants_env(self.testenv_env, self.bucket, self.job_id, invocation, self.key, **options)

    def prepare(self, grants: dict | None = None, **env) -> Proc:
        # The init container: the operator's image, `component-operator agent prepare`, with
        # the agent Secret in its environment.
        full = {**self.env(**env), **(self.grants() if grants is None else grants)}
        return self._call([sys.executable, "-m", "component_operator.cli", "agent", "prepare"], full, 120)

    def run(self, *program: str, timeout: float = 120, **env) -> Proc:
        # The algorithm container: the agent installed by prepare, in front of the program.
        return self._call([str(self.root / "agent" / "agent"), "run", "--", *program], self.env(**env), timeout)

    def result(self, expected_pk: str | None = None) -> res.Result:
        return res.fetch_and_verify(self.store, self.result_uri, self.key, expected_pk or self.job_id)


@pytest.fixture()
def agent(tmp_path, store, bucket, testenv) -> AgentHarness:
    return AgentHarness(tmp_path, store, bucket, testenv.env)


def mha(width: int, height: int, voxels: bytes) -> bytes:
    """A MetaImage written by hand: a text header, then the raw voxels."""
    header = (
        "ObjectType = Image\nNDims = 2\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n"
        f"DimSize = {width} {height}\nElementSpacing = 1 1\nOffset = 0 0\nElementNumberOfChannels = 1\n"
        "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n"
    )
    return header.encode() + voxels


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# A grand-challenge algorithm: it knows /input and /output (here passed as arguments, as the
# roots are configurable for the test) and nothing about the agent.
ALGORITHM = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path

    input_dir, output_dir, model_dir, truth_dir = map(Path, sys.argv[1:5])
    inputs = json.loads((input_dir / "inputs.json").read_text())
    threshold = json.loads((input_dir / "threshold.json").read_text())
    tree = sorted(p.relative_to(input_dir).as_posix() for p in input_dir.rglob("*") if p.is_file())
    print("inputs.json entries:", len(inputs))
    print("tree:", json.dumps(tree))
    print("model:", (model_dir / "weights.txt").read_text().strip(), "truth:", (truth_dir / "truth.csv").read_text().strip())
    print("signing key visible:", "COMPONENT_OPERATOR_SIGNING_KEY_HEX" in os.environ)
    print("handoff visible:", any(p.name == "handoff.json" for p in Path(sys.argv[5]).rglob("*")))
    print("agent or grand-challenge variables:", json.dumps(sorted(
        k for k in os.environ if k.startswith(("COMPONENT_OPERATOR_", "GRAND_CHALLENGE_")))))
    print("this goes to stderr", file=sys.stderr)
    (output_dir / "probability.json").write_text(json.dumps(threshold * 2))
    (output_dir / "table.csv").write_text("case,score\\n1,0.5\\n")
    (output_dir / "images" / "mask").mkdir(parents=True)
    header = ("ObjectType = Image\\nNDims = 2\\nBinaryData = True\\nBinaryDataByteOrderMSB = False\\n"
              "CompressedData = False\\nDimSize = 4 3\\nElementSpacing = 1 1\\nOffset = 0 0\\n"
              "ElementNumberOfChannels = 1\\nElementType = MET_UCHAR\\nElementDataFile = LOCAL\\n")
    (output_dir / "images" / "mask" / "mask.mha").write_bytes(header.encode() + bytes([0, 1] * 6))
    os.symlink("/etc/hostname", output_dir / "outside-link")
''')


def write_algorithm(agent: AgentHarness, code: str = ALGORITHM) -> list[str]:
    path = agent.root / "work" / "algorithm.py"
    path.write_text(code)
    return ["python3", str(path), str(agent.root / "input"), str(agent.root / "output"), str(agent.root / "model"),
            str(agent.root / "ground_truth"), str(agent.root / "tmp")]


def test_grand_challenge_algorithm_end_to_end(agent: AgentHarness):
    table = b"case,value\n1,2\n"
    image = mha(2, 2, bytes([0, 1, 1, 0]))
    inputs = [
        {"interface": "threshold", "relativePath": "threshold.json", "superKind": "Value", "kind": "FLT", "value": 0.25},
        {"interface": "table", "relativePath": "table.csv", "prefix": "job-1/output/", "superKind": "File",
         "kind": "CSV", "source": agent.upload("table.csv", table), "sha256": hashlib.sha256(table).hexdigest()},
        {"interface": "ct", "relativePath": "images/ct", "superKind": "Image", "kind": "IMG",
         "source": agent.upload("0b1c-ct.mha", image)},
        {"interface": "bundle", "relativePath": "bundle/archive.zip", "superKind": "File", "kind": "ZIP",
         "decompress": True, "source": agent.upload("bundle.zip", zip_bytes({
             "study/a.txt": b"A", "study/nested/b.txt": b"B", "__MACOSX/study/._a.txt": b"junk"}))},
    ]
    inputs_json = [{"interface": {"slug": i["interface"], "super_kind": i["superKind"]}, "value": i.get("value")}
                   for i in inputs]
    agent.invocation(
        inputs=inputs, inputsJson=inputs_json,
        outputs=[{"interface": "probability", "relativePath": "probability.json", "kind": "FLT", "superKind": "Value"}],
        model=agent.upload("model.tar.gz", tar_gz({"weights.txt": b"w=1\n"})),
        groundTruth=agent.upload("gt.tar.gz", tar_gz({"truth.csv": b"t=2\n"})),
    )

    prepared = agent.prepare()
    assert prepared.returncode == 0, prepared.raw_stderr
    assert prepared.stderr == []
    assert all(r["internal"] and r["task"] == agent.job_id for r in prepared.stdout)
    assert json.loads((agent.root / "input" / "inputs.json").read_text()) == inputs_json

    assert agent.handoff.is_file() and oct(agent.handoff.stat().st_mode & 0o777) == "0o600"
    assert oct(agent.handoff.parent.stat().st_mode & 0o777) == "0o700"
    ran = agent.run(*write_algorithm(agent))
    assert ran.returncode == 0, ran.raw_stderr
    assert not agent.handoff.parent.exists()  # read and deleted before the program started
    assert not any("refused to import" in line for line in ran.internal())
    stdout = ran.program("stdout")
    assert "handoff visible: False" in stdout
    assert "inputs.json entries: 4" in stdout
    assert json.loads(next(line for line in stdout if line.startswith("tree: "))[6:]) == [
        "bundle/a.txt", "bundle/nested/b.txt", "images/ct/0b1c-ct.mha", "inputs.json", "job-1/output/table.csv",
        "threshold.json"]
    assert "model: w=1 truth: t=2" in stdout
    assert "signing key visible: False" in stdout
    assert "agent or grand-challenge variables: []" in stdout
    assert ran.program("stderr") == ["this goes to stderr"]
    # Structured lines: the program's are external with their source, the agent's internal.
    assert {(r["source"], r["level"]) for r in ran.stdout + ran.stderr if not r["internal"]} == {
        ("stdout", "INFO"), ("stderr", "WARNING")}
    assert all(r["source"] == "stdout" for r in ran.stdout) and all(r["source"] == "stderr" for r in ran.stderr)
    assert any("wrote the signed result" in line for line in ran.internal())
    assert any("not uploading 'outside-link'" in line for line in ran.internal())
    assert {r["task"] for r in ran.stdout + ran.stderr} == {agent.job_id}

    result = agent.result()
    assert result.return_code == 0 and not result.timed_out
    assert result.exec_duration_seconds > 0 and result.invoke_duration_seconds is None
    assert result.started_at <= result.finished_at and result.finished_at.endswith("Z")
    assert result.peak_memory_bytes is None or result.peak_memory_bytes > 0
    assert sorted(o.relative_path for o in result.outputs) == ["images/mask/mask.mha", "probability.json", "table.csv"]
    for output in result.outputs:
        local = (agent.root / "output" / output.relative_path).read_bytes()
        stored = agent.store.get_bytes(output.uri, max_bytes=10**6)
        assert stored == local
        assert output.sha256 == hashlib.sha256(stored).hexdigest() and output.size == len(stored)
        assert output.uri == agent.output_prefix + output.relative_path

    # The operator's side: validate the outputs against their interfaces from object storage.
    def read(rp: str, max_bytes: int):
        try:
            return agent.store.get_bytes(agent.output_prefix + rp, max_bytes=max_bytes)
        except ObjectNotFoundError:
            return None
        except ObjectTooLargeError as err:
            raise OutputTooLargeError(err.size) from None

    specs = [OutputSpec("probability", "Float", "probability.json"),
             OutputSpec("table", "CSV file (legacy)", "table.csv"),
             OutputSpec("mask", "Segmentation", "images/mask",
                        overlay_segments=[{"voxelValue": 1, "name": "lesion", "visible": True}])]
    parsed = parse_outputs(specs, produced=result.outputs, read=read)
    assert parsed.ok, parsed
    assert parsed.outputs[0] == {"interface": "probability", "value": 0.5}
    assert parsed.outputs[2]["image"]["uri"] == agent.output_prefix + "images/mask/mask.mha"


def test_tampered_foreign_and_missing_results(agent: AgentHarness):
    agent.invocation()
    assert agent.prepare().returncode == 0
    ran = agent.run("true")
    assert ran.returncode == 0, ran.raw_stderr
    assert agent.result().return_code == 0

    with pytest.raises(res.WrongResultKeyError, match="Wrong result key for this job"):
        agent.result(expected_pk="ns/job/another/0")

    # The algorithm (or anyone with write access) replaces the body but keeps the signature.
    body, info = agent.store.get_bytes_and_metadata(agent.result_uri, max_bytes=10**6)
    forged = body.replace(b'"return_code":0', b'"return_code":0 ')
    agent.store.put_bytes(agent.result_uri, forged, metadata=dict(info.metadata))
    with pytest.raises(res.ResultTamperedError) as err:
        agent.result()
    assert err.value.message == "The invocation response object has been tampered with"

    # A signature made with another key is no better.
    agent.store.put_bytes(agent.result_uri, body, metadata={"signature-hmac-sha256": res.sign(body, bytes(32))})
    with pytest.raises(res.ResultTamperedError):
        agent.result()

    with pytest.raises(res.ResultMissingError) as err:
        res.fetch_and_verify(agent.store, agent.result_uri + ".missing", agent.key, agent.job_id)
    assert err.value.message == "The invocation request did not return a result"


def test_failing_algorithm_uploads_nothing_but_is_signed(agent: AgentHarness):
    agent.invocation()
    assert agent.prepare().returncode == 0
    code = "import sys; open(sys.argv[1] + '/probability.json', 'w').write('1'); print('boom', file=sys.stderr); sys.exit(3)"
    ran = agent.run("python3", "-c", code, str(agent.root / "output"))
    assert ran.returncode == 3
    assert ran.program("stderr") == ["boom"]
    result = agent.result()
    assert result.return_code == 3 and result.outputs == [] and not result.timed_out
    assert list(agent.store.list_prefix(agent.output_prefix)) == []


def test_time_limit_kills_a_sleeping_algorithm(agent: AgentHarness):
    agent.invocation(timeLimitSeconds=1)
    assert agent.prepare().returncode == 0
    ran = agent.run("python3", "-c", "import time; print('sleeping', flush=True); time.sleep(120)", timeout=60)
    assert ran.returncode == 1
    assert ran.seconds < 30
    assert ran.program("stdout") == ["sleeping"]
    assert ran.stderr[-1] == {"log": "Time limit exceeded", "level": "ERROR", "source": "stderr", "internal": False,
                              "task": agent.job_id}
    result = agent.result()
    assert result.timed_out and result.return_code == 1 and result.outputs == []


def one_error_line(proc: Proc) -> dict:
    assert proc.returncode == 1
    assert len(proc.stderr) == 1, proc.raw_stderr
    line = proc.stderr[0]
    assert line["level"] == "ERROR" and line["source"] == "stderr" and line["internal"] is False
    assert line["log"] == line["error"]
    return line


def test_prepare_refuses_zip_slip(agent: AgentHarness):
    agent.invocation(inputs=[{
        "interface": "bundle", "relativePath": "bundle/archive.zip", "superKind": "File", "kind": "ZIP", "decompress": True,
        "source": agent.upload("slip.zip", zip_bytes({"ok.txt": b"fine", "../../../evil.txt": b"evil"})),
    }])
    line = one_error_line(agent.prepare())
    assert line["error"] == "Input zip file could not be extracted"
    assert line["interface"] == "bundle"
    assert "member '../../../evil.txt' contains '..'; refusing to extract (zip-slip)" in line["detail"]
    assert not any(p.name == "evil.txt" for p in agent.root.parent.rglob("evil.txt"))


@pytest.mark.parametrize(
    "case, limits, expected_error, expected_detail",
    [
        ("file", {"maxInputBytes": 1000}, "The inputs are too large: 5000 bytes, more than the limit of 1000 bytes",
         "input 'data' (s3://"),
        ("zip", {"maxInputBytes": 1000}, "Contents of zip file too large",
         "the archive unpacks to 5000 bytes, more than the 1000 bytes left of the input limit"),
        ("entries", {"maxZipEntries": 3}, "Contents of zip file too large",
         "the archive has 4 entries, more than the limit of 3 (maxZipEntries)"),
    ],
)
def test_prepare_refuses_oversized_inputs(agent: AgentHarness, case, limits, expected_error, expected_detail):
    if case == "file":
        item = {"interface": "data", "relativePath": "data.csv", "superKind": "File", "kind": "CSV",
                "source": agent.upload("big.csv", b"x" * 5000)}
    else:
        members = {"zeros.bin": bytes(5000)} if case == "zip" else {f"f{i}.txt": b"1" for i in range(4)}
        item = {"interface": "data", "relativePath": "data.zip", "superKind": "File", "kind": "ZIP", "decompress": True,
                "source": agent.upload("big.zip", zip_bytes(members))}
    agent.invocation(inputs=[item], **limits)
    line = one_error_line(agent.prepare())
    assert line["error"] == expected_error
    assert expected_detail in line["detail"]
    assert line["interface"] == "data"


def test_prepare_reports_missing_and_corrupted_inputs(agent: AgentHarness):
    source = agent.upload("table.csv", b"a,b\n")
    agent.invocation(inputs=[{"interface": "table", "relativePath": "table.csv", "superKind": "File", "kind": "CSV",
                              "source": source + ".gone"}])
    line = one_error_line(agent.prepare())
    assert line["error"] == "Input 'table' could not be found in object storage"
    assert "NoSuchKey" in line["detail"]
    agent.invocation(inputs=[{"interface": "table", "relativePath": "table.csv", "superKind": "File", "kind": "CSV",
                              "source": source, "sha256": "0" * 64}])
    line = one_error_line(agent.prepare())
    assert line["error"] == "Input 'table' does not match its sha256"
    assert f"has sha256 {hashlib.sha256(b'a,b' + bytes([10])).hexdigest()}, expected {'0' * 64}" in line["detail"]
    agent.invocation(model=agent.upload("model.tar.gz", b"not a tarball"))
    line = one_error_line(agent.prepare())
    assert line["error"] == "Could not set up model: Tarfile could not be extracted"


def test_unreachable_store_means_no_result_and_exit_125(agent: AgentHarness):
    agent.invocation()
    assert agent.prepare(grants=agent.grants(endpoint="http://127.0.0.1:9")).returncode == 0
    ran = agent.run("true")
    assert ran.returncode == 125
    assert ran.stderr[-1]["error"] == "The agent could not store the outputs or the result"
    assert ran.stderr[-1]["retryable"] is True
    with pytest.raises(res.ResultMissingError):
        agent.result()


def test_bad_invocation_means_exit_125(agent: AgentHarness):
    agent.invocation()
    assert agent.prepare().returncode == 0
    (agent.root / "invocation.json").write_text('{"jobId": "x"}')
    ran = agent._call([sys.executable, "-m", "component_operator.cli", "agent", "run", "--", "true"], agent.env(), 60)
    assert ran.returncode == 125
    assert ran.stderr[-1]["error"] == "The agent could not start"
    assert "outputPrefix" in ran.stderr[-1]["detail"]


def test_run_as_drops_privileges_for_the_program(agent: AgentHarness):
    assert os.geteuid() == 0, "the agent is root here, as in a shimmed grand-challenge image"
    agent.invocation()
    assert agent.prepare().returncode == 0
    ran = agent.run("/bin/sh", "-c", "id -u; id -g; id -G", COMPONENT_OPERATOR_RUN_AS="65534:65534")
    assert ran.returncode == 0, ran.raw_stderr
    assert ran.program("stdout") == ["65534", "65534", "65534"]
    assert agent.result().return_code == 0


def test_run_holds_no_secret_and_its_handoff_is_single_use(agent: AgentHarness):
    agent.invocation()
    grants = agent.grants()
    assert "COMPONENT_OPERATOR_SIGNING_KEY_HEX" in grants and "COMPONENT_OPERATOR_UPLOAD" in grants
    assert not any(k.startswith("COMPONENT_OPERATOR_S3_") for k in grants)  # no credential at all
    assert agent.prepare(grants=grants).returncode == 0
    # The algorithm container must not carry the grants: run refuses them (and keeps the handoff).
    refused = agent.run("true", COMPONENT_OPERATOR_SIGNING_KEY_HEX=agent.key.hex())
    assert refused.returncode == 125 and "must not be in the algorithm container's environment" in refused.raw_stderr
    assert agent.handoff.exists()
    assert agent.run("true").returncode == 0
    again = agent.run("true")
    assert again.returncode == 125 and "handoff file" in again.stderr[-1]["detail"]


def test_outputs_above_the_upload_limit_are_listed_not_uploaded(agent: AgentHarness):
    agent.invocation()
    assert agent.prepare(grants=agent.grants(max_output_bytes=1000)).returncode == 0
    code = "import sys; open(sys.argv[1] + '/big.bin', 'wb').write(bytes(5000)); open(sys.argv[1] + '/ok.txt', 'w').write('ok')"
    ran = agent.run("python3", "-c", code, str(agent.root / "output"))
    assert ran.returncode == 0, ran.raw_stderr
    assert any("not uploading 'big.bin': 5000 bytes, more than the 1000 bytes" in line for line in ran.internal())
    result = agent.result()
    assert {o.relative_path: o.size for o in result.outputs} == {"big.bin": 5000, "ok.txt": 2}
    assert [i.key.rsplit("/", 1)[1] for i in agent.store.list_prefix(agent.output_prefix)] == ["ok.txt"]
