"""Chromium publishing to the relay: transport-cc is negotiated and Chrome's GCC runs on it.

A real Chromium (fake microphone, a canvas of noise as its camera) offers to a real
``RelayRoom`` on 127.0.0.1;
the relay answers with the transport-wide sequence number extension and ``transport-cc``
feedback, records every packet's arrival and sends feedback; Chrome's own send-side
estimator then ramps up: ``availableOutgoingBitrate`` and the bitrate it actually sends
rise past 1 Mbit/s on loopback. Without working feedback Chrome stays near its 300 kbit/s
start (the REMB estimator is switched off for such publishers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from signaling.client import MediaClient
from signaling.inbound import Inbound
from signaling.publication import copy_packet
from signaling.relay import RelayConfig, RelayRoom
from signaling.twcc import TWCC_URI
from tests.browser import chromium

LOOPBACK = ("127.0.0.1",)

PUBLISH = """
async () => {
  // Video: 640x480 of coarse random noise (4x4 blocks), which no encoder can squeeze, so
  // the bitrate sent is the estimator's target (Chrome's fake camera compresses to less).
  const canvas = document.createElement('canvas');
  canvas.width = 640; canvas.height = 480;
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  const tile = document.createElement('canvas');
  tile.width = 160; tile.height = 120;
  const tctx = tile.getContext('2d');
  const image = tctx.createImageData(160, 120);
  const words = new Uint32Array(image.data.buffer);
  window.noise = setInterval(() => {
    for (let i = 0; i < words.length; i++) words[i] = (Math.random() * 0xffffffff) | 0xff000000;
    tctx.putImageData(image, 0, 0);
    ctx.drawImage(tile, 0, 0, 640, 480);
  }, 50);
  const mic = await navigator.mediaDevices.getUserMedia({audio: true});
  const camera = canvas.captureStream(20).getVideoTracks();
  const stream = new MediaStream([...mic.getAudioTracks(), ...camera]);
  const pc = new RTCPeerConnection();
  window.pc = pc;
  for (const track of stream.getTracks()) pc.addTransceiver(track, {direction: 'sendonly'});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(resolve => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
  });
  return pc.localDescription.sdp;
}
"""

STATS = """
async () => {
  const out = {available: 0, bytes: 0, at: performance.now(), state: window.pc.connectionState};
  (await window.pc.getStats()).forEach(s => {
    if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate)
      out.available = Math.max(out.available, s.availableOutgoingBitrate);
    if (s.type === 'outbound-rtp' && s.kind === 'video') out.bytes += s.bytesSent;
  });
  return out;
}
"""


@pytest.fixture
async def page_url() -> AsyncIterator[str]:
    app = web.Application()

    async def blank(request: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>publisher</title>", content_type="text/html"
        )

    app.router.add_get("/", blank)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/"))
    await server.close()


async def test_chromium_runs_gcc_against_the_relays_transport_cc_feedback(page_url: str) -> None:
    audio_packets: list[av.Packet[Any]] = []

    def keep(pid: str, kind: str, packet: av.Packet[Any]) -> None:
        if kind == "audio" and len(audio_packets) < 50:
            audio_packets.append(copy_packet(packet))

    room = RelayRoom("twcc-browser", RelayConfig(host_addresses=LOOPBACK), on_packet=keep)
    try:
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(page_url)
            offer = await page.evaluate(PUBLISH)
            assert "transport-cc" in offer  # what Chromium offers
            answer = await room.add_participant("phone", offer)
            await page.evaluate(
                "sdp => window.pc.setRemoteDescription({type: 'answer', sdp})", answer
            )

            assert "a=extmap:" in answer and TWCC_URI in answer
            video = answer[answer.index("m=video") :]
            audio = answer[answer.index("m=audio") : answer.index("m=video")]
            assert "transport-cc" in video and "goog-remb" in video
            assert "transport-cc" in audio
            assert "useinbandfec=1" in audio
            red = next(line for line in audio.splitlines() if "red/48000/2" in line)
            red_pt = red.split(":")[1].split()[0]
            assert audio.splitlines()[0].split()[3] == red_pt  # RED first: Chrome sends it

            samples: list[dict[str, Any]] = []
            deadline = time.monotonic() + 30
            best_available = best_sent = 0.0
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                sample = await page.evaluate(STATS)
                if samples and sample["bytes"] > samples[-1]["bytes"]:
                    seconds = (sample["at"] - samples[-1]["at"]) / 1000
                    sent = (sample["bytes"] - samples[-1]["bytes"]) * 8 / seconds
                    best_sent = max(best_sent, sent)
                samples.append(sample)
                best_available = max(best_available, sample["available"])
                if best_available > 1.5e6 and best_sent > 1e6 and len(samples) >= 6:
                    break
            feedback = room.receive_paths["phone"][0].feedback
            assert feedback is not None
            assert feedback.feedbacks > 10 and feedback.packets > 200, (
                feedback.feedbacks,
                feedback.packets,
            )
            publication = room.publication("phone")
            assert publication.stats.packets["video"] > 10  # frames forwarded
            # RED unwrapped to plain Opus (20 ms frames), nothing skipped.
            audio_sink = publication._sinks["audio"]
            assert audio_sink._is_red and audio_sink.skipped == 0
            assert publication.stats.packets["audio"] > 100
            # Chromium's packets take the lean receive path (signaling/inbound.py); only
            # RTX/padding-only probes and the like take aiortc's.
            pc = room.publish_connection("phone")
            assert pc is not None
            inbound = getattr(
                pc.getTransceivers()[0].receiver.transport._handle_rtp_data, "__self__", None
            )
            assert isinstance(inbound, Inbound) and inbound.packets > 300
            decoder = av.CodecContext.create("opus", "r")
            samples_decoded = [f.samples for p in audio_packets[10:] for f in decoder.decode(p)]
            assert samples_decoded and set(samples_decoded) == {960}  # plain 20 ms Opus
            assert best_available > 1.5e6, samples
            assert best_sent > 1e6, samples
            await page.close()
    finally:
        await room.close()


async def test_a_publisher_without_transport_cc_keeps_remb() -> None:
    room = RelayRoom("twcc-aiortc", RelayConfig(host_addresses=LOOPBACK))
    client = MediaClient(host_addresses=LOOPBACK)
    try:
        offer = await client.publish_offer("testsrc")
        assert "transport-cc" not in offer  # aiortc offers none
        answer = await room.add_participant("py", offer)
        assert "transport-cc" not in answer and "goog-remb" in answer
        assert all(path.feedback is None for path in room.receive_paths["py"])
    finally:
        await client.close()
        await room.close()
