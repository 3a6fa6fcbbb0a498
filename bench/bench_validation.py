"""Benchmark: value validation against grand-challenge's way of doing it.

grand-challenge validates a value by running Python ``jsonschema`` (Draft 7) on a schema
composed per interface. Large annotation outputs make that slow, and every job output passes
through validation, so ``kinds.validate_value`` must be at least 10x faster on large values
while reaching the same verdict and the same message.

For each large value this script times (a) a ``jsonschema.Draft7Validator`` built once on the
composed schema ``{"$schema": draft-07, "definitions": ..., "allOf": [{"$ref":
"#/definitions/<KIND>"}]}`` with a ``referencing`` registry, reporting ``best_match`` of its
errors as grand-challenge does (building the validator is not timed, which favours the
baseline), and (b) ``validate_value``. It checks that both agree on the valid value and on an
invalid variant (verdict and message), and prints a table. Runtime: well under two minutes.

    python bench/bench_validation.py
"""

from __future__ import annotations

import copy
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

import jsonschema  # noqa: E402
from jsonschema.exceptions import best_match  # noqa: E402

from component_operator import kinds  # noqa: E402
from component_operator.kinds.schemas import compose_schema, python_registry  # noqa: E402
from component_operator.kinds.values import grand_challenge_message  # noqa: E402

TARGET_RATIO = 10.0
MIN_SECONDS = {"baseline": 3.0, "ours": 1.0}  # time each side at least this long (after 1 run)


@dataclass
class Case:
    name: str
    kind: str
    value: Any
    invalid: Any | None  # an invalid variant (None: the kind accepts every value)
    schema: Any = None


def _version() -> dict[str, int]:
    return {"major": 1, "minor": 0}


def multiple_polygons(total_points: int = 100_000, polygons: int = 100) -> Case:
    rng = random.Random(1)
    per_polygon = total_points // polygons
    value = {
        "name": "Tumour outlines",
        "type": "Multiple polygons",
        "version": _version(),
        "polygons": [
            {
                "name": f"polygon {i}",
                "seed_point": [rng.uniform(0, 512), rng.uniform(0, 512), 0.5],
                "path_points": [[rng.uniform(0, 512), rng.uniform(0, 512), 0.5] for _ in range(per_polygon)],
                "sub_type": "poly",
                "groups": ["tumour"],
                "probability": rng.random(),
            }
            for i in range(polygons)
        ],
    }
    invalid = copy.deepcopy(value)
    invalid["polygons"][77]["path_points"][500] = [1.0, 2.0]  # a 2-D point deep inside
    return Case("Multiple polygons, 100k points", "Multiple polygons", value, invalid)


def multiple_boxes(count: int = 10_000) -> Case:
    rng = random.Random(2)
    boxes = []
    for i in range(count):
        x, y, w, h = rng.uniform(0, 500), rng.uniform(0, 500), rng.uniform(1, 50), rng.uniform(1, 50)
        corners = [[x, y, 0.5], [x + w, y, 0.5], [x + w, y + h, 0.5], [x, y + h, 0.5]]
        boxes.append({"name": f"box {i}", "type": "2D bounding box", "corners": corners, "probability": rng.random()})
    value = {"name": "Detections", "type": "Multiple 2D bounding boxes", "version": _version(), "boxes": boxes}
    invalid = copy.deepcopy(value)
    invalid["boxes"][9_000]["probability"] = 1.5
    return Case("Multiple 2D bounding boxes, 10k boxes", "Multiple 2D bounding boxes", value, invalid)


def anything(target_bytes: int = 1_000_000) -> tuple[Case, Case]:
    rng = random.Random(3)
    rows = []
    while len(json.dumps(rows)) < target_bytes:  # grows in chunks; close enough to 1 MB
        rows.extend(
            {"id": len(rows) + j, "label": f"case-{rng.randrange(10**6):06d}", "scores": [rng.random() for _ in range(5)], "ok": True}
            for j in range(1000)
        )
    value = {"study": "bench", "rows": rows}
    plain = Case("Anything, ~1 MB, no custom schema", "Anything", value, None)
    schema = {
        "type": "object",
        "required": ["study", "rows"],
        "properties": {
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "label", "scores"],
                    "properties": {
                        "id": {"type": "integer", "minimum": 0},
                        "label": {"type": "string", "minLength": 1},
                        "scores": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
                        "ok": {"type": "boolean"},
                    },
                },
            }
        },
    }
    invalid = copy.deepcopy(value)
    invalid["rows"][-3]["scores"][2] = "0.5"
    custom = Case("Anything, ~1 MB, custom schema", "Anything", value, invalid, schema)
    return plain, custom


def baseline_validator(case: Case) -> Callable[[Any], str | None]:
    """grand-challenge's check: Draft 7 on the composed schema, best_match for the message."""
    code = kinds.resolve_kind(case.kind).code
    validator = jsonschema.Draft7Validator(compose_schema(code, case.schema), registry=python_registry(code == "CHART"))

    def check(value: Any) -> str | None:
        error = best_match(validator.iter_errors(value))
        return None if error is None else grand_challenge_message(error)

    return check


def ours(case: Case) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        try:
            kinds.validate_value(case.kind, value, schema=case.schema)
        except kinds.ValueValidationError as err:
            return err.message
        return None

    return check


def rate(check: Callable[[Any], Any], value: Any, min_seconds: float) -> float:
    """Values per second, timed over at least ``min_seconds`` (and at least two runs)."""
    check(value)  # warm-up: compile and cache
    runs, start = 0, time.perf_counter()
    while True:
        check(value)
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and runs >= 2:
            return runs / elapsed


def main() -> int:
    cases = [multiple_polygons(), multiple_boxes(), *anything()]
    rows, problems = [], []
    for case in cases:
        baseline, fast = baseline_validator(case), ours(case)
        for label, value in (("valid", case.value), ("invalid", case.invalid)):
            if value is None:
                continue
            expected, got = baseline(value), fast(value)
            if (expected is None) != (label == "valid") or expected != got:
                problems.append(f"{case.name} ({label}): baseline {expected!r}, ours {got!r}")
        baseline_rate = rate(baseline, case.value, MIN_SECONDS["baseline"])
        ours_rate = rate(fast, case.value, MIN_SECONDS["ours"])
        size = len(json.dumps(case.value).encode())
        rows.append((case.name, size, baseline_rate, ours_rate, ours_rate / baseline_rate))

    header = ("value", "size", "baseline values/s", "ours values/s", "ratio")
    widths = (40, 10, 18, 16, 10)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for name, size, base, mine, ratio in rows:
        cells = (name, f"{size / 1e6:.2f} MB", f"{base:,.2f}", f"{mine:,.1f}", f"{ratio:,.0f}x")
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    print(f"verdicts and messages identical on valid and invalid variants: {'yes' if not problems else 'NO'}")
    for problem in problems:
        print("  MISMATCH:", problem)
    slow = [name for name, *_, ratio in rows if ratio < TARGET_RATIO]
    if slow:
        print(f"below the {TARGET_RATIO:.0f}x target: {', '.join(slow)}")
    return 1 if problems or slow else 0


if __name__ == "__main__":
    sys.exit(main())
