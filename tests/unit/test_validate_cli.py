"""``component-operator validate value|interface``: exit 0 valid, 1 invalid, 2 usage."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from component_operator import kinds
from component_operator.validate_cli import main

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_json(path: Path, value) -> str:
    path.write_text(json.dumps(value))
    return str(path)


# ---------------------------------------------------------------------------------------
# validate value
# ---------------------------------------------------------------------------------------


def test_valid_value(tmp_path, capsys):
    value = write_json(tmp_path / "box.json", kinds.example_value("2DBB"))
    code, out, err = run(capsys, "value", "--kind", "2D bounding box", value)
    assert (code, out, err) == (0, "valid 2D bounding box value\n", "")
    assert run(capsys, "value", "--kind", "2dbb", value)[0] == 0


def test_invalid_value_names_field_value_and_rule(tmp_path, capsys):
    box = kinds.example_value("2DBB")
    box["corners"].pop()
    value = write_json(tmp_path / "box.json", box)
    code, out, err = run(capsys, "value", "--kind", "2D bounding box", value)
    assert code == 1 and out == ""
    assert f"{value}: invalid 2D bounding box value" in err
    assert "at corners: expected exactly 4 items, got 3" in err
    assert "offending value: [[130, 40, 0.5], [200, 40, 0.5], [200, 90, 0.5]]" in err
    assert "grand-challenge: JSON does not fulfill schema: instance is too short" in err


def test_integer_semantics_and_optional(tmp_path, capsys):
    assert run(capsys, "value", "--kind", "Integer", write_json(tmp_path / "i.json", 42.0))[0] == 0
    null = write_json(tmp_path / "null.json", None)
    assert run(capsys, "value", "--kind", "Integer", null)[0] == 1
    assert run(capsys, "value", "--kind", "Integer", "--optional", null)[0] == 0


def test_custom_schema(tmp_path, capsys):
    schema = write_json(tmp_path / "schema.json", {"maximum": 40})
    assert run(capsys, "value", "--kind", "INT", "--schema", schema, write_json(tmp_path / "ok.json", 40))[0] == 0
    code, _, err = run(capsys, "value", "--kind", "INT", "--schema", schema, write_json(tmp_path / "no.json", 41))
    assert code == 1 and "must be <= 40, got 41" in err


def test_file_kind_values_are_content_checked(tmp_path, capsys):
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    assert run(capsys, "value", "--kind", "PDF file", str(pdf)) == (0, "valid PDF file\n", "")
    fake = tmp_path / "fake.pdf"
    fake.write_bytes(b"<html></html>")
    code, out, err = run(capsys, "value", "--kind", "PDF file", str(fake))
    assert code == 1 and "not a valid PDF file" in err
    tree = tmp_path / "tree.newick"
    tree.write_text("((A,B),C;")
    code, _, err = run(capsys, "value", "--kind", "NEWCK", str(tree))
    assert code == 1 and "Invalid Newick tree format: 1 opening parenthesis not closed" in err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["value", "x.json"], "the following arguments are required: --kind"),
        (["value", "--kind", "Heatmap", "{value}"], "Unknown interface kind 'Heatmap'"),
        (["value", "--kind", "Integer", "{missing}"], "no such file"),
        (["value", "--kind", "Integer", "{bad_json}"], "is not valid JSON"),
        (["value", "--kind", "Integer", "--schema", "{bad_json}", "{value}"], "is not valid JSON"),
        (["value", "--kind", "Integer", "--schema", "{bad_schema}", "{value}"], "Invalid schema: 'whatevs' is not valid"),
        (["value", "--kind", "Integer", "--schema", "{remote_schema}", "{value}"], "remote $ref 'https://example.com/x.json' is not allowed"),
        (["value", "--kind", "Segmentation", "{value}"], "image kind"),
        (["value", "--kind", "PDF file", "{missing}"], "no such file"),
        (["interface", "{missing}"], "no such file"),
        (["interface", "{bad_yaml}"], "is not valid YAML"),
        (["interface", "{no_interfaces}"], "contains no ComponentInterface document"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_usage_errors_exit_2(argv, needle, tmp_path, capsys):
    files = {
        "value": write_json(tmp_path / "v.json", 1),
        "missing": str(tmp_path / "missing.json"),
        "bad_json": str(tmp_path / "bad.json"),
        "bad_schema": write_json(tmp_path / "s.json", {"type": "whatevs"}),
        "remote_schema": write_json(tmp_path / "r.json", {"$ref": "https://example.com/x.json"}),
        "bad_yaml": str(tmp_path / "bad.yaml"),
        "no_interfaces": str(tmp_path / "none.yaml"),
    }
    (tmp_path / "bad.json").write_text("{bad")
    (tmp_path / "bad.yaml").write_text("a: [unclosed")
    (tmp_path / "none.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    code, out, err = run(capsys, *[a.format(**files) for a in argv])
    assert code == 2 and out == ""
    assert needle in err


def test_help_exits_0(capsys):
    code, out, _ = run(capsys, "value", "--help")
    assert code == 0 and "--kind" in out


# ---------------------------------------------------------------------------------------
# validate interface
# ---------------------------------------------------------------------------------------

MANIFEST = textwrap.dedent(
    """\
    apiVersion: components.grand-challenge.org/v1alpha1
    kind: ComponentInterface
    metadata: {name: points}
    spec: {kind: Multiple points, relativePath: /points.json}
    ---
    apiVersion: components.grand-challenge.org/v1alpha1
    kind: ComponentInterface
    metadata: {name: score}
    spec: {kind: Float, relativePath: score.json, exampleValue: 1.5, schema: {maximum: 1}}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: unrelated}
    ---
    apiVersion: components.grand-challenge.org/v1alpha1
    kind: ComponentInterface
    metadata: {name: segmentation}
    spec:
      kind: Segmentation
      relativePath: images/segmentation
      storeInDatabase: false
      overlaySegments:
      - {voxelValue: 1, name: lesion, visible: true}
      - {voxelValue: 3, name: oedema, visible: true}
    ---
    apiVersion: components.grand-challenge.org/v1alpha1
    kind: ComponentInterface
    metadata: {name: score-copy}
    spec: {kind: Float, relativePath: score.json}
    ---
    apiVersion: components.grand-challenge.org/v1alpha1
    kind: ComponentInterface
    metadata: {name: report}
    spec: {kind: PDF file, relativePath: report.pdf, storeInDatabase: false}
    """
)


def test_example_manifests_are_valid(capsys):
    code, out, err = run(capsys, "interface", str(REPO / "examples" / "interfaces.yaml"))
    assert code == 0, err
    assert "ComponentInterface/lesion-bounding-box: valid" in out


def test_invalid_interfaces_are_reported_per_field(tmp_path, capsys):
    manifest = tmp_path / "interfaces.yaml"
    manifest.write_text(MANIFEST)
    code, out, err = run(capsys, "interface", str(manifest))
    assert code == 1
    assert out == "ComponentInterface/report: valid\n"
    lines = err.splitlines()
    assert "ComponentInterface/points: spec.relativePath: Relative paths are not allowed. (got \"/points.json\")" in lines
    assert "ComponentInterface/points: spec.relativePath: Path must not begin or end with '/' (got \"/points.json\")" in lines
    assert "ComponentInterface/points: spec.storeInDatabase: Interface MPOI objects cannot be stored in the database" in lines
    assert (
        "ComponentInterface/score: spec.exampleValue: The example value for this interface is not valid: "
        "JSON does not fulfill schema: instance is greater than the maximum of 1 (got 1.5)"
    ) in lines
    assert any(line.startswith("ComponentInterface/segmentation: spec.overlaySegments: Voxel values") for line in lines)
    assert "skipping a ConfigMap document (not a ComponentInterface)" in lines
    assert any("ComponentInterface/score-copy: spec.relativePath: Component interface with this Relative path" in line for line in lines)


def test_document_level_errors(tmp_path, capsys):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("apiVersion: components.grand-challenge.org/v1\nkind: ComponentInterface\nmetadata: {}\nspec: 5\n")
    code, _, err = run(capsys, "interface", str(manifest))
    assert code == 1
    assert "apiVersion: must be components.grand-challenge.org/v1alpha1" in err
    assert "metadata.name: Required value" in err
    assert "spec: must be a mapping" in err


# ---------------------------------------------------------------------------------------
# As processes
# ---------------------------------------------------------------------------------------


def test_module_entry_point_exit_codes(tmp_path):
    good = write_json(tmp_path / "good.json", kinds.example_value("MPOI"))
    bad = write_json(tmp_path / "bad.json", {"type": "Multiple points"})

    def status(*argv):
        command = [sys.executable, "-m", "component_operator.validate_cli", *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    ok = status("value", "--kind", "Multiple points", good)
    assert (ok.returncode, ok.stdout) == (0, "valid Multiple points value\n")
    invalid = status("value", "--kind", "Multiple points", bad)
    assert invalid.returncode == 1 and "version: required property is missing" in invalid.stderr
    usage = status("value", "--kind", "Nope", good)
    assert usage.returncode == 2 and "Unknown interface kind" in usage.stderr


def test_value_from_stdin(tmp_path):
    command = [sys.executable, "-m", "component_operator.validate_cli", "value", "--kind", "STR", "-"]
    result = subprocess.run(command, input='"text"', capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
