"""decide_interface_status: the reconcile-time gate for interfaces (the webhook's twin)."""

from __future__ import annotations

from component_operator.planning.conditions import get_condition
from component_operator.planning.interfaces import decide_interface_status


def ready(status):
    return get_condition(status["conditions"], "Ready")


def test_valid_interface_is_ready_with_super_kind():
    status = decide_interface_status({"kind": "2D bounding box", "relativePath": "box.json"}, {}, 3)
    assert ready(status)["status"] == "True" and status["superKind"] == "Value" and status["kindCode"] == "2DBB"
    assert status["observedGeneration"] == 3 and ready(status)["observedGeneration"] == 3


def test_json_kind_not_in_database_is_a_file():
    status = decide_interface_status({"kind": "MPOI", "relativePath": "p.json", "storeInDatabase": False}, {}, 1)
    assert status["superKind"] == "File"


def test_broken_interface_is_not_ready_with_the_rule():
    status = decide_interface_status({"kind": "Multiple points", "relativePath": "p.json"}, {}, 1)
    assert ready(status)["status"] == "False" and ready(status)["reason"] == "InvalidInterface"
    assert "cannot be stored in the database" in ready(status)["message"]


def test_unknown_kind():
    status = decide_interface_status({"kind": "Bounding box", "relativePath": "p.json"}, {}, 1)
    assert ready(status)["reason"] == "UnknownKind" and "2D bounding box" in ready(status)["message"]


def test_renamed_segment_in_use_is_caught_without_webhook():
    used = [{"voxelValue": 1, "name": "lesion", "visible": True}]
    spec = {"kind": "Segmentation", "relativePath": "images/seg", "storeInDatabase": False,
            "overlaySegments": [{"voxelValue": 1, "name": "tumour", "visible": True}]}
    status = decide_interface_status(spec, {"inUse": True, "overlaySegmentsInUse": used}, 2)
    assert ready(status)["status"] == "False" and "Overlay segments cannot be changed" in ready(status)["message"]


def test_same_input_same_status():
    spec = {"kind": "Float", "relativePath": "f.json"}
    first = decide_interface_status(spec, {}, 1)
    assert decide_interface_status(spec, first, 1) == {**first}
