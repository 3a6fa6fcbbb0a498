"""Log handling as grand-challenge does it: keep the last 500 lines, and take the user-facing
error from the last non-empty stderr line (timestamps stripped).

grand-challenge bounds logs by lines only; 500 lines of 10 KB would make a 5 MB status, past
etcd's object limit, so here each stream is also bounded by bytes (``LOG_BYTES``, counted in
UTF-8) and each line by ``LINE_CHARS``: the newest lines win.
"""

from __future__ import annotations

import re

LOG_LINES = 500
#: Bytes of one stream (stdout or stderr) kept in the status.
LOG_BYTES = 64 * 1024
#: Characters of one line kept (the line's start, then a marker).
LINE_CHARS = 4096
TRUNCATED = " …[truncated]"
NO_ERRORS = "No errors were reported in the logs."

# Optional RFC 3339 timestamp (as `kubectl logs --timestamps` and our own prefixing write it).
_LINE = re.compile(r"^(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})\s?)?(?P<message>.*)$")


def last_lines(text: str | None, limit: int = LOG_LINES, limit_bytes: int = LOG_BYTES) -> str:
    """The last ``limit`` lines of ``text`` that fit in ``limit_bytes`` (UTF-8), long lines cut."""
    if not text:
        return ""
    # Never split more than can be kept: a 1 GB log must not become a list of 10 M lines.
    window = limit_bytes * 2 + limit * 2
    tail = text[-window:].replace("\x00", "")
    lines = tail.splitlines()
    if len(text) > window and lines:
        lines = lines[1:]  # the first line was cut by the window
    kept: list[str] = []
    used = 0
    for line in reversed(lines[-limit:]):
        if len(line) > LINE_CHARS:
            line = line[:LINE_CHARS] + TRUNCATED
        size = len(line.encode("utf-8", "replace")) + 1
        if used + size > limit_bytes:
            break
        kept.append(line)
        used += size
    return "\n".join(reversed(kept))


def user_error(stderr: str | None) -> str:
    for line in reversed((stderr or "").splitlines()):
        match = _LINE.match(line)
        message = (match.group("message") if match else line).strip()
        if message:
            return message
    return NO_ERRORS


def format_duration(seconds: float | None) -> str | None:
    """Go-style short durations (``1h2m3s``, ``4.2s``) for status fields people read."""
    if seconds is None:
        return None
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{secs}s"
