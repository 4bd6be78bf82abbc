"""Child process for the SIGKILL test: relays and records a test pattern until killed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import av

from recordings.recorder import Recorder
from signaling.client import MediaClient
from signaling.relay import RelayConfig, RelayRoom

LOOPBACK = ("127.0.0.1",)


async def main(path: Path) -> None:
    recorder = Recorder(path)
    started = asyncio.Event()

    def record(_pid: str, kind: str, packet: av.Packet[Any]) -> None:
        recorder.write(kind, packet)
        if recorder.started:
            started.set()

    room = RelayRoom("killed", RelayConfig(host_addresses=LOOPBACK), on_packet=record)
    client = MediaClient(host_addresses=LOOPBACK)
    answer = await room.add_participant("applicant", await client.publish_offer("testsrc"))
    await client.accept_publish_answer(answer)
    await started.wait()
    print("recording", flush=True)
    await asyncio.sleep(60)  # the parent kills us long before


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
