"""Capacity of one host: 1:1 pairs held at 25+ fps by ``yunkan serve --workers N`` against
one process, through the real server (HTTP, WebSocket signaling, the relay).

    .venv/bin/python bench/capacity.py                 # Redis on 127.0.0.1:6379 needed
    .venv/bin/python bench/capacity.py --rounds 2 --max-pairs 24 --admit-lag-ms 60

Each run starts a fresh ``yunkan serve`` (``--workers 1``: the embedded default, one
process; ``--workers N``: N workers sharing the port through SO_REUSEPORT, rooms placed
through the Redis directory). Rooms of two participants are added ``--step`` at a time;
each participant joins through the *shared* port (so the kernel picks a worker and the
second one of a room is often redirected with ``wrong_node``), publishes pre-encoded
640x480 VP8 (~1 Mbit/s, 30 fps) + Opus looped in real time and counts the frames it
receives by RTP marker bit (``bench/relay.py``'s light loaders, so the load generator
stays as cheap as it can). A level *holds* when every subscriber of every admitted room
gets 25+ video fps over ``--window`` seconds (a failed level is measured once more); the
ramp stops at the first level that does not hold. Runs alternate one process / workers
(``--rounds``), so a slow spell of the shared machine hits both.

A last run (``--admit-lag-ms`` or ``--admit-streams`` > 0) gives the workers admission
limits (``YUNKAN_ADMIT_MAX_LAG_MS``, ``YUNKAN_ADMIT_MAX_STREAMS``) and ramps to
``--max-pairs`` without stopping, counting rooms refused with ``node_busy`` and the fps of
the rooms admitted.

The load generator runs on the same 2 cores as the server: the figures are the host's
capacity *with its own load generator on it*. The load average is printed with each level.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _loadgen import LoopTrack  # noqa: E402
from relay import count_lightly, encode_media, load_average  # noqa: E402

from signaling.client import MediaClient  # noqa: E402
from signaling.packets import route_keyframe_requests  # noqa: E402
from signaling.tokens import JoinGrant, TokenSigner  # noqa: E402
from signaling.wsclient import SignalingClient  # noqa: E402
from tests.server.workers import SECRET, Workers, cpu_seconds, running_workers  # noqa: E402
from tests.support import redis_reachable  # noqa: E402

LOOPBACK = ("127.0.0.1",)
REDIS = "redis://127.0.0.1:6379/0"
Media = tuple[list[tuple[bytes, bool]], list[bytes]]


class Loader(SignalingClient):
    """A participant that publishes looped pre-encoded media and counts lightly."""

    def __init__(self, ws: str, token: str, media: Media) -> None:
        media_client = MediaClient(host_addresses=LOOPBACK, decode=False)
        super().__init__(ws, token, source=None, media=media_client)
        self.packets = media

    async def _handle(self, message: dict[str, Any]) -> None:
        if message["type"] == "admitted":
            self.state = "admitted"
            vp8, opus = self.packets
            video = LoopTrack("video", vp8, 90000, 3000)
            audio = LoopTrack("audio", [(p, True) for p in opus], 48000, 960)
            offer = await self.media.publish_offer([audio, video])
            assert self.media.publish_pc is not None
            for transceiver in self.media.publish_pc.getTransceivers():
                if transceiver.sender.track is video:
                    route_keyframe_requests(transceiver.sender, video.restart)
            await self.send({"type": "offer", "sdp": offer})
            return
        await super()._handle(message)
        if message["type"] == "offer":
            count_lightly(self.media, message["publisher"])


class Run:
    def __init__(self, workers: Workers, media: Media, label: str) -> None:
        self.workers, self.media, self.label = workers, media, label
        self.signer = TokenSigner(SECRET)
        self.rooms: list[tuple[Loader, Loader]] = []
        self.refused = 0
        self.redirected = 0
        self.loadgen_cpu = 0.0

    async def add_room(self, index: int) -> None:
        room = f"cap-{self.label}-{index}"
        pair = []
        for who in ("a", "b"):
            token = self.signer.issue(
                JoinGrant(room, f"guest-{who}{index}", "expert", who), ttl=600
            )
            loader = Loader(self.workers.ws(self.workers.url), token, self.media)
            pair.append(loader)
            await loader.connect()
            # A redirect closes the first socket with 4409 and connects again: only another
            # close (node_busy's 4503) ends the wait early.
            await loader.wait_for(
                lambda lo=loader: lo.state == "admitted" or lo.close_code not in (None, 4409),
                within=60,
                what="admission",
            )
            if any(e["code"] == "wrong_node" for e in loader.errors):
                self.redirected += 1
            if loader.state != "admitted":  # refused (node_busy): the room is not opened
                self.refused += 1
                for done in pair:
                    await done.close()
                return
        self.rooms.append((pair[0], pair[1]))

    def frames(self) -> dict[tuple[int, str], int]:
        return {
            (id(lo), pub): media.video_frames
            for pair in self.rooms
            for lo in pair
            for pub, media in lo.media.received.items()
        }

    async def measure(self, seconds: float) -> tuple[list[float], float]:
        """Video fps of every subscriber, and the servers' CPU (cores) over the window;
        ``self.loadgen_cpu`` is this process's (the load generator's) CPU in cores."""
        pids = self.workers.server_pids()
        before, cpu0, t0 = self.frames(), sum(map(cpu_seconds, pids)), time.monotonic()
        own0 = time.process_time()
        await asyncio.sleep(seconds)
        after, t1 = self.frames(), time.monotonic()
        cpu1 = sum(map(cpu_seconds, pids))
        self.loadgen_cpu = (time.process_time() - own0) / (t1 - t0)
        expected = 2 * len(self.rooms)
        fps = [(after[k] - before.get(k, 0)) / (t1 - t0) for k in after]
        fps += [0.0] * (expected - len(fps))  # a subscription that never came counts as 0
        return fps, (cpu1 - cpu0) / (t1 - t0)

    def lost(self) -> int:
        """Peer connections of admitted rooms that are not connected (failed, closed)."""
        states = []
        for pair in self.rooms:
            for lo in pair:
                pcs = [lo.media.publish_pc, *lo.media.subscriptions.values()]
                states += [pc.connectionState for pc in pcs if pc is not None]
        return sum(state in ("failed", "closed", "disconnected") for state in states)

    async def close(self) -> None:
        await asyncio.gather(*(lo.close() for pair in self.rooms for lo in pair))


async def ramp(
    label: str, count: int, media: Media, args: argparse.Namespace, admit: bool = False
) -> dict[str, Any]:
    env = {"YUNKAN_LOG_LEVEL": "ERROR"}
    if count > 1 or admit:
        env |= {"REDIS_URL": REDIS, "YUNKAN_REDIS_PREFIX": f"ykcap:{label}:{time.time_ns()}:"}
    if admit:
        env["YUNKAN_ADMIT_MAX_LAG_MS"] = str(args.admit_lag_ms)
        env["YUNKAN_ADMIT_MAX_STREAMS"] = str(args.admit_streams)
    levels: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="yk-capacity-") as tmp:
        async with running_workers(Path(tmp) / "var", count, env) as workers:
            run = Run(workers, media, label)
            try:
                pairs = 0
                while pairs < args.max_pairs:
                    for _ in range(args.step):
                        await run.add_room(pairs)
                        pairs += 1
                    await asyncio.sleep(args.settle)
                    fps, cpu = await run.measure(args.window)
                    held = bool(fps) and min(fps) >= 25
                    if not held and not admit:
                        fps, cpu = await run.measure(args.window)  # once more: noise
                        held = bool(fps) and min(fps) >= 25
                    level = {
                        "pairs": len(run.rooms),
                        "asked": pairs,
                        "refused": run.refused,
                        "held": held,
                        "min_fps": round(min(fps, default=0), 1),
                        "median_fps": round(statistics.median(fps), 1) if fps else 0,
                        "server_cpu": round(cpu, 2),
                        "loadgen_cpu": round(run.loadgen_cpu, 2),
                        "lost_connections": run.lost(),
                        "redirected": run.redirected,
                        "load": load_average(),
                    }
                    levels.append(level)
                    print(
                        f"  {label:9} {level['asked']:3} rooms asked, {level['pairs']:3} open,"
                        f" {level['refused']:2} refused: min {level['min_fps']:5.1f} fps,"
                        f" median {level['median_fps']:5.1f}, server {cpu:4.2f} cores,"
                        f" load generator {run.loadgen_cpu:4.2f},"
                        f" {level['lost_connections']} connections lost,"
                        f" {'held' if held else 'NOT held'} (load {level['load']})",
                        flush=True,
                    )
                    if not held and not admit:
                        break
            finally:
                await run.close()
    held_pairs = [lv["pairs"] for lv in levels if lv["held"]]
    return {"levels": levels, "pairs_held": max(held_pairs, default=0)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    if not redis_reachable(REDIS):
        raise SystemExit(f"Redis is not reachable at {REDIS}: --workers needs it")
    media = encode_media()
    print(
        f"capacity of one host: 1:1 rooms at 25+ fps, one process vs --workers {args.workers}"
        f" (load average {load_average()})",
        flush=True,
    )
    held: dict[str, list[int]] = {"one": [], "workers": []}
    for r in range(args.rounds):
        order = [("one", 1), ("workers", args.workers)]
        for label, count in order if r % 2 == 0 else order[::-1]:
            result = await ramp(label, count, media, args)
            held[label].append(result["pairs_held"])
    admission: dict[str, Any] = {}
    if args.admit_lag_ms or args.admit_streams:
        result = await ramp("admit", args.workers, media, args, admit=True)
        last = result["levels"][-1] if result["levels"] else {}
        admission = {
            "admit_lag_ms": args.admit_lag_ms,
            "admit_streams": args.admit_streams,
            "asked": last.get("asked", 0),
            "open": last.get("pairs", 0),
            "refused": last.get("refused", 0),
            "min_fps_open": last.get("min_fps", 0),
            "median_fps_open": last.get("median_fps", 0),
        }
    return {
        "bench": "capacity",
        "workers": args.workers,
        "pairs_held_one_process": held["one"],
        "pairs_held_workers": held["workers"],
        "median_one_process": statistics.median(held["one"]),
        "median_workers": statistics.median(held["workers"]),
        **({"admission": admission} if admission else {}),
        "load_average_end": load_average(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-pairs", type=int, default=24)
    parser.add_argument("--step", type=int, default=2, help="rooms added per level")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--window", type=float, default=6.0)
    parser.add_argument("--admit-lag-ms", type=int, default=0, help="last run's lag limit")
    parser.add_argument(
        "--admit-streams", type=int, default=0, help="last run's forwarded-stream limit per worker"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        print(json.dumps(asyncio.run(main(parse_args()))))
