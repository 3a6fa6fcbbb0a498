"""``agent run -- <program>``: run the algorithm, measure it, upload its outputs, sign the result.

This is the algorithm container's command (the image's entrypoint and command follow ``--``).
It keeps what the algorithm must not have (the signing key, the upload policy) and hands it
nothing of the kind. The program runs as the same uid as the agent (Pod Security
"restricted" allows no switch), so everything rests on what that uid cannot reach:

* ``prctl(PR_SET_DUMPABLE, 0)`` first, so a process of the same uid can neither read this
  process's ``/proc/<pid>/environ``, ``mem`` or ``maps`` nor ptrace it;
* the key and the policy come from the handoff file, deleted before the program starts; the
  container's environment has no secret (the frozen agent's bootloaders, staticx's as PID 1
  and PyInstaller's, stay dumpable and keep the environment they were started with);
* everything the agent will need is imported before the program starts, and then every
  import is refused (``ImportSeal``): the frozen agent runs from files unpacked below
  ``/tmp``, which the program can write, so loading anything new afterwards could run the
  program's code next to the key;
* the program starts with every ``COMPONENT_OPERATOR_*`` and ``GRAND_CHALLENGE_*`` variable
  removed, in its own process group (so the time limit kills all of it), optionally as
  another user (``COMPONENT_OPERATOR_RUN_AS`` when the agent is root);
* its stdout and stderr are streamed line by line as structured JSON lines (``logs``);
* the time limit is enforced here (SIGTERM, grace, SIGKILL), before the pod's deadline, so a
  signed result still says ``Time limit exceeded``;
* only after exit code 0 are the files under the output root uploaded (symlinks only when
  they resolve inside it), each read once, with the size and SHA-256 of the bytes sent;
* the result document is signed with HMAC-SHA256 and written in every case where the
  program was started or could not be found.

The agent exits with the program's exit code (a signal n becomes 128+n, as the kubelet
reports it), so the pod's status and the result agree.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence, TypeVar

from ..adapters.s3 import ObjectTooLargeError, TemporaryS3Error, parse_uri
from .invocation import Invocation
from .logs import AgentLog
from .result import OutputFile, Result, encode, rfc3339, sign, upload as upload_result
from .transfer import content_type_for

if TYPE_CHECKING:  # pragma: no cover
    # ``transfer.PresignedStore`` in a pod (``upload_file``, ``put_bytes``).
    from .transfer import PresignedStore as ObjectStore

MSG_TIME_LIMIT = "Time limit exceeded"
MSG_NOT_FOUND = "The command defined by the containers ENTRYPOINT and CMD instructions does not exist"
MSG_NOT_EXECUTABLE = (
    "The user defined in the containers USER instruction does not have permission to execute the command "
    "defined by the containers ENTRYPOINT and CMD instructions"
)
PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
#: Longest line forwarded in one piece; longer lines are split.
MAX_LINE_BYTES = 64 * 1024
DEFAULT_GRACE_SECONDS = 5.0

T = TypeVar("T")


# ---------------------------------------------------------------------------------------
# Process hardening and measurements
# ---------------------------------------------------------------------------------------


def _libc() -> ctypes.CDLL | None:
    for name in (None, "libc.so.6"):
        try:
            lib = ctypes.CDLL(name, use_errno=True)
            lib.prctl  # noqa: B018 - raises AttributeError when absent
            return lib
        except (OSError, AttributeError):
            continue
    return None


def harden_process() -> bool:
    """Make this process non-dumpable; True when the kernel confirms it (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = _libc()
    if libc is None:
        return False
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        return False
    return libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0


def peak_memory_bytes(cgroup_root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The container's peak memory from its cgroup (v2 ``memory.peak``, v1
    ``memory.max_usage_in_bytes``); None when neither can be read."""
    candidates: list[Path] = []
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.strip().lstrip("/")
        if hierarchy == "0" and controllers == "":
            candidates += [cgroup_root / relative / "memory.peak", cgroup_root / "memory.peak"]
        elif "memory" in controllers.split(","):
            candidates += [cgroup_root / "memory" / relative / "memory.max_usage_in_bytes",
                           cgroup_root / "memory" / "memory.max_usage_in_bytes"]
    candidates += [cgroup_root / "memory.peak", cgroup_root / "memory" / "memory.max_usage_in_bytes"]
    for candidate in candidates:
        try:
            return int(candidate.read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def exit_status(returncode: int) -> int:
    """Popen's code as a shell reports it: killed by signal n -> 128 + n."""
    return 128 - returncode if returncode < 0 else returncode


# ---------------------------------------------------------------------------------------
# Running the program
# ---------------------------------------------------------------------------------------


@dataclass
class Execution:
    return_code: int
    timed_out: bool
    started_at: datetime
    finished_at: datetime
    duration_seconds: float | None
    started: bool = True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pump(pipe, source: str, log: AgentLog) -> None:
    with pipe:
        while True:
            chunk = pipe.readline(MAX_LINE_BYTES)
            if not chunk:
                return
            if chunk.endswith(b"\n"):
                chunk = chunk[:-1]
                if chunk.endswith(b"\r"):
                    chunk = chunk[:-1]
            log.program(source, chunk.decode("utf-8", "replace"))


def execute(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    time_limit: float,
    log: AgentLog,
    grace: float = DEFAULT_GRACE_SECONDS,
    run_as: tuple[int, int | None] | None = None,
    cwd: str | None = None,
    before_start: Callable[[], None] | None = None,
) -> Execution:
    """Run ``argv`` to completion (or to the time limit), streaming its output.

    ``before_start`` is called right before the program is started (``run`` seals imports there).
    """
    user_kwargs: dict = {}
    if run_as is not None:
        uid, gid = run_as
        if gid is None:
            try:
                import pwd

                gid = pwd.getpwuid(uid).pw_gid
            except (KeyError, ImportError):
                gid = 0  # as container runtimes do for a uid without a passwd entry
        user_kwargs = {"user": uid, "group": gid, "extra_groups": [gid]}
    if before_start is not None:
        before_start()
    started_at = datetime.now(timezone.utc)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env),
            start_new_session=True, close_fds=True, cwd=cwd, **user_kwargs,
        )
    except (FileNotFoundError, NotADirectoryError) as err:
        log.user_error(MSG_NOT_FOUND)
        log.internal(f"could not start {argv[0]!r}: {err}", "ERROR")
        now = datetime.now(timezone.utc)
        return Execution(127, False, started_at, now, None, started=False)
    except PermissionError as err:
        log.user_error(MSG_NOT_EXECUTABLE)
        log.internal(f"could not start {argv[0]!r}: {err}", "ERROR")
        now = datetime.now(timezone.utc)
        return Execution(126, False, started_at, now, None, started=False)
    log.internal(f"started {argv[0]!r} as pid {proc.pid} with a time limit of {time_limit:g}s")
    pumps = [threading.Thread(target=_pump, args=(proc.stdout, "stdout", log), daemon=True),
             threading.Thread(target=_pump, args=(proc.stderr, "stderr", log), daemon=True)]
    for pump in pumps:
        pump.start()

    exited = threading.Event()
    timed_out = threading.Event()

    def on_deadline() -> None:
        if exited.is_set():
            return
        timed_out.set()
        log.internal(f"time limit of {time_limit:g}s reached: sending SIGTERM to the process group", "WARNING")
        _signal_group(proc.pid, signal.SIGTERM)
        if not exited.wait(grace):
            log.internal(f"still running {grace:g}s after SIGTERM: sending SIGKILL", "WARNING")
            _signal_group(proc.pid, signal.SIGKILL)

    deadline = threading.Timer(time_limit, on_deadline)
    deadline.daemon = True

    def forward(signum, _frame) -> None:
        log.internal(f"received signal {signum}: forwarding it to the program", "WARNING")
        _signal_group(proc.pid, signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, forward)
    deadline.start()
    try:
        returncode = proc.wait()
        duration = time.monotonic() - start
        finished_at = datetime.now(timezone.utc)
        exited.set()
        deadline.cancel()
    finally:
        exited.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # Whatever the program left behind in its group would keep our pipes open.
    _signal_group(proc.pid, signal.SIGKILL)
    for pump in pumps:
        pump.join(timeout=10)
    if timed_out.is_set():
        log.user_error(MSG_TIME_LIMIT)
        return Execution(1, True, started_at, finished_at, duration)
    code = exit_status(returncode)
    log.internal(f"the program exited with code {code} after {duration:.3f}s")
    return Execution(code, False, started_at, finished_at, duration)


# ---------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------


def _inside(root_real: str, path: str) -> bool:
    return path == root_real or path.startswith(root_real + os.sep)


def collect_outputs(output_root: Path, log: AgentLog | None = None) -> Iterator[tuple[str, Path]]:
    """(relative posix path, file to read) for every regular file below ``output_root``.

    Symbolic links count when they resolve to a regular file inside the root; anything else
    (links leaving the root, links to directories, FIFOs, sockets, devices) is skipped.
    """
    root_real = os.path.realpath(output_root)

    def skip(relative: str, why: str) -> None:
        if log is not None:
            log.internal(f"not uploading {relative!r}: {why}", "WARNING")

    for dirpath, dirnames, filenames in os.walk(output_root):
        dirnames.sort()
        names = sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))])
        for name in names:
            path = Path(dirpath) / name
            relative = path.relative_to(output_root).as_posix()
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                real = os.path.realpath(path)
                if not _inside(root_real, real):
                    skip(relative, "it is a symbolic link to a place outside the output directory")
                elif not os.path.isfile(real):
                    skip(relative, "it is a symbolic link to something that is not a regular file")
                else:
                    yield relative, Path(real)
            elif stat.S_ISREG(info.st_mode):
                yield relative, path
            else:
                skip(relative, "it is not a regular file")


def file_sha256(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(1024 * 1024):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()


def _retrying(action: Callable[[], T], *, what: str, log: AgentLog, attempts: int = 4) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except TemporaryS3Error as err:
            if attempt == attempts:
                raise
            delay = 0.5 * 2 ** (attempt - 1)
            log.internal(f"{what} failed ({err}); retrying in {delay:g}s", "WARNING")
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def upload_outputs(store: "ObjectStore", invocation: Invocation, output_root: Path, log: AgentLog) -> list[OutputFile]:
    """Upload every output file; each is read once, and its size and SHA-256 are those of the
    bytes sent. A file larger than the upload policy allows is not uploaded but listed with
    its size (the operator then reports it as too large)."""
    result_key = str(parse_uri(invocation.result_uri))
    outputs = []
    for relative, path in collect_outputs(output_root, log):
        uri = invocation.output_prefix + relative
        if uri == result_key:
            log.internal(f"not uploading {relative!r}: its key is the result's ({uri})", "WARNING")
            continue
        content_type = content_type_for(relative)
        try:
            size, sha256 = _retrying(lambda: store.upload_file(uri, path, content_type=content_type),
                                     what=f"uploading {relative!r}", log=log)
        except ObjectTooLargeError as err:
            size, sha256 = file_sha256(path)
            log.internal(f"not uploading {relative!r}: {err.size} bytes, more than the {err.limit} bytes an output "
                         "may have (maxOutputBytes)", "WARNING")
        else:
            log.internal(f"uploaded {relative!r} ({size} bytes) to {uri}")
        outputs.append(OutputFile(relative_path=relative, size=size, sha256=sha256, uri=uri))
    return outputs


# ---------------------------------------------------------------------------------------
# Nothing new is loaded once the program runs
# ---------------------------------------------------------------------------------------

#: Modules the agent may need after the program started: imported before it starts.
PRELOAD = (
    "encodings.idna", "encodings.punycode", "encodings.ascii", "encodings.latin_1", "encodings.utf_8", "stringprep",
    "unicodedata",
    "http.client", "email.parser", "email.feedparser", "email.message", "email.utils", "urllib3",
    "urllib3.response", "urllib3.util.retry", "hmac", "hashlib", "json", "pwd", "grp", "zlib", "ssl",
)


class ImportSeal:
    """A ``sys.meta_path`` finder that refuses every import: installed right before the program
    starts. The frozen agent's code is unpacked below ``/tmp``, which the program (same uid)
    can write: loading anything from there after it started could run the program's code
    inside the agent, next to the signing key. So everything is loaded before."""

    def __init__(self, log: AgentLog | None = None) -> None:
        self.log = log
        self.refused: list[str] = []

    def find_spec(self, name, path=None, target=None):  # noqa: ARG002 - the finder protocol
        self.refused.append(name)
        if self.log is not None:
            self.log.internal(f"refused to import {name!r} after the program started", "WARNING")
        raise ImportError(f"the agent loads no code once the program runs (asked for {name!r})", name=name)

    def find_module(self, name, path=None):  # pragma: no cover - legacy protocol
        return self.find_spec(name, path)


def preload(log: AgentLog | None = None) -> None:
    """Import ``PRELOAD`` and run once what would otherwise import lazily (result encoding)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - e.g. pwd on another OS
            if log is not None:
                log.internal(f"could not preload {name!r}", "WARNING")
    sample = Result(pk="warm-up", return_code=0, exec_duration_seconds=0.0, started_at=rfc3339(datetime.now(timezone.utc)),
                    finished_at=rfc3339(datetime.now(timezone.utc)),
                    outputs=[OutputFile(relative_path="a", size=0, sha256="0" * 64, uri="s3://bucket/a")])
    sign(encode(sample), b"\0" * 32)
    Result.model_validate_json(encode(sample))
    "warm-up.exämple".encode("idna")  # socket.getaddrinfo encodes host names so


def seal_imports(log: AgentLog | None = None) -> ImportSeal:
    seal = ImportSeal(log)
    sys.meta_path.insert(0, seal)
    return seal


def unseal_imports(seal: ImportSeal) -> None:
    if seal in sys.meta_path:
        sys.meta_path.remove(seal)


# ---------------------------------------------------------------------------------------
# The whole command
# ---------------------------------------------------------------------------------------


@dataclass
class RunOptions:
    env: Mapping[str, str] = field(default_factory=dict)
    grace: float = DEFAULT_GRACE_SECONDS
    run_as: tuple[int, int | None] | None = None
    cgroup_root: Path = Path("/sys/fs/cgroup")
    self_cgroup: Path = Path("/proc/self/cgroup")
    #: Refuse every import once the program runs (``ImportSeal``); the agent's command sets it.
    seal: bool = False


def run(invocation: Invocation, argv: Sequence[str], *, store: "ObjectStore", key: bytes, output_root: Path,
        log: AgentLog, options: RunOptions) -> tuple[int, Result]:
    """Run, upload, sign; returns (the exit code for the agent, the result written)."""
    output_root.mkdir(parents=True, exist_ok=True)
    seals: list[ImportSeal] = []
    if options.seal:
        preload(log)
        warm_up = getattr(store, "warm_up", None)
        if warm_up is not None:
            warm_up()
    try:
        execution = execute(argv, env=options.env, time_limit=invocation.time_limit_seconds, log=log,
                            grace=options.grace, run_as=options.run_as,
                            before_start=(lambda: seals.append(seal_imports(log))) if options.seal else None)
        return _finish(invocation, execution, store=store, key=key, output_root=output_root, log=log, options=options)
    finally:
        for seal in seals:
            unseal_imports(seal)


def _finish(invocation: Invocation, execution: Execution, *, store: "ObjectStore", key: bytes, output_root: Path,
            log: AgentLog, options: RunOptions) -> tuple[int, Result]:
    peak = peak_memory_bytes(options.cgroup_root, options.self_cgroup)
    outputs: list[OutputFile] = []
    if execution.return_code == 0 and not execution.timed_out:
        outputs = upload_outputs(store, invocation, output_root, log)
    else:
        log.internal(f"exit code {execution.return_code}: outputs are not uploaded")
    result = Result(
        pk=invocation.job_id,
        return_code=execution.return_code,
        timed_out=execution.timed_out,
        exec_duration_seconds=None if execution.duration_seconds is None else round(execution.duration_seconds, 6),
        invoke_duration_seconds=None,
        started_at=rfc3339(execution.started_at),
        finished_at=rfc3339(execution.finished_at),
        peak_memory_bytes=peak,
        outputs=outputs,
    )
    _retrying(lambda: upload_result(store, invocation.result_uri, result, key), what="writing the result", log=log)
    log.internal(f"wrote the signed result to {invocation.result_uri}")
    return execution.return_code, result
