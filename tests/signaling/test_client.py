"""The Python participant: saving what it receives, and publishing a media file."""

from __future__ import annotations

from pathlib import Path

import av

from signaling.client import MediaClient, pattern_frame
from signaling.relay import RelayConfig, RelayRoom

LOOPBACK = ("127.0.0.1",)


def write_clip(path: Path, seconds: int = 3) -> None:
    """A small VP8 WebM of the test pattern for the file publisher to play."""
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(seconds * 30):
            frame = pattern_frame(i)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


async def test_file_publisher_and_saving_viewer(tmp_path: Path) -> None:
    clip = tmp_path / "site-camera.webm"
    write_clip(clip)
    room = RelayRoom("client", RelayConfig(host_addresses=LOOPBACK))
    camera = MediaClient(host_addresses=LOOPBACK)
    viewer = MediaClient(host_addresses=LOOPBACK, save_dir=tmp_path / "saved")
    try:
        answer = await room.add_participant("camera", await camera.publish_offer(str(clip)))
        await camera.accept_publish_answer(answer)
        offer = await room.subscribe("viewer", "camera")
        await room.accept_answer(
            "viewer", "camera", await viewer.accept_subscription("camera", offer)
        )
        await viewer.wait_for_video("camera", frames=30, within=10)
    finally:
        await viewer.close()
        await camera.close()
        await room.close()
    summary = viewer.summary()
    assert summary["received"]["camera"]["resolution"] == "640x480"
    saved = viewer.saved["camera"]
    assert saved.size > 0 and saved.duration > 0.5
    with av.open(str(saved.path)) as container:
        assert container.streams.video[0].width == 640
        assert sum(1 for _ in container.decode(video=0)) >= 25
