"""The operator's hot-path API calls as plain async JSON requests (aiohttp, kopf's own HTTP library).

Why it exists: profiling the operator under ``bench/bench_jobs.py --profile`` showed most of its
CPU in the official client's machinery, not in the operator: each call crossed into a thread
pool, went through pydantic's ``validate_call`` wrappers and parameter serialisation, and
came back through the GIL. A job costs a handful of calls (create its pod, patch its status,
post two events), so that overhead was the operator's throughput. Here the same calls are
made on the event loop with one pooled aiohttp session and bodies that are dicts in, dicts
out.

Only the transport changed. The credentials are still loaded by the official client's
``kubernetes.config`` (kubeconfig, exec plugins, in-cluster service-account token and its
rotation: ``auth_settings()`` runs the refresh hook on every call), the bounds are the same
(``REQUEST_TIMEOUT``: 10 s to connect, 60 s to read), and errors are raised as the official
``ApiException`` (status, reason, the API server's body) so ``kube.classify`` maps them to the
error taxonomy exactly as before. Connection failures and timeouts become ``TemporaryError``.
"""

from __future__ import annotations

import json
import ssl
from typing import Any, AsyncIterator, Mapping

import aiohttp
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ..errors import TemporaryError

#: Connections kept to the API server (the sync client's pool had 32 as well).
POOL_SIZE = 32
#: The longest watch event accepted (one object: etcd refuses requests over 1.5 MiB).
MAX_EVENT_BYTES = 8 * 1024 * 1024


class KubeHTTP:
    """One aiohttp session against the API server described by a client ``Configuration``."""

    def __init__(self, cfg: client.Configuration) -> None:
        self.cfg = cfg
        self.host = cfg.host.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        #: Watch streams hold their connection for minutes: their own session, so they never
        #: take the request pool's connections (one stream per watched namespace).
        self._streams: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.host.startswith("https"):
            return False
        context = ssl.create_default_context(cafile=self.cfg.ssl_ca_cert or None)
        if self.cfg.cert_file:
            context.load_cert_chain(self.cfg.cert_file, self.cfg.key_file)
        if not self.cfg.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def session(self) -> aiohttp.ClientSession:
        # Made inside the running loop on first use (aiohttp binds a session to its loop).
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=POOL_SIZE, ssl=self._ssl())
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def stream_session(self) -> aiohttp.ClientSession:
        if self._streams is None or self._streams.closed:
            self._streams = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl()))
        return self._streams

    async def close(self) -> None:
        for session in (self._session, self._streams):
            if session is not None and not session.closed:
                await session.close()

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "component-operator"}
        for auth in self.cfg.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[auth["key"]] = auth["value"]
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    @staticmethod
    def _query(params: Mapping[str, Any] | None) -> dict[str, str]:
        return {k: ("true" if v is True else "false" if v is False else str(v))
                for k, v in (params or {}).items() if v is not None}

    async def call(self, method: str, path: str, body: Any = None, *, params: Mapping[str, Any] | None = None,
                   content_type: str = "application/json", timeout: tuple[float, float] = (10, 60),
                   text: bool = False) -> Any:
        """The decoded JSON reply (``text``: the reply as text); ``ApiException`` for any non-2xx."""
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        query = self._query(params)
        limits = aiohttp.ClientTimeout(sock_connect=timeout[0], sock_read=timeout[1], total=timeout[0] + timeout[1])
        try:
            async with self.session().request(method, self.host + path, data=data, params=query, timeout=limits,
                                              headers=self._headers(content_type if data is not None else None)) as reply:
                payload = await reply.read()
                if reply.status >= 300:
                    err = ApiException(status=reply.status, reason=reply.reason)
                    err.body = payload.decode("utf-8", "replace")
                    raise err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise TemporaryError(f"API unreachable: {type(err).__name__}: {err}") from err
        if text:
            return payload.decode("utf-8", "replace")
        return json.loads(payload) if payload else None

    async def stream(self, path: str, *, params: Mapping[str, Any] | None = None,
                     timeout: tuple[float, float] = (10, 330)) -> AsyncIterator[Any]:
        """The decoded lines of a watch (``GET ...?watch=true``) until the server ends it.

        ``timeout``: to connect, and the longest silence between two chunks (the server's own
        ``timeoutSeconds`` ends a healthy stream before that). A line longer than
        ``MAX_EVENT_BYTES`` ends the stream with ``TemporaryError`` (the caller lists again).
        """
        limits = aiohttp.ClientTimeout(sock_connect=timeout[0], sock_read=timeout[1], total=None)
        try:
            async with self.stream_session().get(self.host + path, params=self._query(params), timeout=limits,
                                                 headers=self._headers(None)) as reply:
                if reply.status >= 300:
                    err = ApiException(status=reply.status, reason=reply.reason)
                    err.body = (await reply.read()).decode("utf-8", "replace")
                    raise err
                pending = b""
                async for chunk in reply.content.iter_any():
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    if len(pending) > MAX_EVENT_BYTES:
                        raise TemporaryError(f"watch event over {MAX_EVENT_BYTES} bytes on {path}")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise TemporaryError(f"watch {path}: {type(err).__name__}: {err}") from err
