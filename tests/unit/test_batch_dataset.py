"""The batch handler's dataset reading without a cluster: the second gate for filters (admission
is the first), item validation and digests, and what happens without object storage."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from component_operator.api.batch import ComponentBatchSpec
from component_operator.handlers import batch as handler

IMAGE = "sha256:" + "a" * 64


def spec(**kw):
    return ComponentBatchSpec.model_validate({"image": "algo", "itemInterface": "prob",
                                              "items": [{"value": i} for i in range(6)], **kw})


def read(s, ctx=None):
    ctx = ctx or SimpleNamespace(validation=None, store=None, content_hashes=None)
    return asyncio.run(handler._read_plan(ctx, s, 1, IMAGE))


def test_filter_keeps_matching_items_with_their_dataset_index():
    plan = read(spec(filter="value % 2 == 0"))
    assert plan.found == 6
    assert [i.index for i in plan.items] == [0, 2, 4]
    assert all(i.digest and i.problem is None for i in plan.items)


def test_a_filter_that_does_not_compile_is_a_plan_error_naming_the_field():
    with pytest.raises(handler.PlanError) as info:
        read(spec(filter="value >"))
    assert info.value.reason == "InvalidFilter"
    assert info.value.message.startswith('spec.filter: "value >" does not compile')


def test_an_item_the_filter_cannot_evaluate_is_invalid_and_the_others_go_on():
    s = ComponentBatchSpec.model_validate({"image": "algo", "itemInterface": "prob", "filter": "value.x > 1",
                                           "items": [{"value": {"x": 2}}, {"value": 3}, {"value": {"x": 0}}]})
    plan = read(s)
    assert [i.index for i in plan.items] == [0, 1]
    assert plan.items[0].digest and plan.items[1].reason == "FilterError"
    assert "spec.filter" in plan.items[1].problem


def test_a_file_item_without_sha256_and_without_object_storage_is_invalid():
    s = ComponentBatchSpec.model_validate({"image": "algo", "itemInterface": "f", "items": [
        {"file": {"uri": "s3://b/one.csv"}}, {"file": {"uri": "s3://b/two.csv", "sha256": "c" * 64}}]})
    plan = read(s)
    assert plan.items[0].reason == "UnknownContent" and "give its sha256" in plan.items[0].problem
    assert plan.items[0].problem.startswith("items[0]: s3://b/one.csv")
    assert plan.items[1].digest


def test_object_storage_datasets_need_the_data_plane():
    s = ComponentBatchSpec.model_validate({"image": "algo", "itemInterface": "f",
                                           "fromObjectStorage": {"uri": "s3://b/scans/"}})
    with pytest.raises(handler.PlanError) as info:
        read(s)
    assert info.value.reason == "NoObjectStorage" and "spec.fromObjectStorage" in info.value.message


def test_a_batch_spec_is_parsed_like_a_job_spec_depth_first():
    from component_operator.planning.jobs import SpecError, parse_spec

    deep: object = 1
    for _ in range(100):
        deep = [deep]
    with pytest.raises(SpecError) as info:
        parse_spec({"image": "algo", "itemInterface": "prob", "items": [{"value": 1}, {"value": deep}]},
                   ComponentBatchSpec)
    assert str(info.value).startswith("spec.items[1].value: ")
    with pytest.raises(SpecError, match=r"spec.parallelism: Input should be less than or equal to 1000"):
        parse_spec({"image": "algo", "itemInterface": "prob", "items": [], "parallelism": 5000}, ComponentBatchSpec)
