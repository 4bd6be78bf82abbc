"""The RTP send loop of relay-owned senders: forwarded packets out with little Python.

aiortc's ``RTCRtpSender._run_rtp`` spends, for every RTP packet, an ``RtpPacket`` object
with a ``HeaderExtensions`` dataclass, a pass through ``HeaderExtensionsMap.set`` and
``pack_header_extensions``, two ``datetime``-based NTP clock readings, a debug-log call
and a ``Fraction`` time-base conversion per frame. For a sender that only ever forwards
packets (:class:`signaling.packets.PacketTrack`) all of that is fixed per sender except
four numbers, so :func:`install_packet_sender` replaces, *on one sender instance*:

* ``_run_rtp``: the header and header-extension bytes are laid out once when sending
  starts (by aiortc's own ``pack_header_extensions``, in aiortc's order); per
  packet only the sequence number and marker bit change, per frame the abs-send-time. VP8
  payload descriptors (aiortc's bytes) are made once per frame, not per packet.
  Nothing pulls frames from the track: the track hands each frame to
  :meth:`PacketSender.forward` as the publisher's frame arrives.
* ``_retransmit``: the history keeps the sent bytes (before SRTP); a NACKed packet is
  re-sent as they were, or wrapped as RTX (RFC 4588) by patching the header.
* sending a packet: :class:`DirectSend` does what ``RTCDtlsTransport._send_rtp`` and aioice's
  ``Connection.send`` do (SRTP with the transport's own session, ``sendto`` on the
  nominated pair, the transport's counters), as one call rather than four coroutines.

Everything else stays aiortc's: SRTP sessions, ICE/TURN, RTCP sender reports (fed from the
same private counters aiortc's loop updates), NACK/PLI handling, ``stop()``. The bytes on
the wire are what aiortc would send; ``tests/signaling`` parse them back with aiortc.
Every client's senders are untouched.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
import traceback
from fractions import Fraction
from typing import Any

import av
from aiortc.codecs.vpx import PACKET_MAX
from aiortc.mediastreams import convert_timebase
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RTP_HISTORY_SIZE, pack_header_extensions
from aiortc.utils import random16, random32, uint16_add

from signaling.packets import PacketTrack, check_aiortc, require_private

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHLL")
_EXTENSION_HEADER = struct.Struct("!HH")
_NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_ABS_SEND_TIME_UNITS = 1 << 18  # abs-send-time is 6.18 fixed-point seconds, 24 bits

# Name-mangled private attributes of aiortc 1.16.0's RTCRtpSender that the loop uses.
_PRIVATE = {
    "started": "_RTCRtpSender__started",
    "rtp_started": "_RTCRtpSender__rtp_started",
    "rtp_exited": "_RTCRtpSender__rtp_exited",
    "track": "_RTCRtpSender__track",
    "encoder": "_RTCRtpSender__encoder",
    "mid": "_RTCRtpSender__mid",
    "extensions_map": "_RTCRtpSender__rtp_header_extensions_map",
    "rtx_payload_type": "_RTCRtpSender__rtx_payload_type",
    "rtx_sequence_number": "_RTCRtpSender__rtx_sequence_number",
    "ntp_timestamp": "_RTCRtpSender__ntp_timestamp",
    "rtp_timestamp": "_RTCRtpSender__rtp_timestamp",
    "octet_count": "_RTCRtpSender__octet_count",
    "packet_count": "_RTCRtpSender__packet_count",
}
_NTP_TIMESTAMP = _PRIVATE["ntp_timestamp"]
_RTP_TIMESTAMP = _PRIVATE["rtp_timestamp"]
_OCTET_COUNT = _PRIVATE["octet_count"]
_PACKET_COUNT = _PRIVATE["packet_count"]
_MAP_IDS = "_HeaderExtensionsMap__ids"
_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
_TX_PACKETS = "_RTCDtlsTransport__tx_packets"


def ntp_now() -> int:
    """The NTP time (32.32 fixed point) aiortc's ``clock.current_ntp_time()`` gives, cheaply."""
    now = time.time() + _NTP_EPOCH_OFFSET
    seconds = int(now)
    return (seconds << 32) | int((now - seconds) * (1 << 32))


def current_ms() -> int:
    """aiortc's ``clock.current_ms()`` (milliseconds since the NTP epoch), without datetime.

    The receive path stamps arrivals with it for the REMB estimator; it must be aiortc's
    clock, not the loop's, as packets stamped by aiortc itself may come before.
    """
    return int((time.time() + _NTP_EPOCH_OFFSET) * 1000)


def abs_send_time_now() -> int:
    """``(current_ntp_time() >> 14) & 0xFFFFFF``, as aiortc's sender computes it."""
    return int((time.time() + _NTP_EPOCH_OFFSET) * _ABS_SEND_TIME_UNITS) & 0xFFFFFF


class RtpLayout:
    """The fixed bytes of one sender's RTP packets: header flags and extension block.

    The block is laid out by aiortc's ``pack_header_extensions`` with the elements in the
    order aiortc's ``HeaderExtensionsMap.set`` uses (mid, then abs-send-time), so a packet
    is ``header + before + abs-send-time (3 bytes) + after + payload``.
    """

    def __init__(self, payload_type: int, ssrc: int, mid: str | None, ids: Any) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.has_abs_send_time = bool(ids.abs_send_time)

        def block(stamp: bytes) -> bytes:
            elements: list[tuple[int, bytes]] = []
            if mid is not None and ids.mid:
                elements.append((ids.mid, mid.encode("utf8")))
            if self.has_abs_send_time:
                elements.append((ids.abs_send_time, stamp))
            profile, value = pack_header_extensions(elements)
            return _EXTENSION_HEADER.pack(profile, len(value) >> 2) + value if value else b""

        zeros, ones = block(b"\0\0\0"), block(b"\xff\xff\xff")
        # Where the stamp sits: the first byte at which the two layouts differ.
        cut = next((i for i, (a, b) in enumerate(zip(zeros, ones, strict=True)) if a != b), None)
        if cut is None:
            self.before, self.after = zeros, b""
        else:
            self.before, self.after = zeros[:cut], zeros[cut + 3 :]
        self.first_byte = 0x80 | (0x10 if zeros else 0)  # version 2, extension bit
        self.header_size = _HEADER.size + len(zeros)

    def packet(self, sequence_number: int, timestamp: int, marker: int, payload: bytes) -> bytes:
        return self.frame(sequence_number, timestamp, [payload], marker)[0]

    def frame(
        self, sequence_number: int, timestamp: int, payloads: list[bytes], marker: int = 1
    ) -> list[bytes]:
        """The packets of one frame: consecutive sequence numbers, ``marker`` on the last.

        One abs-send-time reading for the frame: its packets leave together (aiortc reads
        the clock per packet, microseconds apart; the unit is 3.8 µs).
        """
        if self.has_abs_send_time:
            extensions = self.before + abs_send_time_now().to_bytes(3, "big") + self.after
        else:
            extensions = self.before + self.after
        pack, first = _HEADER.pack, self.first_byte
        payload_type, ssrc = self.payload_type, self.ssrc
        last = len(payloads) - 1
        wires = []
        for i, payload in enumerate(payloads):
            flags = (marker << 7) | payload_type if i == last else payload_type
            header = pack(first, flags, (sequence_number + i) & 0xFFFF, timestamp, ssrc)
            wires.append(header + extensions + payload)
        return wires

    def rtx(self, data: bytes, payload_type: int, sequence_number: int, ssrc: int) -> bytes:
        """RFC 4588 retransmission of ``data``: same timestamp, marker and extensions,
        the original sequence number in front of the payload."""
        original = data[2:4]
        header = _HEADER.pack(
            data[0],
            (data[1] & 0x80) | payload_type,
            sequence_number,
            int.from_bytes(data[4:8], "big"),
            ssrc,
        )
        split = self.header_size
        return header + data[_HEADER.size : split] + original + data[split:]


def vp8_descriptor(start: bool, picture_id: int) -> bytes:
    """aiortc's ``bytes(VpxPayloadDescriptor(partition_start, 0, picture_id))``: X and I set,
    the picture ID always in its 15-bit form."""
    return bytes((0x90 if start else 0x80, 0x80, 0x80 | (picture_id >> 8), picture_id & 0xFF))


def vp8_payloads(data: bytes, picture_id: int) -> list[bytes]:
    """RFC 7741 packetization as aiortc's ``Vp8Encoder._packetize`` does it."""
    first = vp8_descriptor(True, picture_id)
    rest = vp8_descriptor(False, picture_id)
    size = PACKET_MAX - len(first)
    payloads = [first + data[:size]]
    for pos in range(size, len(data), size):
        payloads.append(rest + data[pos : pos + size])
    return payloads


class DirectSend:
    """aiortc's ``RTCDtlsTransport._send_rtp`` for RTP, with aioice's ``Connection.send``,
    as one plain call instead of four coroutines.

    The same steps, in the same order: refuse unless DTLS is connected, SRTP-protect,
    ``sendto`` on the nominated ICE pair's socket (for a TURN pair that is aioice's
    ``TurnTransport``, which binds a channel in a task of its own), count the bytes and
    packets in the transport's stats. Raises ``ConnectionError`` when aiortc would.
    """

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        require_private(dtls, ("_state", "_tx_srtp", _TX_BYTES, _TX_PACKETS))
        nominated = getattr(getattr(dtls.transport, "_connection", None), "_nominated", None)
        if not isinstance(nominated, dict):
            raise RuntimeError("aioice Connection has no _nominated pairs")
        self.dtls = dtls
        self._nominated: dict[int, Any] = nominated
        self._counters: dict[str, int] = vars(dtls)  # __tx_bytes / __tx_packets live here
        # The nominated pair's sendto and address, looked up again when the pair changes.
        self._pair: Any = None
        self._sendto: Any = None
        self._addr: Any = None

    def __call__(self, wire: bytes) -> None:
        dtls = self.dtls
        if dtls._state is not State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        self._out(dtls._tx_srtp.protect(wire))

    def rtcp(self, wire: bytes) -> None:
        """The same for one plain RTCP packet (SRTCP), e.g. transport-cc feedback."""
        dtls = self.dtls
        if dtls._state is not State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        self._out(dtls._tx_srtp.protect_rtcp(wire))

    def _out(self, data: bytes) -> None:
        pair = self._nominated.get(1)
        if pair is not self._pair:
            if pair is None:
                raise ConnectionError("Cannot send data, not connected")
            self._pair, self._addr = pair, pair.remote_addr
            self._sendto = pair.protocol.transport.sendto
        self._sendto(data, self._addr)
        counters = self._counters
        counters[_TX_BYTES] += len(data)
        counters[_TX_PACKETS] += 1


class PacketSender:
    """Stands in for one relay sender's ``_run_rtp`` and ``_retransmit``.

    Frames are not pulled from the track by a task: :meth:`run` registers :meth:`forward`
    with the :class:`~signaling.packets.PacketTrack`, which calls it as the publisher's
    frame arrives, and each packet goes out through :class:`DirectSend` (no task wake-up,
    no queue, no coroutine per packet).
    """

    def __init__(self, sender: RTCRtpSender) -> None:
        self.sender = sender
        self._state: dict[str, Any] = vars(sender)  # the private counters, updated per frame
        self.layout: RtpLayout | None = None
        self._history: list[tuple[int, bytes] | None] = [None] * RTP_HISTORY_SIZE
        self._done: asyncio.Future[None] | None = None
        self.send: DirectSend | None = None
        """Sends one RTP packet; built when sending starts (after BUNDLE picked the transport)."""
        self._vp8 = False
        self._clock_rate = 90000
        self._sequence_number = 0
        self._origin = 0
        self._picture_id = 0
        self.retransmissions = 0
        self.errors = 0

    def _get(self, name: str) -> Any:
        return getattr(self.sender, _PRIVATE[name])

    def _set(self, name: str, value: Any) -> None:
        setattr(self.sender, _PRIVATE[name], value)

    async def run(self, codec: RTCRtpCodecParameters) -> None:
        sender = self.sender
        self._get("rtp_started").set()
        assert codec.payloadType is not None  # set by negotiation before send()
        self.layout = RtpLayout(
            codec.payloadType,
            sender._ssrc,
            self._get("mid"),
            getattr(self._get("extensions_map"), _MAP_IDS),
        )
        self._vp8 = codec.mimeType.lower() == "video/vp8"
        self._clock_rate = codec.clockRate
        self.send = DirectSend(sender.transport)
        self._sequence_number = random16()
        self._origin = random32()
        self._picture_id = random.randint(0, (1 << 15) - 1)
        done = self._done = asyncio.get_running_loop().create_future()
        track = sender.track
        try:
            if isinstance(track, PacketTrack) and track.readyState == "live":
                track.once("ended", self._end)
                track.deliver_to(self.forward)
                await done
        except asyncio.CancelledError:
            pass
        finally:
            self._end()
            if isinstance(track, PacketTrack):
                track.deliver_to(None)
        track = sender.track
        if track is not None:
            track.stop()
            self._set("track", None)
        self._set("encoder", None)
        self._get("rtp_exited").set()  # aiortc's stop() waits for it

    def _end(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def forward(self, packet: av.Packet[Any]) -> None:
        """Packetize one frame and send it now (called by the track, on the event loop)."""
        layout = self.layout
        if layout is None or self._done is None or self._done.done():
            return
        if not self.sender._enabled:
            return
        try:
            data = bytes(packet)
            if not data:
                return
            if self._vp8:
                payloads = vp8_payloads(data, self._picture_id)
                self._picture_id = (self._picture_id + 1) & 0x7FFF
            else:
                payloads = [data]
            base = packet.time_base
            assert packet.pts is not None and base is not None
            pts = packet.pts
            clock_rate = self._clock_rate
            if base.numerator != 1 or base.denominator != clock_rate:
                pts = convert_timebase(pts, base, Fraction(1, clock_rate))
            timestamp = (self._origin + pts) & 0xFFFFFFFF
            history, send = self._history, self.send
            assert send is not None  # set by run() before the track delivers
            sequence_number = self._sequence_number
            for wire in layout.frame(sequence_number, timestamp, payloads):
                history[sequence_number % RTP_HISTORY_SIZE] = (sequence_number, wire)
                send(wire)
                sequence_number = (sequence_number + 1) & 0xFFFF
            self._sequence_number = sequence_number
            # What RTCP sender reports read (aiortc updates them per packet).
            state = self._state
            state[_NTP_TIMESTAMP] = ntp_now()
            state[_RTP_TIMESTAMP] = timestamp
            state[_OCTET_COUNT] += sum(map(len, payloads))
            state[_PACKET_COUNT] += len(payloads)
        except ConnectionError:
            self._end()  # the connection is gone: as aiortc's loop, stop sending
        except Exception:
            # Called from the publisher's receive path: never let one subscriber's
            # failure reach the others.
            self.errors += 1
            logger.warning("relay sender failed on one frame:\n%s", traceback.format_exc())

    async def retransmit(self, sequence_number: int) -> None:
        entry = self._history[sequence_number % RTP_HISTORY_SIZE]
        if entry is None or entry[0] != sequence_number or self.layout is None:
            return
        wire = entry[1]
        rtx_payload_type = self._get("rtx_payload_type")
        if rtx_payload_type is not None:
            rtx_sequence_number = self._get("rtx_sequence_number")
            wire = self.layout.rtx(
                wire, rtx_payload_type, rtx_sequence_number, self.sender._rtx_ssrc
            )
            self._set("rtx_sequence_number", uint16_add(rtx_sequence_number, 1))
        self.retransmissions += 1
        if self.send is not None:
            self.send(wire)  # raises ConnectionError as aiortc's _send_rtp would


def install_packet_sender(sender: RTCRtpSender) -> PacketSender:
    """Make ``sender`` (whose track yields ``av.Packet``s) use :class:`PacketSender`.

    Must be called before the sender starts, i.e. before the remote answer is applied.
    """
    check_aiortc()
    for name in ("_run_rtp", "_retransmit"):
        if not callable(getattr(sender, name, None)):
            raise RuntimeError(f"aiortc RTCRtpSender has no {name} to replace")
    require_private(sender, _PRIVATE.values())
    if not isinstance(sender.track, PacketTrack):
        raise RuntimeError("install_packet_sender() needs a sender whose track is a PacketTrack")
    if getattr(sender, _PRIVATE["started"]):
        raise RuntimeError("install_packet_sender() called on a sender that already runs")
    DirectSend(sender.transport)  # the transport has what DirectSend needs (or raise now)
    packet_sender = PacketSender(sender)
    sender._run_rtp = packet_sender.run  # type: ignore[method-assign]
    sender._retransmit = packet_sender.retransmit  # type: ignore[method-assign]
    return packet_sender
