"""Command line of the agent: ``prepare``, ``run -- <program>``, ``version``.

Thin on purpose: it reads the environment (names in ``invocation``), builds the presigned
object-store client (``transfer``), calls ``prepare.prepare`` or ``run.run``, and turns
failures into the exit codes and the single JSON error line of the contract (package
docstring). It is the entry point of the static executable too
(``testenv/scripts/build_agent.sh``), so it imports nothing heavy.

Secrets, in order: ``prepare`` reads the grants and the signing key from its environment (the
init container's; gone when it exits), stages the inputs with the GET URLs, then leaves the
key and the upload policy in the handoff file; ``run`` makes itself non-dumpable, reads and
deletes the handoff file before anything else, and only then starts the program.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Mapping, Sequence

from .. import __version__
from ..adapters.s3 import S3Error, TemporaryS3Error
from .invocation import (
    ENV_CA_FILE,
    ENV_DOWNLOAD_PREFIX,
    ENV_GRACE,
    ENV_RUN_AS,
    ENV_SIGNING_KEY,
    ENV_TERMINATION_LOG,
    ENV_UPLOAD,
    InvocationError,
    Roots,
    invocation_from_env,
    parse_run_as,
    scrubbed_environment,
)
from .transfer import Grants, PresignedStore, consume_handoff, handoff_path, write_handoff
from .logs import AgentLog, format_line

USAGE = """usage: component-operator agent {prepare | run -- PROGRAM [ARGS...] | version}

  prepare   init container: install the agent, stage the inputs (COMPONENT_OPERATOR_INVOCATION_FILE)
  run       run PROGRAM, upload its outputs and write the signed result
  version   print the agent's version as JSON
"""

EXIT_AGENT_FAILED = 125
MSG_AGENT_FAILED = "The agent could not start"
MSG_UNEXPECTED = "An unexpected error occurred"


def _termination_log(env: Mapping[str, str]) -> Path | None:
    path = Path(env.get(ENV_TERMINATION_LOG) or "/dev/termination-log")
    return path if path.is_file() else None


def fail(log: AgentLog, message: str, detail: str = "", *, interface: str | None = None, retryable: bool = False,
         env: Mapping[str, str] | None = None) -> None:
    """The one JSON error line on stderr (and in the termination log, when there is one)."""
    line = format_line(message, level="ERROR", source="stderr", internal=False, task=log.task,
                       error=message, detail=detail, interface=interface, retryable=retryable)
    sys.stdout.flush()
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    target = _termination_log(os.environ if env is None else env)
    if target is not None:
        try:
            target.write_text(line + "\n")
        except OSError:
            pass


def cmd_version() -> int:
    print(json.dumps({
        "agent_version": __version__,
        "python": platform.python_version(),
        "frozen": bool(getattr(sys, "frozen", False)),
        "static": bool(os.environ.get("STATICX_PROG_PATH")),
    }))
    return 0


def cmd_prepare(env: Mapping[str, str]) -> int:
    from .prepare import PrepareError, prepare
    from .run import harden_process

    harden_process()
    log = AgentLog(None)
    try:
        invocation = invocation_from_env(env)
        log.task = invocation.job_id
        grants = Grants.from_env(env)
        if grants.signing_key is None:
            raise InvocationError(f"{ENV_SIGNING_KEY} is not set: `run` could not sign the result")
        store = PresignedStore(grants.downloads, ca_file=env.get(ENV_CA_FILE) or None)
        prepare(invocation, store, Roots.from_env(env), log)
        write_handoff(handoff_path(env), signing_key=grants.signing_key, upload=grants.upload)
        log.internal(f"left the signing key and the upload policy for `run` in {handoff_path(env)}")
    except PrepareError as err:
        fail(log, err.message, err.detail, interface=err.interface, env=env)
        return 1
    except (InvocationError, ValueError) as err:
        fail(log, MSG_AGENT_FAILED, str(err), env=env)
        return 1
    except S3Error as err:
        fail(log, "The inputs could not be read from object storage", str(err),
             retryable=isinstance(err, TemporaryS3Error), env=env)
        return 1
    except Exception as err:  # noqa: BLE001 - reported (one line), never a traceback for users
        fail(log, MSG_UNEXPECTED, f"{type(err).__name__}: {err}", env=env)
        return 1
    return 0


def cmd_run(argv: Sequence[str], env: Mapping[str, str]) -> int:
    from .run import RunOptions, harden_process, run

    hardened = harden_process()  # before anything secret is read
    log = AgentLog(None)
    try:
        leaked = sorted(name for name in env if name == ENV_SIGNING_KEY or name == ENV_UPLOAD
                        or name.startswith(ENV_DOWNLOAD_PREFIX))
        if leaked:
            raise InvocationError(f"{', '.join(leaked)} must not be in the algorithm container's environment "
                                  "(a program of the same uid can read its PID 1's environment); they belong "
                                  "to `prepare`, which hands them over in the handoff file")
        handoff = consume_handoff(handoff_path(env))  # gone before anything else can fail
        key = handoff.signing_key
        invocation = invocation_from_env(env)
        log.task = invocation.job_id
        roots = Roots.from_env(env)
        run_as = None
        if env.get(ENV_RUN_AS):
            if os.geteuid() == 0:
                run_as = parse_run_as(env[ENV_RUN_AS])
            else:
                log.internal(f"{ENV_RUN_AS} is ignored: the agent is not root (uid {os.geteuid()})", "WARNING")
        grace = float(env.get(ENV_GRACE) or 5)
    except (InvocationError, ValueError) as err:
        fail(log, MSG_AGENT_FAILED, str(err), env=env)
        return EXIT_AGENT_FAILED
    if not hardened:
        log.internal("could not make the agent non-dumpable (prctl PR_SET_DUMPABLE)", "WARNING")
    options = RunOptions(env=scrubbed_environment(env, frozen=bool(getattr(sys, "frozen", False))),
                         grace=grace, run_as=run_as, seal=True)
    store = PresignedStore(upload=handoff.upload, ca_file=env.get(ENV_CA_FILE) or None)
    try:
        code, _ = run(invocation, argv, store=store, key=key, output_root=roots.output, log=log, options=options)
    except S3Error as err:
        fail(log, "The agent could not store the outputs or the result", str(err),
             retryable=isinstance(err, TemporaryS3Error), env=env)
        return EXIT_AGENT_FAILED
    except Exception as err:  # noqa: BLE001
        log.internal(f"unexpected {type(err).__name__}: {err}", "ERROR")
        fail(log, MSG_UNEXPECTED, f"{type(err).__name__}: {err}", env=env)
        return EXIT_AGENT_FAILED
    return code


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ) if env is None else env
    command = args[0] if args else ""
    if command in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if command == "version":
        return cmd_version()
    if command == "prepare" and len(args) == 1:
        return cmd_prepare(env)
    if command == "run":
        program = args[1:]
        if program and program[0] == "--":
            program = program[1:]
        if program:
            return cmd_run(program, env)
        sys.stderr.write("component-operator agent run: the program to run is missing (run -- PROGRAM [ARGS...])\n")
        return 2
    sys.stderr.write(USAGE)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
