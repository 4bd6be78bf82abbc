"""``yunkan join`` against the real server: admitted, receives, saves, prints a summary."""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from signaling import cli_join
from tests.booking.servers import free_port
from tests.conftest import _unavailable
from tests.signaling.conftest import LiveServer

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with GStreamer's introspection bindings


def test_parse_join_url() -> None:
    assert cli_join.parse_join_url("https://a.cn/live/j/abc.def") == (
        "wss://a.cn/live/ws",
        "abc.def",
    )
    assert cli_join.parse_join_url("http://h:8080/x/live/j/t") == ("ws://h:8080/x/live/ws", "t")
    with pytest.raises(ValueError, match="not a join link"):
        cli_join.parse_join_url("ftp://a.cn/live/j/abc")


def test_add_parser_defaults() -> None:
    parser = argparse.ArgumentParser()
    cli_join.add_parser(parser.add_subparsers())
    args = parser.parse_args(["join", "https://a.cn/live/j/t", "--admit", "--duration", "5"])
    assert (args.publish, args.admit, args.duration, args.func) == (
        "testsrc",
        True,
        5.0,
        cli_join.run,
    )


async def test_cli_joins_publishes_saves_and_prints(
    live: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inspector = live.client("staff-1", "inspector", auto_admit=True)
    await inspector.connect()
    url = str(live.server.make_url("/live/j/" + live.token("applicant-2", "applicant")))
    saved = tmp_path / "inspector.webm"
    args = argparse.Namespace(
        url=url,
        publish="testsrc",
        save=str(saved),
        duration=2.5,
        admit=False,
        insecure=False,
        wait=10.0,
    )
    code = await cli_join.join(args)
    assert code == 0, (inspector.errors, [m["type"] for m in inspector.messages])
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-2 if "saved" in out else -1])
    got = summary["received"]["staff-1"]
    assert got["resolution"] == "640x480" and got["video_frames"] > 30
    assert summary["sent"]["video_frames"] > 30
    assert "received from staff-1" in out
    assert inspector.media.received["applicant-2"].video_frames > 30
    with av.open(str(saved)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames > 20


# SMPTE colour bars (GStreamer's videotestsrc pattern=smpte), top row: seven bars of 640/7 px.
SMPTE_TOP = [(235, 235, 235), (235, 235, 16), (16, 235, 235), (16, 235, 16), (235, 16, 235)]
SMPTE_TOP += [(235, 16, 16), (16, 16, 235)]


@pytest.fixture
def rtsp_camera(tmp_path: Path) -> Iterator[str]:
    """rtsp://127.0.0.1:PORT/cam served by GStreamer from Debian's python3 (a site camera)."""
    check = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
        capture_output=True,
    )
    if check.returncode != 0:
        _unavailable(
            "GStreamer's RTSP server",
            "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good",
        )
    port = free_port()
    camera = subprocess.Popen(
        [SYSTEM_PYTHON, str(Path(__file__).with_name("rtsp_camera.py")), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert camera.stdout is not None and camera.stdout.readline().strip() == "ready"
        yield f"rtsp://127.0.0.1:{port}/cam"
    finally:
        camera.kill()
        camera.wait()
        if camera.stdout is not None:
            camera.stdout.close()


async def test_cli_publishes_an_rtsp_site_camera(
    live: LiveServer, rtsp_camera: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fixed camera joins with ``yunkan join URL --publish rtsp://…``; the inspector sees
    its picture (decoded from MJPEG, re-encoded to VP8 once by the client, relayed as is)."""
    inspector = live.client("staff-1", "inspector", auto_admit=True, source=None, keep=True)
    await inspector.connect()
    url = str(live.server.make_url("/live/j/" + live.token("applicant-3", "applicant")))
    args = argparse.Namespace(
        url=url,
        publish=rtsp_camera,
        save=None,
        duration=3.0,
        admit=False,
        insecure=False,
        wait=10.0,
    )
    assert await cli_join.join(args) == 0, inspector.errors
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["sent"]["video_frames"] > 15  # 15 fps camera, 3 s
    media = inspector.media.received["applicant-3"]
    assert (media.width, media.height) == (640, 480) and media.video_frames > 15
    assert media.last_frame is not None
    image = media.last_frame.to_image()  # type: ignore[no-untyped-call]
    for index, colour in enumerate(SMPTE_TOP):
        pixel = image.getpixel((index * 640 // 7 + 45, 40))
        assert isinstance(pixel, tuple)
        assert all(abs(a - b) < 48 for a, b in zip(pixel, colour, strict=False)), (index, pixel)


async def test_cli_console_link_needs_the_login_token(
    live: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """``yunkan join`` with an inspector's link: refused without ``--login-token``,
    admits and receives with it."""
    url = str(live.server.make_url("/live/j/" + live.token("staff-1", "inspector")))
    args = argparse.Namespace(
        url=url,
        publish="none",
        save=None,
        duration=2.0,
        admit=True,
        insecure=False,
        wait=10.0,
        login_token=None,
    )
    assert await cli_join.join(args) == 1
    assert "请先用工作人员账号登录" in capsys.readouterr().err  # login_required, in zh-CN
    applicant = live.client("applicant-2", "applicant")
    await applicant.connect()
    args.login_token = await live.login(1)
    assert await cli_join.join(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["received"]["applicant-2"]["video_frames"] > 10
