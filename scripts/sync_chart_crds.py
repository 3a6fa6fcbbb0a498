#!/usr/bin/env python3
"""Copy the generated CRDs from crds/ into the Helm chart as templates (``make crds`` runs it).

The chart templates its CRDs (charts/component-operator/templates/crds/) instead of shipping them
in the chart's crds/ directory, so that ``helm upgrade`` upgrades them and ``helm uninstall``
keeps them (``helm.sh/resource-policy: keep``). Each chart copy is its source file byte for
byte, plus two things:

* the whole document wrapped in ``{{- if .Values.crds.install }} ... {{- end }}``;
* ``metadata.annotations`` with ``helm.sh/resource-policy: keep`` when ``crds.keep`` is true,
  inserted right after ``metadata.name``.

Only files named ``components.grand-challenge.org_*.yaml`` belong to this script; kopf's
peering CRDs (``kopf.dev_*.yaml``) next to them are written by hand.

Usage: scripts/sync_chart_crds.py [--check]   (--check: exit 1 when a chart copy is stale)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "crds"
TARGET = REPO / "charts" / "component-operator" / "templates" / "crds"
PATTERN = "components.grand-challenge.org_*.yaml"

KEEP = (
    "  {{- if .Values.crds.keep }}\n"
    "  annotations:\n"
    "    helm.sh/resource-policy: keep\n"
    "  {{- end }}\n"
)


def render(source: Path) -> str:
    """The chart template for one generated CRD file."""
    text = source.read_text()
    if "{{" in text or "}}" in text:
        raise SystemExit(f"{source}: contains '{{{{' or '}}}}', which Helm would read as a template")
    lines = text.splitlines(keepends=True)
    try:
        meta = lines.index("metadata:\n")
    except ValueError:
        raise SystemExit(f"{source}: no top-level 'metadata:' line") from None
    if not lines[meta + 1].startswith("  name: "):
        raise SystemExit(f"{source}: 'metadata:' is not followed by '  name: ...'")
    if any(line.startswith("  annotations:") for line in lines):
        raise SystemExit(f"{source}: already has metadata.annotations; teach this script to merge them")
    if sum(1 for line in lines if line.startswith("---")) or not text.endswith("\n"):
        raise SystemExit(f"{source}: expected exactly one YAML document ending with a newline")
    head = (
        "{{- if .Values.crds.install }}\n"
        f"# Copied from crds/{source.name} by scripts/sync_chart_crds.py (`make crds`). Do not edit.\n"
    )
    body = "".join(lines[: meta + 2]) + KEEP + "".join(lines[meta + 2 :])
    return head + body + "{{- end }}\n"


def expected() -> dict[str, str]:
    return {src.name: render(src) for src in sorted(SOURCE.glob(PATTERN))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when a chart copy is stale")
    args = parser.parse_args(argv)
    want = expected()
    if not want:
        raise SystemExit(f"no {PATTERN} in {SOURCE}")
    have = {p.name: p.read_text() for p in sorted(TARGET.glob(PATTERN))}
    stale = sorted(name for name in want if have.get(name) != want[name])
    extra = sorted(set(have) - set(want))
    if args.check:
        for name in stale:
            print(f"stale: {TARGET / name} (run `make crds`)", file=sys.stderr)
        for name in extra:
            print(f"no source in crds/: {TARGET / name} (run `make crds`)", file=sys.stderr)
        return 1 if stale or extra else 0
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (TARGET / name).write_text(want[name])
    for name in extra:
        (TARGET / name).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
