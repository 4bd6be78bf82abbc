"""The relay's per-packet receive path for publishers' RTP: aiortc's steps, less overhead.

For every RTP packet aiortc 1.16 runs ``RTCDtlsTransport._handle_rtp_data`` (a full
``RtpPacket.parse``: a ``HeaderExtensions`` dataclass, every extension decoded) and then
``RTCRtpReceiver._handle_rtp_packet``: REMB estimator, source list, RTCP statistics, RTX
unwrap, NACK generator, depayload (a ``VpxPayloadDescriptor`` object per VP8 packet), the
jitter buffer, and hand-off to the decoder queue, as two coroutine levels. On a relay
publish connection the jitter buffer and the decoder queue are already ours
(:func:`signaling.packets.install_packet_sink`), so :func:`install_inbound` replaces
``_handle_rtp_data`` on that one DTLS transport with :meth:`Inbound.handle_rtp_data`, which
does the same steps on the same aiortc state objects with less generic work:

* the header is read with one ``struct`` call; of the header extensions only
  abs-send-time is decoded (and only while the receiver has a REMB estimator), the others
  are walked to check they fit, as aiortc's parser does;
* routing is aiortc's own ``RtpRouter.route_rtp``;
* the receiver's steps are aiortc's, in aiortc's order, on the receiver's own objects (its
  ``StreamStatistics`` for RTCP receiver reports and ``getStats()``, its
  ``NackGenerator``, its REMB estimator — :class:`signaling.remb.RembEstimator` on relay
  receivers — its source list, its RTP timestamp mapper), with the VP8 payload descriptor
  skipped by length instead of parsed into an object, and as one plain call: NACK, PLI and
  REMB (rare) are the only coroutines, sent after the packet is handled;
* everything uncommon takes aiortc's own path unchanged: a header aiortc's parser would
  refuse (it logs and drops it), an abs-send-time element that is not 3 bytes (aiortc raises),
  RTX (unwrapped by aiortc), a payload type with no codec, a codec other than VP8/Opus/RED,
  and a receiver that is not a relay receiver.

What differs from aiortc: string-valued extensions (mid, rid) are not decoded, so a packet
whose mid is not UTF-8 is no longer dropped (nothing reads the mid on this path: aiortc
1.16 routes by SSRC and payload type), and RTCP feedback for a packet is sent after the
packet was handed on rather than before.

Private aiortc 1.16.0 names, checked by :func:`install_inbound`: ``RTCDtlsTransport``
``_handle_rtp_data``, ``_rtp_router``, ``_rtp_header_extensions_map`` (and its
``_HeaderExtensionsMap__ids``); ``RTCRtpReceiver`` ``_enabled``, ``__codecs``,
``__remote_streams``, ``__active_ssrc``, ``__nack_generator``,
``__remote_bitrate_estimator``, ``__rtcp_ssrc``, ``__decoder_error``, ``__decoder_thread``,
``__timestamp_mapper``, ``__decoder_queue``, ``_send_rtcp``, ``_send_rtcp_nack``,
``_send_rtcp_pli``.
"""

from __future__ import annotations

import struct
from collections.abc import Coroutine
from typing import Any

from aiortc import clock
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci

from signaling.packets import PacketSink, check_aiortc, require_private

Step = Coroutine[Any, Any, None]

_HEADER = struct.Struct("!BBHLL")
_EXTENSION = struct.Struct("!HH")
_MAP_IDS = "_HeaderExtensionsMap__ids"
_DTLS_NAMES = ("_handle_rtp_data", "_rtp_router", "_rtp_header_extensions_map")
_R = "_RTCRtpReceiver__"
_CODECS = _R + "codecs"
_STREAMS = _R + "remote_streams"
_ACTIVE = _R + "active_ssrc"
_NACK = _R + "nack_generator"
_ESTIMATOR = _R + "remote_bitrate_estimator"
_RTCP_SSRC = _R + "rtcp_ssrc"
_DECODER_ERROR = _R + "decoder_error"
_DECODER_THREAD = _R + "decoder_thread"
_MAPPER = _R + "timestamp_mapper"
_DECODER_QUEUE = _R + "decoder_queue"
_RECEIVER_NAMES = (
    "_enabled",
    _CODECS,
    _STREAMS,
    _ACTIVE,
    _NACK,
    _ESTIMATOR,
    _RTCP_SSRC,
    _DECODER_ERROR,
    _DECODER_THREAD,
    _MAPPER,
    _DECODER_QUEUE,
    "_send_rtcp",
    "_send_rtcp_nack",
    "_send_rtcp_pli",
)


class InboundPacket(RtpPacket):
    """An ``RtpPacket`` with the fields the receive path reads, without the
    ``HeaderExtensions`` object (``extensions`` is not set)."""

    def __init__(  # aiortc's __init__ is skipped on purpose: it builds what is not read
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        padding_size: int,
    ) -> None:
        self.payload_type = payload_type
        self.marker = marker
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.padding_size = padding_size
        self._data = b""


class Malformed(ValueError):
    """A header this path leaves to aiortc's parser (which drops or refuses it)."""


def parse_rtp(data: bytes, abs_send_time_id: int | None) -> tuple[InboundPacket, int | None]:
    """The packet and its abs-send-time (None if absent or ``abs_send_time_id`` is None).

    Raises :class:`Malformed` wherever aiortc's ``RtpPacket.parse`` raises, and for an
    abs-send-time element that is not 3 bytes (aiortc's ``struct.unpack`` fails on it).
    """
    size = len(data)
    if size < 12:
        raise Malformed("short")
    first, second, sequence_number, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise Malformed("version")
    pos = 12 + (first & 0x0F) * 4
    if size < pos:
        raise Malformed("csrc")
    abs_send_time = None
    if first & 0x10:
        if size < pos + 4:
            raise Malformed("extension header")
        profile, length = _EXTENSION.unpack_from(data, pos)
        pos += 4
        end = pos + length * 4
        if size < end:
            raise Malformed("extension value")
        abs_send_time = _abs_send_time(data, pos, end, profile, abs_send_time_id)
        pos = end
    padding = 0
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > size - pos:
            raise Malformed("padding")
        payload = data[pos:-padding]
    else:
        payload = data[pos:]
    packet = InboundPacket(
        second & 0x7F, second >> 7, sequence_number, timestamp, ssrc, payload, padding
    )
    return packet, abs_send_time


def _abs_send_time(data: bytes, pos: int, end: int, profile: int, ext_id: int | None) -> int | None:
    """RFC 8285 elements between ``pos`` and ``end``, walked as aiortc's
    ``unpack_header_extensions`` walks them (the last abs-send-time element wins)."""
    value = None
    if profile == 0xBEDE:
        while pos < end:
            byte = data[pos]
            if not byte:
                pos += 1
                continue
            length = (byte & 0x0F) + 1
            pos += 1
            if end < pos + length:
                raise Malformed("one-byte element")
            if byte >> 4 == ext_id:
                if length != 3:
                    raise Malformed("abs-send-time size")
                value = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
            pos += length
    elif profile == 0x1000:
        while pos < end:
            xid = data[pos]
            if not xid:
                pos += 1
                continue
            if end < pos + 2:
                raise Malformed("two-byte element")
            length = data[pos + 1]
            pos += 2
            if end < pos + length:
                raise Malformed("two-byte element value")
            if xid == ext_id:
                if length != 3:
                    raise Malformed("abs-send-time size")
                value = (data[pos] << 16) | (data[pos + 1] << 8) | data[pos + 2]
            pos += length
    return value


def vp8_descriptor_size(payload: bytes) -> int:
    """Bytes of the RFC 7741 payload descriptor at the start of ``payload``; -1 where aiortc's
    ``VpxPayloadDescriptor.parse`` raises (truncated)."""
    size = len(payload)
    if size < 1:
        return -1
    if not payload[0] & 0x80:
        return 1
    if size < 2:
        return -1
    bits = payload[1]
    pos = 2
    if bits & 0x80:  # I: picture ID, 7 or 15 bits
        if size < 3:
            return -1
        if payload[2] & 0x80:
            if size < 4:
                return -1
            pos = 4
        else:
            pos = 3
    if bits & 0x40:  # L: TL0PICIDX
        if size < pos + 1:
            return -1
        pos += 1
    if bits & 0x30:  # T or K: one byte for both
        if size < pos + 1:
            return -1
        pos += 1
    return pos


async def _in_order(steps: list[Step]) -> None:
    for step in steps:
        await step


class _Lane:
    """aiortc's ``RTCRtpReceiver._handle_rtp_packet`` for one relay receiver, on its state."""

    def __init__(self, receiver: RTCRtpReceiver, sink: PacketSink) -> None:
        self.receiver = receiver
        self.sink = sink
        self.assembler = sink.assembler
        self.video = sink.kind == "video"
        self.codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, _CODECS)
        self.streams: dict[int, StreamStatistics] = getattr(receiver, _STREAMS)
        self.active: dict[int, Any] = getattr(receiver, _ACTIVE)
        self.nack = getattr(receiver, _NACK)
        self.decoder_error = getattr(receiver, _DECODER_ERROR)
        self.mapper = getattr(receiver, _MAPPER)
        self._codecs: dict[int, tuple[RTCRtpCodecParameters, bool] | None] = {}

    def codec(self, payload_type: int) -> tuple[RTCRtpCodecParameters, bool] | None:
        """(codec, is VP8) if this path takes the payload type, None for aiortc's path.

        Cached: a packet reaches the receiver only after ``receive()`` filled its codecs.
        """
        try:
            return self._codecs[payload_type]
        except KeyError:
            pass
        codec = self.codecs.get(payload_type)
        entry = None
        if codec is not None and not is_rtx(codec) and codec.name != "H264":
            entry = (codec, codec.name == "VP8")
        self._codecs[payload_type] = entry
        return entry

    def handle(
        self,
        packet: InboundPacket,
        codec: RTCRtpCodecParameters,
        vp8: bool,
        abs_send_time: int | None,
        arrival_time_ms: int,
    ) -> Step | None:
        """Handle one packet; the RTCP it calls for (rarely any) as one coroutine."""
        receiver = self.receiver
        if not receiver._enabled:
            return None
        sends: list[Step] = []
        ssrc = packet.ssrc
        estimator = getattr(receiver, _ESTIMATOR)
        if estimator is not None and abs_send_time is not None:
            remb = estimator.add(
                arrival_time_ms=arrival_time_ms,
                abs_send_time=abs_send_time,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=ssrc,
            )
            rtcp_ssrc = getattr(receiver, _RTCP_SSRC)
            if rtcp_ssrc is not None and remb is not None:
                fci = pack_remb_fci(*remb)
                rtcp = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=fci)
                sends.append(receiver._send_rtcp(rtcp))
        self.active[ssrc] = clock.current_datetime()
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self.streams[ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)
        nack = self.nack
        if nack is not None and nack.add(packet):
            sends.append(receiver._send_rtcp_nack(ssrc, sorted(nack.missing)))
        payload = packet.payload
        if payload:
            if vp8:
                skip = vp8_descriptor_size(payload)
                if skip < 0:  # aiortc: "RTP payload parsing failed", dropped
                    return _in_order(sends) if sends else None
                packet._data = payload[skip:]
            else:
                packet._data = payload
        pli, frame = self.assembler.add(packet)
        if self.decoder_error.is_set():  # never set: the sink decodes nothing (kept as aiortc)
            self.decoder_error.clear()
            pli = pli or self.video
        if pli:
            sends.append(receiver._send_rtcp_pli(ssrc))
        if frame is not None and getattr(receiver, _DECODER_THREAD):
            frame.timestamp = self.mapper.map(frame.timestamp)
            self.sink.put((codec, frame))
        return _in_order(sends) if sends else None


class Inbound:
    """Stands in for one relay DTLS transport's ``_handle_rtp_data``; see the module doc."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self._original = dtls._handle_rtp_data
        self._router = dtls._rtp_router
        # Filled in by HeaderExtensionsMap.configure when the receivers start.
        self._ids = getattr(dtls._rtp_header_extensions_map, _MAP_IDS)
        self._lanes: dict[object, _Lane] = {}  # by receiver
        self.packets = 0
        self.fallbacks = 0
        """Packets handed to aiortc's own path (RTX, malformed, unknown payload types)."""

    def add(self, receiver: RTCRtpReceiver, sink: PacketSink) -> None:
        self._lanes[receiver] = _Lane(receiver, sink)

    async def handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        try:
            packet, abs_send_time = parse_rtp(data, self._ids.abs_send_time)
        except Malformed:
            self.fallbacks += 1
            await self._original(data, arrival_time_ms=arrival_time_ms)
            return
        receiver = self._router.route_rtp(packet)
        if receiver is None:
            return
        lane = self._lanes.get(receiver)
        entry = lane.codec(packet.payload_type) if lane is not None else None
        if lane is None or entry is None:
            # aiortc's path parses and routes again (routing is idempotent once the SSRC
            # is in the table).
            self.fallbacks += 1
            await self._original(data, arrival_time_ms=arrival_time_ms)
            return
        self.packets += 1
        step = lane.handle(packet, entry[0], entry[1], abs_send_time, arrival_time_ms)
        if step is not None:
            await step


def install_inbound(receiver: RTCRtpReceiver, sink: PacketSink) -> Inbound:
    """Give ``receiver`` (with its :class:`~signaling.packets.PacketSink` installed) the
    lean receive path on its DTLS transport; one :class:`Inbound` per transport.

    Call after ``setRemoteDescription`` (BUNDLE has picked the transport), before the
    connection is up.
    """
    check_aiortc()
    dtls = receiver.transport
    require_private(dtls, _DTLS_NAMES)
    require_private(dtls._rtp_header_extensions_map, (_MAP_IDS,))
    require_private(receiver, _RECEIVER_NAMES)
    if getattr(receiver, _DECODER_QUEUE) is not sink:
        raise RuntimeError("install_inbound() needs the receiver's PacketSink installed first")
    current = getattr(dtls._handle_rtp_data, "__self__", None)
    if isinstance(current, Inbound):
        inbound = current
    else:
        inbound = Inbound(dtls)
        dtls._handle_rtp_data = inbound.handle_rtp_data  # type: ignore[method-assign]
    inbound.add(receiver, sink)
    return inbound
