"""ComponentBatch: one image run over a whole dataset, skipping the items that already ran.

django-analyses' QuerySetRunner -> here: the queryset -> ``spec.items`` or
``spec.fromObjectStorage``; ``filter_queryset`` -> ``spec.filter`` (CEL, per item);
``ANALYSIS_CONFIGURATION`` -> ``spec.inputs`` (the same for every item); ``INPUT_KEY`` ->
``spec.itemInterface``; ``max_total`` -> ``spec.maxItems``; ``has_run`` -> a ComponentJob with the
same ``status.inputsDigest`` that Succeeded or still runs (``spec.skipExisting``). What
QuerySetRunner cannot do: re-run failed items (``spec.rerunFailed``), cap how many run at once
(``spec.parallelism``), stop after too many failures (``spec.maxFailures``), report progress.

The batch's status holds counts and a bounded list of failed and invalid items, never one entry
per success: a 10,000-item batch stays a few kilobytes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Condition, JsonValue, Model, StatusModel, cel, validations
from .job import JobInput, JobSettings, ObjectSource

#: Inline items per batch (each becomes one job); larger datasets come from object storage.
MAX_INLINE_ITEMS = 10_000
#: Objects one batch may list under its prefix (the listing is paged, 1000 keys a page).
MAX_LISTED_OBJECTS = 100_000
#: Entries of status.failedItems / status.invalidItems (the counts stay exact).
MAX_REPORTED_ITEMS = 50
#: Characters of each reported item's message.
MAX_REPORTED_MESSAGE = 1024
MAX_PARALLELISM = 1000


class BatchItem(Model):
    """One dataset item: what goes to ``spec.itemInterface`` of its job (as a job input)."""

    model_config = Model.model_config | {
        "json_schema_extra": validations(
            cel("!(has(self.file) && has(self.image))", "Only one of image, value and file can be defined.")
        )
    }

    value: JsonValue = None
    """Inline JSON value, for a JSON item interface."""
    file: ObjectSource | None = None
    """A file in object storage, for file interfaces (and JSON interfaces not stored in the database)."""
    image: ObjectSource | None = None
    """An image file in object storage, for image interfaces."""


class ObjectStorageItems(Model):
    """Every object under an s3:// prefix whose key matches a glob is one item."""

    uri: str = Field(min_length=6, max_length=2048, pattern=r"^s3://[^/]+(/.*)?$")
    """s3://bucket/prefix/ to list (the operator's own object-storage credentials read it)."""
    glob: str = Field(default="*", min_length=1, max_length=1024)
    """Shell-style pattern matched against the key below the prefix (``*`` also matches ``/``)."""
    item_kind: Literal["file", "image"] = "file"
    """Whether each object is given to the job as a ``file`` or an ``image``."""


class ComponentBatchSpec(JobSettings):
    """Desired state of a ComponentBatch: the image, the fixed inputs, the dataset, how to run it."""

    model_config = JobSettings.model_config | {
        "json_schema_extra": validations(
            cel("has(self.items) || has(self.fromObjectStorage)", "one of items and fromObjectStorage is required"),
            cel("!(has(self.items) && has(self.fromObjectStorage))", "only one of items and fromObjectStorage can be defined"),
            cel("!has(self.inputs) || !self.inputs.exists(i, i.interface == self.itemInterface)",
                "itemInterface must not also be one of the fixed inputs", field_path=".itemInterface"),
        )
    }

    image: str = Field(min_length=1, max_length=253)
    """Name of the ComponentImage (same namespace) every item runs on."""
    inputs: list[JobInput] = Field(
        default_factory=list,
        max_length=255,
        json_schema_extra=validations(
            cel("self.all(i, self.exists_one(j, j.interface == i.interface))", "each interface may be given only once")
        ),
    )
    """Fixed inputs of every item's job: the analysis configuration."""
    item_interface: str = Field(min_length=1, max_length=253)
    """The ComponentInterface each item's value goes to (QuerySetRunner's INPUT_KEY)."""
    outputs: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(default_factory=list, max_length=256)
    """Names of the ComponentInterfaces the algorithm must produce."""
    items: list[BatchItem] | None = Field(default=None, max_length=MAX_INLINE_ITEMS)
    """The dataset, inline (at most 10,000 items)."""
    from_object_storage: ObjectStorageItems | None = None
    """The dataset as the objects under a prefix (at most 100,000 objects are listed)."""
    filter: str | None = Field(default=None, min_length=1, max_length=4096)
    """CEL expression evaluated per item; items for which it is false are left out
    (QuerySetRunner's filter_queryset). Variables: index, kind, value, uri, key, size,
    lastModified, sha256 and item (all of them as one map)."""
    skip_existing: bool = True
    """Count an item whose job with the same inputsDigest Succeeded or still runs as existing, and do
    not run it again."""
    rerun_failed: bool = False
    """Run again the items whose latest job with the same inputsDigest failed (off: they count as failed)."""
    parallelism: int = Field(default=10, ge=1, le=MAX_PARALLELISM)
    """At most this many of the batch's jobs are not terminal at a time."""
    max_items: int | None = Field(default=None, ge=1)
    """Start at most this many jobs (QuerySetRunner's max_total); the rest count as deferred."""
    max_failures: int | None = Field(default=None, ge=0)
    """The batch is Failed, and starts no more jobs, once more than this many items failed."""
    deletion_policy: Literal["Delete", "Orphan"] = Field(
        default="Delete", json_schema_extra=validations(cel("self == oldSelf", "deletionPolicy cannot be changed")))
    """Delete: the batch owns the jobs it created and they are deleted with it. Orphan: they stay."""
    suspend: bool = False
    """Plan (count and report) without starting jobs; set to false to start. Running jobs go on."""


class BatchCounts(StatusModel):
    """How the batch's items stand. total = existing + deferred + pending + running + succeeded +
    failed + invalid."""

    found: int = Field(default=0, ge=0)
    """Items in the dataset before the filter."""
    total: int = Field(default=0, ge=0)
    """Items the filter kept (the execution candidates)."""
    existing: int = Field(default=0, ge=0)
    """Items that already ran elsewhere with the same inputsDigest (skipped)."""
    pending: int = Field(default=0, ge=0)
    """Items waiting for a free slot (parallelism) or for the batch to be resumed."""
    running: int = Field(default=0, ge=0)
    """Items whose job is not terminal yet."""
    succeeded: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    invalid: int = Field(default=0, ge=0)
    """Items that could not become a job (or whose job refused its inputs)."""
    deferred: int = Field(default=0, ge=0)
    """Items beyond maxItems, not run by this batch."""


class ItemProblem(StatusModel):
    """A failed or invalid item, with what went wrong."""

    index: int = Field(ge=0)
    """Position of the item in the dataset (before the filter)."""
    item: str
    """The item, briefly: its value (cut to 200 characters) or its URI."""
    job: str | None = None
    """The item's ComponentJob, when it has one."""
    reason: str
    message: str = Field(default="", max_length=MAX_REPORTED_MESSAGE)


class ComponentBatchStatus(StatusModel):
    """Observed state of a ComponentBatch."""

    counts: BatchCounts = Field(default_factory=BatchCounts)
    progress: str = "0/0"
    """Items settled (all but pending and running) out of total, e.g. 17/20."""
    conditions: list[Condition] = Field(default_factory=list)
    """Progressing, Complete, Failed, Suspended."""
    failed_items: list[ItemProblem] = Field(default_factory=list, max_length=MAX_REPORTED_ITEMS)
    """The first 50 failed items (the count is exact)."""
    invalid_items: list[ItemProblem] = Field(default_factory=list, max_length=MAX_REPORTED_ITEMS)
    """The first 50 invalid items (the count is exact)."""
    image_digest: str | None = None
    """The pinned image digest the batch's items were compared and run with."""
    started_at: str | None = None
    completed_at: str | None = None
    observed_generation: int | None = None
