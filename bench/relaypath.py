"""CPU per received RTP packet on the relay's publish path: the lean path vs aiortc's, A/B
in one process.

    .venv/bin/python bench/relaypath.py            # about a minute, 127.0.0.1 only

A shared 2-core machine under load makes end-to-end CPU-per-stream figures swing by 2x
between windows (fps collapse, cold caches); this bench takes the network and the load
generator out of the comparison. A real aiortc publisher (``bench/relay.py``'s
pre-encoded 640x480 VP8 ~1 Mbit/s 30 fps + Opus) publishes to a real ``RelayRoom`` for
a few seconds while the decrypted RTP reaching the publish transport's
``_handle_rtp_data`` is recorded with its arrival times; then the publisher stops
sending and the recording is replayed into the same receivers, many times over, with
sequence numbers, RTP timestamps, abs-send-time and arrival times moved on by one
recording's span per pass (so the assembler sees a live stream, the REMB estimator real
spacing). Passes alternate between

* **aiortc**: aiortc's own ``RTCDtlsTransport._handle_rtp_data`` (``RtpPacket.parse`` +
  ``RTCRtpReceiver._handle_rtp_packet``) with aiortc's ``RemoteBitrateEstimator``: the
  relay's receive path before issue 18;
* **lean**: :class:`signaling.inbound.Inbound` with :class:`signaling.remb.RembEstimator`;

both on the same receivers, assembler, ``PacketSink`` and publication (no subscribers:
the send path is not measured here). Each pass's CPU is ``time.process_time`` (this
process only); the figure is the median per packet over the passes of each side.
Also the send side's per-frame packet building (``RtpLayout`` + VP8 payloads) against
``--base``'s ``signaling/sending.py``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _loadgen import LoopTrack  # noqa: E402
from aiortc.rate import RemoteBitrateEstimator  # noqa: E402
from relay import encode_media, load_average  # noqa: E402

from signaling.client import MediaClient  # noqa: E402
from signaling.inbound import Inbound  # noqa: E402
from signaling.relay import RelayConfig, RelayRoom  # noqa: E402
from signaling.remb import RembEstimator  # noqa: E402
from signaling.sending import RtpLayout, vp8_payloads  # noqa: E402

LOOPBACK = ("127.0.0.1",)
ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
MAP_IDS = "_HeaderExtensionsMap__ids"
STEP = {0: 3000, 1: 960}  # RTP timestamp step after the last frame: video, audio


def abs_offset(data: bytes, ext_id: int) -> int | None:
    """Offset of the 3 abs-send-time bytes in a one-byte-extension packet."""
    if not data[0] & 0x10:
        return None
    pos = 12 + (data[0] & 0x0F) * 4
    end = pos + 4 + int.from_bytes(data[pos + 2 : pos + 4], "big") * 4
    pos += 4
    while pos < end:
        byte = data[pos]
        if not byte:
            pos += 1
            continue
        if byte >> 4 == ext_id:
            return pos + 1
        pos += (byte & 0x0F) + 2
    return None


class Replay:
    """The recording, moved on by ``k`` spans for pass ``k``."""

    def __init__(self, recorded: list[tuple[bytes, int]], ext_id: int) -> None:
        self.recorded = recorded
        self.ext_id = ext_id
        first: dict[int, tuple[int, int]] = {}
        last: dict[int, tuple[int, int]] = {}
        for data, _ in recorded:
            _, _, seq, ts, ssrc = struct.unpack_from("!BBHLL", data)
            first.setdefault(ssrc, (seq, ts))
            last[ssrc] = (seq, ts)
        self.seq_span = {s: (last[s][0] - first[s][0] + 1) & 0xFFFF for s in first}
        kinds = sorted(first, key=lambda s: -self.seq_span[s])  # video has more packets
        self.ts_span = {
            s: (last[s][1] - first[s][1] + STEP[min(i, 1)]) & 0xFFFFFFFF
            for i, s in enumerate(kinds)
        }
        self.ms_span = recorded[-1][1] - recorded[0][1] + 20

    def packets(self, k: int) -> list[tuple[bytes, int]]:
        out = []
        shift_abs = int(k * self.ms_span * 262.144)
        for data, arrival in self.recorded:
            first, second, seq, ts, ssrc = struct.unpack_from("!BBHLL", data)
            head = struct.pack(
                "!BBHLL",
                first,
                second,
                (seq + k * self.seq_span[ssrc]) & 0xFFFF,
                (ts + k * self.ts_span[ssrc]) & 0xFFFFFFFF,
                ssrc,
            )
            wire = bytearray(head + data[12:])
            at = abs_offset(data, self.ext_id)
            if at is not None:
                value = (int.from_bytes(data[at : at + 3], "big") + shift_abs) & 0xFFFFFF
                wire[at : at + 3] = value.to_bytes(3, "big")
            out.append((bytes(wire), arrival + k * self.ms_span))
        return out


def run_pass(handle: Any, packets: list[tuple[bytes, int]]) -> float:
    """CPU seconds to hand ``packets`` to ``handle`` (coroutines stepped by hand)."""
    started = time.process_time()
    for data, arrival in packets:
        step = handle(data, arrival_time_ms=arrival)
        try:
            step.send(None)
        except StopIteration:
            pass
        else:
            raise RuntimeError("the receive path suspended")
    return time.process_time() - started


async def receive_side(media: Any, seconds: float, passes: int) -> dict[str, Any]:
    room = RelayRoom("path", RelayConfig(host_addresses=LOOPBACK))
    publisher = MediaClient(host_addresses=LOOPBACK, decode=False)
    vp8, opus = media
    video = LoopTrack("video", vp8, 90000, 3000)
    audio = LoopTrack("audio", [(p, True) for p in opus], 48000, 960)
    try:
        answer = await room.add_participant("phone", await publisher.publish_offer([audio, video]))
        await publisher.accept_publish_answer(answer)
        pc = room.publish_connection("phone")
        assert pc is not None
        receiver = next(t.receiver for t in pc.getTransceivers() if t.kind == "video")
        dtls = receiver.transport
        inbound = getattr(dtls._handle_rtp_data, "__self__", None)
        assert isinstance(inbound, Inbound)
        for _ in range(200):
            if inbound.packets > 100:
                break
            await asyncio.sleep(0.05)
        recorded: list[tuple[bytes, int]] = []

        async def record(data: bytes, arrival_time_ms: int) -> None:
            recorded.append((data, arrival_time_ms))
            await inbound.handle_rtp_data(data, arrival_time_ms)

        dtls._handle_rtp_data = record  # type: ignore[method-assign]
        await asyncio.sleep(seconds)
        video.stop()
        audio.stop()
        await asyncio.sleep(0.5)
        dtls._handle_rtp_data = inbound.handle_rtp_data  # type: ignore[method-assign]
        ids = getattr(dtls._rtp_header_extensions_map, MAP_IDS)
        replay = Replay(recorded, ids.abs_send_time)
        sides: dict[str, list[float]] = {"aiortc": [], "lean": []}
        paths = {"aiortc": inbound._original, "lean": inbound.handle_rtp_data}
        estimators = {"aiortc": RemoteBitrateEstimator, "lean": RembEstimator}
        k = 1
        for i in range(passes):
            for name in ("aiortc", "lean") if i % 2 else ("lean", "aiortc"):
                packets = replay.packets(k)
                k += 1
                setattr(receiver, ESTIMATOR, estimators[name]())
                sides[name].append(run_pass(paths[name], packets) / len(packets))
        medians = {name: statistics.median(v) * 1e6 for name, v in sides.items()}
        frames = room.publication("phone").stats.packets
        return {
            "recorded_packets": len(recorded),
            "passes_each": passes,
            "us_per_packet_aiortc": round(medians["aiortc"], 2),
            "us_per_packet_lean": round(medians["lean"], 2),
            "ratio": round(medians["lean"] / medians["aiortc"], 3),
            "frames_fed": frames,
        }
    finally:
        await publisher.close()
        await room.close()


def send_side(base: Path, rounds: int) -> dict[str, Any]:
    """One 4-packet VP8 frame's packets: this checkout's RtpLayout.frame vs base's."""
    spec = importlib.util.spec_from_file_location("base_sending", base / "signaling/sending.py")
    assert spec is not None and spec.loader is not None
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)

    class Ids:
        mid, abs_send_time = 1, 2

    data = bytes(range(256)) * 20  # 5120 bytes: 4 packets
    new_layout, old_layout = RtpLayout(96, 1, "1", Ids), old.RtpLayout(96, 1, "1", Ids)

    def new() -> None:
        new_layout.frame(100, 5, vp8_payloads(data, 300))

    def before() -> None:
        payloads = old.vp8_payloads(data, 300)
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            old_layout.packet(100 + i, 5, i == last, payload)

    figures: dict[str, list[float]] = {"base": [], "this": []}
    n = 20000
    for _ in range(rounds):
        for name, fn in (("base", before), ("this", new)):
            started = time.process_time()
            for _ in range(n):
                fn()
            figures[name].append((time.process_time() - started) / n * 1e6)
    base_us, this_us = (statistics.median(figures[k]) for k in ("base", "this"))
    return {
        "us_per_frame_base": round(base_us, 2),
        "us_per_frame_this": round(this_us, 2),
        "ratio": round(this_us / base_us, 3),
    }


async def main(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    print(f"relay receive path A/B, load average {load_average()}", flush=True)
    receive = await receive_side(encode_media(), args.seconds, args.passes)
    print(
        f"  receive: aiortc's path {receive['us_per_packet_aiortc']:.2f} µs/packet, "
        f"lean {receive['us_per_packet_lean']:.2f} µs/packet (x{receive['ratio']:.2f}; "
        f"{receive['recorded_packets']} packets x {args.passes} passes each)",
        flush=True,
    )
    send = send_side(base, 5)
    print(
        f"  send: a 4-packet VP8 frame built in {send['us_per_frame_base']:.2f} µs (base) vs "
        f"{send['us_per_frame_this']:.2f} µs (x{send['ratio']:.2f})",
        flush=True,
    )
    return {"receive": receive, "send": send, "load_average": load_average()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="recording length")
    parser.add_argument("--passes", type=int, default=10, help="replays per side")
    parser.add_argument("--base", default="/work/main", help="checkout for the send side A/B")
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(main(arguments, Path(arguments.base).resolve()))))
