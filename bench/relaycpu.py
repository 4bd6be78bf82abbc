"""A/B of the relay server's CPU per forwarded A+V stream: this checkout against another.

    .venv/bin/python bench/relaycpu.py --base /work/main --streams 4 24 --rounds 3

The same load as ``bench/relay.py``'s "pairs" phase (rooms of two people publishing
pre-encoded 640x480 VP8 ~1 Mbit/s 30 fps + Opus to each other, subscribers counting RTP
marker bits), but the relay server child is started from ``--base``'s checkout or from this
one, alternately (the order flips every round), so that a slow spell of a shared machine
hits both. Each run is a fresh server process; its user+sys CPU (``/proc``) over
``--windows`` windows of 6 s gives CPU per forwarded stream (normalised to 30 delivered fps,
as ``bench/relay.py`` does). Figures per stream count: the median of each side's windows,
the per-round ratio (this / base) and its median. Load averages are printed with every
round. The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _loadgen import ChildServer  # noqa: E402
from relay import encode_media, join, load_average, measure  # noqa: E402

from signaling.client import MediaClient  # noqa: E402

WINDOW = 6.0
RENICE = 0


async def run_side(tree: Path, media: Any, streams: int, windows: int) -> list[tuple[float, float]]:
    """(CPU per stream at 30 fps, mean fps) per window for ``tree``'s relay."""
    argv = [sys.executable, str(tree / "bench" / "relay.py"), "--serve", "relay"]
    server = ChildServer(argv, renice=RENICE)
    await server.connect()
    clients: dict[str, MediaClient] = {}
    try:
        for i in range(streams // 2):
            await join(server, f"ab{i}", [f"a{i}", f"b{i}"], media, clients)
        await asyncio.sleep(3)
        figures = []
        for _ in range(windows):
            cpu, fps, _ = await measure(server, clients, WINDOW)
            mean_fps = statistics.mean(fps)
            figures.append((cpu / len(fps) / max(mean_fps, 1.0) * 30, mean_fps))
        return figures
    finally:
        await asyncio.gather(*(c.close() for c in clients.values()))
        await server.stop()


async def main(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    ours = ROOT
    media = encode_media()
    print(f"relay CPU A/B: base {base}, this {ours}; load average {load_average()}", flush=True)
    result: dict[str, Any] = {"base": str(base), "this": str(ours), "levels": {}}
    for streams in args.streams:
        seen: dict[str, list[tuple[float, float]]] = {"base": [], "this": []}
        ratios = []
        for round_no in range(args.rounds):
            order = [("base", base), ("this", ours)]
            if round_no % 2:
                order.reverse()
            medians = {}
            for name, tree in order:
                started = time.monotonic()
                windows = await run_side(tree, media, streams, args.windows)
                seen[name] += windows
                medians[name] = statistics.median(cpu for cpu, _ in windows)
                print(
                    f"  {streams:3} streams {name:4}: "
                    + ", ".join(f"{cpu:6.2%} at {fps:4.1f} fps" for cpu, fps in windows)
                    + f" per stream; median {medians[name]:6.2%}"
                    f" ({time.monotonic() - started:.0f} s, load {load_average()})",
                    flush=True,
                )
            ratios.append(medians["this"] / medians["base"])
        level: dict[str, Any] = {
            name: round(statistics.median(cpu for cpu, _ in windows), 5)
            for name, windows in seen.items()
        }
        level["fps_base"] = round(statistics.median(f for _, f in seen["base"]), 1)
        level["fps_this"] = round(statistics.median(f for _, f in seen["this"]), 1)
        level["round_ratios"] = [round(r, 3) for r in ratios]
        level["ratio"] = round(statistics.median(ratios), 3)
        print(
            f"  {streams:3} streams: this/base {level['ratio']:.3f} "
            f"(rounds {', '.join(f'{r:.3f}' for r in ratios)})",
            flush=True,
        )
        result["levels"][str(streams)] = level
    result["load_average"] = load_average()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the other checkout (e.g. /work/main)")
    parser.add_argument("--streams", type=int, nargs="+", default=[4, 24])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument(
        "--renice", type=int, default=0, help="nice value for this process and the servers"
    )
    arguments = parser.parse_args()
    if arguments.renice:
        RENICE = arguments.renice
        os.setpriority(os.PRIO_PROCESS, 0, RENICE)
    result = asyncio.run(main(arguments, Path(arguments.base).resolve()))
    result["renice"] = RENICE
    print(json.dumps(result))
