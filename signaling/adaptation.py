"""Protect the receiving side: what a subscriber receives must fit its link.

Each subscriber's estimate of its downlink is the REMB it sends to the relay's senders
(browsers compute it from the relay's abs-send-time; aiortc clients too). It counts only
while it is below what the relay sends that subscriber (see :class:`LinkPolicy`).

* **Cap.** A publisher is asked (REMB, draft-alvestrand-rmcat-remb) for at most the
  weakest estimate among the subscribers that get its video and are its bottleneck,
  never below :data:`AUDIO_ONLY_BELOW` (a subscriber under that gets no video at all, see below). A
  browser publisher that runs its own estimator on our transport-cc feedback takes REMB as
  an upper bound; for one without transport-cc, aiortc's receive-side REMB towards it is
  clamped to the cap (:func:`clamp_remb`). No TMMBR: browsers do not offer ``ccm tmmbr``.
* **Audio-only.** A bottleneck subscriber whose estimate stays below
  :data:`AUDIO_ONLY_BELOW` while it reports at least :data:`LOSSY` loss, for
  :data:`LOW_FOR` seconds, stops getting that publisher's video and is sent
  ``{"type": "audio_only", "on": true, "reason": "weak_link", "publisher": …}``. Without
  video there is no new estimate, so after :data:`PROBE_AFTER` seconds video is tried
  again (starting on a key frame) with ``"on": false``; if the estimate falls below the
  threshold again within the probe, back to audio-only and the next probe waits twice as
  long (up to :data:`PROBE_MAX`); a probe that lasts :data:`PROBE_OK` seconds resets the
  wait. Audio always flows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

AUDIO_ONLY_BELOW = 150_000
"""bit/s: below this a subscriber's link cannot carry video worth watching."""
LOW_FOR = 3.0
PROBE_AFTER = 10.0
PROBE_MAX = 60.0
PROBE_OK = 10.0
BOTTLENECK = 0.9
"""A subscriber whose estimate is under this share of the video sent to it is the limit."""
LOSSY = 0.05
"""Share of lost video packets (the subscriber's last receiver report) that makes a weak
estimate a weak link: a receive-side estimator also drops under a busy receiver's CPU
(aiortc's does on a loaded machine) with nothing lost, and video must not stop then."""
RATE_WINDOW = 2.0
"""Shortest time over which the forwarded video bitrate is measured."""
CAP_HOLD = 10.0
"""Seconds a subscriber bounds the publisher after it last was a bottleneck."""
CAP_INTERVAL = 1.0
"""Seconds between two REMB caps sent to a publisher."""
UNCAPPED = 100_000_000
"""REMB sent to lift a cap (a browser keeps the last REMB as its upper bound)."""

Notice = Callable[[dict[str, Any]], None]


def remb_bitrate(packet: object) -> int | None:
    if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
        try:
            return unpack_remb_fci(packet.fci)[0]
        except ValueError:
            return None
    return None


def capture_estimates(
    sender: RTCRtpSender, on_estimate: Callable[[int], None], on_loss: Callable[[float], None]
) -> None:
    """Call ``on_estimate(bit/s)`` for every REMB the subscriber sends to ``sender``, and
    ``on_loss(fraction)`` for every receiver report block about ``sender``'s stream.

    Wraps ``RTCRtpSender._handle_rtcp_packet`` on this instance (aiortc 1.16 routes a
    REMB to every sender whose SSRC it lists, a report to the sender it is about);
    aiortc's own handling still runs.
    """
    original = sender._handle_rtcp_packet

    async def handle(packet: Any) -> None:
        bitrate = remb_bitrate(packet)
        if bitrate is not None:
            on_estimate(bitrate)
        elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    on_loss(report.fraction_lost / 256)
        await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


def clamp_remb(receiver: RTCRtpReceiver, cap: Callable[[int], int | None]) -> None:
    """Lower every REMB ``receiver`` sends (aiortc's estimator) to ``cap(its bitrate)``.

    Wraps ``RTCRtpReceiver._send_rtcp`` on this instance; the relay's own cap REMB goes
    through the class's method, not through this.
    """
    original = receiver._send_rtcp

    async def send(packet: Any) -> None:
        bitrate = remb_bitrate(packet)
        limit = cap(bitrate) if bitrate is not None else None
        if bitrate is not None and limit is not None and bitrate > limit:
            _, ssrcs = unpack_remb_fci(packet.fci)
            packet = RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP,
                ssrc=packet.ssrc,
                media_ssrc=0,
                fci=pack_remb_fci(limit, ssrcs),
            )
        await original(packet)

    receiver._send_rtcp = send  # type: ignore[method-assign]


def remb_packet(rtcp_ssrc: int, bitrate: int, ssrcs: list[int]) -> RtcpPsfbPacket:
    return RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs)
    )


class LinkPolicy:
    """One subscription's bound on its publisher and audio-only decisions (module doc).

    A REMB is only a signal about the link when it is below what the relay sends: a
    receive-side estimator reports about the incoming rate when the link is not full (a
    still scene at 120 kbit/s gives a REMB near 120 kbit/s on any link). So the subscriber
    is a *bottleneck* when its estimate is under :data:`BOTTLENECK` of the video bitrate
    forwarded to it (measured between its reports); only then does its estimate bound the
    publisher (for :data:`CAP_HOLD` seconds after the last such report, so the bound
    does not flap as the publisher comes down to it) and can it go audio-only.
    ``pause()``/``resume()`` stop and restart its video, ``sent_bytes()`` is the video
    forwarded so far, ``notice`` sends the message to the subscriber.
    """

    def __init__(
        self,
        publisher: str,
        pause: Callable[[], None],
        resume: Callable[[], None],
        notice: Notice,
        sent_bytes: Callable[[], int],
        *,
        threshold: int = AUDIO_ONLY_BELOW,
        low_for: float = LOW_FOR,
        probe_after: float = PROBE_AFTER,
        probe_max: float = PROBE_MAX,
        probe_ok: float = PROBE_OK,
    ) -> None:
        self.publisher = publisher
        self._pause, self._resume, self._notice = pause, resume, notice
        self._sent_bytes = sent_bytes
        self.threshold = threshold
        self.low_for, self.probe_ok = low_for, probe_ok
        self.probe_after, self.probe_max = probe_after, probe_max
        self._wait = probe_after
        self.estimate: int | None = None
        self.loss = 0.0
        """Fraction of video lost, from the subscriber's last receiver report."""
        self.rate: float | None = None
        """bit/s of video forwarded to this subscriber, measured between its reports."""
        self._mark: tuple[float, int] | None = None
        self._bottleneck_at: float | None = None
        self.audio_only = False
        self._low_since: float | None = None
        self._probe_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.switches = 0

    def _measure(self, now: float) -> None:
        sent = self._sent_bytes()
        if self._mark is None:
            self._mark = (now, sent)
            return
        elapsed = now - self._mark[0]
        if elapsed >= RATE_WINDOW:
            self.rate = (sent - self._mark[1]) * 8 / elapsed
            self._mark = (now, sent)

    def on_loss(self, fraction: float) -> None:
        self.loss = fraction

    def on_estimate(self, bitrate: int) -> None:
        now = time.monotonic()
        self.estimate = bitrate
        if self.audio_only:
            return
        self._measure(now)
        bottleneck = self.rate is not None and bitrate < BOTTLENECK * self.rate
        if bottleneck:
            self._bottleneck_at = now
        if not bottleneck or bitrate >= self.threshold or self.loss < LOSSY:
            self._low_since = None
            if self._probe_since is not None and now - self._probe_since >= self.probe_ok:
                self._probe_since = None
                self._wait = self.probe_after
            return
        if self._low_since is None:
            self._low_since = now
        if now - self._low_since >= self.low_for:
            self._go_audio_only()

    def _go_audio_only(self) -> None:
        if self._probe_since is not None:  # the probe failed: wait longer next time
            self._wait = min(self.probe_max, self._wait * 2)
        self._probe_since = None
        self._low_since = None
        self.audio_only = True
        self.switches += 1
        self._pause()
        self._notice(self.message(True))
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._wait, self._probe)

    def _probe(self) -> None:
        self._timer = None
        self.audio_only = False
        self.estimate = self.rate = self._mark = self._bottleneck_at = None
        self.loss = 0.0
        self._probe_since = time.monotonic()
        self._resume()
        self._notice(self.message(False))

    def message(self, on: bool) -> dict[str, Any]:
        return {"type": "audio_only", "on": on, "reason": "weak_link", "publisher": self.publisher}

    def cap(self) -> int | None:
        """This subscriber's bound on the publisher, or None (not a bottleneck, no video)."""
        if self.audio_only or self.estimate is None or self._bottleneck_at is None:
            return None
        if time.monotonic() - self._bottleneck_at > CAP_HOLD:
            return None
        return max(self.estimate, self.threshold)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class PublisherCap:
    """Sends a publisher the weakest subscriber's bound every :data:`CAP_INTERVAL`.

    ``bounds()`` gives the subscribers' caps; ``send(packet)`` returns the coroutine that
    sends an RTCP packet on the publish connection (aiortc's receiver ``_send_rtcp``),
    ``rtcp_ssrc()``/``ssrcs()`` the RTCP sender SSRC and the publisher's media SSRCs.
    Only while capped, plus one :data:`UNCAPPED` when the cap is lifted.
    """

    def __init__(
        self,
        bounds: Callable[[], list[int]],
        send: Callable[[RtcpPsfbPacket], Coroutine[Any, Any, None]],
        rtcp_ssrc: Callable[[], int | None],
        ssrcs: Callable[[], list[int]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        interval: float = CAP_INTERVAL,
    ) -> None:
        self._bounds, self._send, self._rtcp_ssrc, self._ssrcs = bounds, send, rtcp_ssrc, ssrcs
        self._spawn = spawn
        self.interval = interval
        self.current: int | None = None
        self.sent: list[int] = []
        self._timer = asyncio.get_running_loop().call_later(interval, self.tick)

    def value(self) -> int | None:
        bounds = self._bounds()
        return min(bounds) if bounds else None

    def tick(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.interval, self.tick)
        cap = self.value()
        previous, self.current = self.current, cap
        if cap is None and previous is None:
            return
        ssrc, media = self._rtcp_ssrc(), self._ssrcs()
        if ssrc is None or not media:
            return
        bitrate = UNCAPPED if cap is None else cap
        self.sent.append(bitrate)
        del self.sent[:-32]
        self._spawn(self._send(remb_packet(ssrc, bitrate, media)))

    def close(self) -> None:
        self._timer.cancel()
