"""The receive path of relay-owned connections: SRTP handled in the socket callback.

In aiortc every datagram takes this route: asyncio's socket callback calls aioice's
``StunProtocol.datagram_received``, which first tries to parse it as STUN, then puts it on
the ICE connection's ``asyncio.Queue``; on the *next* turn of the event loop the DTLS
transport's task wakes, takes it off the queue, unprotects it and awaits the RTP receiver.
For a relay that forwards several hundred packets a second per participant, the task hop
(one more loop iteration, one more ``epoll`` call, four coroutine levels) is the largest
single cost of a packet after the receiver itself.

:func:`install_packet_receiver` wraps ``datagram_received`` of one connection's aioice
protocols. An SRTP or SRTCP datagram (first byte 128–191, which a STUN message never has,
RFC 7983) that arrives while the DTLS transport is connected is unprotected and handed to
aiortc's own ``RTCDtlsTransport._handle_rtp_data`` / ``_handle_rtcp_data`` right there; the
coroutine is stepped directly and normally finishes without suspending. Everything else
(STUN, DTLS, anything before the handshake or after close) takes aioice's usual path.

The handlers run through :class:`signaling.stepping.InOrder`: should one ever suspend (none
does with aioice 0.13), a task finishes it and datagrams arriving meanwhile wait behind it,
so packets still reach the receiver one at a time and in arrival order, as with aiortc's
task. Unlike aiortc's task, an exception in one packet's handling is logged and the next
packet is handled; aiortc would stop the transport.

Arrival times (issue 18). Where :mod:`signaling.sockets` reads the socket (every host
candidate of a relay connection on asyncio's selector loop, unless
``RelayConfig.kernel_timestamps`` is off), a packet's arrival time is the kernel's receive
stamp of its datagram (``SO_TIMESTAMPNS``), not the time Python reached it; elsewhere
(TURN-relayed candidates, the switch off) it is ``time.time_ns()`` when the callback runs,
as before. Both are ``CLOCK_REALTIME``: the REMB estimator gets them as aiortc's
``clock.current_ms()`` (:func:`signaling.sockets.ntp_ms`), transport-cc as microseconds.
The socket set-up also sizes the buffers (``SO_RCVBUF``/``SO_SNDBUF``).

Every REMB sent on the connection (aiortc's estimator, the relay's cap) is counted in
``rembs`` for ``/metrics``, by wrapping the transport's ``_send_rtp`` (RTCP only goes
that way; forwarded RTP takes ``DirectSend``).

The transport's receive counters (``getStats()``) are kept as aiortc keeps them. Private
aiortc 1.16.0 / aioice names, checked by :func:`install_packet_receiver`:
``RTCDtlsTransport._rx_srtp``, ``_state``, ``_handle_rtp_data``, ``_handle_rtcp_data``,
``__rx_bytes``, ``__rx_packets``; ``RTCIceTransport._connection``; aioice
``Connection._protocols``; ``RTCDtlsTransport._send_rtp``.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import pylibsrtp
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtp import is_rtcp

from signaling.packets import check_aiortc, require_private
from signaling.sockets import (
    SocketReader,
    SocketTally,
    ntp_ms,
    read_with_kernel_times,
    size_buffers,
)
from signaling.stepping import InOrder, Step
from signaling.twcc import TransportFeedback

_RX_BYTES = "_RTCDtlsTransport__rx_bytes"
_RX_PACKETS = "_RTCDtlsTransport__rx_packets"
_DTLS_NAMES = (
    "_rx_srtp",
    "_state",
    "_handle_rtp_data",
    "_handle_rtcp_data",
    "_send_rtp",
    _RX_BYTES,
    _RX_PACKETS,
)


class PacketReceiver:
    """Takes one DTLS transport's SRTP/SRTCP off the socket callback; see the module doc."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self.packets = 0
        self.handlers = InOrder("relay receive path")
        self.feedback: TransportFeedback | None = None
        """Set when transport-cc is negotiated: notes every RTP packet's arrival."""

        self.rembs = 0
        """REMB packets sent on this connection (aiortc's estimator and the relay's cap)."""
        self.readers: list[SocketReader] = []
        """The sockets read with kernel receive times (empty: Python-side times)."""

    def wrap(self, original: Any, reader: SocketReader | None = None) -> Any:
        """A ``datagram_received`` that handles SRTP here and hands the rest to ``original``.

        With ``reader`` (the socket's :class:`~signaling.sockets.SocketReader`) a packet's
        arrival is the kernel's stamp of the datagram being handled.
        """

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            if data and 127 < data[0] < 192 and self.dtls._state is State.CONNECTED:
                arrival = reader.arrival_ns if reader is not None else 0
                self.handlers.run(functools.partial(self._start, data, arrival or time.time_ns()))
            else:
                original(data, addr)

        return datagram_received

    def count_rembs(self) -> None:
        """Count the REMBs the transport sends (plain RTCP reaches ``_send_rtp``)."""
        original = self.dtls._send_rtp

        async def send_rtp(data: bytes) -> None:
            # PSFB (206) FMT 15 with the "REMB" identifier (draft-alvestrand-rmcat-remb).
            if data[1:2] == b"\xce" and data[0] & 0x1F == 15 and data[12:16] == b"REMB":
                self.rembs += 1
            await original(data)

        self.dtls._send_rtp = send_rtp  # type: ignore[method-assign]

    def _start(self, data: bytes, arrival_ns: int) -> Step | None:
        """Count and unprotect ``data``; its handler coroutine, or None if it is not valid."""
        dtls = self.dtls
        setattr(dtls, _RX_BYTES, getattr(dtls, _RX_BYTES) + len(data))
        setattr(dtls, _RX_PACKETS, getattr(dtls, _RX_PACKETS) + 1)
        srtp = dtls._rx_srtp
        if srtp is None:
            return None
        self.packets += 1
        try:
            if is_rtcp(data):
                return dtls._handle_rtcp_data(srtp.unprotect_rtcp(data))
            plain = srtp.unprotect(data)
            if self.feedback is not None:
                self.feedback.record(plain, arrival_ns // 1000)
            return dtls._handle_rtp_data(plain, arrival_time_ms=ntp_ms(arrival_ns))
        except pylibsrtp.Error:
            return None  # aiortc logs this at debug level and drops the packet


def install_packet_receiver(
    pc: RTCPeerConnection, *, tally: SocketTally | None = None, kernel_timestamps: bool = True
) -> list[PacketReceiver]:
    """Handle SRTP of ``pc``'s transports in the socket callback (one receiver each).

    Also sizes each host socket's buffers and, with ``kernel_timestamps``, reads it with
    kernel receive times (:mod:`signaling.sockets`; its counters go to ``tally``).
    Call after ``setLocalDescription`` (candidates are gathered, so the sockets exist) and
    before the connection is up.
    """
    check_aiortc()
    tally = tally if tally is not None else SocketTally()
    receivers: list[PacketReceiver] = []
    seen: set[int] = set()
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        if dtls is None or id(dtls) in seen:
            continue
        seen.add(id(dtls))
        require_private(dtls, _DTLS_NAMES)
        connection = getattr(dtls.transport, "_connection", None)
        protocols = getattr(connection, "_protocols", None)
        if protocols is None:
            raise RuntimeError("aiortc RTCIceTransport has no aioice connection with _protocols")
        receiver = PacketReceiver(dtls)
        for protocol in protocols:
            reader = None
            sock = protocol.transport.get_extra_info("socket")
            if sock is not None:  # a host candidate (a TURN one has the TURN client's)
                size_buffers(sock, tally)
                if kernel_timestamps:
                    reader = read_with_kernel_times(protocol.transport, protocol, tally)
                    if reader is not None:
                        receiver.readers.append(reader)
            protocol.datagram_received = receiver.wrap(protocol.datagram_received, reader)
        receiver.count_rembs()
        receivers.append(receiver)
    return receivers
