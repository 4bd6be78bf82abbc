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

The transport's receive counters (``getStats()``) are kept as aiortc keeps them. Private
aiortc 1.16.0 / aioice names, checked by :func:`install_packet_receiver`:
``RTCDtlsTransport._rx_srtp``, ``_state``, ``_handle_rtp_data``, ``_handle_rtcp_data``,
``__rx_bytes``, ``__rx_packets``; ``RTCIceTransport._connection``; aioice
``Connection._protocols``.
"""

from __future__ import annotations

import functools
from typing import Any

import pylibsrtp
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtp import is_rtcp

from signaling.packets import check_aiortc, require_private
from signaling.sending import current_ms
from signaling.stepping import InOrder, Step
from signaling.twcc import TransportFeedback

_RX_BYTES = "_RTCDtlsTransport__rx_bytes"
_RX_PACKETS = "_RTCDtlsTransport__rx_packets"
_DTLS_NAMES = (
    "_rx_srtp",
    "_state",
    "_handle_rtp_data",
    "_handle_rtcp_data",
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

    def wrap(self, original: Any) -> Any:
        """A ``datagram_received`` that handles SRTP here and hands the rest to ``original``."""

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            if data and 127 < data[0] < 192 and self.dtls._state is State.CONNECTED:
                self.handlers.run(functools.partial(self._start, data))
            else:
                original(data, addr)

        return datagram_received

    def _start(self, data: bytes) -> Step | None:
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
                self.feedback.record(plain)
            return dtls._handle_rtp_data(plain, arrival_time_ms=current_ms())
        except pylibsrtp.Error:
            return None  # aiortc logs this at debug level and drops the packet


def install_packet_receiver(pc: RTCPeerConnection) -> list[PacketReceiver]:
    """Handle SRTP of ``pc``'s transports in the socket callback (one receiver each).

    Call after ``setLocalDescription`` (candidates are gathered, so the sockets exist) and
    before the connection is up.
    """
    check_aiortc()
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
            protocol.datagram_received = receiver.wrap(protocol.datagram_received)
        receivers.append(receiver)
    return receivers
