"""The agent's presigned transfers, its handoff file and its import seal (a local HTTP server, no store).

We test these aspects: the streamed ``multipart/form-data`` body is well formed (a standard
parser reads back the fields and the file), has the announced length, hashes the bytes it
sent and fails when the file shrinks; grants are read from ``prepare``'s environment and bad
ones are refused; the handoff file is 0600 in a 0700 directory, is deleted when read and is
single-use; ``PresignedStore`` downloads through the URL it was given (size-limited, hashed,
no partial file), maps S3 error documents to the error classes, never asks for an object it
has no URL for, and uploads only below its grant's prefix, within its size and with the
metadata the policy allows; the import seal refuses new imports and is removed again.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import http.server
import json
import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from component_operator.adapters import s3
from component_operator.agent import run as agent_run
from component_operator.agent.invocation import InvocationError
from component_operator.agent.transfer import (
    Grants,
    MultipartBody,
    PresignedStore,
    consume_handoff,
    content_type_for,
    write_handoff,
)

FORM = s3.PostForm(url="http://127.0.0.1:1/bucket", bucket="bucket", key_prefix="jobs/ns/j/u/0/",
                   fields={"policy": "cG9saWN5", "x-amz-signature": "f00d"}, max_bytes=1000,
                   expires_at="2026-01-01T00:00:00.000Z", metadata_keys=("signature-hmac-sha256",))


def read_all(body: MultipartBody, amount: int = 7) -> bytes:
    chunks = []
    while chunk := body.read(amount):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_form(content_type: str, data: bytes) -> dict[str, bytes]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + data)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


def test_multipart_body_streams_a_file(tmp_path):
    source = tmp_path / "out.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 3))
    body = MultipartBody([("key", "jobs/x/out.bin"), ("policy", "cG9saWN5")], source=source,
                         size=source.stat().st_size, file_name="out bin?", content_type="application/octet-stream")
    data = read_all(body, 64 * 1024)
    assert len(data) == body.length
    parts = parse_form(body.content_type, data)
    assert parts["key"] == b"jobs/x/out.bin" and parts["policy"] == b"cG9saWN5"
    assert parts["file"] == source.read_bytes()
    assert list(parts) == ["key", "policy", "file"]  # the file is last, as S3 wants it
    assert body.sha256.hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest() and body.sent == body.size
    assert b'filename="out_bin_"' in data


def test_multipart_body_refuses_a_shrinking_file_and_bad_fields(tmp_path):
    source = tmp_path / "out.bin"
    source.write_bytes(b"12345")
    body = MultipartBody([], source=source, size=10, file_name="f", content_type="text/plain")
    with pytest.raises(OSError, match="became shorter"):
        read_all(body)
    with pytest.raises(ValueError, match="must not contain CR, LF"):
        MultipartBody([("key", "a\r\nb")], source=b"", size=0, file_name="f", content_type="text/plain")


def test_content_types_come_from_a_fixed_table():
    assert content_type_for("a/b.JSON") == "application/json" and content_type_for("x.csv") == "text/csv"
    assert content_type_for("image.mha") == "application/octet-stream"


def test_grants_from_prepares_environment():
    env = {"COMPONENT_OPERATOR_DOWNLOAD_0": json.dumps({"source": "s3://bucket/in/a.csv", "url": "http://h/bucket/in/a.csv?X=1"}),
           "COMPONENT_OPERATOR_UPLOAD": json.dumps(FORM.to_json()),
           "COMPONENT_OPERATOR_SIGNING_KEY_HEX": "ab" * 32, "PATH": "/bin"}
    grants = Grants.from_env(env)
    assert grants.downloads == {"s3://bucket/in/a.csv": "http://h/bucket/in/a.csv?X=1"}
    assert grants.upload == FORM and grants.signing_key == bytes.fromhex("ab" * 32)
    assert "http://h" not in repr(grants) and "ab" * 32 not in repr(grants)
    assert Grants.from_env({}) == Grants()
    with pytest.raises(InvocationError, match="COMPONENT_OPERATOR_DOWNLOAD_1 is not a download grant"):
        Grants.from_env({"COMPONENT_OPERATOR_DOWNLOAD_1": "not json"})
    with pytest.raises(InvocationError, match="is not an http"):
        Grants.from_env({"COMPONENT_OPERATOR_DOWNLOAD_1": json.dumps({"source": "s3://bucket/a", "url": "file:///etc"})})
    with pytest.raises(InvocationError, match="COMPONENT_OPERATOR_UPLOAD"):
        Grants.from_env({"COMPONENT_OPERATOR_UPLOAD": json.dumps({"url": "http://h/b"})})


def test_handoff_is_private_and_single_use(tmp_path):
    path = tmp_path / "tmp" / ".component-operator" / "handoff.json"
    write_handoff(path, signing_key=b"k" * 32, upload=FORM)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    write_handoff(path, signing_key=b"k" * 32, upload=FORM)  # a second prepare replaces it
    handoff = consume_handoff(path)
    assert handoff.signing_key == b"k" * 32 and handoff.upload == FORM
    assert not path.exists() and not path.parent.exists()
    with pytest.raises(InvocationError, match="is missing"):
        consume_handoff(path)
    path.parent.mkdir()
    path.write_text("{}")
    with pytest.raises(InvocationError, match="is not valid"):
        consume_handoff(path)
    assert not path.exists()  # deleted even when it is unusable


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    posts: list = []

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        status, body, headers = self.routes.get(self.path, (404, b"<Error><Code>NoSuchKey</Code></Error>", {}))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        data = self.rfile.read(length)
        self.posts.append((self.path, self.headers["Content-Type"], data))
        status, body = self.routes.get(("POST", self.path), (204, b""))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server():
    _Handler.routes, _Handler.posts = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def test_download_through_the_given_url(server, tmp_path):
    base, handler = server
    handler.routes["/bucket/in/a.csv?sig=1"] = (200, b"a,b\n" * 100, {})
    handler.routes["/bucket/in/denied?sig=1"] = (403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", {})
    handler.routes["/bucket/in/busy?sig=1"] = (503, b"<Error><Code>SlowDown</Code></Error>", {})
    downloads = {f"s3://bucket/in/{name}": f"{base}/bucket/in/{name}?sig=1" for name in ("a.csv", "denied", "busy", "gone")}
    store = PresignedStore(downloads, retries=0)
    assert store.download_file("s3://bucket/in/a.csv", tmp_path / "d/a.csv", sha256=True) == (
        400, hashlib.sha256(b"a,b\n" * 100).hexdigest())
    with pytest.raises(s3.ObjectTooLargeError) as err:
        store.download_file("s3://bucket/in/a.csv", tmp_path / "partial", max_bytes=100)
    assert (err.value.size, err.value.limit) == (400, 100) and not (tmp_path / "partial").exists()
    with pytest.raises(s3.AccessDeniedError, match="Request has expired"):
        store.download_file("s3://bucket/in/denied", tmp_path / "x")
    with pytest.raises(s3.TemporaryS3Error, match="SlowDown"):
        store.download_file("s3://bucket/in/busy", tmp_path / "x")
    with pytest.raises(s3.ObjectNotFoundError) as err:
        store.download_file("s3://bucket/in/gone", tmp_path / "x")
    assert err.value.code == "NoSuchKey" and not (tmp_path / "x").exists()
    with pytest.raises(s3.AccessDeniedError, match="no presigned URL") as err:
        store.download_file("s3://bucket/in/other", tmp_path / "x")
    assert err.value.code == "NoGrant"
    down = PresignedStore({"s3://bucket/k": "http://127.0.0.1:9/bucket/k"}, retries=0)
    with pytest.raises(s3.TemporaryS3Error, match="could not be reached"):
        down.download_file("s3://bucket/k", tmp_path / "x")


def test_upload_only_within_the_grant(server, tmp_path):
    base, handler = server
    form = s3.PostForm(**{**FORM.__dict__, "url": f"{base}/bucket"})
    store = PresignedStore(upload=form)
    source = tmp_path / "mask.bin"
    source.write_bytes(b"m" * 600)
    assert store.upload_file("s3://bucket/jobs/ns/j/u/0/output/mask.bin", source) == (
        600, hashlib.sha256(b"m" * 600).hexdigest())
    store.put_bytes("s3://bucket/jobs/ns/j/u/0/result.json", b"{}", metadata={"signature-hmac-sha256": "cafe"},
                    content_type="application/json")
    (path1, type1, data1), (_, type2, data2) = handler.posts
    assert path1 == "/bucket"
    first = parse_form(type1, data1)
    assert first["key"] == b"jobs/ns/j/u/0/output/mask.bin" and first["file"] == b"m" * 600
    assert first["policy"] == b"cG9saWN5" and first["x-amz-signature"] == b"f00d"
    second = parse_form(type2, data2)
    assert second["x-amz-meta-signature-hmac-sha256"] == b"cafe" and second["Content-Type"] == b"application/json"
    for uri, match in [("s3://bucket/jobs/ns/j/u/1/result.json", "outside this attempt's upload grant"),
                       ("s3://other/jobs/ns/j/u/0/x", "outside this attempt's upload grant")]:
        with pytest.raises(s3.AccessDeniedError, match=match):
            store.put_bytes(uri, b"x")
    with pytest.raises(s3.AccessDeniedError, match="metadata 'origin' is not allowed"):
        store.put_bytes("s3://bucket/jobs/ns/j/u/0/x", b"x", metadata={"origin": "me"})
    with pytest.raises(s3.ObjectTooLargeError):
        store.put_bytes("s3://bucket/jobs/ns/j/u/0/x", b"x" * 1001)
    assert len(handler.posts) == 2  # nothing refused here was sent
    handler.routes[("POST", "/bucket")] = (403, b"<Error><Code>AccessDenied</Code><Message>Policy expired</Message></Error>")
    with pytest.raises(s3.AccessDeniedError, match="Policy expired"):
        store.put_bytes("s3://bucket/jobs/ns/j/u/0/x", b"x")
    with pytest.raises(s3.AccessDeniedError, match="no upload policy"):
        PresignedStore().put_bytes("s3://bucket/jobs/ns/j/u/0/x", b"x")


def test_import_seal_refuses_new_imports_until_removed():
    name = "component_operator_never_imported_module"
    seal = agent_run.seal_imports()
    try:
        with pytest.raises(ImportError, match="loads no code once the program runs"):
            __import__("xml.dom.minidom" if "xml.dom.minidom" not in sys.modules else name)
        assert seal.refused
        import json as already  # noqa: F401 - imported before: allowed
    finally:
        agent_run.unseal_imports(seal)
    assert seal not in sys.meta_path
    with pytest.raises(ModuleNotFoundError):
        __import__(name)


def test_preload_and_warm_up_leave_nothing_to_import(tmp_path):
    agent_run.preload()
    PresignedStore(upload=FORM).warm_up()
    seal = agent_run.seal_imports()
    try:
        "unicodé.example".encode("idna")
        body = MultipartBody([("key", "k")], source=Path(__file__), size=10, file_name="f", content_type="text/plain")
        read_all(body)
        body.close()
    finally:
        agent_run.unseal_imports(seal)
    assert seal.refused == []


def test_agent_imports_no_minio():
    """The frozen agent is built without minio (``build_agent.sh``): none of its commands may need it."""
    import subprocess

    code = ("import sys; import component_operator.agent.main, component_operator.agent.run, "
            "component_operator.agent.prepare, component_operator.agent.result; "
            "sys.exit(1 if any(m == 'minio' or m.startswith('minio.') for m in sys.modules) else 0)")
    operator_dir = Path(__file__).resolve().parents[2] / "operator"
    proc = subprocess.run([sys.executable, "-c", code], cwd=operator_dir, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(operator_dir)})
    assert proc.returncode == 0, proc.stderr
