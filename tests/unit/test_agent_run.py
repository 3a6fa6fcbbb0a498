"""``agent run`` without object storage: running, streaming, limits, measurements, outputs.

We test these aspects: the program's lines are streamed as structured lines in order; exit
codes pass through and signals become 128+n (137 stays 137); a missing program gives the
shim's message and 127; the time limit sends SIGTERM, then SIGKILL to a program that ignores
it, and reports ``Time limit exceeded``; the environment handed over is exactly the one
given; ``harden_process`` makes the process non-dumpable; peak memory from cgroup v2 and v1
files; which files under the output root are uploaded (symlinks only when inside); the
whole ``run`` with the import seal on: outputs uploaded with the digest of what was sent, a
file above the upload limit listed but not uploaded, the signed result written, nothing
imported once the program started, and the seal gone afterwards.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from component_operator.agent import run as agent_run
from component_operator.agent.logs import AgentLog


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def run_program(argv, *, time_limit=30.0, grace=1.0, env=None):
    out, err = io.StringIO(), io.StringIO()
    log = AgentLog("t", stdout=out, stderr=err)
    execution = agent_run.execute(argv, env=env if env is not None else dict(os.environ), time_limit=time_limit,
                                  log=log, grace=grace)
    lines = [json.loads(line) for line in (out.getvalue() + err.getvalue()).splitlines()]
    return execution, lines


def program_lines(lines, source):
    return [r["log"] for r in lines if not r["internal"] and r["source"] == source]


def test_streams_lines_in_order_and_passes_the_exit_code():
    execution, lines = run_program(py("""
        import sys
        for i in range(3):
            print(f"out {i}", flush=True)
        sys.stderr.write("err 1\\r\\nno newline at the end")
        sys.exit(7)
    """))
    assert execution.return_code == 7 and not execution.timed_out
    assert program_lines(lines, "stdout") == ["out 0", "out 1", "out 2"]
    assert program_lines(lines, "stderr") == ["err 1", "no newline at the end"]
    assert all(r["task"] == "t" for r in lines)
    assert execution.duration_seconds is not None and execution.duration_seconds > 0
    assert execution.finished_at >= execution.started_at


def test_long_lines_are_split_not_lost():
    execution, lines = run_program(py(f"print('x' * {agent_run.MAX_LINE_BYTES + 10})"))
    assert execution.return_code == 0
    assert "".join(program_lines(lines, "stdout")) == "x" * (agent_run.MAX_LINE_BYTES + 10)


def test_signals_become_128_plus_n():
    execution, _ = run_program(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    assert execution.return_code == 137
    assert agent_run.exit_status(-15) == 143 and agent_run.exit_status(0) == 0 and agent_run.exit_status(3) == 3


def test_missing_program():
    execution, lines = run_program(["/nonexistent/algorithm"])
    assert execution.return_code == 127 and not execution.started
    assert program_lines(lines, "stderr") == [agent_run.MSG_NOT_FOUND]


def test_time_limit_terminates_the_program():
    start = time.monotonic()
    execution, lines = run_program(py("import time; print('sleeping', flush=True); time.sleep(60)"), time_limit=1.0)
    assert time.monotonic() - start < 10
    assert execution.timed_out and execution.return_code == 1
    assert program_lines(lines, "stderr")[-1] == "Time limit exceeded"


def test_time_limit_kills_a_program_that_ignores_sigterm():
    start = time.monotonic()
    execution, lines = run_program(py("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
        time.sleep(60)
    """), time_limit=1.0, grace=0.5)
    assert time.monotonic() - start < 10
    assert execution.timed_out and execution.return_code == 1
    assert any("sending SIGKILL" in r["log"] for r in lines if r["internal"])


def test_background_children_do_not_keep_the_agent_waiting():
    start = time.monotonic()
    execution, _ = run_program(py("""
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("leaving a child behind")
    """))
    assert execution.return_code == 0
    assert time.monotonic() - start < 15


def test_environment_is_exactly_the_one_given():
    execution, lines = run_program(py("import os, json; print(json.dumps(sorted(os.environ)))"),
                                   env={"ONLY": "this", "PATH": os.environ["PATH"]})
    names = json.loads(program_lines(lines, "stdout")[0])
    assert set(names) - {"LC_CTYPE"} == {"ONLY", "PATH"}


def test_harden_process_makes_the_process_non_dumpable():
    code = textwrap.dedent("""
        import ctypes
        from component_operator.agent.run import harden_process
        libc = ctypes.CDLL(None)
        before = libc.prctl(3, 0, 0, 0, 0)
        print(before, harden_process(), libc.prctl(3, 0, 0, 0, 0))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "True", "0"]


def test_peak_memory_cgroup_v2(tmp_path):
    (tmp_path / "proc").write_text("0::/kubepods/pod1/ctr\n")
    cg = tmp_path / "cg" / "kubepods/pod1/ctr"
    cg.mkdir(parents=True)
    (cg / "memory.peak").write_text("123456\n")
    assert agent_run.peak_memory_bytes(tmp_path / "cg", tmp_path / "proc") == 123456
    # Inside a cgroup namespace the container's own cgroup is the root.
    (tmp_path / "proc").write_text("0::/\n")
    (tmp_path / "cg" / "memory.peak").write_text("42")
    assert agent_run.peak_memory_bytes(tmp_path / "cg", tmp_path / "proc") == 42


def test_peak_memory_cgroup_v1_and_unavailable(tmp_path):
    (tmp_path / "proc").write_text("5:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n")
    cg = tmp_path / "cg" / "memory" / "docker/abc"
    cg.mkdir(parents=True)
    (cg / "memory.max_usage_in_bytes").write_text("987")
    assert agent_run.peak_memory_bytes(tmp_path / "cg", tmp_path / "proc") == 987
    assert agent_run.peak_memory_bytes(tmp_path / "none", tmp_path / "none") is None


def test_collect_outputs(tmp_path):
    root = tmp_path / "output"
    (root / "images/seg").mkdir(parents=True)
    (root / "prob.json").write_text("0.5")
    (root / "images/seg/out.mha").write_bytes(b"MHA")
    (root / "inside-link.json").symlink_to(root / "prob.json")
    (root / "outside-link").symlink_to("/etc/hostname")
    (root / "dir-link").symlink_to(root / "images")
    (root / "dangling").symlink_to(root / "nope")
    os.mkfifo(root / "fifo")
    (tmp_path / "secret").write_text("s")
    (root / "relative-escape").symlink_to("../secret")
    out, err = io.StringIO(), io.StringIO()
    found = list(agent_run.collect_outputs(root, AgentLog("t", stdout=out, stderr=err)))
    assert [(rel, path) for rel, path in found] == [
        ("inside-link.json", root / "prob.json"),
        ("prob.json", root / "prob.json"),
        ("images/seg/out.mha", root / "images/seg/out.mha"),
    ]
    skipped = err.getvalue()
    for name in ("outside-link", "dir-link", "dangling", "fifo", "relative-escape"):
        assert f"not uploading '{name}'" in skipped


def test_file_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert agent_run.file_sha256(path) == (3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


class RecordingStore:
    """``upload_file``/``put_bytes`` as ``transfer.PresignedStore`` has them, into a dict."""

    def __init__(self, limit: int = 10**6):
        self.objects: dict[str, tuple[bytes, dict]] = {}
        self.limit = limit

    def upload_file(self, uri, path, *, content_type="application/octet-stream", metadata=None):
        import hashlib

        from component_operator.adapters.s3 import ObjectTooLargeError

        data = Path(path).read_bytes()
        if len(data) > self.limit:
            raise ObjectTooLargeError(uri, len(data), self.limit)
        self.objects[uri] = (data, {"content_type": content_type})
        return len(data), hashlib.sha256(data).hexdigest()

    def put_bytes(self, uri, data, *, metadata=None, content_type="application/octet-stream"):
        self.objects[uri] = (bytes(data), dict(metadata or {}))


def test_run_with_the_seal_uploads_signs_and_imports_nothing_new(tmp_path):
    from component_operator.agent import result as res
    from component_operator.agent.invocation import Invocation

    invocation = Invocation.model_validate({"jobId": "ns/j/u/0", "outputPrefix": "s3://bucket/jobs/ns/j/u/0/output/",
                                            "resultUri": "s3://bucket/jobs/ns/j/u/0/result.json", "timeLimitSeconds": 30})
    store = RecordingStore(limit=100)
    out, err = io.StringIO(), io.StringIO()
    program = py("""
        import sys, xml.dom.minidom  # the program imports what it likes: it is another process
        open(sys.argv[1] + "/prob.json", "w").write("0.5")
        open(sys.argv[1] + "/big.bin", "wb").write(bytes(500))
    """) + [str(tmp_path / "output")]
    before = list(sys.meta_path)
    code, result = agent_run.run(invocation, program, store=store, key=b"k" * 32, output_root=tmp_path / "output",
                                 log=AgentLog("t", stdout=out, stderr=err),
                                 options=agent_run.RunOptions(env=dict(os.environ), seal=True))
    assert sys.meta_path == before  # the seal is removed again
    assert code == 0 and "refused to import" not in out.getvalue() + err.getvalue()
    assert {o.relative_path: o.size for o in result.outputs} == {"big.bin": 500, "prob.json": 3}
    assert set(store.objects) == {"s3://bucket/jobs/ns/j/u/0/output/prob.json", "s3://bucket/jobs/ns/j/u/0/result.json"}
    assert store.objects["s3://bucket/jobs/ns/j/u/0/output/prob.json"][1]["content_type"] == "application/json"
    assert "not uploading 'big.bin': 500 bytes, more than the 100 bytes" in err.getvalue()
    body, metadata = store.objects[invocation.result_uri]
    assert res.verify(body, metadata["signature-hmac-sha256"], b"k" * 32, "ns/j/u/0") == result
