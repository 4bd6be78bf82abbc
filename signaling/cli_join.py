"""``yunkan join URL``: join a live room from the command line.

For fixed site cameras joining an inspection (``--publish rtsp://…``), for tests and for
load. It speaks the same protocol as the browser pages (``docs/signaling.md``) and at the
end prints what it sent and received: frames, resolution, frame rate per remote publisher,
and the outages (the connection dropped and was rebuilt: count and durations), then one
JSON line with the same figures. When the connection drops it reconnects as the browser
does (new WebSocket resuming the session, new peer connections; see
``signaling.wsclient``). Exit status: 0 a call without outage, 1 not admitted, an error,
or an outage it never recovered from, 3 outages it recovered from.

Wire-up (``server/cli.py``)::

    from signaling import cli_join
    cli_join.add_parser(subparsers)        # adds "join"; its func is cli_join.run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:  # aiortc and PyAV load only when ``join`` runs, not for every command
    from signaling.wsclient import SignalingClient


def parse_join_url(url: str) -> tuple[str, str]:
    """``(ws_url, token)`` from a join link ``http(s)://host/live/j/<token>``."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if parts.scheme not in ("http", "https") or "/live/j/" not in path:
        raise ValueError(f"not a join link: {url!r} (expected https://host/live/j/TOKEN)")
    prefix, _, token = path.rpartition("/live/j/")
    if not token:
        raise ValueError(f"the join link {url!r} has no token")
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, f"{prefix}/live/ws", "", "")), token


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "join",
        help="join a live room with a join link",
        description="Join a live video room, publish a test pattern, a file or a camera, "
        "save what arrives, and print what was sent and received.",
    )
    p.add_argument("url", help="join link (https://host/live/j/TOKEN)")
    p.add_argument(
        "--publish",
        default="testsrc",
        metavar="testsrc|FILE|RTSP-URL|none",
        help="what to send (default: testsrc, a 640x480 test pattern with a tone)",
    )
    p.add_argument(
        "--save",
        metavar="FILE",
        help="save the first remote participant's media (WebM, as received)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to stay once admitted (default 30; 0 = until Ctrl-C)",
    )
    p.add_argument("--admit", action="store_true", help="as staff: admit everyone who waits")
    p.add_argument(
        "--login-token",
        default=os.environ.get("YUNKAN_LOGIN_TOKEN") or None,
        metavar="TOKEN",
        help="staff login token (from POST /api/v1/auth/login) for a console link; "
        "default $YUNKAN_LOGIN_TOKEN",
    )
    p.add_argument(
        "--insecure", action="store_true", help="accept a self-signed TLS certificate (development)"
    )
    p.add_argument(
        "--relay-only",
        action="store_true",
        help="send media through the server's TURN relay only (networks that block UDP peers)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=300.0,
        metavar="S",
        help="give up if not admitted within S seconds (default 300)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    return asyncio.run(join(args))


async def join(args: argparse.Namespace) -> int:
    from signaling.client import MediaClient
    from signaling.wsclient import SignalingClient

    try:
        ws_url, token = parse_join_url(args.url)
    except ValueError as err:
        print(f"yunkan join: {err}", file=sys.stderr)
        return 2
    source = None if args.publish in ("", "none") else args.publish
    save_dir = Path(tempfile.mkdtemp(prefix="yunkan-join-")) if args.save else None
    media = MediaClient(save_dir=save_dir, relay_only=getattr(args, "relay_only", False))
    client = SignalingClient(
        ws_url,
        token,
        source=source,
        media=media,
        auto_admit=args.admit,
        ssl=not args.insecure,
        login_token=getattr(args, "login_token", None),
        on_message=lambda m: _log(m),
        reconnect=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
    code = 0
    try:
        await client.connect()
        await client.wait_for(
            lambda: client.state not in ("connecting", "waiting"),
            within=args.wait,
            what="admission",
        )
        if client.state != "admitted":
            print(f"yunkan join: {client.state} ({_last_error(client)})", file=sys.stderr)
            code = 1
        else:
            with contextlib.suppress(TimeoutError):
                await client.wait_for(
                    lambda: stop.is_set() or client.gave_up,
                    within=args.duration or 1e9,
                    what="the end",
                )
    except TimeoutError as err:
        print(f"yunkan join: {err}", file=sys.stderr)
        code = 1
    finally:
        summary = client.media.summary()
        summary["outages"] = client.outage_summary()
        await client.close()
    if code == 0 and summary["outages"]["count"]:
        code = 3 if summary["outages"]["recovered"] and not client.gave_up else 1
    _print_summary(summary)
    if args.save and save_dir is not None:
        # The client writes one WebM per remote publisher, packets as they came (no
        # transcoding); the first publisher's file becomes FILE.
        saved = [r for _, r in sorted(media.saved.items()) if r.size]
        if saved:
            shutil.move(str(saved[0].path), args.save)
            print(f"saved {saved[0].path.stem} ({saved[0].duration:.1f} s) to {args.save}")
        shutil.rmtree(save_dir, ignore_errors=True)
    return code


def _last_error(client: SignalingClient) -> str:
    return client.errors[-1]["message"] if client.errors else f"close code {client.close_code}"


def _log(message: dict[str, Any]) -> None:
    kind = message.get("type")
    if kind in ("welcome", "waiting", "admitted", "declined", "removed", "ended", "error"):
        detail = message.get("message") or message.get("reason") or message.get("participant") or ""
        print(f"← {kind} {detail}".rstrip(), file=sys.stderr)


def _print_summary(summary: dict[str, Any]) -> None:
    sent = summary["sent"]
    print(f"sent: tracks {','.join(sent['tracks']) or 'none'}, video frames {sent['video_frames']}")
    for who, got in summary["received"].items():
        print(
            f"received from {who}: video frames {got['video_frames']}, "
            f"audio frames {got['audio_frames']}, resolution {got['resolution']}, "
            f"{got['fps']} fps"
        )
    outages = summary.get("outages") or {"count": 0}
    if outages["count"]:
        durations = ", ".join(f"{d} s" for d in outages["durations"])
        state = "recovered" if outages["recovered"] else "NOT recovered"
        print(f"outages: {outages['count']} ({durations}), {state}")
    print(json.dumps(summary, ensure_ascii=False))
