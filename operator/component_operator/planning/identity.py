"""The "same run" test: a job's inputs digest (pure).

Two jobs are the same run when they run the same image (by its pinned digest, never by tag) on
the same inputs (values by content, files and images by the SHA-256 of their bytes, never by
URI), with the same model and ground truth. ``inputs_digest`` is that identity as 64 hex digits;
it is recorded in ``status.inputsDigest`` and, cut to the 63 characters a label value may have,
in the label ``components.grand-challenge.org/inputs-digest``. A ComponentBatch and the Python
``QuerySetRunner`` decide "already ran" with it (django-analyses compares configuration and
value in the database; grand-challenge compares image, model and input set).

Canonical form: one JSON document with sorted keys and no spaces; inputs sorted by interface;
numbers that are whole are written as integers (``1.0`` and ``1`` are the same value, as in
JSON); strings as UTF-8. Things that are not part of the identity: where inputs land
(``inputPrefixes``), limits (``timeLimit``, memory, GPU), the outputs asked for.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..api.job import JobInput, ObjectSource
from .names import LABEL_PREFIX

INPUTS_DIGEST_LABEL = f"{LABEL_PREFIX}/inputs-digest"
#: Which batch created a job (its uid: a new batch of the same name is another batch).
BATCH_LABEL = f"{LABEL_PREFIX}/batch"
BATCH_UID_LABEL = f"{LABEL_PREFIX}/batch-uid"
#: The item's position in its batch's dataset, for people and for reports.
BATCH_INDEX_ANNOTATION = f"{LABEL_PREFIX}/batch-index"
#: Bumped in the canonical document if its layout ever changes (old digests then never match).
DIGEST_VERSION = 1


class UnknownContentError(ValueError):
    """A file or image whose SHA-256 is not known: its digest cannot be computed yet."""

    def __init__(self, field: str, uri: str) -> None:
        super().__init__(f"{field}: the SHA-256 of {uri} is not known")
        self.field = field
        self.uri = uri


@dataclass(frozen=True)
class RunIdentity:
    """What makes a run: the pinned image and the inputs, model and ground truth."""

    image_digest: str
    inputs: tuple[JobInput, ...]
    model: ObjectSource | None = None
    ground_truth: ObjectSource | None = None


def label_value(digest: str) -> str:
    """The digest as a label value (at most 63 characters)."""
    return digest[:63]


def canonical_json(value: Any) -> Any:
    """``value`` with whole floats as ints (recursively), so equal JSON values serialise equally."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {str(k): canonical_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical_json(v) for v in value]
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _content(source: ObjectSource, field: str, sha256_of: Mapping[str, str]) -> str:
    digest = source.sha256 or sha256_of.get(source.uri)
    if not digest:
        raise UnknownContentError(field, source.uri)
    return digest


def canonical_document(identity: RunIdentity, sha256_of: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The document whose hash is the digest (``sha256_of``: URI -> SHA-256 for sources without one)."""
    known = sha256_of or {}
    inputs = []
    for index, item in sorted(enumerate(identity.inputs), key=lambda pair: pair[1].interface):
        field = f"spec.inputs[{index}]"
        if item.file is not None:
            inputs.append({"interface": item.interface, "file": _content(item.file, f"{field}.file", known)})
        elif item.image is not None:
            inputs.append({"interface": item.interface, "image": _content(item.image, f"{field}.image", known)})
        else:
            inputs.append({"interface": item.interface, "value": canonical_json(item.value)})
    return {
        "version": DIGEST_VERSION,
        "image": identity.image_digest,
        "inputs": inputs,
        "model": _content(identity.model, "spec.model", known) if identity.model else None,
        "groundTruth": _content(identity.ground_truth, "spec.groundTruth", known) if identity.ground_truth else None,
    }


def inputs_digest(identity: RunIdentity, sha256_of: Mapping[str, str] | None = None) -> str:
    """64 hex digits identifying the run; raises ``UnknownContentError`` for a source without SHA-256."""
    document = canonical_document(identity, sha256_of)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sources_without_sha256(identity: RunIdentity) -> list[str]:
    """URIs whose content must be hashed before the digest can be computed."""
    sources: Iterable[ObjectSource | None] = [
        *(i.file or i.image for i in identity.inputs), identity.model, identity.ground_truth]
    return sorted({s.uri for s in sources if s is not None and not s.sha256})


def job_identity(spec: Any, image_digest: str) -> RunIdentity:
    """The identity of a parsed ``ComponentJobSpec`` run on ``image_digest``."""
    return RunIdentity(image_digest=image_digest, inputs=tuple(spec.inputs), model=spec.model,
                       ground_truth=spec.ground_truth)
