"""Child process for the SIGKILL tests: relays and records a test pattern until killed.

``record_child.py PATH [DATABASE_URL CASE_ID ROOM]``: with a database, the recorder's
segment marks go on that case's chain every second, as live puts them there every 10 s.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from pathlib import Path
from typing import Any

import av

import recordings.models  # noqa: F401  (the tables the chain refers to)
import server.db.models  # noqa: F401
from recordings.recorder import Recorder
from recordings.segments import SegmentLog, append_segment
from server.db.engine import create_engine, session_factory
from server.settings import Settings
from signaling.client import MediaClient
from signaling.relay import RelayConfig, RelayRoom

LOOPBACK = ("127.0.0.1",)


async def main(path: Path, database: list[str]) -> None:
    recorder = Recorder(path)
    if database:
        url, case_id, room_id = database[0], int(database[1]), database[2]
        settings = Settings.for_tests(path.parent, database_url=url)
        db = session_factory(create_engine(settings))
        segments = SegmentLog(functools.partial(append_segment, db, case_id, room_id))
        recorder.segment_s = 1.0
        recorder.on_segment = functools.partial(segments.mark, path.stem, path)
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
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2:]))
