"""Signed, expiring join tokens.

A join link carries everything the signaling server needs to let someone in: the room,
the participant, their role and display name, and an expiry, signed with HMAC-SHA256 under
the settings' secret key. The server checks the token *before* it creates any peer
connection; a forged, expired or other-room token closes the socket. Applicant and guest
links need nothing else (a phone or a fixed site camera has no account); a console link
(``JoinGrant.needs_login``) is accepted only together with the login of the member of
staff it names (cookie or bearer token on the handshake, see ``signaling.handlers``).

Format: ``base64url(canonical JSON payload) "." base64url(HMAC-SHA256(key, payload))``.
The key is derived from the secret with a purpose label, so a join token can never be
replayed as any other signed value of the application.

Example::

    signer = TokenSigner(settings.secret_key)
    token = signer.issue(JoinGrant(room="case-42", participant="a-7", role="applicant",
                                   name="张三"), ttl=3600)
    grant = signer.verify(token, room="case-42")
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Literal, get_args

from signaling.errors import TokenError

Role = Literal["applicant", "inspector", "expert", "observer", "supervisor"]
ROLES: tuple[str, ...] = get_args(Role)
STAFF_ROLES = frozenset({"inspector"})
"""Roles that may admit, decline, remove, request and end."""
HIDDEN_ROLES = frozenset({"observer", "supervisor"})
"""Receive-only and hidden: they never publish, the applicant does not see them, and
their chat reaches staff only (quality supervision, training)."""
LOGIN_ROLES = frozenset({"inspector", "supervisor"})
"""Roles whose links need the holder's staff login too (``JoinGrant.needs_login``)."""

MAX_TOKEN_CHARS = 2048


@dataclass(frozen=True, slots=True)
class JoinGrant:
    """Who may join which room as what, until when (unix seconds; 0 = not yet issued)."""

    room: str
    participant: str
    role: Role
    name: str = ""
    expires: int = 0

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def needs_login(self) -> bool:
        """A console link: only the logged-in member of staff it was issued to may use it.

        Staff roles always; experts and observers when the grant names a member of staff
        (``staff-<id>``). Guest invitations (``guest-…``) and applicants stay token-only.
        """
        return self.role in LOGIN_ROLES or self.participant.startswith("staff-")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Issues and verifies join tokens; one per application (holds the derived key)."""

    def __init__(self, secret: str | bytes, *, clock: Any = time.time) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        if len(raw) < 16:
            raise ValueError("the secret key must be at least 16 bytes")
        self._key = hmac.new(raw, b"yunkan/join-token/v1", hashlib.sha256).digest()
        self._clock = clock

    def issue(self, grant: JoinGrant, *, ttl: int = 4 * 3600) -> str:
        if grant.role not in ROLES:
            raise ValueError(f"unknown role {grant.role!r}")
        payload = {
            "r": grant.room,
            "p": grant.participant,
            "o": grant.role,
            "n": grant.name,
            "e": int(self._clock()) + ttl,
        }
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        head = _b64(body.encode())
        return f"{head}.{_b64(self._sign(head))}"

    def verify(self, token: str, *, room: str | None = None) -> JoinGrant:
        """The grant in ``token``; raises ``TokenError`` with a stable code otherwise.

        The signature is compared in constant time before the payload is parsed, so a
        forged token never reaches the JSON decoder.
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise TokenError("Join token is invalid")
        head, sig = token.split(".")
        try:
            given = _unb64(sig)
        except ValueError:
            raise TokenError("Join token is invalid") from None
        if not hmac.compare_digest(given, self._sign(head)):
            raise TokenError("Join token is invalid")
        try:
            data = json.loads(_unb64(head))
            grant = JoinGrant(
                room=str(data["r"]),
                participant=str(data["p"]),
                role=data["o"],
                name=str(data.get("n", "")),
                expires=int(data["e"]),
            )
        except (ValueError, KeyError, TypeError):
            raise TokenError("Join token is invalid") from None
        if grant.role not in ROLES:
            raise TokenError("Join token is invalid")
        if grant.expires < self._clock():
            raise TokenError("Join token has expired", code="expired_token")
        if room is not None and grant.room != room:
            raise TokenError("Join token is for another room", code="wrong_room")
        return grant

    def _sign(self, head: str) -> bytes:
        return hmac.new(self._key, head.encode("ascii"), hashlib.sha256).digest()
