"""REMB under load: does a busy server tell its publishers to slow down? (issue 18)

    .venv/bin/python bench/rembload.py            # about four minutes, 127.0.0.1 only

The relay runs in a child process (as in bench/relay.py), ``RelayConfig.kernel_timestamps``
on or off. ``--publishers`` aiortc clients (this process) publish the cached 640x480 VP8
(~1 Mbit/s) and Opus to it; aiortc publishers offer no transport-cc, so the relay answers
with aiortc's REMB estimator, the path that fell to 0.71–0.81 Mbit/s under load. Each
publisher's video sender notes every REMB it gets.

Each round starts a fresh server with kernel timestamps on, then one with them off
(alternating which goes first), and for each measures a quiet window and then a loaded
window, in which ``--hogs`` CPU-bound processes (``while True: pass``) compete for the
machine's cores. Per window: the median REMB bitrate over all publishers (REMBs of the
last ``--window`` seconds), REMBs per second per publisher, and the server's user+sys CPU
per received SRTP packet. The figure of merit is loaded / quiet REMB for each mode (the
issue's goal: within 10 %). The load average is printed with every window; the last line
is JSON.

First (``--micro-rounds``, ``--micro-only``) the reader's own cost, A/B interleaved in this
process: CPU per 1200-byte datagram read at 3000/s from a sender process by asyncio's
datagram reader vs :class:`signaling.sockets.SocketReader` (recvmsg + ancillary data),
epoll wake-ups included, and the read step alone on a full queue (``read_step_only``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _loadgen import ChildServer, LoopTrack  # noqa: E402
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci  # noqa: E402
from relay import encode_media, load_average  # noqa: E402

from signaling.client import MediaClient  # noqa: E402
from signaling.packets import route_keyframe_requests  # noqa: E402
from signaling.relay import RelayConfig, RelayRoom  # noqa: E402

LOOPBACK = ("127.0.0.1",)
WARMUP = 6.0


async def serve(mode: str) -> None:
    room = RelayRoom("remb", RelayConfig(host_addresses=LOOPBACK, kernel_timestamps=mode == "on"))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            msg = json.loads(line)
            reply: dict[str, Any] = {}
            if msg["op"] == "publish":
                reply["sdp"] = await room.add_participant(msg["pid"], msg["sdp"])
            elif msg["op"] == "stats":
                paths = [p for ps in room.receive_paths.values() for p in ps]
                reply["packets"] = sum(p.packets for p in paths)
                reply["kernel"] = sum(len(p.readers) for p in paths)
                reply["dropped"] = room.sockets.dropped
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


class RembLog:
    """Every REMB a publisher's video sender receives: (monotonic time, bit/s)."""

    def __init__(self, sender: Any) -> None:
        self.values: list[tuple[float, int]] = []
        original = sender._handle_rtcp_packet

        async def handle(packet: Any) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, _ = unpack_remb_fci(packet.fci)
                except ValueError:
                    pass
                else:
                    self.values.append((time.monotonic(), bitrate))
            await original(packet)

        sender._handle_rtcp_packet = handle

    def since(self, start: float) -> list[int]:
        return [b for t, b in self.values if t >= start]


async def publish(server: ChildServer, media: Any, count: int) -> tuple[list[Any], list[RembLog]]:
    vp8, opus = media
    clients, logs = [], []
    for i in range(count):
        client = MediaClient(host_addresses=LOOPBACK, decode=False)
        video = LoopTrack("video", vp8, 90000, 3000)
        audio = LoopTrack("audio", [(p, True) for p in opus], 48000, 960)
        offer = await client.publish_offer([audio, video])
        assert client.publish_pc is not None
        for transceiver in client.publish_pc.getTransceivers():
            if transceiver.sender.track is video:
                route_keyframe_requests(transceiver.sender, video.restart)
                logs.append(RembLog(transceiver.sender))
        reply = await server.call(op="publish", pid=f"p{i}", sdp=offer)
        await client.accept_publish_answer(reply["sdp"])
        clients.append(client)
    return clients, logs


def start_hogs(count: int) -> list[subprocess.Popen[bytes]]:
    code = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def stop_hogs(hogs: list[subprocess.Popen[bytes]]) -> None:
    for hog in hogs:
        hog.kill()
        hog.wait()


async def window(
    server: ChildServer, logs: list[RembLog], seconds: float, hogs: int
) -> dict[str, Any]:
    procs = start_hogs(hogs)
    try:
        before = await server.call(op="stats")
        cpu0, start = server.cpu_seconds(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, elapsed = server.cpu_seconds(), time.monotonic() - start
        after = await server.call(op="stats")
    finally:
        stop_hogs(procs)
    rembs = [b for log in logs for b in log.since(start)]
    packets = after["packets"] - before["packets"]
    return {
        "hogs": hogs,
        "load": load_average(),
        "remb_mbps": round(statistics.median(rembs) / 1e6, 3) if rembs else None,
        "remb_min_mbps": round(min(rembs) / 1e6, 3) if rembs else None,
        "rembs_per_s": round(len(rembs) / len(logs) / elapsed, 2),
        "cpu_us_per_packet": round((cpu1 - cpu0) / packets * 1e6, 1) if packets else None,
        "packets_per_s": round(packets / elapsed),
        "kernel_sockets": after["kernel"],
        "dropped": after["dropped"] - before["dropped"],
    }


async def one_server(mode: str, media: Any, args: argparse.Namespace) -> dict[str, Any]:
    server = ChildServer([sys.executable, __file__, "--serve", mode])
    await server.connect()
    clients: list[Any] = []
    try:
        clients, logs = await publish(server, media, args.publishers)
        await asyncio.sleep(WARMUP)
        quiet = await window(server, logs, args.window, 0)
        loaded = await window(server, logs, args.window, args.hogs)
    finally:
        for client in clients:
            await client.close()
        await server.stop()
    ratio = (
        round(loaded["remb_mbps"] / quiet["remb_mbps"], 3)
        if loaded["remb_mbps"] and quiet["remb_mbps"]
        else None
    )
    result = {"mode": mode, "quiet": quiet, "loaded": loaded, "loaded_over_quiet": ratio}
    print(json.dumps(result), flush=True)
    return result


def summary(results: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    mine = [r for r in results if r["mode"] == mode]

    def med(values: list[Any]) -> Any:
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 3) if values else None

    return {
        "rounds": len(mine),
        "quiet_remb_mbps": med([r["quiet"]["remb_mbps"] for r in mine]),
        "loaded_remb_mbps": med([r["loaded"]["remb_mbps"] for r in mine]),
        "loaded_over_quiet": med([r["loaded_over_quiet"] for r in mine]),
        "loaded_over_quiet_all": [r["loaded_over_quiet"] for r in mine],
        "quiet_rembs_per_s": med([r["quiet"]["rembs_per_s"] for r in mine]),
        "loaded_rembs_per_s": med([r["loaded"]["rembs_per_s"] for r in mine]),
        "quiet_cpu_us_per_packet": med([r["quiet"]["cpu_us_per_packet"] for r in mine]),
        "loaded_cpu_us_per_packet": med([r["loaded"]["cpu_us_per_packet"] for r in mine]),
        "loaded_dropped": sum(r["loaded"]["dropped"] for r in mine),
        "load_quiet": med([r["quiet"]["load"] for r in mine]),
        "load_loaded": med([r["loaded"]["load"] for r in mine]),
    }


class Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.count = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.count += 1


async def read_cost(kernel: bool, rate: int, seconds: float) -> float:
    """CPU µs of this process per datagram read, asyncio's reader or ours, at ``rate``/s
    from a sender process (1200-byte datagrams, as video)."""
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    if kernel:
        from signaling.sockets import SocketTally, read_with_kernel_times

        assert read_with_kernel_times(transport, sink, SocketTally()) is not None
    port = transport.get_extra_info("sockname")[1]
    code = (
        "import socket, time, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"n, gap, end = 0, 1 / {rate}, time.monotonic() + {seconds}\n"
        "t = time.monotonic()\n"
        "while t < end:\n"
        "    s.sendto(b'x' * 1200, ('127.0.0.1', %d))\n"
        "    n += 1\n"
        "    t += gap\n"
        "    time.sleep(max(0, t - time.monotonic()))\n" % port
    )
    cpu0 = time.process_time()
    sender = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    await sender.wait()
    await asyncio.sleep(0.05)
    cpu = time.process_time() - cpu0
    transport.close()
    return cpu / max(sink.count, 1) * 1e6


async def drain_cost(count: int = 2000) -> dict[str, float]:
    """CPU µs per datagram of the read step alone, on a queue of ``count`` datagrams:
    asyncio's ``_read_ready`` (one per call) vs the reader one per call and batched."""
    from signaling import sockets

    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = sock.getsockname()

    def best(read: Any, calls: int) -> float:
        fastest = float("inf")
        for _ in range(7):
            for _ in range(count):
                out.sendto(b"x" * 1200, address)
            time.sleep(0.005)
            cpu = time.process_time()
            for _ in range(calls):
                read()
            fastest = min(fastest, (time.process_time() - cpu) / count * 1e6)
        return round(fastest, 2)

    try:
        stock = best(transport._read_ready, count)
        reader = sockets.SocketReader(transport, sink, sockets.SocketTally())
        batch = sockets.BATCH
        sockets.BATCH = 1
        single = best(reader.read_ready, count)
        sockets.BATCH = batch
        batched = best(reader.read_ready, count // batch + 1)
    finally:
        sockets.BATCH = batch
        out.close()
        transport.close()
    return {"asyncio": stock, "reader_one_per_wakeup": single, "reader_batched": batched}


async def micro(rounds: int) -> dict[str, Any]:
    costs: dict[str, list[float]] = {"asyncio": [], "kernel": []}
    for i in range(rounds):
        order = ("asyncio", "kernel") if i % 2 == 0 else ("kernel", "asyncio")
        for name in order:
            costs[name].append(await read_cost(name == "kernel", 3000, 3.0))
    out = {
        name: {"median_us": round(statistics.median(v), 2), "all": [round(x, 2) for x in v]}
        for name, v in costs.items()
    }
    out["load"] = load_average()
    out["read_step_only"] = await drain_cost()
    print(json.dumps({"read_cost": out}), flush=True)
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    read = await micro(args.micro_rounds)
    if args.micro_only:
        return {"bench": "rembload", "read_cost_us_per_datagram": read}
    media = encode_media()
    results = []
    for i in range(args.rounds):
        order = ("on", "off") if i % 2 == 0 else ("off", "on")
        for mode in order:
            results.append(await one_server(mode, media, args))
    return {
        "bench": "rembload",
        "read_cost_us_per_datagram": read,
        "publishers": args.publishers,
        "hogs": args.hogs,
        "window_s": args.window,
        "kernel_timestamps_on": summary(results, "on"),
        "kernel_timestamps_off": summary(results, "off"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=("on", "off"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--hogs", type=int, default=(os.cpu_count() or 2) * 2)
    parser.add_argument("--window", type=float, default=12.0)
    parser.add_argument("--micro-rounds", type=int, default=6)
    parser.add_argument("--micro-only", action="store_true")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
    else:
        print(json.dumps(asyncio.run(main(args))))
