"""``KubeHTTP.stream`` against a real HTTP server (aiohttp's, on loopback) that sends a watch the
way the API server does: newline-delimited JSON in chunks that split lines anywhere."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from component_operator.adapters import kube_http
from component_operator.adapters.kube_http import KubeHTTP
from component_operator.errors import TemporaryError


async def serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/api/v1/pods", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


def events_of(handler, **stream_args) -> list:
    async def go():
        runner, host = await serve(handler)
        cfg = client.Configuration()
        cfg.host = host
        transport = KubeHTTP(cfg)
        try:
            return [e async for e in transport.stream("/api/v1/pods", params={"watch": True}, **stream_args)]
        finally:
            await transport.close()
            await runner.cleanup()
    return asyncio.run(go())


def test_lines_split_across_chunks_are_joined_and_blank_lines_skipped():
    events = [{"type": "ADDED", "object": {"metadata": {"name": f"p{i}", "x": "y" * 3000}}} for i in range(5)]
    payload = b"".join(json.dumps(e).encode() + b"\n" for e in events) + b"\n"

    async def handler(request):
        assert request.query["watch"] == "true"
        reply = web.StreamResponse()
        await reply.prepare(request)
        for i in range(0, len(payload), 777):  # chunks that cut lines anywhere
            await reply.write(payload[i:i + 777])
            await asyncio.sleep(0)
        return reply

    assert events_of(handler) == events


def test_an_event_over_the_bound_ends_the_stream_as_temporary(monkeypatch):
    monkeypatch.setattr(kube_http, "MAX_EVENT_BYTES", 10_000)

    async def handler(request):
        reply = web.StreamResponse()
        await reply.prepare(request)
        await reply.write(b'{"type": "ADDED", "object": {"a": "' + b"z" * 20_000)
        await asyncio.sleep(2)
        return reply

    with pytest.raises(TemporaryError, match="over 10000 bytes"):
        events_of(handler)


def test_an_error_status_is_an_api_exception_with_the_servers_body():
    async def handler(request):
        return web.json_response({"kind": "Status", "code": 403, "message": "forbidden: pods"}, status=403)

    with pytest.raises(ApiException) as err:
        events_of(handler)
    assert err.value.status == 403 and "forbidden: pods" in err.value.body


def test_silence_longer_than_the_read_timeout_is_temporary():
    async def handler(request):
        reply = web.StreamResponse()
        await reply.prepare(request)
        await asyncio.sleep(2)
        return reply

    with pytest.raises(TemporaryError, match="watch"):
        events_of(handler, timeout=(1, 0.5))
