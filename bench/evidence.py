"""Evidence benchmark: snapshot latency under load, and the recorder's CPU per stream.

    /work/venv/bin/python bench/evidence.py          # about two minutes, 127.0.0.1 only

The server runs in a child process (``--serve``) with the real ``RelayRoom``: 8 publishers
(pre-encoded camera-like 640x480 VP8 ~1 Mbit/s 30 fps + Opus, a key frame only on request
or every 10 s), each forwarded to one subscriber. It runs twice, without and with live's
``signaling.archive.RoomRecording`` (one WebM per publisher, muxing the forwarded
packets). The recorder's CPU per stream is the CPU time (``time.thread_time``) spent in
its packet callback (it runs on the loop; the wall time is reported too), cross-checked
against the difference of the child's CPU (``/proc/<pid>/stat``) between the two runs; all
divided by 8.

In the recording run the load side asks the server for snapshots, round-robin over the
publishers, one at a time, 1.5 s apart. The server does exactly what the API handler does
minus the HTTP and database round trip: ``RelayRoomVideo.video_packets`` (decodes the
short GOP as is, otherwise asks for a fresh key frame), ``take_snapshot`` in a thread
(decode from the key frame, watermark, PNG + JPEG) and two fsynced ``BlobStore.put``.
Reported: p50/p95 of that total, and of the decode + watermark part alone; plus the same
decode + watermark on an idle machine for comparison.

The recording run also keeps live's continuous-take proof: every recorder marks its file
every 10 s and ``recordings.segments.SegmentLog`` hashes each segment in a thread (SHA-256
plus the cluster walk that counts frames). The segment-hash cost is that thread's CPU time
(``time.thread_time`` around each ``segment_data``) per stream; the event append itself
(one INSERT per stream per 10 s) is left out, there is no database here. The last line is
JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket
from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _loadgen import ChildServer, LoopTrack  # noqa: E402

from recordings.blobs import BlobStore  # noqa: E402
from recordings.segments import Mark, SegmentLog, TakeState, segment_data  # noqa: E402
from recordings.snapshots import WatermarkInfo, take_snapshot  # noqa: E402
from server.evidence.live import RelayRoomVideo  # noqa: E402
from signaling.archive import RoomRecording  # noqa: E402
from signaling.candidates import gather_on  # noqa: E402
from signaling.client import pattern_frame  # noqa: E402
from signaling.packets import route_keyframe_requests  # noqa: E402
from signaling.relay import RelayConfig, RelayRoom  # noqa: E402

LOOPBACK = ("127.0.0.1",)
STREAMS = 8
HANDLE_RTP = "_handle_rtp_packet"


def info(number: str) -> WatermarkInfo:
    return WatermarkInfo(
        taken_at=dt.datetime.now(dt.UTC),
        timezone="Asia/Shanghai",
        case_number=number,
        matter="种子生产经营许可证变更",
        inspector="王勘验",
        checklist_item="仓储条件",
    )


def video_seconds(path: Path) -> float:
    """First to last video timestamp actually in the file (what a player will show)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None]
    return max(times) - min(times) if times else 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --------------------------------------------------------------------------- server side


async def serve(record: bool, data: Path) -> None:
    hashing = {"cpu": 0.0, "bytes": 0, "segments": 0}

    def timed_hash(path: Path, state: TakeState, mark: Mark) -> dict[str, Any] | None:
        start = time.thread_time()
        out = segment_data(path, state, mark)
        hashing["cpu"] += time.thread_time() - start
        if out is not None:
            hashing["bytes"] += out["bytes"][1] - out["bytes"][0]
            hashing["segments"] += 1
        return out

    async def append(_participant: str, _data: dict[str, Any]) -> None:
        return None

    segments = SegmentLog(append, hash_segment=timed_hash)
    recordings = RoomRecording(data / "recordings", on_segment=segments.mark) if record else None
    began = time.monotonic()
    spent = [0.0, 0.0]  # CPU and wall seconds inside the recorder's packet callback

    def timed(participant: str, kind: str, packet: av.Packet[Any]) -> None:
        # CPU time of the loop's thread, not wall time: on a shared machine the wall clock
        # also counts the moments another process had the core.
        start, wall = time.thread_time(), time.perf_counter()
        assert recordings is not None
        recordings.feed(participant, kind, packet)
        spent[0] += time.thread_time() - start
        spent[1] += time.perf_counter() - wall

    room = RelayRoom(
        "bench", RelayConfig(host_addresses=LOOPBACK), on_packet=timed if recordings else None
    )
    blobs = BlobStore(data / "blobs")

    async def snapshot(pid: str) -> dict[str, float]:
        start = time.perf_counter()
        packets = await RelayRoomVideo(room, 1, pid).video_packets(pid)
        got = time.perf_counter()
        images = await asyncio.to_thread(take_snapshot, packets, info("YK-20261122-0001"))
        done = time.perf_counter()
        await blobs.put(images.original, suffix=".png", kind="snapshot")
        await blobs.put(images.watermarked, suffix=".jpg", kind="snapshot")
        end = time.perf_counter()
        return {
            "total": end - start,
            "packets_wait": got - start,
            "decode_watermark": done - got,
            "store": end - done,
            "gop": len(packets),
        }

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            msg = json.loads(line)
            reply: dict[str, Any] = {}
            if msg["op"] == "publish":
                reply["sdp"] = await room.add_participant(msg["pid"], msg["sdp"])
            elif msg["op"] == "subscribe":
                reply["sdp"] = await room.subscribe(msg["sub"], msg["pub"])
            elif msg["op"] == "answer":
                await room.accept_answer(msg["sub"], msg["pub"], msg["sdp"])
            elif msg["op"] == "snapshot":
                try:
                    reply = await snapshot(msg["pid"])
                except Exception as exc:  # report, keep serving
                    reply = {"error": f"{type(exc).__name__}: {exc}"}
            elif msg["op"] == "spent":
                reply = {"seconds": spent[0], "wall": spent[1]}
            elif msg["op"] == "finish" and recordings is not None:
                done = await asyncio.to_thread(recordings.close)
                await segments.drain()
                reply = {
                    "segment_cpu": hashing["cpu"] / (time.monotonic() - began),
                    "segment_cpu_seconds": hashing["cpu"],
                    "segments": hashing["segments"],
                    "segment_bytes": hashing["bytes"],
                    "files": len(done),
                    "reported_s": [round(r.duration, 1) for _, r in done],
                    "demuxed_video_s": [round(video_seconds(r.path), 1) for _, r in done],
                }
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


# --------------------------------------------------------------------------- load side


def start_server(record: bool, data: Path) -> ChildServer:
    """The relay (optionally recording) server process."""
    args = [sys.executable, __file__, "--serve", "--data", str(data)]
    return ChildServer([*args, "--record"] if record else args)


def encode_media(seconds: int = 10) -> tuple[list[tuple[bytes, bool]], list[bytes]]:
    """Camera-like VP8 (bars under noise, panning; one key frame) and one second of Opus."""
    video = av.CodecContext.create("libvpx", "w")
    video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
    video.time_base = Fraction(1, 30)
    video.bit_rate = 1_000_000
    video.gop_size = 1000
    video.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    bars = pattern_frame(0).to_image()
    noise = Image.effect_noise((640, 480), 40).convert("RGB")
    dimmed = ImageChops.multiply(bars, Image.new("RGB", (640, 480), (200, 200, 200)))
    scene = ImageChops.add(dimmed, noise, scale=1.0, offset=-40)
    vp8: list[tuple[bytes, bool]] = []
    for i in range(30 * seconds):
        frame = av.VideoFrame.from_image(ImageChops.offset(scene, i * 6, 0)).reformat(
            format="yuv420p"
        )
        frame.pts = i
        vp8 += [(bytes(p), p.is_keyframe) for p in video.encode(frame)]
    vp8 += [(bytes(p), p.is_keyframe) for p in video.encode(None)]
    audio = av.CodecContext.create("libopus", "w")
    audio.sample_rate, audio.layout, audio.format = 48000, "mono", "s16"
    audio.bit_rate = 32000
    opus: list[bytes] = []
    for i in range(50):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(bytes(1920))
        frame.sample_rate, frame.pts = 48000, i * 960
        opus += [bytes(p) for p in audio.encode(frame)]
    return vp8, opus


async def _local(pc: RTCPeerConnection, description: RTCSessionDescription) -> str:
    with gather_on(LOOPBACK):
        await pc.setLocalDescription(description)
    return str(pc.localDescription.sdp)


async def start_load(server: ChildServer, media: Any) -> tuple[list[RTCPeerConnection], list[int]]:
    """``STREAMS`` publishers, each forwarded to one subscriber (the inspector)."""
    vp8, opus = media
    pcs: list[RTCPeerConnection] = []
    frames = [0] * STREAMS
    for i in range(STREAMS):
        pc = RTCPeerConnection()
        pcs.append(pc)
        video = LoopTrack("video", vp8, 90000, 3000)
        audio = LoopTrack("audio", [(p, True) for p in opus], 48000, 960)
        pc.addTransceiver(audio, direction="sendonly")
        route_keyframe_requests(
            pc.addTransceiver(video, direction="sendonly").sender, video.restart
        )
        reply = await server.call(
            op="publish", pid=f"p{i}", sdp=await _local(pc, await pc.createOffer())
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
    for i in range(STREAMS):
        offer = (await server.call(op="subscribe", sub="inspector", pub=f"p{i}"))["sdp"]
        sub = RTCPeerConnection()
        pcs.append(sub)
        await sub.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        for transceiver in sub.getTransceivers():
            if transceiver.kind == "video":
                # Count frames by the RTP marker bit, skipping aiortc's receive pipeline,
                # so the load generator stays light.
                async def count(packet: RtpPacket, arrival_time_ms: int, i: int = i) -> None:
                    if packet.marker:
                        frames[i] += 1

                setattr(transceiver.receiver, HANDLE_RTP, count)
            else:

                async def ignore(packet: RtpPacket, arrival_time_ms: int) -> None:
                    return None

                setattr(transceiver.receiver, HANDLE_RTP, ignore)
        answer = await _local(sub, await sub.createAnswer())
        await server.call(op="answer", sub="inspector", pub=f"p{i}", sdp=answer)
    return pcs, frames


async def run(record: bool, media: Any, seconds: float, snapshots: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-evidence-") as tmp:
        server = start_server(record, Path(tmp))
        await server.connect()
        pcs: list[RTCPeerConnection] = []
        try:
            pcs, frames = await start_load(server, media)
            await asyncio.sleep(3)
            s0, w0 = (await server.call(op="spent")).values()
            f0, c0, t0 = list(frames), server.cpu_seconds(), time.monotonic()
            await asyncio.sleep(seconds)
            f1, c1, t1 = list(frames), server.cpu_seconds(), time.monotonic()
            s1, w1 = (await server.call(op="spent")).values()
            out: dict[str, Any] = {
                "server_cpu": (c1 - c0) / (t1 - t0),
                "recorder_cpu": (s1 - s0) / (t1 - t0),
                "recorder_wall": (w1 - w0) / (t1 - t0),
                "fps": [(b - a) / (t1 - t0) for a, b in zip(f0, f1, strict=True)],
            }
            shots: list[dict[str, float]] = []
            failed: list[str] = []
            for n in range(snapshots if record else 0):
                reply = await server.call(op="snapshot", pid=f"p{n % STREAMS}")
                (failed.append(reply["error"]) if "error" in reply else shots.append(reply))
                await asyncio.sleep(1.5)
            out["snapshots"], out["snapshot_errors"] = shots, failed
            if record:
                out["files"] = await server.call(op="finish")
            return out
        finally:
            await asyncio.gather(*(pc.close() for pc in pcs))
            await server.stop()


def idle_decode(media: Any, runs: int) -> list[float]:
    """Decode + watermark alone: a 1 s GOP (31 packets) on an otherwise idle machine."""
    vp8, _ = media
    packets = [av.Packet(data) for data, _ in vp8[:31]]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        take_snapshot(packets, info("YK-20261122-0001"))
        times.append(time.perf_counter() - start)
    return times


async def main(args: argparse.Namespace) -> dict[str, Any]:
    media = encode_media()
    print(f"evidence benchmark: {STREAMS} x 640x480 VP8 ~1 Mbit/s 30 fps + Opus, 127.0.0.1")
    idle = idle_decode(media, 20)
    print(f"  idle decode+watermark (31-packet GOP): p50 {statistics.median(idle) * 1000:.0f} ms")
    plain = await run(False, media, args.seconds, 0)
    print(
        f"  relay only:      server {plain['server_cpu']:.1%} of a core, "
        f"fps median {statistics.median(plain['fps']):.1f}"
    )
    recorded = await run(True, media, args.seconds, args.snapshots)
    print(
        f"  relay + record:  server {recorded['server_cpu']:.1%} of a core, "
        f"fps median {statistics.median(recorded['fps']):.1f}, files {recorded['files']}"
    )
    shots = recorded["snapshots"]
    total = [s["total"] * 1000 for s in shots]
    decode = [s["decode_watermark"] * 1000 for s in shots]
    recorder_cpu = recorded["recorder_cpu"] / STREAMS
    recorder_wall = recorded["recorder_wall"] / STREAMS
    files = recorded["files"]
    segment_cpu = files["segment_cpu"] / STREAMS
    per_segment_ms = files["segment_cpu_seconds"] * 1000 / max(1, files["segments"])
    mb_per_segment = files["segment_bytes"] / max(1, files["segments"]) / 1e6
    difference = (recorded["server_cpu"] - plain["server_cpu"]) / STREAMS
    if recorded["snapshot_errors"]:
        print(f"  snapshot errors: {recorded['snapshot_errors']}")
    wait = [s["packets_wait"] * 1000 for s in shots]
    store = [s["store"] * 1000 for s in shots]
    print(
        f"  snapshot parts p50: key frame wait {pct(wait, 0.5):.0f} ms, "
        f"store {pct(store, 0.5):.0f} ms"
    )
    print(
        f"  recorder CPU per stream: {recorder_cpu:.2%} of a core in its callback "
        f"(wall clock {recorder_wall:.2%}; {difference:.2%} by the difference of the two runs)"
    )
    print(
        f"  segment hashes: {files['segments']} segments, {mb_per_segment:.2f} MB and "
        f"{per_segment_ms:.1f} ms CPU each (in a thread), {segment_cpu:.3%} of a core per stream"
    )
    print(
        f"  snapshot total p50 {pct(total, 0.5):.0f} ms p95 {pct(total, 0.95):.0f} ms; "
        f"decode+watermark p50 {pct(decode, 0.5):.0f} ms p95 {pct(decode, 0.95):.0f} ms; "
        f"GOP sizes {sorted(int(s['gop']) for s in shots)}"
    )
    return {
        "streams": STREAMS,
        "snapshots": len(shots),
        "snapshot_errors": len(recorded["snapshot_errors"]),
        "snapshot_ms_p50": round(pct(total, 0.5), 1),
        "snapshot_ms_p95": round(pct(total, 0.95), 1),
        "snapshot_decode_watermark_ms_p50": round(pct(decode, 0.5), 1),
        "snapshot_decode_watermark_ms_p95": round(pct(decode, 0.95), 1),
        "idle_decode_watermark_ms_p50": round(statistics.median(idle) * 1000, 1),
        "recorder_cpu_per_stream": round(recorder_cpu, 4),
        "recorder_cpu_per_stream_by_difference": round(difference, 4),
        "recorder_wall_per_stream": round(recorder_wall, 4),
        "segment_hash_cpu_per_stream": round(segment_cpu, 5),
        "segment_hash_ms_per_segment": round(per_segment_ms, 2),
        "segments": files["segments"],
        "server_cpu_relay_only": round(plain["server_cpu"], 4),
        "server_cpu_relay_and_record": round(recorded["server_cpu"], 4),
        "fps_median_while_recording": round(statistics.median(recorded["fps"]), 1),
        "fps_min_while_recording": round(min(recorded["fps"]), 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--record", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--snapshots", type=int, default=20)
    arguments = parser.parse_args()
    if arguments.serve:
        asyncio.run(serve(arguments.record, arguments.data))
    else:
        print(json.dumps(asyncio.run(main(arguments))))
