"""Admission: `kubectl apply` of a broken interface or of a job with an invalid value is refused
with a message naming the field and the rule; valid objects pass; the operator reconciles each
interface into status.superKind and a Ready condition."""

from __future__ import annotations

import uuid

import yaml

from component_operator import GROUP, VERSION

from .conftest import wait_until


def apply(testenv, doc: dict):
    return testenv.kubectl("apply", "-f", "-", input=yaml.safe_dump(doc), check=False)


def iface(name: str, **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentInterface", "metadata": {"name": name}, "spec": spec}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_valid_interface_is_admitted_and_becomes_ready(testenv, custom, operator_process):
    name = unique("adm-points")
    proc = apply(testenv, iface(name, kind="Multiple points", relativePath=f"{name}.json", storeInDatabase=False))
    assert proc.returncode == 0, proc.stderr

    def ready():
        status = custom.get_cluster_custom_object(GROUP, VERSION, "componentinterfaces", name).get("status") or {}
        return status if any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])) else None

    status = wait_until(ready, message="interface Ready")
    assert status["superKind"] == "File" and status["kindCode"] == "MPOI"
    testenv.kubectl("delete", "componentinterface", name)


def test_interface_breaking_kind_rules_is_refused(testenv, operator_process):
    name = unique("adm-bad")
    proc = apply(testenv, iface(name, kind="Multiple points", relativePath=f"{name}.txt"))
    assert proc.returncode != 0
    assert "denied the request" in proc.stderr
    assert "Interface MPOI objects cannot be stored in the database" in proc.stderr
    assert "spec.storeInDatabase" in proc.stderr


def test_interface_with_wrong_suffix_is_refused(testenv, operator_process):
    name = unique("adm-suffix")
    proc = apply(testenv, iface(name, kind="Float", relativePath=f"{name}.txt"))
    assert proc.returncode != 0 and "Relative path should end with .json" in proc.stderr


def test_interface_with_broken_custom_schema_is_refused(testenv, operator_process):
    name = unique("adm-schema")
    proc = apply(testenv, iface(name, kind="Integer", relativePath=f"{name}.json", schema={"type": "whatevs"}))
    assert proc.returncode != 0 and "Invalid schema" in proc.stderr and "spec.schema" in proc.stderr


def test_interface_with_remote_ref_is_refused_not_crashing(testenv, operator_process):
    name = unique("adm-ref")
    schema = {"$ref": "https://example.org/schema.json"}
    proc = apply(testenv, iface(name, kind="Anything", relativePath=f"{name}.json", schema=schema))
    assert proc.returncode != 0 and "https://example.org/schema.json" in proc.stderr


def test_interface_with_invalid_example_is_refused(testenv, operator_process):
    name = unique("adm-example")
    proc = apply(testenv, iface(name, kind="Integer", relativePath=f"{name}.json", exampleValue="seven"))
    assert proc.returncode != 0
    assert "The example value for this interface is not valid" in proc.stderr


def _job(name: str, value) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComponentJob",
        "metadata": {"name": name},
        "spec": {"image": "algo", "inputs": [{"interface": "it-bbox", "value": value}]},
    }


BBOX = {"version": {"major": 1, "minor": 0}, "type": "2D bounding box", "corners": [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]}


def test_job_with_malformed_bounding_box_is_refused(testenv, namespace, job_interfaces, operator_process):
    value = {**BBOX, "corners": BBOX["corners"][:3]}
    proc = testenv.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(_job("bad-box", value)), check=False)
    assert proc.returncode != 0
    assert "spec.inputs[0].value.corners: expected exactly 4 items, got 3" in proc.stderr


def test_job_with_wrong_type_literal_is_refused(testenv, namespace, job_interfaces, operator_process):
    value = {**BBOX, "type": "2D Bounding Box"}
    proc = testenv.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(_job("bad-type", value)), check=False)
    assert proc.returncode != 0 and "spec.inputs[0].value.type" in proc.stderr


def test_valid_job_is_admitted(testenv, namespace, job_interfaces, operator_process):
    proc = testenv.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(_job("good-box", BBOX)), check=False)
    assert proc.returncode == 0, proc.stderr


def test_overlay_segments_only_extended_once_in_use(testenv, custom, operator_process):
    name = unique("adm-seg")
    segments = [{"voxelValue": 1, "name": "lesion", "visible": True}]
    doc = iface(name, kind="Segmentation", relativePath=f"images/{name}", storeInDatabase=False, overlaySegments=segments)
    assert apply(testenv, doc).returncode == 0
    try:
        # A job used the interface (the job reconciler records this in status).
        custom.patch_cluster_custom_object_status(GROUP, VERSION, "componentinterfaces", name, {"status": {"inUse": True}})
        renamed = iface(name, kind="Segmentation", relativePath=f"images/{name}", storeInDatabase=False,
                        overlaySegments=[{"voxelValue": 1, "name": "tumour", "visible": True}])
        proc = apply(testenv, renamed)
        assert proc.returncode != 0
        assert "Overlay segments cannot be changed, as values or questions for this ComponentInterface exist." in proc.stderr
        extended = iface(name, kind="Segmentation", relativePath=f"images/{name}", storeInDatabase=False,
                         overlaySegments=segments + [{"voxelValue": 2, "name": "oedema", "visible": False}])
        proc = apply(testenv, extended)
        assert proc.returncode == 0, proc.stderr
    finally:
        testenv.kubectl("delete", "componentinterface", name)


# Issue 12: hostile patterns must neither freeze the operator nor slip through.
REDOS = "^(a+)+$"
PYTHON_ONLY_REDOS = "^(?=(a+)+$)"  # lookahead: only Python re (in a bounded worker) evaluates it


def _ready_interface(testenv, custom, name: str, **spec) -> None:
    proc = apply(testenv, iface(name, **spec))
    assert proc.returncode == 0, proc.stderr

    def ready():
        status = custom.get_cluster_custom_object(GROUP, VERSION, "componentinterfaces", name).get("status") or {}
        return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))

    wait_until(ready, message=f"interface {name} Ready")  # the operator's index has it now


def _string_job(name: str, interface: str, value: str) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentJob", "metadata": {"name": name},
            "spec": {"image": "algo", "inputs": [{"interface": interface, "value": value}]}}


def test_redos_pattern_is_refused_at_once_and_the_operator_stays_responsive(testenv, custom, namespace,
                                                                            operator_process):
    redos, python_only = unique("adm-redos"), unique("adm-lookahead")
    _ready_interface(testenv, custom, redos, kind="String", relativePath=f"{redos}.json", schema={"pattern": REDOS})
    _ready_interface(testenv, custom, python_only, kind="String", relativePath=f"{python_only}.json",
                     schema={"pattern": PYTHON_ONLY_REDOS})
    try:
        def submit(name: str, interface: str, value: str):
            doc = yaml.safe_dump(_string_job(name, interface, value))
            return testenv.kubectl("apply", "-n", namespace, "-f", "-", input=doc, check=False)

        # RE2: an ordinary verdict, no backtracking. (A frozen webhook would time out, and with
        # failurePolicy Ignore the job would be admitted: being refused proves it answered.)
        proc = submit("redos", redos, "a" * 31 + "!")
        assert proc.returncode != 0
        assert f'spec.inputs[0].value: must match the pattern "{REDOS}", got string \'{"a" * 31}!\'' in proc.stderr
        # Python re in a worker: stopped at the time budget, refused with the field and the setting.
        proc = submit("lookahead", python_only, "a" * 40 + "!")
        assert proc.returncode != 0
        assert f"spec.inputs[0].value: validating string 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' against " \
               f"ComponentInterface '{python_only}' took longer than the 5 s budget (operator setting " \
               "validationSeconds)" in proc.stderr
        # The killed worker was replaced and the operator kept serving.
        proc = submit("fine", redos, "aaaa")
        assert proc.returncode == 0, proc.stderr
    finally:
        testenv.kubectl("delete", "componentinterface", redos, python_only, check=False)


def test_interface_with_too_deep_schema_is_refused_with_the_limit(testenv, operator_process):
    name = unique("adm-deep")
    schema: dict = {"type": "integer"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"a": schema}}
    proc = apply(testenv, iface(name, kind="Anything", relativePath=f"{name}.json", schema=schema))
    assert proc.returncode != 0
    assert "spec.schema: Invalid schema: the schema is nested 81 levels deep" in proc.stderr
    assert "more than the limit of 64 levels" in proc.stderr
