"""The live rooms of one node: connections, room state, relay and directory together.

``Hub`` is what the WebSocket handler talks to. It owns, per room, the ``Room`` state
machine, the media room of the relay and the open connections, and it applies the protocol
rules of ``signaling.protocol`` to every message. It does no socket I/O itself: a
connection is anything with ``send`` and ``close`` (``signaling.handlers`` adapts aiohttp's
``WebSocketResponse``; tests can use real sockets too), so this module never imports aiohttp.

Ordering that matters:

* The token is verified, then the ``gate`` (the deployment's rule: the staff login a
  console link needs, whether the room's appointment and case are still open), and the
  directory consulted, before a room or any media exists.
* Messages of one connection are handled one at a time (the handler awaits each), so the
  ``Sequencer`` sees them in order; different connections interleave freely.
* A drop keeps the participant's place *and their publication* for ``grace`` seconds: a
  rejoin with the session id within that time resumes (admitted stays admitted) with
  *new* peer connections, because aiortc has no ICE restart; the others keep their
  downstream connections and see video again as soon as the new upstream is up. After the
  grace period the participant has left and everyone gets ``unpublished``.
* A waiting (or declined) applicant publishes nothing; their page may send a small still
  (``preview``) that goes to the staff who may admit and to nobody else, is never stored
  and never recorded: it is not evidence.
* A hidden participant's (observer, supervisor) watch is one ``live.watched`` event with
  its start and end, written when it ends however it ends (``_watch_over``).
* Subscription offers go out one at a time per room (``fan_lock``): an admit and a publish
  may both want to offer the same pair, and a pair must be offered once per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from signaling.directory import Directory, MemoryDirectory, Node
from signaling.errors import (
    CLOSE_ENDED,
    CLOSE_REMOVED,
    CLOSE_REPLACED,
    ForbiddenError,
    ProtocolError,
    RefusedError,
    RoomClosedError,
    SignalingError,
    WrongNodeError,
)
from signaling.ice import IceConfig
from signaling.protocol import PREVIEW_INTERVAL, ClientMessage, FloodLimiter, Sequencer, parse
from signaling.rooms import Participant, ParticipantState, Room, RoomState
from signaling.tokens import JoinGrant, TokenSigner

log = logging.getLogger(__name__)
CLOSE_GOING_AWAY = 1001


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).replace(microsecond=0).isoformat()


class Connection(Protocol):
    async def send(self, message: dict[str, Any]) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class MediaRoom(Protocol):
    """What the hub uses of ``signaling.relay.RelayRoom`` (one room of the relay)."""

    async def add_participant(self, participant: str, offer_sdp: str) -> str: ...

    async def remove_participant(self, participant: str) -> None: ...

    async def subscribe(self, subscriber: str, publisher: str) -> str: ...

    async def accept_answer(self, subscriber: str, publisher: str, answer_sdp: str) -> None: ...

    async def unsubscribe(self, subscriber: str, publisher: str) -> None: ...

    @property
    def publishers(self) -> list[str]: ...

    async def close(self) -> None: ...


MediaFactory = Callable[[str], Awaitable[MediaRoom]]
"""Opens the relay room for a room id; ``MediaRoom.close`` closes it."""
Recorder = Callable[[Room, str, str | None, dict[str, Any]], Awaitable[None]]
"""``(room, kind, actor participant id, data)``: write a case event."""
Notifier = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Entry:
    """What the gate says about a join it lets through."""

    observed: bool = False
    """Tell this participant the session may be observed for quality."""


Gate = Callable[[JoinGrant, "Link"], Awaitable[Entry]]
"""Checks a verified grant against the world (login, persistent state); raises a
``SignalingError`` to refuse."""


@dataclass(slots=True)
class Link:
    """One open connection and its per-connection protocol state."""

    conn: Connection
    limiter: FloodLimiter = field(default_factory=FloodLimiter)
    seq: Sequencer = field(default_factory=Sequencer)
    room: str | None = None
    participant: str | None = None
    closed: bool = False
    identity: str | None = None
    """Participant id of the authenticated login behind the socket (``staff-3``), if any."""
    preview_at: float = -PREVIEW_INTERVAL
    """Monotonic time of the last waiting-room still this connection sent."""


@dataclass(slots=True)
class LiveRoom:
    room: Room
    media: MediaRoom
    links: dict[str, Link] = field(default_factory=dict)
    pending: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    """request id -> (kind, from, to)"""
    timers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    """participant -> task that lets them go after the grace period"""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    subscribed: set[tuple[str, str]] = field(default_factory=set)
    """(subscriber, publisher) pairs with a subscription offered on the current links"""
    fan_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serialises subscription offers: an admit and a publish can race for the same pair."""
    idling: bool = False
    """Everyone has gone and the room is closing (the idle hook runs)."""
    watching: dict[str, float] = field(default_factory=dict)
    """Hidden participant -> unix time their watch began; popped when it is recorded."""

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


class Hub:
    def __init__(
        self,
        *,
        signer: TokenSigner,
        media: MediaFactory,
        node: Node,
        directory: Directory | None = None,
        ice: IceConfig | None = None,
        record: Recorder | None = None,
        notify: Notifier | None = None,
        grace: float = 60.0,
        recording: bool = True,
        close_media: Callable[[str, MediaRoom], Awaitable[None]] | None = None,
        gate: Gate | None = None,
        idle: Callable[[Room], Awaitable[None]] | None = None,
    ) -> None:
        self.signer = signer
        self.media_factory = media
        self.node = node
        self.directory: Directory = directory or MemoryDirectory()
        self.ice = ice or IceConfig()
        self.record = record
        self.notify = notify
        self.grace = grace
        self.recording = recording
        self.close_media = close_media
        """Closes a room's media by room id (the relay forgets it); default ``media.close``."""
        self.gate = gate
        self.idle = idle
        """Called when the last participant's grace ran out, before the room closes."""
        self.rooms: dict[str, LiveRoom] = {}
        self.closed_rooms: set[str] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()
        self._closing: dict[str, asyncio.Event] = {}

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_claims())

    async def close(self) -> None:
        """Shutdown: tear every room down and release its directory claim.

        Sockets close with 1001 ("going away") and no ``ended``: the session itself is not
        over, so clients reconnect, reach another node (or this one, restarted) and carry on.
        """
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        for live in list(self.rooms.values()):
            await self._close_room(live, notify=False, final=False, code=CLOSE_GOING_AWAY)

    async def _refresh_claims(self) -> None:
        interval = max(getattr(self.directory, "ttl", 30.0) / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            for room_id in list(self.rooms):
                try:
                    await self.directory.refresh(room_id, self.node)
                except Exception:  # keep refreshing the others; Redis may blip
                    log.exception("refreshing the directory claim of room %s failed", room_id)

    # -- entry point ------------------------------------------------------------------
    async def receive(self, link: Link, raw: str | bytes) -> None:
        """Handle one raw message; errors become ``error`` messages or a close."""
        try:
            link.limiter.hit()
            msg = parse(raw)
            link.seq.check(msg)
            # Recorded before the (awaiting) dispatch: the relay may send its own offer
            # while our answer to the client's offer is being made.
            link.seq.accepted(msg)
            await self._dispatch(link, msg)
        except SignalingError as err:
            await self._safe_send(link, err.as_message())
            if err.fatal:
                await self._close_link(link, err.close_code, err.error_code)

    async def disconnected(self, link: Link) -> None:
        """The socket is gone (always called, from the handler's ``finally``)."""
        link.closed = True
        live = self.rooms.get(link.room or "")
        if live is None or link.participant is None:
            return
        if live.links.get(link.participant) is not link:
            return  # replaced by a newer connection
        del live.links[link.participant]
        pid = link.participant
        live.room.disconnect(pid)
        # The publication stays: if the participant comes back within the grace period,
        # subscribers keep their connections and simply see video again.
        await self._presence(live)
        live.timers[pid] = live.spawn(self._expire(live, pid))

    async def _expire(self, live: LiveRoom, pid: str) -> None:
        await asyncio.sleep(self.grace)
        live.timers.pop(pid, None)
        if pid in live.links or self.rooms.get(live.room.id) is not live:
            return
        live.room.leave(pid)
        await self._watch_over(live, pid)
        await self._unpublish(live, pid)
        await self._presence(live)
        if not live.links and not live.idling:
            # Once: the last two timers may run out together, and closing the room cancels
            # every other task of it, which must not be the one in the idle hook.
            live.idling = True
            if self.idle is not None:
                try:
                    await self.idle(live.room)
                except Exception:
                    log.exception("the idle hook of room %s failed", live.room.id)
            # Someone who arrived meanwhile hears that it is over.
            await self._close_room(live, notify=bool(live.links), final=False)

    # -- dispatch ---------------------------------------------------------------------
    async def _dispatch(self, link: Link, msg: ClientMessage) -> None:
        if msg.type == "ping":
            await link.conn.send({"type": "pong"})
            return
        if msg.type == "join":
            await self._join(link, msg)
            return
        live = self.rooms.get(link.room or "")
        pid = link.participant
        if live is None or pid is None:
            raise RoomClosedError("the room has ended")
        room = live.room
        if msg.type == "candidate":
            return
        if msg.type == "offer":
            try:
                room.require_publisher(pid)
            except SignalingError:
                link.seq.server_answered()  # refused: the client may not offer again either
                raise
            try:
                sdp = await live.media.add_participant(pid, msg.data["sdp"])
            except Exception as exc:
                log.warning("relay refused the offer of %s in %s: %s", pid, room.id, exc)
                raise SignalingError(
                    "The media server could not use this offer", code="media_failed"
                ) from None
            finally:
                link.seq.server_answered()
            await link.conn.send({"type": "answer", "sdp": sdp})
            live.spawn(self._fan_out(live, pid))
            return
        if msg.type == "answer":
            room.require_admitted(pid)
            try:
                await live.media.accept_answer(pid, msg.data["publisher"], msg.data["sdp"])
            except Exception as exc:
                log.warning("relay refused the answer of %s in %s: %s", pid, room.id, exc)
                raise SignalingError(
                    "The media server could not use this answer", code="media_failed"
                ) from None
        elif msg.type == "chat":
            who = room.require_admitted(pid)
            out = {
                "type": "chat",
                "from": pid,
                "name": who.name,
                "text": msg.data["text"],
                "at": time.time(),
            }
            # A hidden participant's chat reaches staff only.
            await self._broadcast(live, out, about=who)
            await self._record(live, "live.chat", pid, {"text": msg.data["text"]})
        elif msg.type == "request":
            await self._request(live, pid, msg)
        elif msg.type == "response":
            await self._response(live, pid, msg)
        elif msg.type == "admit":
            who = room.admit(pid, msg.data["participant"])
            await self._send_to(live, who.id, self._admitted(who.id))
            if who.id in live.links:
                live.spawn(self._subscribe_all(live, who.id))
            await self._record(live, "live.admitted", pid, {"participant": who.id})
            await self._presence(live)
        elif msg.type == "decline":
            reason = msg.text("reason")
            who = room.decline(pid, msg.data["participant"], reason)
            await self._record(
                live, "live.declined", pid, {"participant": who.id, "reason": reason}
            )
            # They stay connected (and publish nothing): staff may still let them in.
            await self._send_to(live, who.id, {"type": "declined", "reason": reason})
            await self._presence(live)
        elif msg.type == "readmit":
            who = room.readmit(pid, msg.data["participant"])
            await self._send_to(live, who.id, self._admitted(who.id))
            if who.id in live.links:
                live.spawn(self._subscribe_all(live, who.id))
            await self._record(live, "live.readmitted", pid, {"participant": who.id})
            await self._presence(live)
        elif msg.type == "preview":
            await self._preview(live, link, pid, msg.data["image"])
        elif msg.type == "remove":
            who = room.remove(pid, msg.data["participant"])
            await self._record(live, "live.removed", pid, {"participant": who.id})
            await self._watch_over(live, who.id)
            await self._kick(live, who.id, {"type": "removed"}, CLOSE_REMOVED)
            await self._unpublish(live, who.id)
            await self._presence(live)
        elif msg.type == "end":
            room.end(pid)
            await self._record(live, "live.ended", pid, {})
            await self._close_room(live, notify=True)
        elif msg.type == "leave":
            room.leave(pid)
            live.links.pop(pid, None)
            await self._watch_over(live, pid)
            await self._unpublish(live, pid)
            await self._presence(live)
            await self._close_link(link, 1000, "left")

    # -- join -------------------------------------------------------------------------
    async def _join(self, link: Link, msg: ClientMessage) -> None:
        grant = self.signer.verify(msg.data["token"])
        if grant.room in self.closed_rooms:
            raise RoomClosedError(f"room {grant.room} is closed")
        entry = await self.gate(grant, link) if self.gate is not None else Entry()
        holder = await self.directory.claim(grant.room, self.node)
        if holder.id != self.node.id:
            raise WrongNodeError(f"room {grant.room} is hosted on node {holder.id}", url=holder.url)
        live = self.rooms.get(grant.room)
        if live is None:
            # Opening awaits (relay, case lookup): two first arrivals must not open two rooms.
            async with self._opening:
                closing = self._closing.get(grant.room)
                if closing is not None:  # the last one out is still tearing the room down
                    await closing.wait()
                live = self.rooms.get(grant.room) or await self._open_room(grant)
        try:
            result = live.room.join(grant, session=msg.data.get("session"))
        except ForbiddenError as err:
            raise RefusedError(err.message, code=err.error_code) from None
        who = result.participant
        timer = live.timers.pop(who.id, None)
        if timer is not None:
            timer.cancel()
        old = live.links.get(who.id)
        if old is not None and old is not link:
            await self._close_link(old, CLOSE_REPLACED, "replaced by a newer connection")
        live.links[who.id] = link
        link.room, link.participant = grant.room, who.id
        # A new connection has no peer connections yet: everything is offered afresh.
        live.subscribed = {pair for pair in live.subscribed if pair[0] != who.id}
        await link.conn.send(
            {
                "type": "welcome",
                "room": grant.room,
                "participant": who.id,
                "role": who.role,
                "name": who.name,
                "session": who.session,
                "state": who.state.value,
                "resumed": result.resumed,
                "ice_servers": self.ice.servers_for(who.id),
                "recording": self.recording,
                "receive_only": who.hidden,
                "observed": entry.observed,
            }
        )
        state: dict[str, Any] = {"type": who.state.value}
        if who.state is ParticipantState.DECLINED:
            state["reason"] = who.reason  # back after a drop: the phone says why again
        await link.conn.send(state)
        if not result.resumed:
            await self._record(
                live, "live.joined", who.id, {"role": who.role, "state": who.state.value}
            )
        if who.hidden:
            live.watching.setdefault(who.id, time.time())
        await self._presence(live)
        if who.state is ParticipantState.ADMITTED:
            # New connection, new peer connections: offer every publisher again.
            live.spawn(self._subscribe_all(live, who.id))
        if who.state is ParticipantState.WAITING and self.notify is not None:
            await self.notify(
                {
                    "type": "waiting",
                    "room": grant.room,
                    "participant": who.id,
                    "name": who.name,
                    "node": self.node.id,
                }
            )

    async def _open_room(self, grant: JoinGrant) -> LiveRoom:
        live = LiveRoom(Room(grant.room), await self.media_factory(grant.room))
        self.rooms[grant.room] = live
        if hasattr(live.media, "on_notice"):  # the relay's messages (e.g. audio_only)
            live.media.on_notice = lambda pid, message: live.spawn(
                self._send_to(live, pid, message)
            )
        return live

    # -- media fan-out ----------------------------------------------------------------
    async def _fan_out(self, live: LiveRoom, publisher: str) -> None:
        """Offer a (re)published stream to every admitted, connected participant."""
        for pid in list(live.links):
            if pid != publisher:
                await self._subscribe(live, pid, publisher)

    async def _subscribe_all(self, live: LiveRoom, subscriber: str) -> None:
        for publisher in list(live.media.publishers):
            if publisher != subscriber:
                await self._subscribe(live, subscriber, publisher)

    async def _subscribe(self, live: LiveRoom, subscriber: str, publisher: str) -> None:
        async with live.fan_lock:
            await self._subscribe_locked(live, subscriber, publisher)

    async def _subscribe_locked(self, live: LiveRoom, subscriber: str, publisher: str) -> None:
        link = live.links.get(subscriber)
        who = live.room.participants.get(subscriber)
        if link is None or who is None or who.state is not ParticipantState.ADMITTED:
            return
        if (subscriber, publisher) in live.subscribed:
            return
        try:
            sdp = await live.media.subscribe(subscriber, publisher)
        except Exception as exc:  # the publisher left meanwhile
            log.info(
                "no subscription of %s to %s in %s: %s", subscriber, publisher, live.room.id, exc
            )
            return
        live.subscribed.add((subscriber, publisher))
        link.seq.server_offered(publisher)
        # Fresh TURN credentials with every offer: the subscriber builds a new peer
        # connection for it, perhaps hours after its welcome (whose credentials expire).
        await self._safe_send(
            link,
            {
                "type": "offer",
                "publisher": publisher,
                "sdp": sdp,
                "ice_servers": self.ice.servers_for(subscriber),
            },
        )

    async def _unpublish(self, live: LiveRoom, pid: str) -> None:
        await live.media.remove_participant(pid)
        live.subscribed = {pair for pair in live.subscribed if pid not in pair}
        gone = live.room.participants.get(pid)
        for other, link in list(live.links.items()):
            viewer = live.room.participants.get(other)
            if other == pid or (gone is not None and viewer is not None and not viewer.sees(gone)):
                continue
            link.seq.server_withdrew(pid)
            await self._safe_send(link, {"type": "unpublished", "publisher": pid})

    # -- waiting-room previews ---------------------------------------------------------
    async def _preview(self, live: LiveRoom, link: Link, pid: str, image: str) -> None:
        """Forward a waiting person's still to the staff of this room who may admit.

        Only from someone waiting or declined (once admitted the video is there), at most
        one per ``PREVIEW_INTERVAL`` per connection, and kept nowhere.
        """
        who = live.room.get(pid)
        if who.state not in (ParticipantState.WAITING, ParticipantState.DECLINED):
            raise ProtocolError(
                f"participant {pid} is {who.state}; previews are for the waiting room",
                code="not_waiting",
            )
        now = time.monotonic()
        if now - link.preview_at < PREVIEW_INTERVAL:
            raise ProtocolError(f"one preview per {PREVIEW_INTERVAL:g} s", code="preview_too_fast")
        link.preview_at = now
        out = {"type": "preview", "participant": pid, "image": image, "at": time.time()}
        for other, target in list(live.links.items()):
            if other != pid and live.room.may_admit(other):
                await self._safe_send(target, out)

    # -- requests ---------------------------------------------------------------------
    async def _request(self, live: LiveRoom, pid: str, msg: ClientMessage) -> None:
        live.room.require_staff(pid)
        target = live.room.require_admitted(msg.data["to"])
        rid = secrets.token_hex(6)
        kind = msg.data["kind"]
        live.pending[rid] = (kind, pid, target.id)
        await self._send_to(
            live,
            target.id,
            {
                "type": "request",
                "id": rid,
                "kind": kind,
                "value": msg.data.get("value"),
                "from": pid,
            },
        )
        await self._record(
            live,
            "live.request",
            pid,
            {"id": rid, "kind": kind, "to": target.id, "value": msg.data.get("value")},
        )

    async def _response(self, live: LiveRoom, pid: str, msg: ClientMessage) -> None:
        live.room.require_admitted(pid)
        entry = live.pending.get(msg.data["id"])
        if entry is None or entry[2] != pid:
            raise ProtocolError("response to an unknown request", code="out_of_order")
        del live.pending[msg.data["id"]]
        kind, asker, _ = entry
        out = {
            "type": "response",
            "id": msg.data["id"],
            "kind": kind,
            "ok": msg.data["ok"],
            "data": msg.data.get("data"),
            "from": pid,
        }
        await self._send_to(live, asker, out)
        await self._record(
            live,
            "live.response",
            pid,
            {
                "id": msg.data["id"],
                "kind": kind,
                "ok": msg.data["ok"],
                "data": msg.data.get("data"),
            },
        )

    # -- helpers ----------------------------------------------------------------------
    async def _presence(self, live: LiveRoom) -> None:
        for pid, link in list(live.links.items()):
            who = live.room.participants.get(pid)
            if who is None:
                continue
            if who.state in (ParticipantState.WAITING, ParticipantState.DECLINED):
                # the waiting room shows nobody else (the inspector may still be busy)
                people = [who.public()]
            else:
                people = live.room.presence(viewer=who)
            await self._safe_send(link, {"type": "presence", "participants": people})

    async def _broadcast(
        self, live: LiveRoom, message: dict[str, Any], *, about: Participant | None = None
    ) -> None:
        """To every admitted participant (who may see ``about``, when given)."""
        for pid, link in list(live.links.items()):
            who = live.room.participants.get(pid)
            if who is None or who.state is not ParticipantState.ADMITTED:
                continue
            if about is not None and not who.sees(about):
                continue
            await self._safe_send(link, message)

    def _admitted(self, pid: str) -> dict[str, Any]:
        """``admitted``, with ICE servers minted now for the publish connection it starts."""
        return {"type": "admitted", "ice_servers": self.ice.servers_for(pid)}

    async def _send_to(self, live: LiveRoom, pid: str, message: dict[str, Any]) -> None:
        link = live.links.get(pid)
        if link is not None:
            await self._safe_send(link, message)

    async def _kick(self, live: LiveRoom, pid: str, message: dict[str, Any], code: int) -> None:
        link = live.links.pop(pid, None)
        if link is not None:
            await self._safe_send(link, message)
            await self._close_link(link, code, str(message["type"]))

    async def _close_room(
        self, live: LiveRoom, *, notify: bool, final: bool = True, code: int = CLOSE_ENDED
    ) -> None:
        if self.rooms.get(live.room.id) is not live:
            return  # already closing or closed
        del self.rooms[live.room.id]
        done = self._closing[live.room.id] = asyncio.Event()
        try:
            await self._tear_down(live, notify=notify, final=final, code=code)
        finally:
            done.set()
            if self._closing.get(live.room.id) is done:
                del self._closing[live.room.id]

    async def _tear_down(self, live: LiveRoom, *, notify: bool, final: bool, code: int) -> None:
        if final:
            live.room.state = RoomState.CLOSED
            self.closed_rooms.add(live.room.id)
        for pid in list(live.watching):  # the room ends every watch still going on
            await self._watch_over(live, pid)
        others = [t for t in live.tasks if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        live.timers.clear()
        links = list(live.links.values())
        live.links.clear()
        # Media first: once a participant hears "ended", nothing is forwarded any more.
        try:
            if self.close_media is not None:
                await self.close_media(live.room.id, live.media)
            else:
                await live.media.close()
        finally:
            with contextlib.suppress(Exception):
                await self.directory.release(live.room.id, self.node)
            for link in links:
                if notify:
                    await self._safe_send(link, {"type": "ended"})
                await self._close_link(link, code, "ended" if notify else "going away")

    async def _watch_over(self, live: LiveRoom, pid: str) -> None:
        """A hidden participant's watch ended: one ``live.watched`` event with its start
        and end ("observed by …, from … to …"), written once however it ended (left, the
        grace after a drop ran out, removed, the room ended)."""
        since = live.watching.pop(pid, None)
        who = live.room.participants.get(pid)
        if since is None or who is None:
            return
        until = time.time()
        await self._record(
            live,
            "live.watched",
            pid,
            {
                "role": who.role,
                "from": _iso(since),
                "to": _iso(until),
                "seconds": round(until - since),
            },
        )

    async def _record(
        self, live: LiveRoom, kind: str, actor: str | None, data: dict[str, Any]
    ) -> None:
        if self.record is None:
            return
        try:
            await self.record(live.room, kind, actor, data)
        except Exception:  # the call goes on; the log says which event is missing
            log.exception("could not record %s in room %s", kind, live.room.id)

    @staticmethod
    async def _safe_send(link: Link, message: dict[str, Any]) -> None:
        if link.closed:
            return
        try:
            await link.conn.send(message)
        except (ConnectionError, RuntimeError):
            link.closed = True

    @staticmethod
    async def _close_link(link: Link, code: int, reason: str) -> None:
        if link.closed:
            return
        link.closed = True
        with contextlib.suppress(ConnectionError, RuntimeError):
            await link.conn.close(code, reason)
