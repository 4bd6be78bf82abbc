"""The Python client reconnects after a drop, like the browser, and reports the outage.

The drop is real: the client reaches the server through a small TCP proxy whose
connections the test aborts (and refuses for a while), so the client sees its WebSocket
die as it would on a lost network, and must rebuild it and its peer connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json

import pytest

from signaling import cli_join
from tests.signaling.conftest import LiveServer


class CuttableProxy:
    """TCP 127.0.0.1:<port> → upstream; :meth:`cut` aborts every connection and, for
    ``seconds``, closes new ones at once (connection refused, as far as the client can tell)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._refusing = False
        self.cuts = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._open |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}

    async def cut(self, seconds: float) -> None:
        self.cuts += 1
        self._refusing = True
        for writer in list(self._open):
            writer.transport.abort()
        await asyncio.sleep(seconds)
        self._refusing = False

    async def close(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_yunkan_join_reconnects_after_a_drop_and_reports_the_outage(
    live: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    inspector = live.client("staff-1", "inspector", auto_admit=True)
    await inspector.connect()
    assert live.server.port is not None
    proxy = CuttableProxy(live.server.port)
    await proxy.start()
    token = live.token("applicant-2", "applicant")
    args = argparse.Namespace(
        url=f"http://127.0.0.1:{proxy.port}/live/j/{token}",
        publish="testsrc",
        save=None,
        duration=9.0,
        admit=False,
        insecure=False,
        wait=10.0,
    )
    join = asyncio.create_task(cli_join.join(args))
    try:
        await inspector.wait_for(
            lambda: (
                (m := inspector.media.received.get("applicant-2")) is not None
                and m.video_frames >= 10
            ),
            within=15,
            what="the applicant's video",
        )
        await proxy.cut(1.5)  # the phone's network is gone for 1.5 s
        before = inspector.media.received["applicant-2"].video_frames
        await inspector.wait_for(
            lambda: inspector.media.received["applicant-2"].video_frames > before + 30,
            within=15,
            what="the applicant's video after the drop",
        )
        code = await asyncio.wait_for(join, 30)
    finally:
        join.cancel()
        await proxy.close()
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 3  # not 0: this call had an outage (it recovered from it)
    outages = summary["outages"]
    assert outages["count"] == 1 and outages["recovered"] is True
    assert 1.4 <= outages["durations"][0] < 8.0
    assert "outages: 1 (" in out and "recovered" in out
    # Media flowed both ways again over the new peer connections.
    assert summary["received"]["staff-1"]["video_frames"] > 60
    assert summary["sent"]["video_frames"] > 60
