"""Log handling as grand-challenge does it: keep the last 500 lines, and take the user-facing
error from the last non-empty stderr line (timestamps stripped)."""

from __future__ import annotations

import re

LOG_LINES = 500
NO_ERRORS = "No errors were reported in the logs."

# Optional RFC 3339 timestamp (as `kubectl logs --timestamps` and our own prefixing write it).
_LINE = re.compile(r"^(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})\s?)?(?P<message>.*)$")


def last_lines(text: str | None, limit: int = LOG_LINES) -> str:
    if not text:
        return ""
    lines = text.replace("\x00", "").splitlines()
    return "\n".join(lines[-limit:])


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
