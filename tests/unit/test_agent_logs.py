"""Structured log lines (pure).

We test these aspects: the line format (fields, NUL bytes dropped, one line per record);
which stream each kind of line goes to; that concurrent writers never interleave inside a
line; and reading the lines back into the program's two streams.
"""

from __future__ import annotations

import io
import json
import threading

import pytest

from component_operator.agent import logs


def test_format_line():
    line = logs.format_line("hi\x00 there", level="INFO", source="stdout", internal=False, task="ns/j/u/0")
    assert json.loads(line) == {"log": "hi there", "level": "INFO", "source": "stdout", "internal": False, "task": "ns/j/u/0"}
    assert "\n" not in logs.format_line("a\nb", level="ERROR", source="stderr", internal=True, task=None)
    with pytest.raises(ValueError, match="log level"):
        logs.format_line("x", level="LOUD", source="stdout", internal=True, task=None)
    with pytest.raises(ValueError, match="log source"):
        logs.format_line("x", level="INFO", source="stdin", internal=True, task=None)


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_streams_and_flags():
    out, err = io.StringIO(), io.StringIO()
    log = logs.AgentLog("t", stdout=out, stderr=err)
    log.internal("staging")
    log.internal("first\nsecond", "WARNING")
    log.program("stdout", "result: 1")
    log.program("stderr", "warning: slow")
    log.user_error("Time limit exceeded")
    assert records(out) == [
        {"log": "staging", "level": "INFO", "source": "stdout", "internal": True, "task": "t"},
        {"log": "result: 1", "level": "INFO", "source": "stdout", "internal": False, "task": "t"},
    ]
    assert records(err) == [
        {"log": "first", "level": "WARNING", "source": "stderr", "internal": True, "task": "t"},
        {"log": "second", "level": "WARNING", "source": "stderr", "internal": True, "task": "t"},
        {"log": "warning: slow", "level": "WARNING", "source": "stderr", "internal": False, "task": "t"},
        {"log": "Time limit exceeded", "level": "ERROR", "source": "stderr", "internal": False, "task": "t"},
    ]


def test_concurrent_writers_keep_lines_whole():
    out = io.StringIO()
    log = logs.AgentLog("t", stdout=out, stderr=io.StringIO())

    def write(n):
        for i in range(300):
            log.program("stdout", f"{n}-{i}-" + "x" * 200)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(records(out)) == 1200


def test_split_user_logs():
    lines = [
        logs.format_line("agent says hi", level="INFO", source="stdout", internal=True, task="t"),
        logs.format_line("out 1", level="INFO", source="stdout", internal=False, task="t"),
        logs.format_line("err 1", level="WARNING", source="stderr", internal=False, task="t"),
        "Traceback (most recent call last):",
        "",
        logs.format_line("out 2", level="INFO", source="stdout", internal=False, task="t"),
        '{"not": "ours"}',
    ]
    assert logs.split_user_logs(lines) == (["out 1", "out 2"], ["err 1", "Traceback (most recent call last):", '{"not": "ours"}'])
    assert logs.split_user_logs(lines, unstructured=None) == (["out 1", "out 2"], ["err 1"])
    assert logs.parse_line("plain text") is None
    assert logs.parse_line(lines[0]).internal is True
