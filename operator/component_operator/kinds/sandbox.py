"""Validation that never blocks the operator: CPU-heavy checks in bounded worker processes.

A custom schema is user data, and so are the values checked against it. Evaluating them can
take unbounded time (a pattern that needs Python ``re``'s backtracking, ``anyOf`` nested
thirty deep) or memory, and Python holds the GIL while it does, so on the event loop one
hostile interface froze every handler, the webhook and the liveness probe. ``ValidationPool``
runs those checks in separate processes instead:

* each check (one input value, one interface's schema and example) has a **time budget**
  (``validation_seconds``, default 5 s): a worker still busy after it is terminated and
  replaced, and the check is reported as a problem of the field it was checking;
* each worker has a **memory budget** (``validation_memory_mb``, default 512 MiB of address
  space, ``RLIMIT_AS``, of which the imports take about 100 MiB): an allocation past it fails
  with ``MemoryError`` inside the worker, reported the same way;
* an admission request has a **total budget** (``validation_request_seconds``, default 8 s,
  below the webhook's 10 s timeout) across all its checks;
* inside the workers, patterns that RE2 cannot evaluate fall back to Python ``re``
  (``python_regex=True``): the budget bounds them. Nowhere else does Python ``re`` run on a
  custom pattern.

Library: pebble (``ProcessPool`` with a per-task timeout that terminates the worker and
starts a new one, and cancellation of running tasks) rather than hand-written process
management or ``concurrent.futures.ProcessPoolExecutor``, which can neither stop a running
task nor survive a worker killed by the kernel (it breaks the whole pool). Workers are
started with ``spawn``: forking the operator, which runs threads (kopf, the Kubernetes
client), could copy a held lock into the child.

Use (the operator creates one at start-up and keeps it in its context)::

    pool = ValidationPool.from_config(config)
    await pool.start()
    problems = await pool.check_inputs(job_spec, interfaces, require_known=True)
    errors = await pool.check_interface(interface_spec)
    await pool.close()

Cheap checks (which interface, which of value/file/image, duplicate paths) stay in-process in
``planning.inputs``; only the part that evaluates user schemas and values is sent here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from .errors import InterfaceRuleError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import OperatorConfig
    from ..planning.inputs import InputProblem, ValueCheck

logger = logging.getLogger(__name__)

#: Defaults of the operator settings (``OperatorConfig``) of the same names.
DEFAULT_SECONDS = 5.0
DEFAULT_MEMORY_MB = 512
DEFAULT_WORKERS = 2
DEFAULT_REQUEST_SECONDS = 8.0
#: How long ``close`` waits for workers to exit before leaving them to the process's end.
_JOIN_SECONDS = 5.0
#: How long ``start`` waits for the first worker to answer (a spawn and the imports take ~1 s).
_START_SECONDS = 60.0
#: Items of a ComponentBatch one ``filter_items`` task evaluates ``spec.filter`` on: a typical
#: expression takes 2-50 us an item, so a chunk stays far inside ``validation_seconds``, and
#: an expression too costly for that fails for the items of its chunks only.
FILTER_CHUNK_ITEMS = 1000


@dataclass(frozen=True)
class Outcome:
    """The result of one check, as plain data (it crosses the process boundary).

    ``status``: ``ok``; ``invalid`` (``message`` is grand-challenge's, ``path``/``detail`` as
    ``ValueValidationError``); ``required`` (no value given, and one is required); ``time``,
    ``memory`` or ``request-time`` (a budget was exceeded; ``detail`` says which and how).
    """

    status: str = "ok"
    message: str = ""
    path: str = ""
    detail: str = ""
    errors: tuple[tuple[str, str], ...] = ()  # interface checks: (field, message) pairs

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def over_budget(self) -> bool:
        return self.status in ("time", "memory", "request-time")


@dataclass(frozen=True)
class FilterOutcome(Outcome):
    """The ``Outcome`` of one ``filter_items`` task: ``results`` as ``cel_filter.evaluate_filter``'s."""

    results: tuple[bool | str, ...] = ()


class ValidationPool:
    """Worker processes for CPU-heavy validation, with time and memory budgets per check.

    No state outside the object: several pools (tests, two operators in one process) are
    independent. ``start``/``close`` (or ``async with``) bound the workers' lifetime; a check
    submitted before ``start`` starts the pool.
    """

    def __init__(
        self,
        *,
        seconds: float = DEFAULT_SECONDS,
        memory_mb: int = DEFAULT_MEMORY_MB,
        workers: int = DEFAULT_WORKERS,
        request_seconds: float = DEFAULT_REQUEST_SECONDS,
    ) -> None:
        if seconds <= 0 or request_seconds <= 0 or workers < 1 or memory_mb < 1:
            raise ValueError("validation budgets must be positive and at least one worker is needed")
        self.seconds = float(seconds)
        self.memory_mb = int(memory_mb)
        self.workers = int(workers)
        self.request_seconds = float(request_seconds)
        self._pool: Any = None
        self._closed = False

    @classmethod
    def from_config(cls, config: "OperatorConfig") -> "ValidationPool":
        """A pool with the budgets of the operator settings ``validationSeconds``,
        ``validationMemoryMB``, ``validationWorkers`` and ``validationRequestSeconds``."""
        return cls(
            seconds=config.validation_seconds,
            memory_mb=config.validation_memory_mb,
            workers=config.validation_workers,
            request_seconds=config.validation_request_seconds,
        )

    # -- lifetime ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the workers and wait until one answers (imports done, limits set).

        Call it on the event loop's thread at start-up: workers die with the thread that
        started them (``_die_with_parent``), and pebble's own thread starts their successors.
        """
        self._ensure_started()
        ping = asyncio.wrap_future(self._pool.schedule(_ping, timeout=_START_SECONDS))
        try:
            await asyncio.wait_for(ping, _START_SECONDS)
        except Exception as err:
            raise RuntimeError(
                f"the validation workers did not start within {_START_SECONDS:g} s ({type(err).__name__}: {err}); "
                f"is validationMemoryMB ({self.memory_mb}) below what their imports need (about 100 MiB)?"
            ) from err

    async def close(self) -> None:
        """Stop the workers (running checks are abandoned) and wait briefly for them to exit."""
        pool, self._pool, self._closed = self._pool, None, True
        if pool is None:
            return
        pool.stop()
        try:
            await asyncio.to_thread(pool.join, _JOIN_SECONDS)
        except (TimeoutError, concurrent.futures.TimeoutError):  # pragma: no cover - stuck worker
            logger.warning("validation workers did not exit within %.0f s", _JOIN_SECONDS)

    async def __aenter__(self) -> "ValidationPool":
        await self.start()
        return self

    async def __aexit__(self, *_exc: Any) -> None:
        await self.close()

    def _ensure_started(self) -> None:
        if self._closed:  # the operator is stopping: the object is looked at again by the next one
            from ..errors import TemporaryError

            raise TemporaryError("the validation pool is closed (the operator is stopping)")
        if self._pool is None:
            import pebble

            self._pool = pebble.ProcessPool(
                max_workers=self.workers,
                initializer=_init_worker,
                initargs=(self.memory_mb * 1024 * 1024,),
                context=multiprocessing.get_context("spawn"),
            )

    # -- the checks the handlers call -------------------------------------------------------

    async def check_inputs(
        self,
        spec: Mapping[str, Any],
        interfaces: Mapping[str, Mapping[str, Any]],
        *,
        require_known: bool = True,
        total_seconds: float | None = None,
    ) -> list["InputProblem"]:
        """Problems with a job's inputs (``planning.inputs.check_inputs``, bounded).

        Each value is checked in a worker of its own, so an overrun names its field:
        ``spec.inputs[3].value: validating string 'aaaa...' against ComponentInterface 'x' took
        longer than the 5 s budget (operator setting validationSeconds)``. ``total_seconds``
        caps the whole call (the webhook passes ``request_seconds``); checks not done by then
        are reported as such. None: no total cap (the reconciler has no deadline).
        """
        from ..planning import inputs  # the job-level rules live in planning; kinds knows no jobs

        return await inputs.check_inputs_bounded(self, spec, interfaces, require_known=require_known,
                                                 total_seconds=total_seconds)

    async def check_interface(
        self, spec: Mapping[str, Any], *, total_seconds: float | None = None
    ) -> list[InterfaceRuleError]:
        """``kinds.check_interface`` of a ComponentInterface spec, in a worker, within budget.

        ``total_seconds`` also caps the wait for a free worker (the webhook passes
        ``request_seconds``).
        """
        outcome = (await self.run_checks([(check_interface_task, (dict(spec),))], total_seconds=total_seconds))[0]
        if outcome.over_budget:
            field = "spec.schema" if spec.get("schema") not in (None, {}) else "spec.exampleValue"
            return [InterfaceRuleError(field, outcome.detail.replace("{what}", "checking this interface's schema and example value"))]
        return [InterfaceRuleError(field, message) for field, message in outcome.errors]

    async def validate_value(self, kind: Any, value: Any, *, schema: Any = None, required: bool = True) -> None:
        """``kinds.validate_value`` in a worker; raises ``ValueValidationError`` (or its
        ``BudgetExceededError`` when a budget was exceeded)."""
        task = (validate_value_task, (_code(kind), value, schema, required))
        _raise_for((await self.run_checks([task]))[0], value)

    def validate_value_sync(self, kind: Any, value: Any, *, schema: Any = None, required: bool = True) -> None:
        """``validate_value`` for code running in a thread (the output parser): blocks that
        thread until the worker answers, within the same budgets. Never on the event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("validate_value_sync blocks its thread: await validate_value on the event loop")
        self._ensure_started()
        future = self._pool.schedule(validate_value_task, args=(_code(kind), value, schema, required),
                                     timeout=self.seconds)
        concurrent.futures.wait([future])
        _raise_for(self._outcome(future, None), value)

    async def run_value_checks(
        self, checks: Sequence["ValueCheck"], *, total_seconds: float | None = None
    ) -> dict[int, Outcome]:
        """Outcomes of ``planning.inputs`` value checks, keyed by input index."""
        tasks = [(check_input_value_task, (c.kind_code, c.schema, c.has_value, c.value)) for c in checks]
        outcomes = await self.run_checks(tasks, total_seconds=total_seconds)
        return {check.index: outcome for check, outcome in zip(checks, outcomes)}

    async def filter_items(
        self,
        expression: str,
        items: Sequence[Mapping[str, Any]],
        total_seconds: float | None = None,
        *,
        chunk_items: int = FILTER_CHUNK_ITEMS,
    ) -> list[bool | str]:
        """``cel_filter.evaluate_filter`` (a ComponentBatch's ``spec.filter``) in the workers.

        One task per ``chunk_items`` items, each within the per-check budgets; the items of a
        chunk that overran get a message each: ``spec.filter: "..." failed for item 7:
        evaluating it on items 0 to 999 took longer than the 5 s budget (operator setting
        validationSeconds)``. ``FilterError`` if the expression does not compile, checked
        here first (cheap and bounded). ``total_seconds`` caps the whole call, as for
        ``check_inputs``. Without a pool, call ``evaluate_filter`` itself.

        An overrunning chunk holds its worker for the budget and up to 3 s more: the Rust
        evaluator never runs pebble's SIGTERM handler (a Python one), so pebble's SIGKILL
        after its grace period ends it.
        """
        from .cel_filter import compile_filter, item_message

        compile_filter(expression)
        if chunk_items < 1:
            raise ValueError("chunk_items must be at least 1")
        chunks = [[dict(item) for item in items[start:start + chunk_items]]
                  for start in range(0, len(items), chunk_items)]
        outcomes = await self.run_checks([(filter_items_task, (expression, chunk)) for chunk in chunks],
                                         total_seconds=total_seconds)
        results: list[bool | str] = []
        for chunk, outcome in zip(chunks, outcomes):
            if isinstance(outcome, FilterOutcome) and outcome.ok:
                results += outcome.results
                continue
            first, last = chunk[0].get("index", "?"), chunk[-1].get("index", "?")
            what = f"evaluating it on item {first}" if len(chunk) == 1 else f"evaluating it on items {first} to {last}"
            results += [item_message(expression, item, outcome.detail.replace("{what}", what)) for item in chunk]
        return results

    # -- the machinery ---------------------------------------------------------------------

    async def run_checks(
        self,
        tasks: Iterable[tuple[Callable[..., Outcome], tuple[Any, ...]]],
        *,
        total_seconds: float | None = None,
    ) -> list[Outcome]:
        """Run ``function(*args)`` for each task in the workers; one ``Outcome`` per task, in order.

        ``function`` must be importable by name in a worker (a module-level function) and
        return an ``Outcome``. A budget overrun becomes an ``Outcome`` whose ``detail``
        contains the placeholder ``{what}`` for the caller to name what was being checked.
        """
        self._ensure_started()
        futures = [asyncio.wrap_future(self._pool.schedule(function, args=args, timeout=self.seconds))
                   for function, args in tasks]
        if not futures:
            return []
        done, pending = await asyncio.wait(futures, timeout=total_seconds)
        for future in pending:
            future.cancel()  # pebble terminates a worker whose task is cancelled while running
        return [self._outcome(future, total_seconds) for future in futures]

    def _outcome(self, future: Any, total_seconds: float | None) -> Outcome:
        """The ``Outcome`` of a finished (asyncio or concurrent) future of a check."""
        if future.cancelled():
            return Outcome("request-time", detail=(
                f"{{what}} was not finished within the {_seconds(total_seconds or 0)} budget of one admission "
                "request (operator setting validationRequestSeconds)"))
        error = future.exception()
        if error is None:
            outcome = future.result()
            # A worker knows its limit only as RLIMIT_AS; the message names the setting.
            return self._memory_outcome() if outcome.status == "memory" else outcome
        if isinstance(error, (TimeoutError, concurrent.futures.TimeoutError)):
            return Outcome("time", detail=(
                f"{{what}} took longer than the {_seconds(self.seconds)} budget (operator setting validationSeconds)"))
        if isinstance(error, MemoryError):
            return self._memory_outcome()
        from pebble import ProcessExpired

        if isinstance(error, ProcessExpired):
            # The kernel or the C runtime ended the worker: with RLIMIT_AS that is almost
            # always an allocation that failed where Python could not raise MemoryError.
            return self._memory_outcome(f"; the worker ended with exit code {error.exitcode}")
        raise error  # a bug in a check: let the caller's error handling see it

    def _memory_outcome(self, extra: str = "") -> Outcome:
        return Outcome("memory", detail=(
            f"{{what}} needed more than the {self.memory_mb} MiB memory budget (operator setting "
            f"validationMemoryMB){extra}"))


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _code(kind: Any) -> str:
    return getattr(kind, "code", kind)  # a Kind travels to the worker as its code


def _raise_for(outcome: Outcome, value: Any) -> None:
    from .errors import BudgetExceededError, ValueValidationError

    if outcome.over_budget:
        from .values import describe

        raise BudgetExceededError(outcome.detail.replace("{what}", f"validating {describe(value)}"),
                                  budget=outcome.status)
    if not outcome.ok:
        raise ValueValidationError(outcome.message, path=outcome.path, detail=outcome.detail)


# ---------------------------------------------------------------------------------------
# In the worker processes
# ---------------------------------------------------------------------------------------


def _init_worker(memory_bytes: int) -> None:
    """Import what checks need, then cap the address space (the imports must fit under it)."""
    _die_with_parent()
    # Native libraries must not start thread pools of their own: each reserves address space.
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    from . import interface_rules, values  # noqa: F401  (imported before the limit applies)
    # The CEL library (~0.2 s and 16 MiB: its package also imports a CLI), outside any filter's budget.
    from . import cel_filter  # noqa: F401

    values.validate_value("CHART", _chart_example())  # loads vega-lite and jsonschema-rs once
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the operator dies (even by SIGKILL).

    A worker deep in a Python ``re`` match never reads its pipe, so it would not notice an
    operator that died without stopping it, and would run on for hours as an orphan.
    """
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux: pebble's own checks remain
        pass


def _chart_example() -> Any:
    from .schemas import example_value

    return example_value("CHART")


def _ping() -> Outcome:
    return Outcome()


def _guarded(check: Callable[[], Outcome]) -> Outcome:
    from .errors import ValueValidationError

    try:
        return check()
    except (MemoryError, SystemError):
        # Past RLIMIT_AS an allocation fails: MemoryError, or, where CPython could not even
        # allocate that, SystemError ("... returned NULL without setting an exception").
        # By now the frames holding the memory are gone.
        return Outcome("memory", detail="{what} needed more than the memory budget")
    except ValueValidationError as err:
        return Outcome("invalid", message=getattr(err, "message", str(err)), path=err.path, detail=err.detail)


def check_input_value(code: str, schema: Any, has_value: bool, value: Any, *, python_regex: bool = False) -> Outcome:
    """One input of a JSON kind: required-ness, then the value against kind and custom schema.

    In-process callers keep ``python_regex=False``; the worker task passes True.
    """
    from . import values

    def check() -> Outcome:
        if not has_value and values.value_required(code, schema):
            return Outcome("required")
        values.validate_value(code, value if has_value else None, schema=schema, python_regex=python_regex)
        return Outcome()

    return _guarded(check)


def check_input_value_task(code: str, schema: Any, has_value: bool, value: Any) -> Outcome:
    return check_input_value(code, schema, has_value, value, python_regex=True)


def validate_value_task(code: str, value: Any, schema: Any, required: bool) -> Outcome:
    from . import values

    def check() -> Outcome:
        values.validate_value(code, value, schema=schema, required=required, python_regex=True)
        return Outcome()

    return _guarded(check)


def check_interface_task(spec: dict[str, Any]) -> Outcome:
    from .interface_rules import check_interface

    def check() -> Outcome:
        errors = check_interface(spec, python_regex=True)
        return Outcome("invalid" if errors else "ok", errors=tuple((e.field, e.message) for e in errors))

    return _guarded(check)


def filter_items_task(expression: str, items: list[dict[str, Any]]) -> Outcome:
    # Past RLIMIT_AS the Rust library aborts the worker (reported as the memory budget). With
    # RUST_BACKTRACE set it first symbolises a backtrace, slowly so near the limit, until the
    # time budget ends it instead and the report names the wrong budget.
    os.environ["RUST_BACKTRACE"] = "0"
    from .cel_filter import evaluate_filter

    return _guarded(lambda: FilterOutcome(results=tuple(evaluate_filter(expression, items))))
