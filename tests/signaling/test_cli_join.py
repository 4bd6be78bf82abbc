"""``yunkan join`` against the real server: admitted, receives, saves, prints a summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import pytest

from signaling import cli_join
from tests.signaling.conftest import LiveServer


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
