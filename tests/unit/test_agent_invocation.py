"""The invocation document and the agent's environment (pure).

We test these aspects: a complete document parses with the contract's camelCase names and
defaults; every path rule that keeps the agent inside its roots; the consistency rules
(Value inline, File/Image with a source, ZIP only for files, inputs.json reserved, unique
targets); unknown keys are refused; the environment readers (roots, signing key, run-as);
the scrubbing of the program's environment; ``inputsJsonValueFrom`` (each value stored once,
filled back in for ``inputs.json``) and its rules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from component_operator.agent import invocation as inv
from component_operator.agent.invocation import Invocation, InvocationError


def document(**overrides):
    doc = {
        "jobId": "ns/job/0f6c/0",
        "inputs": [
            {"interface": "threshold", "relativePath": "threshold.json", "superKind": "Value", "kind": "FLT",
             "value": 0.5},
            {"interface": "table", "relativePath": "table.csv", "prefix": "job-1/output/", "superKind": "File",
             "kind": "CSV", "source": "s3://inputs/jobs/table.csv"},
            {"interface": "ct", "relativePath": "images/ct", "superKind": "Image", "kind": "IMG",
             "source": "s3://inputs/images/ct.mha"},
            {"interface": "bundle", "relativePath": "bundle.zip", "superKind": "File", "kind": "ZIP",
             "source": "s3://inputs/bundle.zip", "decompress": True},
        ],
        "inputsJson": [{"interface": {"slug": "threshold"}, "value": 0.5}],
        "outputs": [{"interface": "prob", "relativePath": "prob.json", "kind": "FLT", "superKind": "Value"}],
        "outputPrefix": "s3://outputs/ns/job/0",
        "resultUri": "s3://outputs/ns/job/0.result.json",
        "timeLimitSeconds": 300,
    }
    doc.update(overrides)
    return doc


def parse(doc) -> Invocation:
    return Invocation.from_json(json.dumps(doc))


def test_complete_document_parses_with_defaults():
    invocation = parse(document())
    assert invocation.job_id == "ns/job/0f6c/0"
    assert invocation.output_prefix == "s3://outputs/ns/job/0/"  # a prefix always ends with /
    assert invocation.max_input_bytes == 10 * 1024**3
    assert invocation.max_zip_entries == inv.DEFAULT_MAX_ZIP_ENTRIES
    assert invocation.model is None and invocation.ground_truth is None
    assert [i.target for i in invocation.inputs] == ["threshold.json", "job-1/output/table.csv", "images/ct", "bundle.zip"]
    assert invocation.inputs[0].value == 0.5
    assert Invocation.from_json(invocation.to_json()) == invocation


@pytest.mark.parametrize(
    "path, rule",
    [("../etc/passwd", "must not contain '..'"), ("/etc/passwd", "must be relative"), ("a/../../b", "'..'"),
     ("a\\b", "backslashes"), ("", "must not be empty")],
)
def test_relative_paths_cannot_leave_the_input_root(path, rule):
    doc = document()
    doc["inputs"][1]["relativePath"] = path
    with pytest.raises(InvocationError, match="relativePath") as err:
        parse(doc)
    assert rule in str(err.value)


def test_prefix_cannot_leave_the_input_root():
    doc = document()
    doc["inputs"][1]["prefix"] = "../../"
    with pytest.raises(InvocationError, match="prefix '../..' must not contain '..'"):
        parse(doc)


@pytest.mark.parametrize(
    "index, change, message",
    [
        (0, {"source": "s3://inputs/x.json"}, "a Value input is inline; it must not have a source"),
        (1, {"source": None}, "a File input needs a source"),
        (2, {"source": None}, "a Image input needs a source"),
        (2, {"decompress": True}, "only File inputs (ZIP kind) can be decompressed"),
        (1, {"source": "http://in/table.csv"}, "must start with 's3://'"),
        (1, {"source": "s3://inputs/"}, "must name an object"),
        (1, {"sha256": "not-hex"}, "String should match pattern"),
        (1, {"superKind": "Blob"}, "superKind"),
    ],
)
def test_input_consistency_rules(index, change, message):
    doc = document()
    doc["inputs"][index].update(change)
    with pytest.raises(InvocationError) as err:
        parse(doc)
    assert message in str(err.value)


def test_inputs_json_is_reserved_and_targets_are_unique():
    doc = document()
    doc["inputs"][0]["relativePath"] = "inputs.json"
    with pytest.raises(InvocationError, match="inputs.json is reserved"):
        parse(doc)
    doc = document()
    doc["inputs"][1]["prefix"] = ""
    doc["inputs"][1]["relativePath"] = "threshold.json"
    with pytest.raises(InvocationError, match="would both be staged at 'threshold.json'"):
        parse(doc)


def test_unknown_keys_and_bad_documents_are_refused():
    with pytest.raises(InvocationError, match="Extra inputs are not permitted"):
        parse(document(timeLimit=3))
    with pytest.raises(InvocationError, match="timeLimitSeconds"):
        parse(document(timeLimitSeconds=0))
    with pytest.raises(InvocationError, match="not valid JSON"):
        Invocation.from_json("{")
    with pytest.raises(InvocationError, match="cannot be read"):
        Invocation.load("/nonexistent/invocation.json")


def test_image_inputs_may_use_an_empty_relative_path():
    doc = document()
    doc["inputs"][2]["relativePath"] = ""
    doc["inputs"][2]["prefix"] = "case-1"
    assert parse(doc).inputs[2].target == "case-1"


def test_roots_from_environment():
    roots = inv.Roots.from_env({"COMPONENT_OPERATOR_INPUT_ROOT": "/tmp/i", "COMPONENT_OPERATOR_AGENT_DIR": "/a"})
    assert roots.input == Path("/tmp/i") and roots.agent_dir == Path("/a")
    assert roots.output == Path("/output") and roots.model == Path("/opt/ml/model")
    assert roots.ground_truth == Path("/opt/ml/input/data/ground_truth")


def test_invocation_from_environment(tmp_path):
    with pytest.raises(InvocationError, match="COMPONENT_OPERATOR_INVOCATION_FILE is not set"):
        inv.invocation_from_env({})
    path = tmp_path / "invocation.json"
    path.write_text(json.dumps(document()))
    assert inv.invocation_from_env({"COMPONENT_OPERATOR_INVOCATION_FILE": str(path)}).job_id == "ns/job/0f6c/0"


def test_signing_key_rules():
    key = "ab" * 32
    assert inv.signing_key_from_env({inv.ENV_SIGNING_KEY: key}) == bytes.fromhex(key)
    assert inv.signing_key_from_hex(f" {key}\n") == bytes.fromhex(key)
    with pytest.raises(InvocationError, match="the signing key is not hexadecimal"):
        inv.signing_key_from_hex("zz")
    with pytest.raises(InvocationError, match="is not set"):
        inv.signing_key_from_env({})
    with pytest.raises(InvocationError, match="not hexadecimal"):
        inv.signing_key_from_env({inv.ENV_SIGNING_KEY: "zz" * 32})
    with pytest.raises(InvocationError, match="is 4 bytes; at least 32 are required"):
        inv.signing_key_from_env({inv.ENV_SIGNING_KEY: "ab" * 4})


def test_run_as():
    assert inv.parse_run_as("1000") == (1000, None)
    assert inv.parse_run_as("1000:2000") == (1000, 2000)
    assert inv.parse_run_as("root:root") == (0, 0)
    with pytest.raises(InvocationError, match="does not exist"):
        inv.parse_run_as("no-such-user-here")
    with pytest.raises(InvocationError, match="Invalid argument"):
        inv.parse_run_as(":5")


def test_scrubbed_environment():
    env = {
        "PATH": "/usr/bin", "HOME": "/home/u", "LOG_LEVEL": "INFO",
        "COMPONENT_OPERATOR_SIGNING_KEY_HEX": "secret", "COMPONENT_OPERATOR_S3_SECRET_KEY": "secret",
        "GRAND_CHALLENGE_COMPONENT_SIGNING_KEY_HEX": "secret", "grand_challenge_lower": "x",
        "_PYI_APPLICATION_HOME_DIR": "/tmp/_MEI", "_MEIPASS2": "/tmp/_MEI", "STATICX_PROG_PATH": "/agent",
        "LD_LIBRARY_PATH": "/tmp/_MEI", "LD_LIBRARY_PATH_ORIG": "/usr/local/cuda/lib64",
    }
    child = inv.scrubbed_environment(env, frozen=True)
    assert child == {"PATH": "/usr/bin", "HOME": "/home/u", "LOG_LEVEL": "INFO", "LD_LIBRARY_PATH": "/usr/local/cuda/lib64"}
    # A frozen agent's library path is its own: without an original, the program gets none.
    assert "LD_LIBRARY_PATH" not in inv.scrubbed_environment({"LD_LIBRARY_PATH": "/tmp/_MEI"}, frozen=True)
    # Not frozen: the variable is the user's and stays.
    assert inv.scrubbed_environment({"LD_LIBRARY_PATH": "/opt/lib"})["LD_LIBRARY_PATH"] == "/opt/lib"


def test_inputs_json_values_are_stored_once_and_filled_back_in():
    doc = document(inputsJson=[{"interface": {"slug": "threshold"}, "value": None, "file": None, "pk": "p"},
                               {"interface": {"slug": "table"}, "value": None, "file": "s3://inputs/jobs/table.csv"}],
                   inputsJsonValueFrom=["threshold", None])
    invocation = parse(doc)
    assert invocation.inputs_json_document() == [
        {"interface": {"slug": "threshold"}, "value": 0.5, "file": None, "pk": "p"},
        {"interface": {"slug": "table"}, "value": None, "file": "s3://inputs/jobs/table.csv"}]
    # The key order of each entry is kept: the JSON is byte-identical to the unshared form.
    assert json.dumps(invocation.inputs_json_document()[0]) == (
        '{"interface": {"slug": "threshold"}, "value": 0.5, "file": null, "pk": "p"}')
    assert invocation.inputs_json[0]["value"] is None  # the document itself is unchanged
    assert parse(document()).inputs_json_document() == [{"interface": {"slug": "threshold"}, "value": 0.5}]


@pytest.mark.parametrize(("value_from", "message"), [
    (["threshold", None, None], "inputsJsonValueFrom has 3 entries; it must have one per inputsJson entry (2)"),
    (["table", None], "inputsJsonValueFrom[0] names 'table', which is not a Value input"),
    ([None, "threshold"], "inputsJson[1] has no 'value' for inputsJsonValueFrom[1] to fill"),
])
def test_inputs_json_value_from_rules(value_from, message):
    doc = document(inputsJson=[{"interface": {"slug": "threshold"}, "value": None}, {"interface": {"slug": "t"}}],
                   inputsJsonValueFrom=value_from)
    with pytest.raises(InvocationError) as err:
        parse(doc)
    assert message in str(err.value)
