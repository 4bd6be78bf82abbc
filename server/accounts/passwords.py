"""Password hashing with Argon2id (argon2-cffi's tuned defaults)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps both answers equally slow,
# so response time does not tell an attacker which usernames exist.
_DUMMY = _hasher.hash("yunkan-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    # Argon2 is deliberately slow (~50 ms); keep it off the event loop.
    return await asyncio.to_thread(_verify, password_hash, password)
