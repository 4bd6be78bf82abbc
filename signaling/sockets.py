"""The relay's UDP sockets: kernel receive times, buffers sized for bursts, batched reads.

A loaded server reaches a datagram late: between the kernel queueing it and Python's
``datagram_received`` lie the event loop's other callbacks, and under CPU contention
whole scheduler slices. A delay-based estimator (aiortc's REMB, the publisher's GCC on
our transport-cc feedback) fed with *that* time reads the server's own lag as queueing on
the network and tells the phone to slow down (issue 18: REMB fell to 0.71–0.81 Mbit/s for
a 1 Mbit/s stream). So each host socket of a relay connection gets:

* ``SO_TIMESTAMPNS``: the kernel stamps every datagram when it is queued on the socket
  (``CLOCK_REALTIME``, nanoseconds), and :class:`SocketReader` reads it with ``recvmsg``
  from the ancillary data. ``arrival_ns`` holds the stamp of the datagram being handed to
  the protocol, so the receive path (``signaling.receiving``) reads the time the packet
  reached the machine, not the time Python got to it.
* ``SO_RXQ_OVFL``: with each datagram queued after a drop the kernel also reports how
  many it has dropped on that socket so far because the receive buffer was full (nothing
  before the first drop: no cost); the deltas go to :class:`SocketTally` for
  ``/metrics``. Drops show with the next datagram that gets in, so a socket that
  overflowed and then fell silent reports them only if anything arrives again.
* ``SO_RCVBUF`` / ``SO_SNDBUF``: :data:`RECEIVE_BUFFER` (4 MiB) and :data:`SEND_BUFFER`
  (1 MiB) requested instead of aioice's 256 KiB; the kernel caps them at
  ``net.core.rmem_max`` / ``wmem_max`` (docs/deployment.md has the sysctl). The effective
  size is read back, and a cap is logged once per process.

The reader replaces asyncio's own read of the socket (``_SelectorDatagramTransport
._read_ready``, one ``recvfrom`` per wake-up) with a callback registered on the same file
descriptor that reads up to :data:`BATCH` datagrams per wake-up until ``EAGAIN`` (or
until one that waited under :data:`CAUGHT_UP_NS` in the kernel: the queue is drained), each
handed to the protocol's ``datagram_received`` exactly as asyncio would (OSError →
``error_received``, a closed transport reads nothing), so STUN and DTLS still reach aioice
and anything that wraps ``datagram_received`` still sees every datagram. The transport
stays asyncio's: ``sendto`` and ``close`` are unchanged (``close`` removes whatever reader
is on the descriptor, ours included). Private asyncio names used: the selector loop's
``_add_reader`` / ``_remove_reader`` (the public ones refuse a descriptor owned by a
transport) and the transport's ``_sock``, ``_conn_lost`` and ``_fatal_error``; another loop
(uvloop) or a TURN-relayed candidate keeps the stock path and Python-side times.

Clock: ``arrival_ns`` is ``CLOCK_REALTIME`` nanoseconds. aiortc's REMB estimator takes
``clock.current_ms()`` (milliseconds since the NTP epoch, also the realtime clock), so
:func:`ntp_ms` converts with the same epoch offset and stamps from the kernel and from
aiortc's own path (packets before DTLS is up) are on one base. transport-cc arrival times
need only be consistent within one connection: :func:`signaling.receiving` passes realtime
microseconds for every packet of a connection (the kernel's, or ``time.time_ns()`` when a
datagram has no stamp). A step of the system clock (not NTP's slewing) during a call
shows as one odd delta, exactly as it already did for aiortc's own ``current_ms()``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from asyncio.selector_events import BaseSelectorEventLoop
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# Linux values (asm-generic/socket.h; Python's socket module does not export them).
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SO_RXQ_OVFL = 40

RECEIVE_BUFFER = 4 * 1024 * 1024
"""Bytes of receive buffer asked for: ~30 s of a 1 Mbit/s stream, several seconds of a
busy room's every stream, so a stalled loop loses time, not datagrams."""
SEND_BUFFER = 1024 * 1024
"""Bytes of send buffer asked for: a key frame fanned out to a room's subscribers is a
burst of a few hundred datagrams."""
BATCH = 32
"""Datagrams read per wake-up at most, so one flooded socket cannot starve the others."""
CAUGHT_UP_NS = 1_000_000
"""A datagram that waited less than this in the kernel means the reader has caught up:
the wake-up ends without the extra ``recvmsg`` that would only say ``EAGAIN`` (an idle
relay wakes once per datagram, and that failed call was a fifth of the reader's cost)."""
MAX_DATAGRAM = 65536
_ANCILLARY = socket.CMSG_SPACE(16) + socket.CMSG_SPACE(4)
_TIMESPEC = struct.Struct("@qq")
_COUNT = struct.Struct("@I")
NTP_EPOCH_OFFSET_MS = 2_208_988_800_000
"""Milliseconds from 1900-01-01 (NTP epoch, aiortc's ``clock``) to 1970-01-01."""


def ntp_ms(realtime_ns: int) -> int:
    """A ``CLOCK_REALTIME`` stamp as aiortc's ``clock.current_ms()`` would read it."""
    return realtime_ns // 1_000_000 + NTP_EPOCH_OFFSET_MS


@dataclass(slots=True)
class SocketTally:
    """Counters of one relay's sockets, read by ``/metrics`` (server/metrics.py)."""

    datagrams: int = 0
    """Datagrams read by :class:`SocketReader`."""
    wakeups: int = 0
    """Reader callbacks that found at least one datagram."""
    dropped: int = 0
    """Datagrams the kernel dropped for a full receive buffer (``SO_RXQ_OVFL``)."""
    sockets: int = 0
    """Sockets set up so far."""
    receive_buffer: int = 0
    """Effective ``SO_RCVBUF`` of the last socket set up (what the kernel granted)."""


class _CapWarning:
    logged = False


def size_buffers(sock: socket.socket, tally: SocketTally | None = None) -> int:
    """Ask for :data:`RECEIVE_BUFFER` / :data:`SEND_BUFFER`; the effective receive size."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    # Linux doubles the value for its bookkeeping and reports the doubled figure.
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
    if granted < RECEIVE_BUFFER and not _CapWarning.logged:
        _CapWarning.logged = True
        logger.warning(
            "UDP receive buffer capped at %d bytes (asked %d): raise net.core.rmem_max "
            "(docs/deployment.md) or bursts will be dropped under load",
            granted,
            RECEIVE_BUFFER,
        )
    if tally is not None:
        tally.sockets += 1
        tally.receive_buffer = granted
    return granted


class SocketReader:
    """Reads one datagram transport's socket with kernel receive times (module doc)."""

    def __init__(
        self, transport: Any, protocol: asyncio.DatagramProtocol, tally: SocketTally
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self.tally = tally
        self.sock: socket.socket = transport._sock
        self.arrival_ns = 0
        """``CLOCK_REALTIME`` ns of the datagram being handled; 0 when it had no stamp."""
        self._drops = 0
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)

    def read_ready(self) -> None:
        transport = self.transport
        if transport._conn_lost:
            return
        recvmsg = self.sock.recvmsg
        time_ns = time.time_ns
        protocol = self.protocol
        tally = self.tally
        count = 0
        try:
            for _ in range(BATCH):
                try:
                    data, ancillary, _flags, addr = recvmsg(MAX_DATAGRAM, _ANCILLARY)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    protocol.error_received(exc)
                    break
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    transport._fatal_error(exc, "Fatal read error on datagram transport")
                    break
                count += 1
                stamp = 0
                for _level, kind, value in ancillary:
                    if kind == SCM_TIMESTAMPNS:
                        seconds, nanoseconds = _TIMESPEC.unpack(value)
                        stamp = seconds * 1_000_000_000 + nanoseconds
                    elif kind == SO_RXQ_OVFL:
                        drops = _COUNT.unpack(value)[0]
                        tally.dropped += (drops - self._drops) & 0xFFFFFFFF
                        self._drops = drops
                self.arrival_ns = stamp
                # An exception here propagates to the loop's handler, as with asyncio's
                # reader; the datagrams still queued are read on the next wake-up.
                protocol.datagram_received(data, addr)
                if transport._conn_lost or (stamp and time_ns() - stamp < CAUGHT_UP_NS):
                    break
        finally:
            self.arrival_ns = 0
            if count:
                tally.datagrams += count
                tally.wakeups += 1


def read_with_kernel_times(
    transport: Any, protocol: asyncio.DatagramProtocol, tally: SocketTally
) -> SocketReader | None:
    """Take over ``transport``'s reads (module doc); None where only the stock path works."""
    loop = getattr(transport, "_loop", None)
    if not isinstance(loop, BaseSelectorEventLoop) or transport.is_closing():
        return None
    sock = getattr(transport, "_sock", None)
    if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_DGRAM:
        return None
    for name in ("_conn_lost", "_fatal_error"):
        if not hasattr(transport, name):
            return None
    try:
        reader = SocketReader(transport, protocol, tally)
    except OSError:  # not Linux, or the option is refused: keep the stock path
        return None
    selector: Any = loop  # private names (module doc), not in typeshed
    selector._remove_reader(sock.fileno())
    selector._add_reader(sock.fileno(), reader.read_ready)
    return reader
