"""The signaling protocol: JSON messages over one WebSocket per participant.

This module parses and validates what clients send and keeps the per-connection order
rules; it never touches sockets. ``docs/signaling.md`` is the reference for client writers
and must change with this file.

Every message is a JSON object with a ``type``. A message that is not valid gets an
``error`` (``malformed``, ``too_large``, ``unknown_type``, ``bad_field``, ``bad_sdp``,
``out_of_order``, ``bad_preview``, ``preview_too_large``, ``preview_too_fast``) and changes
nothing; a flood closes the connection (``flood``, close code
4429). The first message must be ``join``.

Media follows the relay's connection model (``signaling.relay``): the client *offers* its
one upstream connection and the server answers; for every other participant who publishes,
the server *offers* one downstream connection (message carries ``publisher``) and the
client answers it. Joining and leaving never renegotiate a live connection. aiortc gathers
all candidates before it answers (half-trickle), and so must clients: SDPs carry their
candidates, and ``candidate`` messages are accepted and ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Final

from server.errors import JsonTooDeepError, MalformedJsonError, ValidationError
from server.parsing import load_json
from signaling.errors import FloodError, ProtocolError

MAX_MESSAGE_BYTES: Final = 64 * 1024
MAX_SDP_CHARS: Final = 48 * 1024
MAX_CHAT_CHARS: Final = 1000
MAX_PREVIEW_BYTES: Final = 24 * 1024
"""A waiting-room still (160x120 JPEG) after base64 decoding; a few KB in practice."""
PREVIEW_PREFIX: Final = "data:image/jpeg;base64,"
MAX_PREVIEW_CHARS: Final = len(PREVIEW_PREFIX) + 4 * ((MAX_PREVIEW_BYTES + 2) // 3)
PREVIEW_INTERVAL: Final = 2.0
"""Seconds between two previews of one connection (the page sends one every 5 s)."""
REQUEST_KINDS: Final = frozenset({"rear_camera", "front_camera", "torch", "zoom", "location"})
HEARTBEAT_S: Final = 10.0
"""WebSocket ping frames: after this many seconds without a byte from a client the server
sends a ping frame, and a client that has not answered within half as long again is dropped
(its place is kept for the grace and the others see it ``connected: false``). This watches
clients that never send ``ping`` (the Python client); the pages are watched much tighter by
their own ``ping`` every second (``HEARTBEAT_TIMEOUT_S``), and read the ``pong`` themselves
(browsers cannot see ping frames), so each side notices a dead link within 3 s."""
HEARTBEAT_TIMEOUT_S: Final = 3.0
"""A client that has sent ``ping`` is dropped when nothing comes from it for this long.
WebSocket pongs do not count for it: a browser's network stack answers ping frames even
when the page's own traffic is cut (an offline emulation, a stalled tab), and clients that
never send ``ping`` (the Python client) are watched by the ping frames alone."""

# Per type: field -> (python type(s), required, max length for strings)
_SCHEMAS: Final[dict[str, dict[str, tuple[tuple[type, ...], bool, int]]]] = {
    "join": {"token": ((str,), True, 2048), "session": ((str,), False, 128)},
    "offer": {"sdp": ((str,), True, MAX_SDP_CHARS)},
    "answer": {"sdp": ((str,), True, MAX_SDP_CHARS), "publisher": ((str,), True, 128)},
    "candidate": {
        "candidate": ((str, type(None)), False, 2048),
        "sdpMid": ((str, type(None)), False, 64),
        "sdpMLineIndex": ((int, type(None)), False, 0),
    },
    "chat": {"text": ((str,), True, MAX_CHAT_CHARS)},
    "request": {
        "kind": ((str,), True, 32),
        "to": ((str,), True, 128),
        "value": ((bool, int, float, type(None)), False, 0),
    },
    "response": {
        "id": ((str,), True, 64),
        "ok": ((bool,), True, 0),
        "data": ((dict, type(None)), False, 0),
    },
    "admit": {"participant": ((str,), True, 128)},
    "decline": {"participant": ((str,), True, 128), "reason": ((str,), False, 200)},
    "readmit": {"participant": ((str,), True, 128)},
    "remove": {"participant": ((str,), True, 128)},
    "preview": {"image": ((str,), True, 0)},
    "end": {},
    "leave": {},
    "ping": {},
}
CLIENT_TYPES: Final = frozenset(_SCHEMAS)

_SDP_LINE = re.compile(r"^[a-z]=[\x20-\x7e]*$")


@dataclass(frozen=True, slots=True)
class ClientMessage:
    type: str
    data: dict[str, Any]

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key, default)
        return value if isinstance(value, str) else default


def parse(raw: str | bytes) -> ClientMessage:
    """One client message, validated; raises ``ProtocolError`` with a stable code."""
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"Message is larger than {MAX_MESSAGE_BYTES} bytes", code="too_large")
    try:
        obj = load_json(raw)
    except JsonTooDeepError:
        raise ProtocolError("Message is nested too deeply") from None
    except MalformedJsonError:
        raise ProtocolError("Message is not valid JSON") from None
    except ValidationError as err:  # NUL, a lone surrogate, an integer out of range
        field = next(iter(err.fields), "")
        code = "bad_sdp" if field == "sdp" else "bad_field"  # clients already know bad_sdp
        raise ProtocolError(f"{field[:40]} is not valid", code=code, field=field) from None
    if not isinstance(obj, dict):
        raise ProtocolError("Message must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("Message has no type", code="bad_field", field="type")
    schema = _SCHEMAS.get(kind)
    if schema is None:
        raise ProtocolError(f"Unknown message type {kind[:40]!r}", code="unknown_type")
    data: dict[str, Any] = {}
    for name, (types, required, limit) in schema.items():
        if name not in obj:
            if required:
                raise ProtocolError(f"{kind}: {name} is required", code="bad_field", field=name)
            continue
        value = obj[name]
        # bool is an int in Python; only accept it where bool is listed.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ProtocolError(f"{kind}: {name} has the wrong type", code="bad_field", field=name)
        if isinstance(value, str) and limit and len(value) > limit:
            raise ProtocolError(f"{kind}: {name} is too long", code="bad_field", field=name)
        data[name] = value
    if kind in ("offer", "answer"):
        check_sdp(data["sdp"], kind)
    elif kind == "request" and data["kind"] not in REQUEST_KINDS:
        raise ProtocolError(
            f"request: unknown kind {data['kind'][:32]!r}", code="bad_field", field="kind"
        )
    elif kind == "chat" and not data["text"].strip():
        raise ProtocolError("chat: text is empty", code="bad_field", field="text")
    elif kind == "preview":
        check_preview(data["image"])
    return ClientMessage(kind, data)


def is_ping(raw: str | bytes) -> bool:
    """Whether ``raw`` is a ``ping`` (cheap: heartbeats are small, everything else is parsed
    by :func:`parse` anyway)."""
    if len(raw) > 64:
        return False
    try:
        obj = json.loads(raw)
    except ValueError:
        return False
    return isinstance(obj, dict) and obj.get("type") == "ping"


def check_preview(image: str) -> None:
    """A waiting-room still must be a small JPEG as a ``data:`` URL and nothing else.

    It is shown in staff's browsers as an ``<img src>``, so anything but
    ``data:image/jpeg;base64,`` (SVG with script, a remote URL that would leak the
    inspector's address) is refused, and so is base64 that does not decode to a JPEG.
    """
    if len(image) > MAX_PREVIEW_CHARS:
        raise ProtocolError(
            f"preview: image is larger than {MAX_PREVIEW_BYTES} bytes",
            code="preview_too_large",
            field="image",
        )
    if not image.startswith(PREVIEW_PREFIX):
        raise ProtocolError(
            "preview: image is not a data:image/jpeg;base64 URL", code="bad_preview", field="image"
        )
    try:
        raw = base64.b64decode(image[len(PREVIEW_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(
            "preview: image is not valid base64", code="bad_preview", field="image"
        ) from None
    if len(raw) > MAX_PREVIEW_BYTES:
        raise ProtocolError(
            f"preview: image is larger than {MAX_PREVIEW_BYTES} bytes",
            code="preview_too_large",
            field="image",
        )
    if not raw.startswith(b"\xff\xd8\xff"):
        raise ProtocolError("preview: image is not a JPEG", code="bad_preview", field="image")


def check_sdp(sdp: str, kind: str = "offer") -> None:
    """Reject anything that is not a plausible session description before aiortc sees it.

    aiortc's parser raises assorted exceptions (or accepts junk) on garbage; we insist on
    the RFC 8866 shape: starts with ``v=0``, ``o=`` and ``s=`` lines, at least one ``m=``
    line, and every line ``<letter>=<printable ASCII>``.
    """
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    if len(lines) < 4 or lines[0] != "v=0":
        raise ProtocolError(f"{kind}: sdp is not a session description", code="bad_sdp")
    if not any(line.startswith("o=") for line in lines[:3]) or not any(
        line.startswith("s=") for line in lines[:4]
    ):
        raise ProtocolError(f"{kind}: sdp lacks o= or s= lines", code="bad_sdp")
    if not any(line.startswith("m=") for line in lines):
        raise ProtocolError(f"{kind}: sdp has no media section", code="bad_sdp")
    for line in lines:
        if not _SDP_LINE.match(line):
            raise ProtocolError(f"{kind}: sdp has an invalid line", code="bad_sdp")


@dataclass(slots=True)
class FloodLimiter:
    """Token bucket per connection: ``rate`` messages per second, bursts up to ``burst``."""

    rate: float = 20.0
    burst: float = 60.0
    _tokens: float = field(default=-1.0)
    _at: float = field(default=0.0)

    def hit(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._tokens < 0:
            self._tokens, self._at = self.burst, now
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            raise FloodError()
        self._tokens -= 1


@dataclass(slots=True)
class Sequencer:
    """Order rules for one connection.

    ``join`` first and once; ``answer`` only to an offer the server sent for that
    ``publisher`` and not yet answered; no new ``offer`` while the previous one is
    unanswered.
    """

    joined: bool = False
    server_offers: set[str] = field(default_factory=set)
    client_offer_pending: bool = False

    def check(self, msg: ClientMessage) -> None:
        if msg.type == "ping":
            return
        if not self.joined:
            if msg.type != "join":
                raise ProtocolError(f"{msg.type} before join", code="out_of_order")
            return
        if msg.type == "join":
            raise ProtocolError("join was already sent", code="out_of_order")
        if msg.type == "answer" and msg.data["publisher"] not in self.server_offers:
            raise ProtocolError("answer without an offer from the server", code="out_of_order")
        if msg.type == "offer" and self.client_offer_pending:
            raise ProtocolError("offer while the previous one is unanswered", code="out_of_order")

    def accepted(self, msg: ClientMessage) -> None:
        """Record a message that passed ``check`` (before it is handled)."""
        if msg.type == "join":
            self.joined = True
        elif msg.type == "answer":
            self.server_offers.discard(msg.data["publisher"])
        elif msg.type == "offer":
            self.client_offer_pending = True

    def server_answered(self) -> None:
        self.client_offer_pending = False

    def server_offered(self, publisher: str) -> None:
        self.server_offers.add(publisher)

    def server_withdrew(self, publisher: str) -> None:
        self.server_offers.discard(publisher)


def dumps(message: dict[str, Any]) -> str:
    """Server messages as compact JSON (UTF-8 kept readable for chat)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
