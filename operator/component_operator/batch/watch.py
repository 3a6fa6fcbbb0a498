"""Following a ComponentBatch until it ends, with a live progress bar.

The bar is what ``status.progress`` says (settled items out of the candidates), redrawn from the
batch's status every ``interval`` seconds; a status read per second of one object costs the API
server nothing and, unlike a watch, needs no reconnect and resourceVersion bookkeeping.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TextIO

from tqdm import tqdm

from . import state
from .client import BatchApi
from .errors import BatchGoneError

DEFAULT_INTERVAL = 1.0
#: tqdm settings of the waiting bar (overridable per call, like the runner's bars).
WAIT_PROGRESSBAR_KWARGS: dict[str, Any] = {"unit": "item", "dynamic_ncols": True}


@dataclass(frozen=True)
class WaitResult:
    """How waiting ended: ``condition`` is "Complete" or "Failed", or None when the time ran out."""

    condition: str | None
    batch: dict[str, Any]

    @property
    def timed_out(self) -> bool:
        return self.condition is None


def wait_for_batch(
    api: BatchApi,
    namespace: str,
    name: str,
    *,
    timeout: float | None = None,
    progressbar: bool = True,
    interval: float = DEFAULT_INTERVAL,
    bar_kwargs: Mapping[str, Any] | None = None,
    file: TextIO | None = None,
) -> WaitResult:
    """Poll the batch until Complete or Failed is True for its current generation, or ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    kwargs = {**WAIT_PROGRESSBAR_KWARGS, "desc": name, **(bar_kwargs or {})}
    told_suspended = False
    with tqdm(total=0, disable=not progressbar, file=file or sys.stderr, **kwargs) as bar:
        while True:
            batch = _get(api, namespace, name)
            _draw(bar, batch)
            ended = state.terminal_condition(batch)
            if ended:
                return WaitResult(ended, batch)
            if not told_suspended and state.planned(batch):
                told_suspended = True
                bar.write(f"ComponentBatch {namespace}/{name} is suspended (spec.suspend): it starts no jobs until "
                          "spec.suspend is false", file=file or sys.stderr)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return WaitResult(None, batch)
            time.sleep(interval if remaining is None else min(interval, remaining))


def wait_for_plan(api: BatchApi, namespace: str, name: str, *, timeout: float,
                  interval: float = 0.5) -> WaitResult:
    """Poll a suspended batch until the operator has planned it ("Suspended") or cannot ("Failed"),
    both for its current generation; condition None after ``timeout`` (``batch``: the last read)."""

    def answer(batch: dict[str, Any]) -> str | None:
        if state.planned(batch):
            return "Suspended"
        return "Failed" if state.is_true(batch, "Failed") else None

    return _poll(lambda: _get(api, namespace, name), answer, timeout=timeout, interval=interval)


def _poll(read: Callable[[], dict[str, Any]], answer: Callable[[dict[str, Any]], str | None], *, timeout: float,
          interval: float) -> WaitResult:
    deadline = time.monotonic() + timeout
    while True:
        obj = read()
        found = answer(obj)
        if found:
            return WaitResult(found, obj)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return WaitResult(None, obj)
        time.sleep(min(interval, remaining))


def _get(api: BatchApi, namespace: str, name: str) -> dict[str, Any]:
    batch = api.get_batch(namespace, name)
    if batch is None:
        raise BatchGoneError(f"ComponentBatch {namespace}/{name} does not exist (deleted?)")
    return batch


def _draw(bar: tqdm, batch: Mapping[str, Any]) -> None:
    done, total = state.settled(batch)
    counts = state.counts(batch)
    if bar.total != total:
        bar.total = total
    bar.n = done
    bar.set_postfix(succeeded=counts["succeeded"], failed=counts["failed"], existing=counts["existing"],
                    invalid=counts["invalid"], running=counts["running"], refresh=False)
    bar.refresh()
