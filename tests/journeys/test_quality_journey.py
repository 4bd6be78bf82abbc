"""Quality people can see, in Chromium: the pre-call media test, the levels of a healthy
call, an outage of the phone's network and its recovery, and an audio-only join.

The phone's network is cut both ways, as a real outage cuts it: the phone reaches the
server through :class:`Link`, a TCP forwarder on loopback that stops moving bytes (held, as
TCP holds them, and delivered when the link comes back), and :class:`Blackhole` drops every
datagram to and from the phone's peer connections at the relay's sockets. Playwright's
``set_offline`` is not used: Chromium's offline emulation only mutes the WebSocket frames
coming *in* (the page's pings still reach the server) and does not touch WebRTC at all.
Nothing else is simulated: the phone, the console, the relay and the figures on the pages
are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings
from signaling.handlers import RELAY, LiveOptions
from signaling.relay import RelayRoom
from tests.browser import ARGS, CHROMIUM, chromium, require_chromium
from tests.signaling.conftest import LOOPBACK, LiveServer, start_live

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESK = {"viewport": {"width": 1366, "height": 768}}


class Link:
    """A TCP forwarder 127.0.0.1:port -> the server that can be cut and restored."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = asyncio.Event()
        self.up.set()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def cut(self) -> None:
        self.up.clear()

    def restore(self) -> None:
        self.up.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.up.wait()  # a connection made during the outage waits for the link
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for a, b in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(a, b))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.up.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


class _Gate:
    """A datagram transport that sends nothing while the hole is open."""

    def __init__(self, transport: Any, hole: Blackhole) -> None:
        self._transport, self._hole = transport, hole

    def sendto(self, data: bytes, addr: Any = None) -> None:
        if not self._hole.on:
            self._transport.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Blackhole:
    """Drops all datagrams of one participant's relay connections while ``on`` (test hook)."""

    def __init__(self) -> None:
        self.on = False
        self._seen: set[int] = set()

    def cover(self, room: RelayRoom, participant: str) -> int:
        pcs = [room.publish_connection(participant)]
        for subscriber, publisher in room.subscriptions():
            if subscriber == participant:
                sub = room.subscription(subscriber, publisher)
                pcs.append(sub.pc if sub is not None else None)
        covered = 0
        for pc in pcs:
            if pc is None:
                continue
            for transceiver in pc.getTransceivers():
                dtls = transceiver.receiver.transport
                for protocol in dtls.transport._connection._protocols:
                    if id(protocol) in self._seen:
                        continue
                    self._seen.add(id(protocol))
                    original = protocol.datagram_received

                    def received(data: bytes, addr: Any, original: Any = original) -> None:
                        if not self.on:
                            original(data, addr)

                    protocol.datagram_received = received
                    protocol.transport = _Gate(protocol.transport, self)
                    covered += 1
        return covered


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    path = Path(os.environ.get("YUNKAN_SCREENSHOTS", tmp_path / "shots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _console(browser: Any, live: LiveServer, base: str) -> tuple[Any, Any]:
    """The inspector's console at a desk (1366x768), logged in."""
    desk = await browser.new_context(**DESK, locale="zh-CN")
    await desk.add_cookies([{"name": "yk_session", "value": await live.login(1), "url": base}])
    console = await desk.new_page()
    await console.goto(base + "live/j/" + live.token("staff-1", "inspector", "王科员"))
    return desk, console


async def _join(console: Any, phone: Any, live: LiveServer, base: str, who: str) -> None:
    await phone.goto(base + "live/j/" + live.token(who, "applicant", "张三"))
    await phone.click("#btn-join")  # once enabled; the pre-call test may still run
    admit = console.locator(f"#waiting-list li[data-participant='{who}'] .admit")
    await admit.wait_for(timeout=10000)
    await admit.click()
    await phone.wait_for_selector("#call:not([hidden])", timeout=10000)


async def _until(page: Any, script: str, arg: Any = None, within: float = 15000) -> None:
    """``wait_for_function`` that says what the page showed when it times out."""
    try:
        await page.wait_for_function(script, arg=arg, timeout=within)
    except Exception as err:
        seen = await page.evaluate(
            "() => [...document.querySelectorAll('.tile, #quality, #banner')].map("
            "e => [e.id, JSON.stringify(e.dataset), e.hidden, e.innerText])"
        )
        raise AssertionError(f"{script}: {seen}") from err


async def _figures(page: Any, selector: str) -> dict[str, Any]:
    figures: dict[str, Any] = await page.evaluate(
        "(s) => { const e = document.querySelector(s); return {...e.dataset, text: e.innerText} }",
        selector,
    )
    return figures


async def test_quality_outage_and_audio_only(sqlite_settings: Settings, shots: Path) -> None:
    server, case_id = await start_live(
        sqlite_settings, LiveOptions(grace=60.0, host_addresses=LOOPBACK)
    )
    live = LiveServer(server, case_id, [])
    base = str(server.make_url("/"))
    link = Link(server.port or 0)
    via = f"http://127.0.0.1:{await link.start()}/"  # the phone's way to the server
    hole = Blackhole()
    try:
        async with chromium() as browser:
            desk_ctx, console = await _console(browser, live, base)
            phone_ctx = await browser.new_context(**PHONE, locale="zh-CN")
            phone = await phone_ctx.new_page()
            errors: list[str] = []
            for page in (console, phone):
                page.on("pageerror", lambda exc: errors.append(str(exc)))

            # (c) The check page's media test through the relay, with figures.
            await phone.goto(via + "live/j/" + live.token("applicant-2", "applicant", "张三"))
            await phone.wait_for_selector("#precall[data-state='ok']", timeout=30000)
            precall = await _figures(phone, "#precall")
            meter = await _figures(phone, "#mic-meter")
            await phone.click("#btn-speaker")
            await phone.wait_for_selector("#speaker-note:not([hidden])", timeout=5000)
            await phone.screenshot(path=str(shots / "quality-precall-phone.png"))
            await phone.click("#btn-join")
            admit = console.locator("#waiting-list li[data-participant='applicant-2'] .admit")
            await admit.wait_for(timeout=10000)
            await admit.click()
            await phone.wait_for_selector("#call:not([hidden])", timeout=10000)

            # (b) A healthy call: 良好 with real numbers, on both sides.
            await phone.wait_for_function(
                "() => { const q = document.getElementById('quality').dataset; "
                "return q.level === 'good' && +q.kbpsIn > 50 && +q.kbpsOut > 50 }",
                timeout=20000,
            )
            tile = "#tile-applicant-2"
            await console.wait_for_function(
                "(s) => { const t = document.querySelector(s); const b = t && "
                "t.querySelector('.tile-quality'); return b && b.dataset.level === 'good' "
                "&& +t.dataset.fps > 3 }",
                arg=tile,
                timeout=20000,
            )
            healthy_phone = await _figures(phone, "#quality")
            healthy_tile = await _figures(console, tile + " .tile-quality")
            await phone.screenshot(path=str(shots / "quality-call-phone.png"))
            await console.screenshot(path=str(shots / "quality-call-console.png"))

            # (a) The phone's network goes: page traffic and media both.
            room = server.app[RELAY].get(live.room)
            assert room is not None
            assert hole.cover(room, "applicant-2") > 0
            cut = time.monotonic()
            hole.on = True
            link.cut()
            await phone.wait_for_selector("#banner:not([hidden])", timeout=3000)
            banner_after = time.monotonic() - cut
            banner = await phone.inner_text("#banner")
            await phone.wait_for_selector("#quality[data-level='down']", timeout=5000)
            await _until(
                console,
                "(s) => { const t = document.querySelector(s); return t && "
                "t.dataset.state === 'disconnected' && /画面已停滞 [3-9]/.test(t.innerText) }",
                tile,
            )
            down_tile = await console.inner_text(tile + " .tile-state")
            await phone.screenshot(path=str(shots / "quality-outage-phone.png"))
            await console.screenshot(path=str(shots / "quality-outage-console.png"))

            # Recovery clears it: the phone rejoins with new connections.
            hole.on = False
            link.restore()
            await phone.wait_for_selector("#banner[hidden]", state="attached", timeout=20000)
            await phone.wait_for_selector("#quality[data-level='good']", timeout=20000)
            await console.wait_for_function(
                "(s) => { const t = document.querySelector(s); return t && "
                "t.dataset.state === '' && +t.dataset.fps > 3 }",
                arg=tile,
                timeout=20000,
            )
            recovered_tile = await console.inner_text(tile)
            await console.screenshot(path=str(shots / "quality-recovered-console.png"))
            await phone.evaluate("window.ykLive.leave()")
            await phone_ctx.close()
            assert errors == []
            await desk_ctx.close()

            # (d) A phone whose camera cannot be opened joins with audio only.
            require_chromium()
            args = [
                "--use-fake-device-for-media-stream=device-count=0"
                if a == "--use-fake-device-for-media-stream"
                else a
                for a in ARGS
            ]
            assert CHROMIUM
            blind_browser = await browser.browser_type.launch(executable_path=CHROMIUM, args=args)
            try:
                desk_ctx, console = await _console(browser, live, base)
                blind = await (await blind_browser.new_context(**PHONE, locale="zh-CN")).new_page()
                await _join(console, blind, live, base, "applicant-3")
                audio_notice = await blind.inner_text("#audio-only")
                await blind.wait_for_selector("#call-audio-only:not([hidden])", timeout=5000)
                await _until(
                    console,
                    "() => { const t = document.querySelector('#tile-applicant-3'); "
                    "return t && t.dataset.state === 'audio-only' }",
                    within=20000,
                )
                audio_tile = await console.inner_text("#tile-applicant-3 .tile-state")
                await blind.screenshot(path=str(shots / "quality-audio-only-phone.png"))
                await console.screenshot(path=str(shots / "quality-audio-only-console.png"))
            finally:
                await blind_browser.close()
    finally:
        await link.close()
        await server.close()

    assert precall["rtt"] != "" and 0 <= int(precall["rtt"]) < 300, precall
    assert int(precall["kbps"]) > 50, precall
    assert float(meter["heard"]) == 1, meter  # the fake microphone's beep moved the meter
    assert "往返时延" in precall["text"] and "kbit/s" in precall["text"], precall
    assert healthy_phone["text"].startswith("网络: 良好 · "), healthy_phone
    assert 0 <= int(healthy_phone["rtt"]) < 300, healthy_phone
    assert float(healthy_phone["loss"]) < 0.02, healthy_phone
    assert healthy_tile["text"].startswith("良好 · ") and "fps" in healthy_tile["text"]
    assert banner_after <= 3.0, banner_after
    assert banner == "网络中断，正在重连…"
    assert down_tile.startswith("对方网络中断 · 画面已停滞 "), down_tile
    assert "对方网络中断" not in recovered_tile and "画面已停滞" not in recovered_tile
    assert "仅以语音加入" in audio_notice
    assert audio_tile == "仅音频"
