"""Structured log lines: how the agent speaks, and how the operator reads it back.

``kubectl logs`` merges a container's stdout and stderr, and the agent's own messages are
mixed with the algorithm's. As in grand-challenge's sagemaker-shim, every line is therefore
a JSON object that says where it came from (``source``) and whose it is (``internal``), so
the operator can rebuild the algorithm's two streams (``split_user_logs``) and hide the
agent's chatter. Writing is thread-safe: the agent streams two pipes from two threads.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from typing import IO, Any, Iterable

#: Levels written to stdout; higher ones go to stderr (the shim's rule).
STDOUT_LEVELS = frozenset({"DEBUG", "INFO"})
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Level of the program's own lines, per stream (the shim logs stderr one step above INFO).
PROGRAM_LEVEL = {"stdout": "INFO", "stderr": "WARNING"}


def format_line(message: str, *, level: str, source: str, internal: bool, task: str | None, **extra: Any) -> str:
    """One log line (no trailing newline). NUL bytes are dropped, as grand-challenge does."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    if source not in ("stdout", "stderr"):
        raise ValueError(f"log source {source!r} must be 'stdout' or 'stderr'")
    record = {"log": message.replace("\x00", ""), "level": level, "source": source, "internal": internal, "task": task}
    record.update(extra)
    return json.dumps(record, ensure_ascii=False)


class AgentLog:
    """Writes structured lines to the agent's stdout and stderr."""

    def __init__(self, task: str | None = None, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.task = task
        self._streams = {"stdout": stdout or sys.stdout, "stderr": stderr or sys.stderr}
        self._locks = {"stdout": threading.Lock(), "stderr": threading.Lock()}

    def _write(self, source: str, line: str) -> None:
        stream = self._streams[source]
        with self._locks[source]:
            try:
                stream.write(line + "\n")
                stream.flush()
            except (BrokenPipeError, ValueError):  # nobody reads our logs any more: keep working
                pass

    def internal(self, message: str, level: str = "INFO", **extra: Any) -> None:
        """The agent's own line (hidden from users by the operator)."""
        source = "stdout" if level in STDOUT_LEVELS else "stderr"
        for part in (message.splitlines() or [""]):
            self._write(source, format_line(part, level=level, source=source, internal=True, task=self.task, **extra))

    def program(self, source: str, message: str, level: str | None = None) -> None:
        """A line the algorithm wrote to ``source`` (users see these)."""
        self._write(source, format_line(message, level=level or PROGRAM_LEVEL[source], source=source,
                                        internal=False, task=self.task))

    def user_error(self, message: str, **extra: Any) -> None:
        """A message for users on stderr (e.g. ``Time limit exceeded``): counts as the algorithm's stderr."""
        self._write("stderr", format_line(message, level="ERROR", source="stderr", internal=False,
                                          task=self.task, **extra))


# ---------------------------------------------------------------------------------------
# Reading (operator side)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogRecord:
    log: str
    level: str
    source: str
    internal: bool
    task: str | None


def parse_line(line: str) -> LogRecord | None:
    """The record of one agent line; None when the line is not one (e.g. a crash trace)."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("log"), str) or data.get("source") not in ("stdout", "stderr"):
        return None
    return LogRecord(
        log=data["log"],
        level=str(data.get("level", "INFO")),
        source=data["source"],
        internal=bool(data.get("internal", False)),
        task=data.get("task"),
    )


def split_user_logs(lines: Iterable[str], *, unstructured: str | None = "stderr") -> tuple[list[str], list[str]]:
    """(stdout lines, stderr lines) of the program, internal lines dropped.

    Lines that are not agent records (the agent crashed, or a container without the agent)
    go to the ``unstructured`` stream (None: dropped).
    """
    out: dict[str, list[str]] = {"stdout": [], "stderr": []}
    for line in lines:
        record = parse_line(line)
        if record is None:
            if unstructured is not None and line.strip():
                out[unstructured].append(line.rstrip("\n"))
            continue
        if not record.internal:
            out[record.source].append(record.log)
    return out["stdout"], out["stderr"]
