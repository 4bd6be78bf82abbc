"""The media relay: forwards every participant's encoded VP8/Opus to every other one.

The server never decodes or re-encodes media (see ``docs/relay.md``): received frames become
``av.Packet`` s (:mod:`signaling.packets`) that are fanned out to per-subscriber queues and
packetised again by aiortc senders, and offered to an ``on_packet`` callback for the recorder.

Connections (chosen because aiortc is half-trickle, has no ICE restart, and renegotiating
a live aiortc connection is fragile):

* **publish**: each participant has one upstream peer connection. The *client* offers
  (``sendonly`` or ``sendrecv``, at most one audio and one video m-line), the server answers.
  Only VP8 and Opus are accepted.
* **subscribe**: for every (subscriber, publisher) pair the *server* offers one connection
  carrying that publisher's audio + video (``sendonly``), the subscriber answers. Joining and
  leaving never renegotiate anything: they only create or close connections.
* **reconnect**: calling :meth:`RelayRoom.add_participant` again for the same id replaces the
  publish connection; the publisher's :class:`Publication` (and so every subscription to it)
  survives, timestamps continue monotonically and a key frame is requested at once. A
  subscriber that lost its connection calls :meth:`RelayRoom.subscribe` again.

Usage (the signaling layer moves SDP strings; every call is a coroutine on one loop)::

    relay = Relay(RelayConfig(ice_servers=(RTCIceServer("stun:…"),), public_address=None))
    room = relay.room("appt-42", on_packet=recorders.feed)  # get or create
    answer = await room.add_participant("inspector-7", offer_sdp)   # -> send answer back
    offer = await room.subscribe("applicant-3", "inspector-7")      # -> send offer to applicant
    await room.accept_answer("applicant-3", "inspector-7", answer_sdp)
    await room.request_keyframe("applicant-3")      # e.g. before a snapshot
    packets = room.latest_video_packets("applicant-3")  # key frame + deltas (copies)
    packets = await room.fresh_video_packets("applicant-3", within=2.0)  # new key frame
    await room.unsubscribe("applicant-3", "inspector-7")
    await room.remove_participant("applicant-3")     # everything to and from it
    await relay.close_room("appt-42"); await relay.close()

Errors (all :class:`RelayError`): :class:`BadSessionDescriptionError` (not SDP, no audio or
video, no VP8/Opus, refused by aiortc), :class:`UnknownParticipantError`,
:class:`RoomClosedError`. Figures for dashboards: ``room.publication(pid).stats`` and each
``room.subscription(sub, pub).tracks[kind]`` (forwarded, dropped, overflows).

``on_packet(participant_id, kind, packet)`` is called on the event loop for every received
frame (``kind`` is ``"audio"`` or ``"video"``); it must not block and must not mutate the
packet (mux a copy). ``on_event(RelayEvent)`` reports connection states so the signaling
layer can show "reconnecting…".
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpReceiver
from aiortc.rtcconfiguration import RTCBundlePolicy

from signaling.adaptation import (
    AUDIO_ONLY_BELOW,
    LOW_FOR,
    PROBE_AFTER,
    PROBE_MAX,
    LinkPolicy,
    capture_estimates,
)
from signaling.candidates import pin_candidates
from signaling.consent import ConsentPolicy, install_consent
from signaling.negotiation import (
    KINDS,
    BadSessionDescriptionError,
    RelayError,
    RoomClosedError,
    UnknownParticipantError,
    accept_publisher_extras,
    offered_kinds,
    prefer_relay_codecs,
    set_local,
    set_remote,
)
from signaling.packets import PacketTrack, check_aiortc, route_keyframe_requests
from signaling.publication import Publication, PublicationStats
from signaling.receiving import PacketReceiver, install_packet_receiver
from signaling.sending import DirectSend, PacketSender, install_packet_sender
from signaling.sockets import SocketTally
from signaling.twcc import TransportFeedback

__all__ = [
    "BadSessionDescriptionError",
    "EventCallback",
    "PacketCallback",
    "Publication",
    "PublicationStats",
    "Relay",
    "RelayConfig",
    "RelayError",
    "RelayEvent",
    "RelayRoom",
    "RoomClosedError",
    "Subscription",
    "UnknownParticipantError",
]

logger = logging.getLogger(__name__)

PacketCallback = Callable[[str, str, "av.Packet[Any]"], None]
EventCallback = Callable[["RelayEvent"], None]
NoticeCallback = Callable[[str, dict[str, Any]], None]
"""``(participant, message)``: a message for that participant's signaling socket."""


@dataclass(frozen=True)
class RelayConfig:
    ice_servers: tuple[RTCIceServer, ...] = ()
    """STUN/TURN for the server's peers; aiortc uses the first STUN and first TURN only."""
    ice_servers_factory: Callable[[], Sequence[RTCIceServer]] | None = None
    """If set, called for every new peer connection instead of ``ice_servers``: TURN
    credentials expire, so a long-running relay mints fresh ones per connection."""
    host_addresses: tuple[str, ...] | None = None
    """Gather host candidates only on these local addresses (None: every interface)."""
    public_address: str | None = None
    """Announce host candidates on this address (1:1 NAT); None announces them as they are."""
    queue_packets: int = 96
    """Per subscriber and kind, for a ``PacketTrack`` read with ``recv()``; the relay's own
    senders take packets directly (``deliver_to``) and never queue."""
    keyframe_interval: float = 0.3
    """Minimum seconds between two key frame requests sent to one publisher."""
    gop_max_bytes: int = 8_000_000
    """Bound on the packets kept since the last key frame; beyond it a key frame is asked."""
    audio_only_below: int = AUDIO_ONLY_BELOW
    """bit/s: a subscriber whose REMB stays below this gets no video (signaling/adaptation)."""
    audio_only_after: float = LOW_FOR
    """Seconds below ``audio_only_below`` before its video stops."""
    video_probe_after: float = PROBE_AFTER
    """Seconds of audio-only before video is tried again (doubles after a failed try)."""
    kernel_timestamps: bool = True
    """Arrival times for REMB and transport-cc from the kernel's receive stamp
    (signaling/sockets.py); off: when Python reaches the datagram (as before issue 18)."""
    consent: ConsentPolicy | None = field(default_factory=ConsentPolicy)
    """ICE consent checks of the relay's connections (signaling/consent.py); None keeps
    aioice's own (no retransmission, closed after 6 failures)."""

    def rtc_configuration(self) -> RTCConfiguration:
        servers = self.ice_servers_factory() if self.ice_servers_factory else self.ice_servers
        # An explicit empty list: aiortc's default is a public Google STUN server.
        return RTCConfiguration(iceServers=list(servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


@dataclass(frozen=True)
class RelayEvent:
    room_id: str
    participant: str
    publisher: str | None
    """None for the participant's own publish connection, else the publisher subscribed to."""
    state: str
    """aiortc connection state: new, connecting, connected, failed, closed."""


class Subscription:
    """Server-offered connection carrying one publisher's audio and video to one subscriber."""

    def __init__(self, room: RelayRoom, subscriber: str, publication: Publication) -> None:
        self.room = room
        self.subscriber = subscriber
        self.publication = publication
        self.pc = RTCPeerConnection(room.config.rtc_configuration())
        self.tracks: dict[str, PacketTrack] = {}
        self.senders: dict[str, PacketSender] = {}
        for kind in KINDS:
            track = PacketTrack(kind, room.config.queue_packets, publication.request_keyframe)
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            prefer_relay_codecs(transceiver)
            route_keyframe_requests(transceiver.sender, publication.request_keyframe)
            self.senders[kind] = install_packet_sender(transceiver.sender)
            publication.add_track(track)
            self.tracks[kind] = track
        config = room.config
        self.policy = LinkPolicy(
            publication.participant,
            self._pause_video,
            self._resume_video,
            functools.partial(room.notify, subscriber),
            functools.partial(getattr, self.tracks["video"], "forwarded_bytes"),
            threshold=config.audio_only_below,
            low_for=config.audio_only_after,
            probe_after=config.video_probe_after,
            probe_max=max(PROBE_MAX, config.video_probe_after),
            probe_ok=config.video_probe_after,
        )
        capture_estimates(
            self.senders["video"].sender, self.policy.on_estimate, self.policy.on_loss
        )
        publication.policies.add(self.policy)
        self.pc.on("connectionstatechange", self._state_changed)

    def _pause_video(self) -> None:
        self.publication.remove_track(self.tracks["video"])

    def _resume_video(self) -> None:
        track = self.tracks["video"]
        if track.readyState == "live":
            track.restart()
            self.publication.add_track(track)

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            for track in self.tracks.values():
                track.activate()
        self.room.emit(self.subscriber, self.publication.participant, state)
        if state in ("failed", "closed"):
            self.room.spawn(self.room.forget(self))

    async def create_offer(self) -> str:
        await set_local(self.pc, await self.pc.createOffer(), self.room.config.host_addresses)
        self.room.harden(self.pc)  # the subscriber's RTCP (NACK, PLI, reports), consent
        return pin_candidates(self.pc.localDescription.sdp, self.room.config.public_address)

    async def accept_answer(self, sdp: str) -> None:
        await set_remote(self.pc, sdp, "answer", self.room.room_id, self.subscriber)

    async def close(self) -> None:
        self.policy.close()
        self.publication.policies.discard(self.policy)
        for track in self.tracks.values():
            self.publication.remove_track(track)
            track.stop()
        await self.pc.close()


class RelayRoom:
    """All publish and subscribe connections of one room; see the module docstring."""

    def __init__(
        self,
        room_id: str,
        config: RelayConfig | None = None,
        *,
        on_packet: PacketCallback | None = None,
        on_event: EventCallback | None = None,
        sockets: SocketTally | None = None,
    ) -> None:
        check_aiortc()
        self.room_id = room_id
        self.config = config or RelayConfig()
        self.sockets = sockets if sockets is not None else SocketTally()
        """Counters of the room's sockets (the relay's, shared by its rooms)."""
        self.on_packet = on_packet
        self.on_event = on_event
        self.on_notice: NoticeCallback | None = None
        """Set by the signaling hub: sends a message to a participant (e.g. audio_only)."""
        self.closed = False
        self._publications: dict[str, Publication] = {}
        self._publish_pcs: dict[str, RTCPeerConnection] = {}
        self.receive_paths: dict[str, list[PacketReceiver]] = {}
        """Each participant's current upstream receive path (signaling/receiving.py)."""
        self._subscriptions: dict[tuple[str, str], Subscription] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def harden(self, pc: RTCPeerConnection) -> list[PacketReceiver]:
        """The receive path of one of our connections (after ``setLocalDescription``):
        SRTP in the socket callback, kernel arrival times, burst-sized buffers, consent
        checks that survive a busy loop (signaling/receiving.py, sockets.py, consent.py)."""
        config = self.config
        paths = install_packet_receiver(
            pc, tally=self.sockets, kernel_timestamps=config.kernel_timestamps
        )
        if config.consent is not None:
            install_consent(pc, config.consent)
        return paths

    # -- publishing ---------------------------------------------------------------------
    async def add_participant(self, participant: str, offer_sdp: str) -> str:
        """Accept ``participant``'s upstream offer (first join or reconnect); return the answer."""
        self._check_open()
        previous = self._publish_pcs.pop(participant, None)
        if previous is not None:
            await previous.close()
        kinds = offered_kinds(offer_sdp, self.room_id, participant)
        pc = RTCPeerConnection(self.config.rtc_configuration())
        # Pre-created transceivers take the offer's first audio and video m-lines and
        # restrict them to what we can forward as is. (Only for kinds that are offered:
        # aiortc 1.16 fails to answer with a transceiver that matched no m-line.)
        for kind in kinds:
            prefer_relay_codecs(pc.addTransceiver(kind, direction="recvonly"))
        try:
            await set_remote(pc, offer_sdp, "offer", self.room_id, participant)
            twcc_id = accept_publisher_extras(pc, offer_sdp)
            receivers: dict[str, RTCRtpReceiver] = {}
            for transceiver in pc.getTransceivers():
                kind = transceiver.kind
                if transceiver.mid is None or kind in receivers:
                    continue
                receivers[kind] = transceiver.receiver
            publication = self._publications.get(participant)
            if publication is None:
                publication = self._publications[participant] = Publication(self, participant)
            publication.attach_source(receivers, transport_cc=twcc_id is not None)
            await set_local(pc, await pc.createAnswer(), self.config.host_addresses)
            paths = self.receive_paths[participant] = self.harden(pc)
            if twcc_id is not None:
                for path in paths:
                    send = DirectSend(path.dtls).rtcp
                    path.feedback = TransportFeedback(twcc_id, send, publication.rtcp_ssrc)
        except Exception:
            await pc.close()
            raise
        self._publish_pcs[participant] = pc

        def state_changed() -> None:
            self.emit(participant, None, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                for path in paths:
                    if path.feedback is not None:
                        path.feedback.close()
            if pc.connectionState == "connected":
                publication.request_keyframe()
            elif pc.connectionState == "failed" and self._publish_pcs.get(participant) is pc:
                del self._publish_pcs[participant]
                self.spawn(pc.close())

        pc.on("connectionstatechange", state_changed)
        return pin_candidates(pc.localDescription.sdp, self.config.public_address)

    async def remove_participant(self, participant: str) -> None:
        """Close everything to and from ``participant``; unknown ids are ignored."""
        pc = self._publish_pcs.pop(participant, None)
        self.receive_paths.pop(participant, None)
        publication = self._publications.pop(participant, None)
        pairs = [key for key in self._subscriptions if participant in key]
        closing: list[Coroutine[Any, Any, None]] = [self.unsubscribe(*k) for k in pairs]
        if pc is not None:
            closing.append(pc.close())
        await asyncio.gather(*closing)
        if publication is not None:
            publication.close()

    # -- subscribing --------------------------------------------------------------------
    async def subscribe(self, subscriber: str, publisher: str) -> str:
        """Create (or re-create) the server's offer carrying ``publisher`` to ``subscriber``."""
        self._check_open()
        publication = self._publication(publisher)
        if subscriber == publisher:
            raise RelayError(f"room {self.room_id}: {subscriber} cannot subscribe to itself")
        await self.unsubscribe(subscriber, publisher)
        subscription = Subscription(self, subscriber, publication)
        self._subscriptions[(subscriber, publisher)] = subscription
        try:
            return await subscription.create_offer()
        except Exception:
            await self.unsubscribe(subscriber, publisher)
            raise

    async def accept_answer(self, subscriber: str, publisher: str, answer_sdp: str) -> None:
        subscription = self._subscriptions.get((subscriber, publisher))
        if subscription is None:
            raise UnknownParticipantError(
                f"room {self.room_id}: no pending subscription of {subscriber} to {publisher}"
            )
        await subscription.accept_answer(answer_sdp)

    async def unsubscribe(self, subscriber: str, publisher: str) -> None:
        subscription = self._subscriptions.pop((subscriber, publisher), None)
        if subscription is not None:
            await subscription.close()

    async def forget(self, subscription: Subscription) -> None:
        """Drop a subscription whose connection failed or closed, unless already replaced."""
        key = (subscription.subscriber, subscription.publication.participant)
        if self._subscriptions.get(key) is subscription:
            del self._subscriptions[key]
        await subscription.close()

    # -- evidence -----------------------------------------------------------------------
    async def request_keyframe(self, participant: str) -> None:
        self._publication(participant).request_keyframe()

    def latest_video_packets(self, participant: str) -> list[av.Packet[Any]]:
        """The last key frame and the deltas after it (empty until one arrived)."""
        return self._publication(participant).latest_video_packets()

    async def fresh_video_packets(
        self, participant: str, within: float = 2.0
    ) -> list[av.Packet[Any]]:
        """Ask for a key frame and return it once it arrives (TimeoutError otherwise)."""
        return await self._publication(participant).wait_keyframe(within)

    # -- introspection ------------------------------------------------------------------
    @property
    def publishers(self) -> list[str]:
        return list(self._publications)

    def subscriptions(self) -> list[tuple[str, str]]:
        return list(self._subscriptions)

    def publication(self, participant: str) -> Publication:
        return self._publication(participant)

    def subscription(self, subscriber: str, publisher: str) -> Subscription | None:
        return self._subscriptions.get((subscriber, publisher))

    def publish_connection(self, participant: str) -> RTCPeerConnection | None:
        return self._publish_pcs.get(participant)

    # -- lifecycle ----------------------------------------------------------------------
    async def close(self) -> None:
        self.closed = True
        for participant in set(self._publications) | {s for s, _ in self._subscriptions}:
            await self.remove_participant(participant)
        for pc in list(self._publish_pcs.values()):
            await pc.close()
        self._publish_pcs.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def notify(self, participant: str, message: dict[str, Any]) -> None:
        """Hand ``message`` to the signaling layer for ``participant``'s socket."""
        if self.on_notice is not None:
            try:
                self.on_notice(participant, message)
            except Exception:
                logger.exception("on_notice failed in room %s", self.room_id)

    def emit(self, participant: str, publisher: str | None, state: str) -> None:
        if self.on_event is not None:
            self.on_event(RelayEvent(self.room_id, participant, publisher, state))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("relay task failed in room %s", self.room_id, exc_info=task.exception())

    def _publication(self, participant: str) -> Publication:
        publication = self._publications.get(participant)
        if publication is None:
            raise UnknownParticipantError(
                f"room {self.room_id}: {participant} does not publish here"
            )
        return publication

    def _check_open(self) -> None:
        if self.closed:
            raise RoomClosedError(f"room {self.room_id} is closed")


class Relay:
    """The rooms of one server process (one per node; see DESIGN.md "One machine")."""

    def __init__(self, config: RelayConfig | None = None) -> None:
        check_aiortc()
        self.config = config or RelayConfig()
        self._rooms: dict[str, RelayRoom] = {}
        self.sockets = SocketTally()
        """Counters of every room's sockets (kernel drops, reads) for /metrics."""

    def room(
        self,
        room_id: str,
        *,
        on_packet: PacketCallback | None = None,
        on_event: EventCallback | None = None,
    ) -> RelayRoom:
        """The open room ``room_id``, created on first use (callbacks apply on creation)."""
        room = self._rooms.get(room_id)
        if room is None or room.closed:
            room = RelayRoom(
                room_id, self.config, on_packet=on_packet, on_event=on_event, sockets=self.sockets
            )
            self._rooms[room_id] = room
        return room

    def get(self, room_id: str) -> RelayRoom | None:
        return self._rooms.get(room_id)

    def rooms(self) -> list[RelayRoom]:
        return [room for room in self._rooms.values() if not room.closed]

    async def close_room(self, room_id: str) -> None:
        room = self._rooms.pop(room_id, None)
        if room is not None:
            await room.close()

    async def close(self) -> None:
        for room_id in list(self._rooms):
            await self.close_room(room_id)
