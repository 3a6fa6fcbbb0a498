"""The inputs digest: what is and is not part of a run's identity."""

from __future__ import annotations

import pytest

from component_operator.api.job import ComponentJobSpec, JobInput
from component_operator.planning import identity

IMAGE = "sha256:" + "a" * 64
SHA = "b" * 64


def digest(inputs, image=IMAGE, **kw):
    spec = ComponentJobSpec.model_validate({"image": "x", "inputs": inputs, **kw})
    return identity.inputs_digest(identity.job_identity(spec, image))


def test_digest_is_64_hex_and_stable():
    d = digest([{"interface": "a", "value": {"x": 1, "y": [1, 2]}}])
    assert len(d) == 64 and int(d, 16) >= 0
    assert d == digest([{"interface": "a", "value": {"y": [1, 2], "x": 1}}]), "key order is not identity"


def test_values_by_content():
    assert digest([{"interface": "a", "value": 1}]) == digest([{"interface": "a", "value": 1.0}])
    assert digest([{"interface": "a", "value": 1}]) != digest([{"interface": "a", "value": 2}])
    assert digest([{"interface": "a", "value": "1"}]) != digest([{"interface": "a", "value": 1}])
    assert digest([{"interface": "a", "value": True}]) != digest([{"interface": "a", "value": 1}])
    assert digest([{"interface": "a", "value": 1.5}]) != digest([{"interface": "a", "value": 1}])


def test_input_order_does_not_matter_but_interfaces_do():
    a = {"interface": "a", "value": 1}
    b = {"interface": "b", "value": 2}
    assert digest([a, b]) == digest([b, a])
    assert digest([{"interface": "a", "value": 2}, {"interface": "b", "value": 1}]) != digest([a, b])


def test_image_digest_is_part_of_identity():
    inputs = [{"interface": "a", "value": 1}]
    assert digest(inputs) != digest(inputs, image="sha256:" + "c" * 64)


def test_files_by_sha256_not_uri():
    one = [{"interface": "f", "file": {"uri": "s3://b/one.csv", "sha256": SHA}}]
    moved = [{"interface": "f", "file": {"uri": "s3://b/elsewhere/two.csv", "sha256": SHA}}]
    other = [{"interface": "f", "file": {"uri": "s3://b/one.csv", "sha256": "c" * 64}}]
    assert digest(one) == digest(moved)
    assert digest(one) != digest(other)
    # A file and an image with the same bytes are different inputs.
    assert digest(one) != digest([{"interface": "f", "image": {"uri": "s3://b/one.csv", "sha256": SHA}}])


def test_unknown_sha256_needs_hashing():
    spec = ComponentJobSpec.model_validate({"image": "x", "inputs": [{"interface": "f", "file": {"uri": "s3://b/k"}}]})
    run = identity.job_identity(spec, IMAGE)
    assert identity.sources_without_sha256(run) == ["s3://b/k"]
    with pytest.raises(identity.UnknownContentError, match=r"spec.inputs\[0\].file: the SHA-256 of s3://b/k"):
        identity.inputs_digest(run)
    assert identity.inputs_digest(run, {"s3://b/k": SHA}) == digest(
        [{"interface": "f", "file": {"uri": "s3://b/k", "sha256": SHA}}])


def test_model_and_ground_truth_count_settings_do_not():
    inputs = [{"interface": "a", "value": 1}]
    model = {"uri": "s3://b/model.tar.gz", "sha256": SHA}
    assert digest(inputs) != digest(inputs, model=model)
    assert digest(inputs, model=model) != digest(inputs, groundTruth=model)
    assert digest(inputs) == digest(inputs, timeLimit=600, requiresMemoryGB=2, inputPrefixes={"a": "x"})


def test_label_value_fits_a_label():
    d = digest([{"interface": "a", "value": 1}])
    assert identity.label_value(d) == d[:63] and len(identity.label_value(d)) == 63


def test_non_json_values_are_refused():
    run = identity.RunIdentity(IMAGE, (JobInput.model_construct(interface="a", value=object(), file=None, image=None),))
    with pytest.raises(TypeError):
        identity.inputs_digest(run)
