from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from signaling.tls import TlsError, dev_certificate, server_ssl_context


def test_plain_http_unless_asked(tmp_path: Path) -> None:
    assert server_ssl_context(tmp_path) is None
    with pytest.raises(TlsError, match="together"):
        server_ssl_context(tmp_path, cert="a.pem")
    with pytest.raises(TlsError, match="does not exist"):
        server_ssl_context(tmp_path, cert="a.pem", key="b.pem")


def test_dev_certificate_is_made_once_and_serves_https(tmp_path: Path) -> None:
    cert, key = dev_certificate(tmp_path / "tls")
    assert key.stat().st_mode & 0o777 == 0o600
    assert dev_certificate(tmp_path / "tls") == (cert, key)
    assert isinstance(server_ssl_context(tmp_path, dev=True), ssl.SSLContext)


async def test_https_round_trip(tmp_path: Path) -> None:
    import aiohttp

    context = server_ssl_context(tmp_path, dev=True)
    cert, _ = dev_certificate(tmp_path / "tls")

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    async with TestServer(app, host="127.0.0.1") as server:
        # TestServer has no ssl option: run a second site with the context
        runner = server.runner
        assert runner is not None
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        client_ctx = ssl.create_default_context(cafile=str(cert))
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"https://127.0.0.1:{port}/", ssl=client_ctx) as resp,
        ):
            assert await resp.text() == "ok"
        await site.stop()
