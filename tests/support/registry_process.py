"""A private distribution registry process (and token service) for one test.

Some image tests stop the registry in the middle of an import, or need authentication or
TLS; they must never touch the shared testenv registry, so each gets its own ``registry``
process (the testenv binary) with its own configuration and storage, on a free loopback
port that stays the same across restarts. The token service is a tiny HTTP server that
hands out a token for the right user name and password, which the registry's ``silly``
auth then accepts (it only checks that an Authorization header is present). crane refuses
token realms on loopback addresses, so images are pushed before auth is switched on
(a second ``LocalRegistry`` on the same storage and port).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRegistry:
    def __init__(self, bin_dir: str, workdir: Path, *, auth_realm: str | None = None, tls: tuple[Path, Path] | None = None,
                 port: int | None = None):  # fmt: skip
        self.binary = Path(bin_dir) / "registry"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.tls = tls
        self.proc: subprocess.Popen | None = None
        lines = [
            "version: 0.1",
            "log: {level: warn}",
            f'storage: {{filesystem: {{rootdirectory: "{self.workdir / "storage"}"}}, delete: {{enabled: true}}}}',
            "http:",
            f'  addr: "{self.address}"',
        ]
        if tls:
            lines += ["  tls:", f'    certificate: "{tls[0]}"', f'    key: "{tls[1]}"']
        if auth_realm:
            lines += ["auth:", "  silly:", f'    realm: "{auth_realm}"', '    service: "test-registry"']
        self.config = self.workdir / "config.yml"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"}
        self.log = open(self.workdir / "registry.log", "ab")
        self.proc = subprocess.Popen([str(self.binary), "serve", str(self.config)], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited: {(self.workdir / 'registry.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"registry on {self.address} did not start")

    def stop(self) -> None:
        """Stop this registry process (only the one this object started)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc:
            self.log.close()
        self.proc = None


class TokenServer:
    """Answers ``GET /token`` with a token when the basic credentials are right, 401 otherwise."""

    def __init__(self, username: str, password: str):
        expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.requests: list[dict] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                requests.append({"path": self.path, "authorized": self.headers.get("Authorization") == expected})
                if self.headers.get("Authorization") != expected:
                    body, code = {"errors": [{"code": "UNAUTHORIZED", "message": "wrong user name or password"}]}, 401
                else:
                    body, code = {"token": "test-token", "expires_in": 300}, 200
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_tls(workdir: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1: (ca.crt, server.crt, server.key)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = workdir / "ca.key", workdir / "ca.crt"
    key, csr, crt, ext = workdir / "server.key", workdir / "server.csr", workdir / "server.crt", workdir / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    for args in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", "1", "-subj", "/CN=image-tests-ca"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt, "-days", "1", "-extfile", ext],
    ):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)
    return ca_crt, crt, key
