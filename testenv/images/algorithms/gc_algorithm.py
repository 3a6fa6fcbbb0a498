"""A grand-challenge-style algorithm for the testenv's real node (image testenv/gc-algorithm:1).

It exists to run a job end to end the way grand-challenge runs one: it reads
``/input/inputs.json`` and each JSON ("Value") input from ``/input/<relative_path>``, logs
on stdout (and one line on stderr), and writes three outputs of three different kinds:

- ``/output/results.json``: ``{"algorithm", "inputs": {slug: value}, "score"}``, where the score
  in [0, 1) is computed from every number found in the inputs;
- ``/output/metrics.csv``: a header and one row per input;
- ``/output/images/probability-map/probability-map.mha``: an 8x8x1 MetaImage of floats.

Standard library only, so it freezes into one small static executable
(``testenv/scripts/build_agent.sh --freeze``) and the image needs nothing else: no Python,
no C library, no shell. Only ``/output`` (and ``$TMPDIR`` or ``/tmp`` for the frozen
program's own unpacking) must be writable.

Usage: gc-algorithm [--input DIR] [--output DIR]   (defaults /input and /output)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import struct
import sys
from pathlib import Path

NAME = "gc-algorithm"
MAP_SIZE = (8, 8, 1)  # x, y, z


def log(message: str) -> None:
    print(f"{NAME}: {message}", flush=True)


def numbers(value) -> list[float]:
    """Every number in a JSON value (booleans are not numbers here)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, dict):
        return [n for item in value.values() for n in numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in numbers(item)]
    return []


def score(values: list[float]) -> float:
    """A number in [0, 1) that grows with the inputs' magnitude: s / (1 + s), s = sum |x|."""
    total = sum(abs(v) for v in values)
    return round(total / (1.0 + total), 6)


def read_inputs(input_dir: Path) -> dict[str, object]:
    """slug -> value for the Value inputs; file and image inputs are only listed."""
    entries = json.loads((input_dir / "inputs.json").read_text(encoding="utf-8"))
    log(f"{len(entries)} input(s) in {input_dir / 'inputs.json'}")
    values: dict[str, object] = {}
    for entry in entries:
        interface = entry.get("interface") or {}
        slug = interface.get("slug", "?")
        super_kind = interface.get("super_kind")
        relative = interface.get("relative_path", "")
        if super_kind != "Value":
            log(f"{slug}: {super_kind} input at {relative} ({entry.get('file') or entry.get('image')}), not read")
            continue
        path = input_dir / relative
        if path.is_file():
            values[slug] = json.loads(path.read_text(encoding="utf-8"))
            log(f"{slug}: read {interface.get('kind', 'value')} from {path}")
        else:
            values[slug] = entry.get("value")
            log(f"{slug}: {path} missing, using the value in inputs.json")
    return values


def write_mha(path: Path, size: tuple[int, int, int], voxels: list[float]) -> None:
    """A MetaImage (.mha): text header, then the voxels as little-endian 32-bit floats."""
    header = (
        "ObjectType = Image\n"
        "NDims = 3\n"
        "BinaryData = True\n"
        "BinaryDataByteOrderMSB = False\n"
        "CompressedData = False\n"
        "TransformMatrix = 1 0 0 0 1 0 0 0 1\n"
        "Offset = 0 0 0\n"
        "CenterOfRotation = 0 0 0\n"
        "AnatomicalOrientation = RAI\n"
        "ElementSpacing = 1 1 1\n"
        f"DimSize = {size[0]} {size[1]} {size[2]}\n"
        "ElementType = MET_FLOAT\n"
        "ElementDataFile = LOCAL\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode("ascii") + struct.pack(f"<{len(voxels)}f", *voxels))


def probability_map(size: tuple[int, int, int], peak: float) -> list[float]:
    """A Gaussian blob in the middle of the image, scaled to ``peak``; x varies fastest."""
    nx, ny, nz = size
    cx, cy = (nx - 1) / 2, (ny - 1) / 2
    sigma2 = 2 * (nx / 4) ** 2
    return [
        peak * math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / sigma2)
        for _z in range(nz)
        for y in range(ny)
        for x in range(nx)
    ]


def run(input_dir: Path, output_dir: Path) -> None:
    values = read_inputs(input_dir)
    found = numbers(list(values.values()))
    result = {"algorithm": NAME, "inputs": values, "score": score(found)}
    log(f"{len(found)} number(s) in the inputs, score {result['score']}")

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log(f"wrote {output_dir / 'results.json'}")

    with open(output_dir / "metrics.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["input", "numbers", "sum"])
        for slug, value in sorted(values.items()):
            own = numbers(value)
            writer.writerow([slug, len(own), round(sum(own), 6)])
        writer.writerow(["all", len(found), round(sum(found), 6)])
    log(f"wrote {output_dir / 'metrics.csv'}")

    mha = output_dir / "images" / "probability-map" / "probability-map.mha"
    write_mha(mha, MAP_SIZE, probability_map(MAP_SIZE, max(result["score"], 0.01)))
    log(f"wrote {mha} ({'x'.join(map(str, MAP_SIZE))} voxels)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=NAME, description="A grand-challenge-style test algorithm.")
    parser.add_argument("--input", type=Path, default=Path("/input"), help="input root (default /input)")
    parser.add_argument("--output", type=Path, default=Path("/output"), help="output root (default /output)")
    args = parser.parse_args(argv)
    log(f"starting as uid {os.getuid()}, input {args.input}, output {args.output}")
    try:
        run(args.input, args.output)
    except (OSError, ValueError) as exc:  # ValueError: malformed JSON
        print(f"{NAME}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"{NAME}: finished", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
