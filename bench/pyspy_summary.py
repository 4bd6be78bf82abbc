"""Where the relay's CPU goes, from a ``py-spy record --format raw`` profile.

    .venv/bin/python bench/pyspy_summary.py profile.txt

``bench/sfu.py --profile S`` records one and prints this. Samples whose innermost frame
is ``EpollSelector.select`` are the event loop waiting (``--nonblocking`` sampling cannot
tell idle from busy) and samples of aiortc's parked decoder threads are idle too; both are
left out. Every other sample goes to exactly one group: the first group that matches,
walking its stack from the innermost frame outwards (so SRTP under ``DirectSend`` is
"SRTP protect", ``RtpPacket.parse`` under the receiver is "RtpPacket.parse", and the rest
of ``DirectSend`` itself is "relay: forwarding"). The inclusive list counts a function
wherever it is on the stack (groups overlap there).
"""

from __future__ import annotations

import collections
import re
import sys
from typing import Any

# (group, substrings of a frame "function (file:line)"), checked in this order per frame.
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    (
        "SRTP protect (send)",
        ("Session.protect", "\tprotect (pylibsrtp", "\tprotect_rtcp (pylibsrtp"),
    ),
    ("SRTP unprotect (receive)", ("unprotect",)),
    ("sendto (asyncio + kernel)", ("_SelectorDatagramTransport.sendto", "sendto (asyncio")),
    ("REMB estimator (aiortc rate.py)", ("aiortc/rate.py",)),
    (
        "RtpPacket.parse / RTCP parse",
        ("RtpPacket.parse", "unpack_header_extensions", "RtcpPacket.parse"),
    ),
    ("RTCP statistics + NACK (aiortc)", ("StreamStatistics", "NackGenerator")),
    (
        "jitter buffer + VP8 depayload (aiortc)",
        ("jitterbuffer.py", "codecs/vp8.py", "codecs/opus.py"),
    ),
    ("relay: frame assembly", ("signaling/assembly.py",)),
    ("transport-cc feedback", ("signaling/twcc.py",)),
    (
        "relay: forwarding (PacketSink, Publication, PacketTrack, PacketSender, DirectSend)",
        ("signaling/packets.py", "signaling/publication.py", "signaling/sending.py"),
    ),
    (
        "relay: receive path (PacketReceiver, InOrder)",
        ("signaling/receiving.py", "signaling/stepping.py"),
    ),
    ("relay: adaptation, recording, rest of signaling", ("signaling/", "recordings/")),
    (
        "aiortc receiver / DTLS transport, rest",
        ("aiortc/rtcrtpreceiver.py", "aiortc/rtcdtlstransport.py"),
    ),
    (
        "aiortc RTCP loops (sender/receiver reports, REMB send)",
        ("aiortc/rtcrtpsender.py", "aiortc/rtp.py"),
    ),
    ("aiortc, other", ("aiortc/",)),
    ("ICE / STUN (aioice)", ("aioice/",)),
    ("asyncio event loop", ("asyncio/",)),
]

INCLUSIVE = [
    "datagram_received",
    "PacketReceiver._start",
    "RTCDtlsTransport._handle_rtp_data",
    "RTCDtlsTransport._handle_rtcp_data",
    "RTCRtpReceiver._handle_rtp_packet",
    "RemoteBitrateEstimator.add",
    "RtpPacket.parse",
    "PacketSink.put",
    "Publication.feed",
    "PacketTrack.offer",
    "PacketSender.forward",
    "DirectSend._send",
    "RTCRtpSender._run_rtcp",
    "RTCRtpReceiver._run_rtcp",
    "RTCRtpReceiver._send_rtcp",
    "Connection.query_consent",
    "BaseEventLoop._run_once",
]


def _name(frame: str) -> str:
    return re.sub(r" \(.*", "", frame)


def group_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        framed = "\t" + frame  # "\tprotect (" matches a bare function name, not "unprotect ("
        for group, needles in GROUPS:
            if any(needle in framed for needle in needles):
                return group
    return "other"


def summarise(lines: list[str]) -> dict[str, Any]:
    """Counts from the raw profile's lines ("frame;frame;… count")."""
    busy = idle = parked = 0
    groups: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in lines:
        stack, _, count = line.strip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if any("decoder_worker" in f for f in frames):
            parked += n
            continue
        if "EpollSelector.select" in frames[-1] or "select (selectors.py" in frames[-1]:
            idle += n
            continue
        busy += n
        groups[group_of(frames)] += n
        self_time[re.sub(r":\d+\)", ")", frames[-1])] += n
        for name in {_name(f) for f in frames}:
            inclusive[name] += n
    return {
        "busy": busy,
        "idle": idle,
        "parked": parked,
        "groups": groups.most_common(),
        "self": self_time.most_common(25),
        "inclusive": [(k, inclusive[k]) for k in INCLUSIVE if inclusive[k]],
        "inclusive_top": inclusive.most_common(25),
    }


def report(summary: dict[str, Any]) -> str:
    busy = max(1, summary["busy"])
    out = [
        f"samples: {summary['busy']} busy ({summary['idle']} waiting in epoll and "
        f"{summary['parked']} in parked decoder threads left out)",
        "",
        "-- where the time goes (each sample in one group, innermost match)",
    ]
    out += [f"{n / busy:6.1%}  {g}" for g, n in summary["groups"]]
    out += ["", "-- inclusive (function anywhere on the stack)"]
    out += [f"{n / busy:6.1%}  {k}" for k, n in summary["inclusive"]]
    out += ["", "-- self time by function (top 25)"]
    out += [f"{n / busy:6.1%}  {k}" for k, n in summary["self"]]
    out += ["", "-- inclusive, top 25"]
    out += [f"{n / busy:6.1%}  {k}" for k, n in summary["inclusive_top"]]
    return "\n".join(out)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(report(summarise(f.read().splitlines())))
