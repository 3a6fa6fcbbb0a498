"""The error taxonomy and the bounds of issue 12: every job reaches a clear state (pure or in-loop, no cluster)."""

from __future__ import annotations

import asyncio
import json

import kopf
import pytest
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from component_operator import errors
from component_operator.adapters import kube
from component_operator.api.job import ComponentJobSpec
from component_operator.config import OperatorConfig
from component_operator.context import OperatorContext
from component_operator.handlers import health
from component_operator.handlers.job import JobReconciler
from component_operator.planning import logs, names
from component_operator.planning.conditions import get_condition
from component_operator.planning.jobs import STATUS_BUDGET_BYTES, Observation, PodLogs, decide, fail, status_size
from component_operator.runner import RunOptions

from .jobfixtures import CONFIG, INTERFACES, NOW, image, interface, job, pod, stamp


def observe(j, *, interfaces=INTERFACES, the_pod=None, pod_logs=None):
    return decide(Observation(job=j, image=image(), interfaces=interfaces, pod=the_pod, now=NOW, config=CONFIG,
                              logs=pod_logs))


# --- backoff and API error classes -------------------------------------------------------------

def test_backoff_doubles_and_is_capped():
    assert [errors.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert errors.backoff(30) == errors.BACKOFF_MAX_SECONDS
    assert errors.backoff(1, least=5.0) == 5.0


@pytest.mark.parametrize("status,expected", [
    (409, errors.TemporaryError), (429, errors.TemporaryError), (500, errors.TemporaryError), (503, errors.TemporaryError),
    (400, errors.RefusedError), (403, errors.RefusedError), (422, errors.RefusedError),
])
def test_api_errors_map_to_the_taxonomy(status, expected):
    err = ApiException(status=status, reason="Reason")
    err.body = json.dumps({"message": f"the server says {status}"})
    mapped = kube.classify(err, "create Pod x")
    assert isinstance(mapped, expected)
    assert f"the server says {status}" in str(mapped) and "create Pod x" in str(mapped)


def test_api_404_is_left_to_the_caller():
    err = ApiException(status=404, reason="Not Found")
    assert kube.classify(err) is err


def test_ownership_collision_is_permanent_with_its_reason():
    err = kube.OwnershipError("Pod ns/j1-0 already exists and is not owned by this job")
    assert isinstance(err, errors.PermanentError) and err.reason == "NameCollision"


def test_describe_is_bounded():
    text = errors.describe(RecursionError("x" * 5000))
    assert text.startswith("RecursionError: ") and len(text) <= 900


# --- sizes --------------------------------------------------------------------------------------

def test_logs_are_bounded_by_bytes_not_only_lines():
    text = "\n".join(f"{i:04d} " + "x" * 10_000 for i in range(500))  # 5 MB in 500 lines
    kept = logs.last_lines(text)
    assert len(kept.encode()) <= logs.LOG_BYTES
    assert kept.splitlines()[-1].startswith("0499 ")  # the newest lines win
    assert all(len(line) <= logs.LINE_CHARS + len(logs.TRUNCATED) for line in kept.splitlines())


def test_logs_keep_500_short_lines_and_multibyte_text():
    text = "\n".join(f"line {i} é" for i in range(1000))
    kept = logs.last_lines(text)
    assert kept.splitlines()[0] == "line 500 é" and len(kept.splitlines()) == 500


def test_a_huge_log_makes_a_status_within_budget():
    j = job(status={"phase": "Executing", "attempt": 0, "podName": "j1-0", "createdAt": stamp(-60)})
    terminated = {"terminated": {"exitCode": 1, "startedAt": stamp(-20), "finishedAt": stamp(-1)}}
    line = "y" * 10_000
    d = observe(j, the_pod=pod("Failed", node="n1", container_state=terminated),
                pod_logs=PodLogs(stdout="\n".join([line] * 500), stderr="\n".join([line] * 500)))
    assert d.status["phase"] == "Failed" and d.status["reason"] == "NonZeroExitCode"
    assert status_size(d.status) <= STATUS_BUDGET_BYTES


def test_a_status_over_budget_fails_the_job_with_a_clear_reason():
    from component_operator.planning.jobs import _bounded, Decision

    status = {"phase": "Succeeded", "outputs": [{"interface": "x", "value": "v" * (STATUS_BUDGET_BYTES + 10)}]}
    d = _bounded(Decision(status=status))
    assert d.status["phase"] == "Failed" and d.status["reason"] == "StatusTooLarge"
    assert str(STATUS_BUDGET_BYTES) in d.status["errorMessage"] and d.status["outputs"] == []


# --- inputPrefixes: CEL/OpenAPI pattern and the reconciler agree --------------------------------

PREFIXES = {
    "": True, "a": True, "case_1/display-set.2": True, "a/b/": True, "x" * 255: True,
    "../../etc": False, "/etc": False, "a/../b": False, ".": False, "a//b": False, ".hidden": False,
    "a b": False, "x" * 256: False, "a\\b": False, "ü": False,
}


@pytest.mark.parametrize("prefix,safe", sorted(PREFIXES.items()))
def test_input_prefix_rule_agrees_between_model_and_reconciler(prefix, safe):
    assert (names.unsafe_relative_path(prefix) is None) is safe
    spec = {"image": "algo", "inputPrefixes": {"bbox": prefix}}
    if safe:
        ComponentJobSpec.model_validate(spec)
    else:
        with pytest.raises(ValidationError):
            ComponentJobSpec.model_validate(spec)


def test_unsafe_prefix_admitted_anyway_is_cancelled_naming_the_field():
    d = observe(job(inputPrefixes={"bbox": "../../etc"}))
    assert d.status["phase"] == "Cancelled" and d.status["reason"] == "InvalidSpec"
    assert "spec.inputPrefixes.bbox" in d.status["errorMessage"] and "../../etc" in d.status["errorMessage"]
    assert not d.create


def test_spec_the_model_refuses_is_cancelled_not_retried():
    d = observe(job(timeLimit="soon", inputs="not-a-list"))
    assert d.status["phase"] == "Cancelled" and d.status["reason"] == "InvalidSpec"
    assert "spec.timeLimit" in d.status["errorMessage"] and "spec.inputs" in d.status["errorMessage"]
    assert d.requeue_after is None


def test_status_edited_by_hand_fails_the_job():
    d = observe(job(status={"phase": "Bogus", "attempt": 0}))
    assert d.status["phase"] == "Failed" and d.status["reason"] == "InvalidStatus"
    assert "status.phase" in d.status["errorMessage"]


# --- objects that change under the job ----------------------------------------------------------

def test_interface_deleted_after_validation_fails_the_job():
    queued = job(status={"phase": "Queued", "attempt": 0, "createdAt": stamp(-60)})
    remaining = {k: v for k, v in INTERFACES.items() if k != "bbox"}
    d = observe(queued, interfaces=remaining)
    assert d.status["phase"] == "Failed" and d.status["reason"] == "InterfaceNotFound"
    assert "'bbox' was deleted" in d.status["detailedErrorMessage"]["bbox"]
    assert not d.create


def test_output_interface_of_unknown_kind_is_an_invalid_input_not_a_crash():
    interfaces = {**INTERFACES, "weird": interface("weird", "No Such Kind", "weird.json")}
    d = observe(job(outputs=["weird"]), interfaces=interfaces)
    assert d.status["phase"] == "Cancelled" and d.status["reason"] == "InvalidInputs"
    assert "spec.outputs[0]" in get_condition(d.status["conditions"], "InputsValid")["message"]


def test_fail_is_terminal_and_deletes_the_running_pod():
    running = job(status={"phase": "Executing", "attempt": 0, "podName": "j1-0", "createdAt": stamp(-60)})
    obs = Observation(job=running, image=None, interfaces={}, pod=None, now=NOW, config=CONFIG)
    d = fail(obs, "InternalError", "The operator could not process this job: KeyError: 'x'")
    assert d.status["phase"] == "Failed" and d.status["reason"] == "InternalError"
    assert "KeyError" in d.status["errorMessage"] and d.delete_pods == ["j1-0"]
    assert get_condition(d.status["conditions"], "Failed")["reason"] == "InternalError"
    # a terminal job is never rewritten
    again = fail(Observation(job={**running, "status": d.status}, image=None, interfaces={}, pod=None, now=NOW,
                             config=CONFIG), "InternalError", "other")
    assert again.status == d.status and not again.delete_pods


# --- the reconciler bounds retries --------------------------------------------------------------

class _Immediate(JobReconciler):
    """Retries at once instead of after the backoff (the delays are recorded)."""

    def __init__(self, reconcile):
        self.ended: list[tuple[str, str]] = []
        self.delays: list[float] = []

        async def end(ctx, namespace, name, *, reason, message, detail=None):
            self.ended.append((reason, message))

        super().__init__(reconcile=reconcile, end=end)

    def _later(self, key, delay):
        self.delays.append(delay)
        asyncio.get_running_loop().call_soon(self.kick, key)


def _context(reconciler) -> OperatorContext:
    options = RunOptions()
    ctx = OperatorContext(options=options, config=OperatorConfig(), reconciler=reconciler)
    reconciler.context = ctx
    return ctx


async def _settle(reconciler, until):
    for _ in range(2000):
        if until():
            return
        await asyncio.sleep(0)
    raise AssertionError("the reconciler did not settle")


def _run_until_ended(reconcile) -> _Immediate:
    async def run():
        r = _Immediate(reconcile)
        _context(r)
        r.kick(("ns", "j1"))
        await _settle(r, lambda: r.ended and not r.running)
        return r

    return asyncio.run(run())


def test_unexpected_errors_end_internal_error_after_bounded_retries():
    calls = []

    async def broken(ctx, namespace, name):
        calls.append(name)
        raise KeyError("interface")

    r = _run_until_ended(broken)
    assert len(calls) == errors.UNEXPECTED_RETRY_LIMIT
    assert r.ended == [("InternalError", "The operator could not process this job: KeyError: 'interface'")]
    assert r.delays == [1.0, 2.0, 4.0, 8.0] and not r.failures


def test_temporary_errors_back_off_exponentially_and_are_bounded_too():
    async def flaky(ctx, namespace, name):
        raise errors.TemporaryError("API 503: unavailable")

    r = _run_until_ended(flaky)
    assert r.delays[:7] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0] and max(r.delays) == errors.BACKOFF_MAX_SECONDS
    assert len(r.delays) == errors.TEMPORARY_RETRY_LIMIT
    assert r.ended[0][0] == "InternalError" and "API 503" in r.ended[0][1]


def test_permanent_error_ends_the_job_at_once_with_its_reason():
    async def refused(ctx, namespace, name):
        raise errors.RefusedError("create Pod j1-0: the API server refused it (422): spec.volumes[0]: Invalid", 422)

    r = _run_until_ended(refused)
    assert r.delays == [] and r.ended == [("RefusedByAPIServer", "create Pod j1-0: the API server refused it (422): spec.volumes[0]: Invalid")]


def test_success_resets_the_failure_count():
    outcomes = [KeyError("a"), KeyError("b"), None]

    async def sometimes(ctx, namespace, name):
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return None

    async def run():
        r = _Immediate(sometimes)
        _context(r)
        r.kick(("ns", "j1"))
        await _settle(r, lambda: not outcomes and not r.running)
        return r

    r = asyncio.run(run())
    assert r.ended == [] and r.failures == {}


# --- liveness -----------------------------------------------------------------------------------

def test_liveness_fails_when_a_watcher_stopped():
    ctx = _context(JobReconciler())
    watchers = {"watcher for componentjobs.v1alpha1.components.grand-challenge.org@None", "watcher for pods.v1@None"}
    assert health.check(ctx, watchers)["watchers"] == 2
    with pytest.raises(kopf.PermanentError, match="componentjobs"):
        health.check(ctx, {"watcher for pods.v1@None"})


def test_liveness_fails_when_a_reconcile_is_wedged(monkeypatch):
    reconciler = JobReconciler()
    ctx = _context(reconciler)
    monkeypatch.setattr(reconciler, "oldest_reconcile_seconds", lambda: health.STUCK_RECONCILE_SECONDS + 1)
    with pytest.raises(kopf.PermanentError, match="reconcile has been running"):
        health.check(ctx, set())


def test_json_inputs_too_large_for_the_configmap_fail_with_the_sizes():
    big = {"interface": "threshold", "value": 0.5}
    queued = job(status={"phase": "Queued", "attempt": 0, "createdAt": stamp(-60)},
                 inputs=[{"interface": "bbox", "value": {"blob": "z" * 520_000}}, big])
    interfaces = {**INTERFACES, "bbox": interface("bbox", "Anything", "bbox.json")}
    d = observe(queued, interfaces=interfaces)
    assert d.status["phase"] == "Failed" and d.status["reason"] == "InputsTooLarge"
    assert "over the limit of" in d.status["errorMessage"] and not d.create


def test_values_nested_past_the_limit_are_refused_before_any_recursive_walk():
    import sys

    deep: object = 0
    for _ in range(3000):
        deep = [deep]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))  # the operator runs with a raised limit (runner.RECURSION_LIMIT)
    try:
        d = observe(job(inputs=[{"interface": "bbox", "value": deep}]))
    finally:
        sys.setrecursionlimit(limit)
    assert d.status["phase"] == "Cancelled" and d.status["reason"] == "InvalidSpec"
    assert "spec.inputs[0].value: the value is nested 3000 levels deep" in d.status["errorMessage"]
