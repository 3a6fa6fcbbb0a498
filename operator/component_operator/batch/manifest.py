"""ComponentBatch manifests: built by the runner, read by the command line, checked locally (pure).

Both check a batch with ``ComponentBatchSpec``, the pydantic model the CRD's schema is generated
from, before anything reaches the API server: a mistake is reported with its field path, the
offending value and the rule, and no half-started batch is left behind.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping, Sequence

import yaml
from pydantic import ValidationError

from .. import API_VERSION
from ..api.batch import MAX_INLINE_ITEMS, ComponentBatchSpec
from .errors import FieldError, InvalidBatchError

KIND = "ComponentBatch"
PLURAL = "componentbatches"
#: Spec fields the runner fills in from its own attributes; JOB_SETTINGS may not set them.
RUNNER_FIELDS = frozenset({"image", "inputs", "itemInterface", "outputs", "items", "fromObjectStorage"})
#: Characters kept of a batch name in ``<name>-dry-run-`` (generateName adds five).
_DRY_RUN_STEM = 200


def field_errors(error: ValidationError, root: str = "spec") -> list[FieldError]:
    """pydantic's errors as (path, value, rule), paths in wire names: ``spec.items[3].file.uri``."""
    found = []
    for entry in error.errors():
        path = root
        for part in entry["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        found.append(FieldError(path=path, value=entry.get("input"), rule=entry["msg"]))
    return found


def check_spec(spec: Mapping[str, Any], what: str) -> ComponentBatchSpec:
    """The parsed spec, or ``InvalidBatchError`` listing every problem."""
    try:
        return ComponentBatchSpec.model_validate(spec)
    except ValidationError as err:
        raise InvalidBatchError(what, field_errors(err)) from None


def build(
    *,
    name: str,
    namespace: str,
    image: str,
    inputs: Sequence[Mapping[str, Any]],
    item_interface: str,
    outputs: Iterable[str],
    items: Sequence[Mapping[str, Any]],
    job_settings: Mapping[str, Any],
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    """The ComponentBatch the runner creates: only the fields it sets (the CRD defaults the rest)."""
    clash = sorted(RUNNER_FIELDS & set(job_settings))
    if clash:
        raise InvalidBatchError(f"{KIND} {namespace}/{name}", [FieldError(
            f"JOB_SETTINGS.{key}", job_settings[key], "set by the runner (IMAGE, CONFIGURATION, INPUT_KEY, OUTPUTS, "
            "the data); not a job setting") for key in clash])
    if len(items) > MAX_INLINE_ITEMS:
        raise InvalidBatchError(f"{KIND} {namespace}/{name}", [FieldError(
            "spec.items", f"{len(items)} items", f"a batch holds at most {MAX_INLINE_ITEMS} inline items: pass "
            "max_total, or run the dataset from object storage (spec.fromObjectStorage)")])
    spec: dict[str, Any] = {
        "image": image,
        "inputs": [dict(i) for i in inputs],
        "itemInterface": item_interface,
        "outputs": list(outputs),
        "items": [dict(i) for i in items],
        "skipExisting": True,
        **copy.deepcopy(dict(job_settings)),
    }
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
    check_spec(spec, f"{KIND} {namespace}/{name}")
    return body


def same_spec(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two batch specs mean the same (defaults filled in, as the API server does)."""
    try:
        left, right = ComponentBatchSpec.model_validate(a), ComponentBatchSpec.model_validate(b)
    except ValidationError:
        return False
    return left.model_dump(mode="json") == right.model_dump(mode="json")


def load(text: str, source: str) -> dict[str, Any]:
    """The one ComponentBatch document of a YAML file; ``InvalidBatchError`` for anything else."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise InvalidBatchError(source, [FieldError("(document)", source, f"not YAML: {err}")]) from None
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise InvalidBatchError(source, [FieldError("(document)", f"{len(documents)} documents",
                                                    f"expected exactly one {KIND} mapping")])
    return documents[0]


def check_document(document: Mapping[str, Any], source: str) -> ComponentBatchSpec:
    """apiVersion, kind, a name (or generateName) and the spec; every problem at once."""
    problems: list[FieldError] = []
    if document.get("apiVersion") != API_VERSION:
        problems.append(FieldError("apiVersion", document.get("apiVersion"), f"must be {API_VERSION}"))
    if document.get("kind") != KIND:
        problems.append(FieldError("kind", document.get("kind"), f"must be {KIND}"))
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not (metadata.get("name") or metadata.get("generateName")):
        problems.append(FieldError("metadata.name", (metadata or {}).get("name") if isinstance(metadata, dict)
                                   else metadata, "metadata.name (or metadata.generateName) is required"))
    spec = document.get("spec")
    parsed = None
    if not isinstance(spec, dict):
        problems.append(FieldError("spec", spec, "must be a mapping with the batch's fields"))
    else:
        try:
            parsed = ComponentBatchSpec.model_validate(spec)
        except ValidationError as err:
            problems.extend(field_errors(err))
    if problems or parsed is None:
        raise InvalidBatchError(describe(document, source), problems)
    return parsed


def describe(document: Mapping[str, Any], source: str = "") -> str:
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    name = metadata.get("name") or metadata.get("generateName") or source or "?"
    return f"{KIND}/{name}"


def dry_run_copy(document: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """The manifest as a suspended twin ``<name>-dry-run-xxxxx``: the operator plans it, starts nothing."""
    body = copy.deepcopy(dict(document))
    metadata = dict(body.get("metadata") or {})
    stem = metadata.pop("name", None) or str(metadata.pop("generateName", "batch")).rstrip("-")
    for key in ("generateName", "resourceVersion", "uid", "creationTimestamp", "generation", "managedFields",
                "ownerReferences", "finalizers"):
        metadata.pop(key, None)
    metadata["generateName"] = f"{stem[:_DRY_RUN_STEM].rstrip('-.')}-dry-run-"
    metadata["namespace"] = namespace
    body["metadata"] = metadata
    body["spec"] = {**dict(body.get("spec") or {}), "suspend": True}
    body.pop("status", None)
    return body
