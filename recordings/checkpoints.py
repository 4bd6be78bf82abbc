"""Signed checkpoints: the agency key vouches for a case chain's head.

The timeline's hash chain shows that nothing changed *since* an event was hashed, but the
algorithm is public: whoever can write the database can edit an event and recompute every
hash after it, and the chain verifies again. A checkpoint closes that hole. At every
state change of the case (``server.cases.procedure``) and in every export, the agency's
seal key signs ``{case, seq, head hash, time, reason}``; the row stores the signature,
the certificate and, when a timestamp authority is configured, an RFC 3161 token over
the same bytes. A rewritten chain no longer matches the heads the agency signed, and
forging a checkpoint needs the private key (and, with a TSA, the TSA's key too).

Verification (``verify``) works on exported event dicts, so ``yunkan verify case`` and
``yunkan verify bundle`` apply the same rules:

* every checkpoint's signature holds for its own fields, with a certificate that is the
  agency's (or issued by the agency's trust root);
* the chain's event at the checkpoint's ``seq`` has the signed hash;
* every state change (``case.<state>``) has a checkpoint at its own ``seq``: deleting
  checkpoints to hide a rewrite is itself a break;
* a timestamp token, where present, is over the checkpoint's bytes and intact.

The signer travels with the app's session factory (``session.info[SIGNER]``, set in
``server.letters.web``): the procedure's moves run inside the caller's transaction and
need no app object. A session without a signer (a bare test session, a tool) writes no
checkpoint; the verifier then reports the unanchored state change.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from server.cases.models import Case
from server.db.base import Base
from server.db.types import UTCDateTime, utcnow
from server.timestamps import Timestamper, TimestampError, check, encode

log = logging.getLogger("yunkan.checkpoints")
FORMAT = "yunkan-checkpoint/1"
SIGNER = "yunkan.checkpoint_signer"


class CaseCheckpoint(Base):
    """One signed chain head. Never updated except to add its timestamp token."""

    __tablename__ = "case_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="RESTRICT"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    signature: Mapped[str] = mapped_column(Text)  # base64
    certificate: Mapped[str] = mapped_column(Text)  # base64 DER
    timestamp_token: Mapped[str | None] = mapped_column(Text, default=None)  # base64 DER


def payload(case_number: str, seq: int, head: str, at: str, reason: str) -> bytes:
    """The exact bytes signed and timestamped (canonical JSON, UTF-8)."""
    body = {"format": FORMAT, "case": case_number, "seq": seq, "head": head, "at": at}
    body["reason"] = reason
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Signer:
    """The agency key that signs checkpoints and bundle manifests."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    certificate: bytes  # DER
    timestamper: Timestamper | None = None

    @classmethod
    def from_der(
        cls, key_der: bytes, cert_der: bytes, timestamper: Timestamper | None = None
    ) -> Signer:
        key = serialization.load_der_private_key(key_der, None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the seal key must be ECDSA or RSA")
        return cls(key, cert_der, timestamper)

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def signature_holds(cert_der: bytes, data: bytes, signature: bytes) -> bool:
    try:
        public = x509.load_der_x509_certificate(cert_der).public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Trust:
    """Who may sign: the agency's own certificates, or any issued by its trust roots."""

    certificates: tuple[bytes, ...] = ()
    roots: tuple[asn1_x509.Certificate, ...] = field(default=())

    def accepts(self, cert_der: bytes) -> bool:
        if cert_der in self.certificates:
            return True
        try:
            cert = x509.load_der_x509_certificate(cert_der)
            for root in self.roots:
                issuer = x509.load_der_x509_certificate(root.dump())
                try:
                    cert.verify_directly_issued_by(issuer)
                    return True
                except (ValueError, TypeError, InvalidSignature):
                    continue
        except ValueError:
            return False
        return False


def signer_of(session: AsyncSession) -> Signer | None:
    value = session.info.get(SIGNER)
    return value if isinstance(value, Signer) else None


def record(session: AsyncSession, case: Case, reason: str, signer: Signer) -> CaseCheckpoint:
    """Sign the case's current head inside the caller's transaction (the caller commits)."""
    at = utcnow().replace(microsecond=0)
    data = payload(case.number, case.head_seq, case.head_hash, _iso(at), reason)
    row = CaseCheckpoint(
        case_id=case.id,
        seq=case.head_seq,
        head_hash=case.head_hash,
        reason=reason,
        created_at=at,
        signature=base64.b64encode(signer.sign(data)).decode(),
        certificate=base64.b64encode(signer.certificate).decode(),
    )
    session.add(row)
    return row


async def on_state_change(session: AsyncSession, case: Case, kind: str) -> None:
    """The procedure's hook: sign the head the state change just appended."""
    signer = signer_of(session)
    if signer is None:
        return
    record(session, case, kind, signer)
    await session.flush()


def exported(row: CaseCheckpoint, case_number: str) -> dict[str, Any]:
    return {
        "case": case_number,
        "seq": row.seq,
        "head": row.head_hash,
        "at": _iso(row.created_at),
        "reason": row.reason,
        "signature": row.signature,
        "certificate": row.certificate,
        "timestamp": row.timestamp_token,
    }


async def load(session: AsyncSession, case: Case) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(CaseCheckpoint).where(CaseCheckpoint.case_id == case.id).order_by(CaseCheckpoint.id)
    )
    return [exported(r, case.number) for r in rows]


async def stamp_pending(
    db: async_sessionmaker[AsyncSession], signer: Signer, limit: int = 20
) -> int:
    """Add TSA tokens to checkpoints that have none (they were signed inside a transaction,
    where no network call belongs). Returns how many were stamped; stops at the first
    TSA failure (it is logged; the next run tries again)."""
    if signer.timestamper is None:
        return 0
    async with db() as session:
        result = await session.execute(
            select(CaseCheckpoint, Case.number)
            .join(Case, Case.id == CaseCheckpoint.case_id)
            .where(CaseCheckpoint.timestamp_token.is_(None))
            .order_by(CaseCheckpoint.id)
            .limit(limit)
        )
        todo = [(row.id, exported(row, number)) for row, number in result.all()]
    stamped = 0
    for row_id, item in todo:
        data = payload(item["case"], item["seq"], item["head"], item["at"], item["reason"])
        try:
            token = await signer.timestamper.stamp(data)
        except TimestampError as exc:
            log.warning("checkpoint %s not timestamped: %s", row_id, exc)
            break
        async with db.begin() as session:
            row = await session.get(CaseCheckpoint, row_id)
            if row is not None and row.timestamp_token is None:
                row.timestamp_token = encode(token)
                stamped += 1
    return stamped


@dataclass(frozen=True, slots=True)
class CheckpointBreak:
    seq: int
    reason: str


async def verify(
    case_number: str,
    events: Sequence[Mapping[str, Any]],
    checkpoints: Sequence[Mapping[str, Any]],
    trust: Trust | None,
) -> list[CheckpointBreak]:
    """Check ``checkpoints`` (exported dicts) against the chain ``events`` (exported
    dicts, ordered by seq). Without ``trust`` signatures are checked against their own
    certificate only (an offline verifier that was given no agency certificate)."""
    from server.cases.procedure import STATES  # procedure imports this module

    state_kinds = {f"case.{state}" for state in STATES}
    breaks: list[CheckpointBreak] = []
    by_seq = {int(e.get("seq", 0)): e for e in events}
    anchored: set[int] = set()
    for item in checkpoints:
        seq = int(item.get("seq") or 0)
        head, at, reason = str(item.get("head")), str(item.get("at")), str(item.get("reason"))
        data = payload(case_number, seq, head, at, reason)
        try:
            signature = base64.b64decode(str(item.get("signature")), validate=True)
            cert = base64.b64decode(str(item.get("certificate")), validate=True)
        except ValueError:
            breaks.append(CheckpointBreak(seq, "checkpoint unreadable"))
            continue
        if str(item.get("case")) != case_number or not signature_holds(cert, data, signature):
            breaks.append(CheckpointBreak(seq, "checkpoint signature does not hold"))
            continue
        if trust is not None and not trust.accepts(cert):
            breaks.append(CheckpointBreak(seq, "checkpoint signed by a key not the agency's"))
            continue
        event = by_seq.get(seq)
        if event is None or event.get("hash") != head:
            breaks.append(
                CheckpointBreak(seq, "chain differs from the head the agency signed at this seq")
            )
            continue
        token = item.get("timestamp")
        if token:
            result = await check(str(token), data)
            if not result.ok:
                breaks.append(CheckpointBreak(seq, f"checkpoint {result.problem}"))
                continue
        anchored.add(seq)
    for event in events:
        seq = int(event.get("seq", 0))
        reported = any(b.seq == seq for b in breaks)
        if event.get("kind") in state_kinds and seq not in anchored and not reported:
            breaks.append(CheckpointBreak(seq, "state change not anchored by a signed checkpoint"))
    return sorted(breaks, key=lambda b: b.seq)
