"""``QuerySetRunner``: django-analyses' batch runner, starting a ComponentBatch instead of a Celery task.

A subclass names the image, the fixed configuration, the interface each item goes to and the data;
``run()`` goes through django-analyses' stages in its order and with its messages: evaluate the
data, filter it, split it into existing and pending runs, prepare an input specification per
pending item, and start them all as ONE ComponentBatch. The operator then runs the batch's items
as ComponentJobs, re-checking each against runs that started meanwhile (``skipExisting``).

What differs from django-analyses (docs/batches.md has the full list):

* "already ran" is the inputs digest (image pinned by digest, inputs by content, model, ground
  truth) of a ComponentJob that Succeeded or still runs; failed runs do not count;
* ``dry=True`` creates nothing and says what it would have started (django-analyses logs
  "Successfully started" even then);
* the resolved objects (the image, the existing runs) are read once per ``run()``, not on every
  property access;
* a ``RuntimeError`` while representing an item makes it pending in the existing-run check (it
  crashes django-analyses' ``has_run``), so it is reported and dropped by ``create_inputs``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tqdm import tqdm

from . import items, manifest, messages, state
from .client import BatchApi, api_message, default_namespace
from .errors import BatchConflictError, BatchError, BatchTimeoutError
from .watch import WAIT_PROGRESSBAR_KWARGS, wait_for_batch

_LOGGER = logging.getLogger("component_operator.batch.runner")


@dataclass(frozen=True)
class RunResult:
    """What one ``run()`` found and did."""

    candidates: int
    """Items after the filter."""
    existing: int
    """Items that already ran (or run)."""
    pending: int
    """Items without a run."""
    inputs: int
    """Input specifications prepared (pending, at most max_total, minus failures)."""
    failures: int
    """Pending items whose representation raised RuntimeError (dropped)."""
    batch_name: str | None
    """The ComponentBatch that runs the inputs; None for a dry run or when nothing was pending."""
    namespace: str
    dry: bool = False
    manifest: dict[str, Any] | None = None
    """The ComponentBatch created, or that a dry run would have created."""


class QuerySetRunner:
    """Base class for running a ComponentImage over a dataset, skipping what already ran.

    Override the attributes (and, where needed, the hooks) and call ``run()``::

        class Counts(QuerySetRunner):
            IMAGE = "algo"
            CONFIGURATION = {"threshold": 0.5}
            INPUT_KEY = "count"
            DATA = range(100)
    """

    #
    # What runs
    #
    IMAGE: ClassVar[str] = ""
    """Name of the ComponentImage (in NAMESPACE) every item runs on (django: ANALYSIS[_VERSION]_TITLE)."""
    NAMESPACE: ClassVar[str] = ""
    """Namespace of the image, the jobs and the batch; "" = the kubeconfig context's (or ``default``)."""
    CONFIGURATION: ClassVar[dict[str, Any] | None] = None
    """Interface -> JSON value (or File/Image) given to every item's job: the batch's ``spec.inputs``
    (django: ANALYSIS_CONFIGURATION)."""
    INPUT_KEY: ClassVar[str] = ""
    """The interface each item goes to (``spec.itemInterface``)."""
    OUTPUTS: ClassVar[Sequence[str]] = ()
    """Interfaces the algorithm must produce (``spec.outputs``)."""
    JOB_SETTINGS: ClassVar[Mapping[str, Any]] = {}
    """Other ComponentBatch spec fields, camelCase: timeLimit, requiresMemoryGB, requiresGPUType, model,
    groundTruth, parallelism, maxFailures, rerunFailed, deletionPolicy, skipExisting, suspend ..."""
    BATCH_NAME: ClassVar[str | None] = None
    """Name of the batch; default: the class name and a hash of image, configuration and INPUT_KEY."""
    ANNOTATIONS: ClassVar[Mapping[str, str]] = {}
    """Annotations of the batch (the operator copies those with its configured prefixes to the jobs)."""

    #
    # The data
    #
    DATA: ClassVar[Iterable[Any]] = ()
    """The default dataset (django: DATA_MODEL.objects.all() / BASE_QUERY): any iterable."""
    DATA_NAME: ClassVar[str] = "item"
    """What the data items are called in messages (django: DATA_MODEL.__name__)."""

    #
    # Messages
    #
    BASE_QUERY_START: ClassVar[str] = messages.BASE_QUERY_START
    BASE_QUERY_END: ClassVar[str] = messages.BASE_QUERY_END
    BATCH_RUN_START: ClassVar[str] = messages.BATCH_RUN_START
    DEFAULT_QUERYSET_QUERY: ClassVar[str] = messages.DEFAULT_QUERYSET_QUERY
    EXECUTION_STARTED: ClassVar[str] = messages.EXECUTION_STARTED
    EXECUTION_UNCHANGED: ClassVar[str] = messages.EXECUTION_UNCHANGED
    EXECUTION_DRY_RUN: ClassVar[str] = messages.EXECUTION_DRY_RUN
    FILTER_QUERYSET_START: ClassVar[str] = messages.FILTER_QUERYSET_START
    FILTER_QUERYSET_END: ClassVar[str] = messages.FILTER_QUERYSET_END
    INPUT_GENERATION: ClassVar[str] = messages.INPUT_GENERATION
    INPUT_GENERATION_FINISHED: ClassVar[str] = messages.INPUT_GENERATION_FINISHED
    INPUT_QUERY_START: ClassVar[str] = messages.INPUT_QUERY_START
    INPUT_QUERY_END: ClassVar[str] = messages.INPUT_QUERY_END
    INPUT_QUERYSET_VALIDATION: ClassVar[str] = messages.INPUT_QUERYSET_VALIDATION
    NONE_PENDING: ClassVar[str] = messages.NONE_PENDING
    NONE_PENDING_IN_QUERYSET: ClassVar[str] = messages.NONE_PENDING_IN_QUERYSET
    NO_CANDIDATES: ClassVar[str] = messages.NO_CANDIDATES
    PENDING_FOUND: ClassVar[str] = messages.PENDING_FOUND
    PENDING_QUERY_START: ClassVar[str] = messages.PENDING_QUERY_START
    PREPROCESSING_FAILURE: ClassVar[str] = messages.PREPROCESSING_FAILURE
    PREPROCESSING_FAILURE_REPORT: ClassVar[str] = messages.PREPROCESSING_FAILURE_REPORT

    #
    # Miscellaneous
    #
    INPUT_GENERATION_PROGRESSBAR_KWARGS: ClassVar[dict[str, Any]] = {"unit": "instance", "desc": "Preparing inputs"}
    """tqdm settings of the input-generation bar."""
    STATUS_QUERY_PROGRESSBAR_KWARGS: ClassVar[dict[str, Any]] = {"unit": "instance", "desc": None}
    """tqdm settings of the existing-run check's bar."""
    WAIT_PROGRESSBAR_KWARGS: ClassVar[dict[str, Any]] = dict(WAIT_PROGRESSBAR_KWARGS)
    """tqdm settings of ``wait()``'s bar."""
    FIELD_MANAGER: ClassVar[str] = "component-operator-runner"
    """Server-side apply field manager of the batches the runner writes."""

    _NO_CONFIGURATION: ClassVar[dict[str, Any]] = {}

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self._api_client = api_client
        self._api: BatchApi | None = None
        self._namespace: str | None = None
        self._search = False
        self._image_digest: str | None = None
        self._existing_digests: frozenset[str] | None = None
        self.last_result: RunResult | None = None

    # ------------------------------------------------------------------------------------
    # Resolved objects (read once per run)
    # ------------------------------------------------------------------------------------

    @property
    def api(self) -> BatchApi:
        if self._api is None:
            self._api = BatchApi(self._api_client)
        return self._api

    @property
    def namespace(self) -> str:
        if self._namespace is None:
            self._namespace = self.NAMESPACE or default_namespace()
        return self._namespace

    @property
    def configuration(self) -> dict[str, Any]:
        return self.create_configuration()

    @property
    def configuration_inputs(self) -> list[dict[str, Any]]:
        """CONFIGURATION as the batch's ``spec.inputs``."""
        return items.configuration_inputs(self.configuration)

    @property
    def skip_existing(self) -> bool:
        return bool(self.JOB_SETTINGS.get("skipExisting", True))

    @property
    def image_digest(self) -> str:
        """The Ready image's pinned digest (read once per run)."""
        if self._image_digest is None:
            self._image_digest = self.query_image_digest()
        return self._image_digest

    @property
    def existing_digests(self) -> frozenset[str]:
        """Digests of the namespace's jobs that Succeeded or still run (read once per run)."""
        if self._existing_digests is None:
            self._existing_digests = self.query_existing_digests()
        return self._existing_digests

    def query_image_digest(self) -> str:
        return state.image_digest(self.api.get_image(self.namespace, self.IMAGE), self.namespace, self.IMAGE)

    def query_existing_digests(self, log_level: int = logging.DEBUG) -> frozenset[str]:
        """One paged list of the namespace's ComponentJobs."""
        _LOGGER.log(log_level, self._format(self.INPUT_QUERY_START))
        digests = items.existing_digests(self.api.list_jobs(self.namespace))
        _LOGGER.log(log_level, self._format(self.INPUT_QUERY_END, n_existing=len(digests)))
        return digests

    def reset(self) -> None:
        """Forget what was read (``run()`` does this first)."""
        self._image_digest = None
        self._existing_digests = None

    # ------------------------------------------------------------------------------------
    # Hooks
    # ------------------------------------------------------------------------------------

    def get_base_queryset(self, log_level: int = logging.INFO) -> list[Any]:
        """The default dataset: ``DATA``, read into a list (it is iterated more than once).

        A Django queryset or manager (``.model`` and ``.all()``) is queried afresh on every run: a
        class-level queryset would otherwise keep the rows of its first evaluation."""
        _LOGGER.log(log_level, self._format(self.BASE_QUERY_START))
        data = self.DATA
        queryset = list(data.all() if _is_django_queryset(data) else data)
        _LOGGER.log(log_level, self._format(self.BASE_QUERY_END, n_instances=len(queryset)))
        return queryset

    def filter_queryset(self, queryset: list[Any], log_level: int = logging.INFO) -> list[Any]:
        """Custom filtering of the data (unchanged here; an override logs with log_filter_start/end)."""
        return queryset

    def create_configuration(self) -> dict[str, Any]:
        configuration = self._NO_CONFIGURATION if self.CONFIGURATION is None else self.CONFIGURATION
        return dict(configuration)

    def get_instance_representation(self, instance: Any) -> Any:
        """The item's value: a JSON value, or ``File(uri, sha256)`` / ``Image(uri, sha256)``.

        Raise RuntimeError for an instance that cannot be prepared: it is reported and dropped."""
        return instance

    def get_instance_id(self, instance: Any) -> Any:
        """How an instance is named in PREPROCESSING_FAILURE (django: ``instance.id``)."""
        found = getattr(instance, "id", None)
        return found if found is not None else repr(instance)[:80]

    def item_digest(self, instance: Any) -> str | None:
        """The inputs digest the instance's job would have; None when it cannot be known here."""
        try:
            item = items.to_item(self.get_instance_representation(instance))
        except RuntimeError:
            return None
        settings = self.JOB_SETTINGS
        return items.item_digest(self.image_digest, self.configuration_inputs, self.INPUT_KEY, item,
                                 model=settings.get("model"), ground_truth=settings.get("groundTruth"))

    def has_run(self, instance: Any) -> bool:
        """Whether a job with the instance's inputs digest Succeeded or still runs in NAMESPACE."""
        if not self.skip_existing:
            return False
        return items.is_existing(self.item_digest(instance), self.existing_digests)

    def create_input_specification(self, instance: Any) -> dict[str, Any] | None:
        """``{INPUT_KEY: representation}``, or None (logged) when the representation raised RuntimeError."""
        try:
            return {self.INPUT_KEY: self.get_instance_representation(instance)}
        except RuntimeError:
            _LOGGER.warning(self._format(self.PREPROCESSING_FAILURE, instance_id=self.get_instance_id(instance)))
            return None

    def get_batch_name(self) -> str:
        if self.BATCH_NAME:
            return self.BATCH_NAME
        return items.default_batch_name(type(self).__name__, self.IMAGE, self.configuration_inputs, self.INPUT_KEY)

    def create_batch_manifest(self, inputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The ComponentBatch for the prepared input specifications (checked against the CRD's model)."""
        return manifest.build(
            name=self.get_batch_name(),
            namespace=self.namespace,
            image=self.IMAGE,
            inputs=self.configuration_inputs,
            item_interface=self.INPUT_KEY,
            outputs=self.OUTPUTS,
            items=[items.to_item(self._item_value(spec)) for spec in inputs],
            job_settings=self.JOB_SETTINGS,
            annotations=self.ANNOTATIONS,
        )

    # ------------------------------------------------------------------------------------
    # Stages
    # ------------------------------------------------------------------------------------

    def evaluate_queryset(self, queryset: Iterable[Any] | None, apply_filter: bool = True,
                          log_level: int = logging.INFO) -> list[Any]:
        """The data (``get_base_queryset()`` when None), always through ``filter_queryset`` unless told not to."""
        self._search = queryset is None
        evaluated = self.get_base_queryset(log_level) if queryset is None else list(queryset)
        if apply_filter:
            return list(self.filter_queryset(evaluated, log_level=log_level))
        return evaluated

    def query_progress(self, queryset: Iterable[Any] | None = None, apply_filter: bool = True,
                       log_level: int = logging.INFO, progressbar: bool = True) -> tuple[list[Any], list[Any]]:
        """(existing, pending): the data split by ``has_run``."""
        if queryset is None or apply_filter:
            queryset = self.evaluate_queryset(queryset, apply_filter=apply_filter, log_level=log_level)
        else:
            queryset = list(queryset)  # already evaluated by run(): keep _search as it found it
        self.log_progress_query_start(log_level)
        bar = tqdm(queryset, disable=not progressbar, **self.STATUS_QUERY_PROGRESSBAR_KWARGS)
        existing, pending = items.split_existing(bar, self.has_run)
        self.log_progress_query_end(queryset, existing, pending, log_level=log_level)
        return existing, pending

    def create_inputs(self, queryset: Sequence[Any], progressbar: bool = True,
                      max_total: int | None = None) -> list[dict[str, Any]]:
        """Input specifications for ``queryset[:max_total]``; failures are reported and dropped."""
        _LOGGER.info(self._format(self.INPUT_GENERATION))
        chosen = list(queryset)[:max_total]
        bar = tqdm(chosen, disable=not progressbar, **self.INPUT_GENERATION_PROGRESSBAR_KWARGS)
        specifications = [self.create_input_specification(instance) for instance in bar]
        n_invalid = specifications.count(None)
        if n_invalid:
            _LOGGER.warning(self._format(self.PREPROCESSING_FAILURE_REPORT, n_invalid=n_invalid,
                                         n_total=len(specifications)))
        prepared = [spec for spec in specifications if spec is not None]
        _LOGGER.info(self._format(self.INPUT_GENERATION_FINISHED, n_inputs=len(prepared)))
        return prepared

    def run(self, queryset: Iterable[Any] | None = None, max_total: int | None = None, prep_progressbar: bool = True,
            log_level: int = logging.INFO, dry: bool = False) -> RunResult:
        """Start the pending items (at most ``max_total``) as one ComponentBatch; ``dry``: create nothing."""
        self.reset()
        self.log_run_start(log_level=log_level)
        _LOGGER.log(log_level, self._format(self.DEFAULT_QUERYSET_QUERY if queryset is None
                                            else self.INPUT_QUERYSET_VALIDATION))
        candidates = self.evaluate_queryset(queryset, apply_filter=True, log_level=log_level)
        existing, pending = self.query_progress(candidates, apply_filter=False, log_level=log_level)
        result = RunResult(candidates=len(candidates), existing=len(existing), pending=len(pending), inputs=0,
                           failures=0, batch_name=None, namespace=self.namespace, dry=dry)
        if pending:
            inputs = self.create_inputs(pending, prep_progressbar, max_total=max_total)[:max_total]
            failures = len(pending[:max_total]) - len(inputs)
            result = replace(result, inputs=len(inputs), failures=failures)
            if inputs:
                result = self._start(result, inputs, dry, log_level)
        self.last_result = result
        return result

    def wait(self, timeout: float | None = None, progressbar: bool = True, interval: float = 1.0) -> str | None:
        """Follow the last run's batch until Complete or Failed (returned); None if it started none.

        Raises ``BatchTimeoutError`` when ``timeout`` seconds pass first."""
        result = self.last_result
        if result is None or result.batch_name is None:
            return None
        return self.watch(result.batch_name, timeout=timeout, progressbar=progressbar, interval=interval)

    def watch(self, batch_name: str, timeout: float | None = None, progressbar: bool = True,
              interval: float = 1.0) -> str:
        """A live bar of the batch's ``status.progress`` until it is Complete or Failed."""
        outcome = wait_for_batch(self.api, self.namespace, batch_name, timeout=timeout, progressbar=progressbar,
                                 interval=interval, bar_kwargs=self.WAIT_PROGRESSBAR_KWARGS)
        if outcome.condition is None:
            raise BatchTimeoutError(self.namespace, batch_name, timeout or 0, state.progress(outcome.batch))
        return outcome.condition

    # ------------------------------------------------------------------------------------
    # Starting the batch
    # ------------------------------------------------------------------------------------

    def _start(self, result: RunResult, inputs: list[dict[str, Any]], dry: bool, log_level: int) -> RunResult:
        body = self.create_batch_manifest(inputs)
        name = body["metadata"]["name"]
        if dry:
            self.log_dry_run(n_instances=len(inputs), batch_name=name, log_level=log_level)
            return replace(result, manifest=body)
        started = self.start_batch(body)
        if started:
            self.log_execution_start(n_instances=len(inputs), batch_name=name, log_level=log_level)
        else:
            _LOGGER.log(log_level, self._format(self.EXECUTION_UNCHANGED, n_instances=len(inputs), batch_name=name))
        return replace(result, batch_name=name, manifest=body)

    def start_batch(self, body: Mapping[str, Any]) -> bool:
        """Apply the batch; False when one of that name already holds exactly this spec.

        A batch of the same name that has finished (Complete or Failed) is re-applied with the new
        items (its next generation); one that still runs other items is a ``BatchConflictError``."""
        meta = body["metadata"]
        current = self.api.get_batch(meta["namespace"], meta["name"])
        if current is not None:
            if manifest.same_spec(current.get("spec") or {}, body["spec"]):
                return False
            if state.terminal_condition(current) is None:
                raise BatchConflictError(
                    f"ComponentBatch {meta['namespace']}/{meta['name']} still runs other items (progress "
                    f"{state.progress(current)}); wait for it (watch('{meta['name']}')) or set BATCH_NAME")
        try:
            self.api.apply_batch(body, self.FIELD_MANAGER, force=True)
        except ApiException as err:
            raise BatchError(f"ComponentBatch {meta['namespace']}/{meta['name']} was refused: {api_message(err)}") from err
        return True

    # ------------------------------------------------------------------------------------
    # Logging
    # ------------------------------------------------------------------------------------

    def log_run_start(self, log_level: int = logging.INFO) -> None:
        _LOGGER.log(log_level, self._format(self.BATCH_RUN_START))

    def log_filter_start(self, log_level: int = logging.INFO) -> None:
        _LOGGER.log(log_level, self._format(self.FILTER_QUERYSET_START))

    def log_filter_end(self, n_candidates: int, log_level: int = logging.INFO) -> None:
        _LOGGER.log(log_level, self._format(self.FILTER_QUERYSET_END, n_candidates=n_candidates))

    def log_progress_query_start(self, log_level: int = logging.INFO) -> None:
        description = "default" if self._search else "input"
        _LOGGER.log(log_level, self._format(self.PENDING_QUERY_START, queryset_description=description))

    def log_progress_query_end(self, queryset: Sequence[Any], existing: Sequence[Any], pending: Sequence[Any],
                               log_level: int = logging.INFO) -> None:
        if pending:
            self.log_pending(existing, pending, log_level=log_level)
        else:
            self.log_none_pending(queryset, log_level=log_level)

    def log_pending(self, existing: Sequence[Any], pending: Sequence[Any], log_level: int = logging.INFO) -> None:
        _LOGGER.log(log_level, self._format(self.PENDING_FOUND, n_existing=len(existing), n_pending=len(pending)))

    def log_none_pending(self, queryset: Sequence[Any], log_level: int = logging.INFO) -> None:
        if self._search and queryset:
            message = self._format(self.NONE_PENDING)
        elif self._search:
            message = self._format(self.NO_CANDIDATES)
        else:
            message = self._format(self.NONE_PENDING_IN_QUERYSET, n_instances=len(queryset))
        _LOGGER.log(log_level, message)

    def log_execution_start(self, n_instances: int, batch_name: str = "", log_level: int = logging.INFO) -> None:
        _LOGGER.log(log_level, self._format(self.EXECUTION_STARTED, n_instances=n_instances, batch_name=batch_name))

    def log_dry_run(self, n_instances: int, batch_name: str = "", log_level: int = logging.INFO) -> None:
        _LOGGER.log(log_level, self._format(self.EXECUTION_DRY_RUN, n_instances=n_instances, batch_name=batch_name))

    def _format(self, template: str, **values: Any) -> str:
        """A message with every placeholder the django-analyses texts use, plus ours."""
        context = {"analysis_version": self.IMAGE, "image": self.IMAGE, "model_name": self.DATA_NAME,
                   "namespace": self.namespace if "{namespace}" in template else "", "batch_name": ""}
        return template.format(**{**context, **values})

    def _item_value(self, specification: Mapping[str, Any]) -> Any:
        extra = sorted(set(specification) - {self.INPUT_KEY})
        if extra or self.INPUT_KEY not in specification:
            raise BatchError(f"create_input_specification must return {{{self.INPUT_KEY!r}: value}} (a batch has one "
                             f"item interface, INPUT_KEY); got the keys {sorted(specification)}")
        return specification[self.INPUT_KEY]


def _is_django_queryset(data: Any) -> bool:
    return hasattr(data, "model") and callable(getattr(data, "all", None))
