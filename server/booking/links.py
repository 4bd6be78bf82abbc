"""Signed manage links: reschedule or cancel an appointment without logging in.

A token is ``<appointment id>.<version>.<expiry unix seconds>.<signature>`` where the
signature is HMAC-SHA256 over the first three parts with a key derived from the
settings' secret key (derived, so that a leaked manage token says nothing about the
session signing key). The appointment's ``version`` is bumped on every change, so a
link that already cancelled or moved an appointment cannot be replayed; a new link
goes out with the confirmation of the change. Join links use the same format with the
purpose "join" and version 0: they must survive check-in and status changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from server.parsing import parse_digits


class BadManageToken(ValueError):
    """The token is malformed, forged, expired or already used (version moved on)."""


@dataclass(frozen=True, slots=True)
class ManageClaim:
    appointment_id: int
    version: int
    expires: int


def _key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), b"yunkan.booking.manage", hashlib.sha256).digest()


def _sign(secret_key: str, purpose: str, payload: str) -> str:
    message = f"{purpose}:{payload}".encode()
    mac = hmac.new(_key(secret_key), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode().rstrip("=")


def make_token(
    secret_key: str, appointment_id: int, version: int, expires: datetime, purpose: str = "manage"
) -> str:
    """``purpose`` is signed but not written: a join token cannot cancel an appointment."""
    payload = f"{appointment_id}.{version}.{int(expires.timestamp())}"
    return f"{payload}.{_sign(secret_key, purpose, payload)}"


def read_token(secret_key: str, token: str, now: datetime, purpose: str = "manage") -> ManageClaim:
    """Check signature and expiry; the caller still compares the version with the row."""
    parts = token.split(".")
    if len(parts) != 4 or not all(parse_digits(p) is not None for p in parts[:3]):
        raise BadManageToken("malformed manage token")
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(_sign(secret_key, purpose, payload), parts[3]):
        raise BadManageToken("manage token signature does not match")
    claim = ManageClaim(int(parts[0]), int(parts[1]), int(parts[2]))
    if claim.expires < now.timestamp():
        raise BadManageToken("manage token expired")
    return claim


def token_expiry(slot_end: datetime) -> datetime:
    """Links stay valid until a day after the slot: late cancellations still work."""
    return slot_end + timedelta(days=1)
