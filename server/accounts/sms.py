"""Sending SMS. The default sender keeps every message in the outbox table and logs it
(masked); a gateway sender for a real SMS provider implements the same protocol."""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import SmsMessage
from server.masking import mask_text

log = logging.getLogger("yunkan.sms")


class SmsSender(Protocol):
    async def send(self, mobile: str, body: str, *, kind: str) -> None: ...


class OutboxSender:
    def __init__(self, db: async_sessionmaker[AsyncSession]) -> None:
        self._db = db

    async def send(self, mobile: str, body: str, *, kind: str) -> None:
        async with self._db.begin() as session:
            session.add(SmsMessage(mobile=mobile, kind=kind, body=body))
        # Codes are secrets: the log names the kind and the masked number, never the body.
        log.info("sms queued to outbox", extra={"mobile": mask_text(mobile), "kind": kind})
