"""From Python objects to batch items, and the "already ran" test on them (pure).

django-analyses stores an instance's representation as an Input's value and finds earlier runs
by comparing values in its database. Here a representation becomes a ComponentBatch item (inline
JSON, or a file or image in object storage) and "already ran" is the inputs digest of
``planning.identity``: the same function the operator gives every ComponentJob, so the runner and
the operator agree on which items exist without asking each other.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from ..api.job import JobInput, ObjectSource
from ..planning import identity

T = TypeVar("T")

#: Job phases after which a job never changes again.
TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "Cancelled"})
_NAME_MAX = 63
_HASH_CHARS = 10


@dataclass(frozen=True)
class File:
    """A file in object storage as an item or configuration value (``{file: {uri, sha256}}``).

    Without ``sha256`` the runner cannot compute the item's digest, so it is always sent to the
    operator, which hashes the object and decides whether it already ran."""

    uri: str
    sha256: str | None = None

    kind = "file"

    def source(self) -> dict[str, str]:
        return {"uri": self.uri, **({"sha256": self.sha256} if self.sha256 else {})}


@dataclass(frozen=True)
class Image(File):
    """An image file in object storage (``{image: {uri, sha256}}``), for image interfaces."""

    kind = "image"


def plain_json(value: Any) -> Any:
    """``value`` as plain JSON (tuples as lists, mappings as dicts); TypeError/ValueError if it is not JSON."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a JSON value: {value!r}")
        return value
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("not a JSON value: an object key that is not a string")
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    raise TypeError(f"not a JSON value, File or Image: {type(value).__name__}")


def to_item(representation: Any) -> dict[str, Any]:
    """A representation (JSON value, ``File`` or ``Image``) as a batch item in wire form."""
    if isinstance(representation, File):
        return {representation.kind: representation.source()}
    return {"value": plain_json(representation)}


def configuration_inputs(configuration: Mapping[str, Any]) -> list[dict[str, Any]]:
    """CONFIGURATION (interface -> value, ``File`` or ``Image``) as the batch's fixed ``spec.inputs``."""
    return [{"interface": interface, **to_item(value)} for interface, value in configuration.items()]


def item_digest(
    image_digest: str,
    inputs: Sequence[Mapping[str, Any]],
    item_interface: str,
    item: Mapping[str, Any],
    *,
    model: Mapping[str, Any] | None = None,
    ground_truth: Mapping[str, Any] | None = None,
) -> str | None:
    """The inputs digest of the item's job (what its ``status.inputsDigest`` will be).

    None when a file or image has no sha256: only the operator, which reads the object, can tell."""
    job_inputs = [*inputs, {"interface": item_interface, **item}]
    run = identity.RunIdentity(
        image_digest=image_digest,
        inputs=tuple(JobInput.model_validate(i) for i in job_inputs),
        model=ObjectSource.model_validate(model) if model else None,
        ground_truth=ObjectSource.model_validate(ground_truth) if ground_truth else None,
    )
    try:
        return identity.inputs_digest(run)
    except identity.UnknownContentError:
        return None


def existing_digests(jobs: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Digests of jobs that count as "already ran": Succeeded, or not terminal yet (still running).

    Failed and Cancelled jobs do not count: their items are sent, and the batch's ``rerunFailed``
    decides whether they run again or are reported as failed."""
    found = set()
    for job in jobs:
        status = job.get("status") or {}
        digest, phase = status.get("inputsDigest"), status.get("phase")
        if digest and (phase == "Succeeded" or phase not in TERMINAL_PHASES):
            found.add(digest)
    return frozenset(found)


def split_existing(instances: Iterable[T], has_run: Callable[[T], bool]) -> tuple[list[T], list[T]]:
    """(existing, pending), each in the order of ``instances``."""
    existing: list[T] = []
    pending: list[T] = []
    for instance in instances:
        (existing if has_run(instance) else pending).append(instance)
    return existing, pending


def is_existing(digest: str | None, digests: frozenset[str] | set[str]) -> bool:
    """Whether an item with ``digest`` already ran (an unknown digest never did, as far as we know)."""
    return digest is not None and digest in digests


def dns_label(text: str) -> str:
    """``text`` as the start of a DNS-1123 name: CamelCase to kebab-case, other characters to '-'."""
    kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", text).lower()
    kebab = re.sub(r"[^a-z0-9]+", "-", kebab).strip("-")
    return kebab


def default_batch_name(class_name: str, image: str, inputs: Sequence[Mapping[str, Any]], item_interface: str) -> str:
    """``<class-name>-<hash>``: the same runner class with the same image, configuration and item
    interface always names the same batch (at most 63 characters, DNS-1123)."""
    document = {"image": image, "inputs": sorted(inputs, key=lambda i: i["interface"]), "itemInterface": item_interface}
    text = json.dumps(identity.canonical_json(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_CHARS]
    stem = dns_label(class_name)[: _NAME_MAX - _HASH_CHARS - 1].rstrip("-") or "batch"
    return f"{stem}-{digest}"
