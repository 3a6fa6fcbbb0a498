"""Reading what the operator wrote: image readiness, a batch's conditions, counts and plan (pure).

Status is only trusted for the generation it was written for: after a batch's spec changes
(a runner re-applies it with new items), its old ``Complete`` says nothing about the new items,
so a condition counts only when ``status.observedGeneration`` (and the condition's own
``observedGeneration``, when set) has caught up with ``metadata.generation``.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from .errors import ImageNotReadyError

TERMINAL_CONDITIONS = ("Complete", "Failed")
COUNT_FIELDS = ("found", "total", "existing", "pending", "running", "succeeded", "failed", "invalid", "deferred")
#: Reported items shown by ``batch status`` and the dry-run plan.
SHOWN_ITEMS = 10


def image_digest(image: Mapping[str, Any] | None, namespace: str, name: str) -> str:
    """The Ready image's pinned digest (``status.imageSha256``), or why there is none."""
    if image is None:
        raise ImageNotReadyError(namespace, name, "it does not exist")
    status = image.get("status") or {}
    ready = condition(image, "Ready")
    if ready is None or ready.get("status") != "True":
        why = status.get("message") or (ready or {}).get("message") or "it has no status yet (is the operator running?)"
        state = status.get("importStatus")
        raise ImageNotReadyError(namespace, name, f"not Ready ({state}): {why}" if state else f"not Ready: {why}")
    digest = status.get("imageSha256")
    if not digest:
        raise ImageNotReadyError(namespace, name, "Ready but without status.imageSha256")
    return str(digest)


def condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for entry in (obj.get("status") or {}).get("conditions") or ():
        if entry.get("type") == type_:
            return dict(entry)
    return None


def generation(obj: Mapping[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def observed(obj: Mapping[str, Any]) -> bool:
    """Whether the operator has written status for the object's current generation."""
    seen = (obj.get("status") or {}).get("observedGeneration")
    return seen is not None and int(seen) >= generation(obj)


def is_true(obj: Mapping[str, Any], type_: str) -> bool:
    """The condition is True and was set for the current generation."""
    entry = condition(obj, type_)
    if entry is None or entry.get("status") != "True" or not observed(obj):
        return False
    seen = entry.get("observedGeneration")
    return seen is None or int(seen) >= generation(obj)


def terminal_condition(batch: Mapping[str, Any]) -> str | None:
    """"Complete" or "Failed" once the batch ended (for its current generation), else None."""
    for type_ in TERMINAL_CONDITIONS:
        if is_true(batch, type_):
            return type_
    return None


def planned(batch: Mapping[str, Any]) -> bool:
    """A suspended batch whose plan (counts) the operator has written for its current generation."""
    return is_true(batch, "Suspended")


def counts(batch: Mapping[str, Any]) -> dict[str, int]:
    found = (batch.get("status") or {}).get("counts") or {}
    return {key: int(found.get(key) or 0) for key in COUNT_FIELDS}


def settled(batch: Mapping[str, Any]) -> tuple[int, int]:
    """(items settled, total): what ``status.progress`` says, as numbers for a progress bar."""
    c = counts(batch)
    return max(0, c["total"] - c["pending"] - c["running"]), c["total"]


def progress(batch: Mapping[str, Any]) -> str:
    done, total = settled(batch)
    return (batch.get("status") or {}).get("progress") or f"{done}/{total}"


def summary(batch: Mapping[str, Any]) -> str:
    c = counts(batch)
    return (f"{c['succeeded']} succeeded, {c['failed']} failed, {c['invalid']} invalid, {c['existing']} existing, "
            f"{c['deferred']} deferred, {c['running']} running, {c['pending']} pending of {c['total']}")


def reference(batch: Mapping[str, Any]) -> str:
    meta = batch.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def status_document(batch: Mapping[str, Any]) -> dict[str, Any]:
    """What ``batch status -o json`` prints: identity, generation and the status as written."""
    meta = batch.get("metadata") or {}
    status = batch.get("status") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "generation": meta.get("generation"),
        "observedGeneration": status.get("observedGeneration"),
        "image": (batch.get("spec") or {}).get("image"),
        "progress": progress(batch),
        "counts": counts(batch),
        "conditions": list(status.get("conditions") or []),
        "failedItems": list(status.get("failedItems") or []),
        "invalidItems": list(status.get("invalidItems") or []),
    }


def format_status(batch: Mapping[str, Any]) -> str:
    """``batch status`` as text: counts, progress, conditions, reported items."""
    doc = status_document(batch)
    lines = [f"ComponentBatch {doc['namespace']}/{doc['name']}  image {doc['image']}  progress {doc['progress']}"
             f"  generation {doc['generation']} (observed {doc['observedGeneration']})"]
    lines.append("  ".join(f"{key} {value}" for key, value in doc["counts"].items()))
    lines.append("")
    lines.extend(_table(["TYPE", "STATUS", "REASON", "MESSAGE"],
                        [[c.get("type", ""), c.get("status", ""), c.get("reason", ""), c.get("message", "")]
                         for c in doc["conditions"]]) or ["(no conditions yet: has the operator seen the batch?)"])
    for title, key in (("Failed items", "failedItems"), ("Invalid items", "invalidItems")):
        if doc[key]:
            lines.extend(["", f"{title} (first {len(doc[key])} of {doc['counts'][key[:-5]]}):"])
            lines.extend(_item_table(doc[key]))
    return "\n".join(lines)


def format_plan(batch: Mapping[str, Any]) -> str:
    """The dry run's answer: what the batch would start, what it would skip, what is wrong."""
    c = counts(batch)
    image_ref = (batch.get("spec") or {}).get("image")
    rows = [
        ("found", c["found"], "items in the dataset"),
        ("total", c["total"], "after the filter (execution candidates)"),
        ("existing", c["existing"], "already ran with the same inputs: skipped"),
        ("pending", c["pending"], "would be started"),
        ("invalid", c["invalid"], "cannot become a job"),
        ("deferred", c["deferred"], "beyond maxItems"),
    ]
    if c["failed"]:
        rows.append(("failed", c["failed"], "failed before and would not be rerun (rerunFailed is false)"))
    if c["running"] or c["succeeded"]:
        rows.append(("running", c["running"], "already running for this batch"))
        rows.append(("succeeded", c["succeeded"], "already succeeded in this batch"))
    lines = [f"Plan of ComponentBatch {reference(batch)} (image {image_ref}), nothing started:"]
    lines.extend(f"  {name:<9} {value:>6}  {what}" for name, value, what in rows)
    invalid = ((batch.get("status") or {}).get("invalidItems") or [])[:SHOWN_ITEMS]
    if invalid:
        lines.extend(["", f"Invalid items (first {len(invalid)} of {c['invalid']}):"])
        lines.extend(_item_table(invalid))
    return "\n".join(lines)


def _item_table(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    return _table(["INDEX", "ITEM", "JOB", "REASON", "MESSAGE"],
                  [[str(e.get("index", "")), _cut(str(e.get("item", "")), 60), e.get("job") or "-",
                    e.get("reason", ""), _cut(str(e.get("message", "")).replace("\n", " "), 120)]
                   for e in list(entries)[:SHOWN_ITEMS]])


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    return ["  ".join([*(str(cell).ljust(w) for cell, w in zip(row, widths)), str(row[-1])]).rstrip()
            for row in [header, *rows]]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=False, default=str)
