"""``component-operator batch``: start, plan, inspect and follow ComponentBatches from a shell.

    component-operator batch run -f FILE [-n NS] [--dry-run] [--wait] [--timeout SECONDS]
    component-operator batch status NAME [-n NS] [-o table|json]
    component-operator batch wait NAME [-n NS] [--for Complete|Failed] [--timeout SECONDS]

``run`` checks the manifest locally (the CRD's own model) before anything is sent, then applies
it server-side (field manager ``component-operator-cli``: applying the same file twice changes
nothing) and prints the batch's name. ``--dry-run`` asks the operator for the plan instead: it
creates a suspended twin ``<name>-dry-run-xxxxx``, waits until the operator has counted it,
prints what would be found, skipped and started, and deletes the twin.

Exit status: 0 done (the batch reached the awaited condition; a plan without invalid items);
1 the batch ended the other way (Failed while waiting for Complete, or the reverse), the plan
has invalid items, or the operator cannot plan the batch at all (its Failed condition); 2 usage
error or invalid manifest (each problem as field path, value, rule); 3 timed out (the batch did
not end, or the operator did not plan the dry run); 4 the Kubernetes API refused or failed (not
found, forbidden, unreachable).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from . import manifest, state
from .client import BatchApi, api_message, default_namespace
from .errors import BatchError, InvalidBatchError
from .watch import wait_for_batch, wait_for_plan

PROG = "component-operator batch"
FIELD_MANAGER = "component-operator-cli"
DRY_RUN_TIMEOUT = 60.0
#: Label of dry-run twins, so that one left behind (a killed CLI) is easy to find and delete.
DRY_RUN_LABEL = "components.grand-challenge.org/dry-run"
EXIT_OK, EXIT_OTHER, EXIT_USAGE, EXIT_TIMEOUT, EXIT_API = 0, 1, 2, 3, 4
_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "deletionTimestamp")


class UsageError(Exception):
    """A problem with how the command was called (exit status 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:  # argparse reports usage errors (2) and --help (0) this way
        return int(exit_.code or 0)
    try:
        return int(args.run(args))
    except UsageError as err:
        _error(str(err))
        return EXIT_USAGE
    except InvalidBatchError as err:
        for problem in err.errors:
            _error(f"{err.what}: {problem}")
        return EXIT_USAGE
    except ApiException as err:
        hint = " (--force-conflicts takes them over)" if err.status == 409 and "conflict" in api_message(err) else ""
        _error(f"the Kubernetes API answered {err.status}: {api_message(err)}{hint}")
        return EXIT_API
    except (BatchError, ConfigException) as err:
        _error(str(err))
        return EXIT_API
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Start, plan, inspect and follow ComponentBatches "
                                     "(exit 0 done, 1 ended otherwise, 2 usage/invalid, 3 timeout, 4 API error).")
    sub = parser.add_subparsers(dest="what", required=True)

    run = sub.add_parser("run", help="check a ComponentBatch manifest and apply it (or --dry-run: plan it)")
    run.add_argument("-f", "--filename", dest="file", required=True, help="the ComponentBatch manifest (YAML; '-': stdin)")
    _namespace_option(run)
    run.add_argument("--dry-run", action="store_true", help="ask the operator for the plan; start nothing, leave nothing")
    run.add_argument("--wait", action="store_true", help="follow the batch until Complete (exit 0) or Failed (exit 1)")
    run.add_argument("--timeout", type=_seconds, help=f"seconds for --wait (default: no limit) or for the dry run's "
                     f"plan (default {DRY_RUN_TIMEOUT:g})")
    run.add_argument("--force-conflicts", action="store_true", help="take over fields another manager (kubectl, a "
                     "GitOps tool) owns, as kubectl apply --server-side --force-conflicts")
    _progress_option(run)
    run.set_defaults(run=_run)

    status = sub.add_parser("status", help="counts, progress, conditions, failed and invalid items of a batch")
    status.add_argument("name", metavar="NAME")
    _namespace_option(status)
    status.add_argument("-o", "--output", choices=["table", "json"], default="table")
    status.set_defaults(run=_status)

    wait = sub.add_parser("wait", help="follow a batch with a progress bar until it ends")
    wait.add_argument("name", metavar="NAME")
    _namespace_option(wait)
    wait.add_argument("--for", dest="until", choices=list(state.TERMINAL_CONDITIONS), default="Complete",
                      help="the condition that means success (exit 0); the other one exits 1")
    wait.add_argument("--timeout", type=_seconds, help="seconds to wait (default: no limit); then exit 3")
    _progress_option(wait)
    wait.set_defaults(run=_wait)
    return parser


def _namespace_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", help="namespace (default: the manifest's, else the kubeconfig context's)")


def _progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


# ---------------------------------------------------------------------------------------
# batch run
# ---------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    source = "<stdin>" if args.file == "-" else args.file
    document = manifest.load(_read(args.file), source)
    manifest.check_document(document, source)
    namespace = _manifest_namespace(args.namespace, document)
    api = BatchApi()
    if args.dry_run:
        timeout = DRY_RUN_TIMEOUT if args.timeout is None else args.timeout
        return _dry_run(api, document, namespace, timeout)
    body = _for_apply(document, namespace)
    if body["metadata"].get("name"):
        created = api.apply_batch(body, FIELD_MANAGER, force=args.force_conflicts)
    else:
        created = api.create_batch(body, FIELD_MANAGER)
    name = created["metadata"]["name"]
    print(name)
    if not args.wait:
        return EXIT_OK
    return _follow(api, namespace, name, "Complete", args.timeout, args.progress)


def _dry_run(api: BatchApi, document: dict[str, Any], namespace: str, timeout: float) -> int:
    twin = manifest.dry_run_copy(document, namespace)
    twin["metadata"].setdefault("labels", {})[DRY_RUN_LABEL] = "true"
    created = api.create_batch(twin, FIELD_MANAGER)
    name = created["metadata"]["name"]
    try:
        answer = wait_for_plan(api, namespace, name, timeout=timeout)
    finally:
        api.delete_batch(namespace, name)
    where = f"ComponentBatch {namespace}/{name}"
    if answer.condition == "Failed":
        failed = state.condition(answer.batch, "Failed") or {}
        _error(f"the operator cannot plan {where}: {failed.get('reason')}: {failed.get('message')}")
        return EXIT_OTHER
    if answer.condition is None:
        progressing = state.condition(answer.batch, "Progressing") or {}
        if state.observed(answer.batch) and progressing:
            why = f"it waits: {progressing.get('reason')}: {progressing.get('message')}"
        else:
            why = ("no status for its generation with Suspended=True: is the operator running, and does it "
                   "watch this namespace?")
        _error(f"the operator did not plan {where} within {timeout:g}s ({why}); the dry-run batch was deleted")
        return EXIT_TIMEOUT
    plan = answer.batch
    plan["metadata"]["name"] = (document.get("metadata") or {}).get("name") or name
    print(state.format_plan(plan))
    return EXIT_OTHER if state.counts(plan)["invalid"] else EXIT_OK


def _for_apply(document: dict[str, Any], namespace: str) -> dict[str, Any]:
    body = {key: value for key, value in document.items() if key != "status"}
    metadata = {k: v for k, v in (document.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    metadata["namespace"] = namespace
    body["metadata"] = metadata
    return body


def _manifest_namespace(option: str | None, document: dict[str, Any]) -> str:
    written = (document.get("metadata") or {}).get("namespace")
    if option and written and option != written:
        raise UsageError(f"the namespace from the manifest ({written}) does not match -n {option}")
    return option or written or default_namespace()


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None


# ---------------------------------------------------------------------------------------
# batch status, batch wait
# ---------------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    namespace = args.namespace or default_namespace()
    batch = BatchApi().get_batch(namespace, args.name)
    if batch is None:
        raise BatchError(f"ComponentBatch {namespace}/{args.name} not found")
    if args.output == "json":
        print(state.to_json(state.status_document(batch)))
    else:
        print(state.format_status(batch))
    return EXIT_OK


def _wait(args: argparse.Namespace) -> int:
    namespace = args.namespace or default_namespace()
    api = BatchApi()
    if api.get_batch(namespace, args.name) is None:
        raise BatchError(f"ComponentBatch {namespace}/{args.name} not found")
    return _follow(api, namespace, args.name, args.until, args.timeout, args.progress)


def _follow(api: BatchApi, namespace: str, name: str, until: str, timeout: float | None, progress: bool) -> int:
    outcome = wait_for_batch(api, namespace, name, timeout=timeout, progressbar=progress)
    where = f"ComponentBatch {namespace}/{name}"
    if outcome.condition is None:
        _error(f"{where}: neither Complete nor Failed after {timeout:g}s (progress {state.progress(outcome.batch)}: "
               f"{state.summary(outcome.batch)})")
        return EXIT_TIMEOUT
    ended = state.condition(outcome.batch, outcome.condition) or {}
    print(f"{where}: {outcome.condition} ({state.progress(outcome.batch)}: {state.summary(outcome.batch)})"
          + (f": {ended['message']}" if ended.get("message") and outcome.condition == "Failed" else ""),
          file=sys.stderr)
    return EXIT_OK if outcome.condition == until else EXIT_OTHER


def _error(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)
