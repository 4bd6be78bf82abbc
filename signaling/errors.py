"""Exceptions of the live-video package, one tree with stable codes.

Every error that can reach a participant carries a stable ``code`` (clients switch on it,
``docs/signaling.md`` lists them), an English ``message`` for logs and developers, and the
WebSocket close code to use when the error ends the connection. What a person reads is
:data:`USER_MESSAGES` for the code, translated at the edge (``signaling.handlers``) into the
participant's language; the English message travels along as ``detail``::

    SignalingError
    ├── ProtocolError        malformed, too_large, unknown_type, bad_field, bad_sdp, out_of_order,
    │                        bad_preview, preview_too_large, preview_too_fast
    │   └── FloodError       flood (always closes)
    ├── TokenError           bad_token, expired_token, wrong_room, login_required,
    │                        wrong_person (always closes)
    ├── RoomError            room_closed, not_admitted, forbidden, seat_taken,
    │                        receive_only, no_such_participant, …
    ├── WrongNodeError       wrong_node (closes, ``details["url"]`` says where to go)
    └── NodeBusyError        node_busy (closes: no node has headroom for a new room)

Domain modules raise them; ``signaling.handlers`` turns them into ``error`` messages or
WebSocket closes. Nothing here imports aiohttp.
"""

from __future__ import annotations

from typing import Any, ClassVar

# WebSocket close codes (4000-4999 are free for applications).
CLOSE_BAD_INPUT = 4400
CLOSE_BAD_TOKEN = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_WRONG_NODE = 4409
CLOSE_ENDED = 4410
CLOSE_REMOVED = 4411
CLOSE_DECLINED = 4412  # no longer used: a declined participant stays connected
CLOSE_REPLACED = 4413
CLOSE_FLOOD = 4429
CLOSE_BUSY = 4503


# One sentence a participant can read, per code (message ids of web/translations/*/live.po).
USER_MESSAGES: dict[str, str] = {
    "malformed": "The message could not be read.",
    "too_large": "The message is too large.",
    "unknown_type": "This kind of message is not supported.",
    "bad_field": "A field of the message is missing or not valid.",
    "bad_sdp": "The media description could not be read.",
    "out_of_order": "That message came out of order.",
    "flood": "Too many messages were sent; the connection was closed.",
    "bad_token": "The join link is not valid.",
    "expired_token": "The join link has expired.",
    "wrong_room": "The join link is for another session.",
    "wrong_node": "This session is on another server; reconnecting there.",
    "node_busy": "The video service is at capacity; please try again in a few minutes.",
    "room_closed": "The session has ended.",
    "room_error": "The session cannot do that now.",
    "forbidden": "You are not allowed to do that.",
    "not_admitted": "You have not been admitted yet.",
    "not_waiting": "That participant is not waiting.",
    "not_declined": "That participant has not been declined.",
    "bad_preview": "The waiting-room picture must be a JPEG image.",
    "preview_too_large": "The waiting-room picture is too large.",
    "preview_too_fast": "Waiting-room pictures are sent too often.",
    "not_present": "That participant is not in the session.",
    "no_such_participant": "There is no such participant.",
    "media_failed": "The video connection could not be set up.",
    "seat_taken": "This link is already in use in the session.",
    "receive_only": "You take part in this session without camera or microphone.",
    "login_required": "Log in with your staff account to use this link.",
    "wrong_person": "This link was issued to another member of staff.",
    "link_refused": "This video link is not valid or has expired",
}
FALLBACK_USER_MESSAGE = "Something went wrong in the video session."


def user_message(code: str) -> str:
    """The English message id a participant reads for ``code``."""
    return USER_MESSAGES.get(code, FALLBACK_USER_MESSAGE)


class SignalingError(Exception):
    """Base of the tree; ``fatal`` errors close the WebSocket after the error message."""

    code: ClassVar[str] = "signaling_error"
    message: str = "Signaling error"
    status: ClassVar[int] = 400
    fatal: ClassVar[bool] = False
    close_code: ClassVar[int] = CLOSE_BAD_INPUT

    def __init__(
        self, message: str | None = None, *, code: str | None = None, **details: Any
    ) -> None:
        self.message = message or type(self).message
        self.error_code = code or type(self).code
        self.details = details
        super().__init__(self.message)

    def as_message(self) -> dict[str, Any]:
        """The ``error`` message sent to the client."""
        body: dict[str, Any] = {"type": "error", "code": self.error_code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ProtocolError(SignalingError):
    code = "malformed"
    message = "Malformed message"


class FloodError(ProtocolError):
    code = "flood"
    message = "Too many messages; connection closed"
    fatal = True
    close_code = CLOSE_FLOOD


class TokenError(SignalingError):
    code = "bad_token"
    message = "Join token is invalid"
    status = 401
    fatal = True
    close_code = CLOSE_BAD_TOKEN


class RoomError(SignalingError):
    code = "room_error"
    message = "Room error"
    status = 409


class RoomClosedError(RoomError):
    code = "room_closed"
    fatal = True
    close_code = CLOSE_ENDED


class ForbiddenError(RoomError):
    code = "forbidden"
    status = 403


class WrongNodeError(SignalingError):
    code = "wrong_node"
    message = "This room is hosted on another node"
    status = 307
    fatal = True
    close_code = CLOSE_WRONG_NODE


class RefusedError(ForbiddenError):
    """A declined or removed participant tries to join again."""

    fatal = True
    close_code = CLOSE_FORBIDDEN


class NodeBusyError(SignalingError):
    """A new room found no node with headroom (``signaling.admission``)."""

    code = "node_busy"
    message = "No node has headroom for a new room"
    status = 503
    fatal = True
    close_code = CLOSE_BUSY
