"""RFC 3161 trusted timestamps from the timestamp authority at ``YUNKAN_TSA_URL``.

A timestamp token proves that some bytes existed at the TSA's time, independently of our
own clock and database: a signed checkpoint of a case chain with a token cannot be
back-dated by whoever later holds the agency key. pyHanko speaks the protocol
(``HTTPTimeStamper``: request, nonce check, response parsing) and validates the token's
CMS signature; this module only fixes the digest (SHA-256), the timeout and how a token
is stored (base64 DER of the ``ContentInfo``).

The TSA is a network service and may be down. Nothing waits for it inside a database
transaction: callers stamp after committing (``recordings.checkpoints.stamp_pending``)
or before writing (exports, seals), and a failure is a :class:`TimestampError` the
caller logs; the checkpoint or seal stays valid without the token (B-B instead of B-T).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.timestamps import HTTPTimeStamper, TimestampRequestError
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext

DIGEST = "sha256"


class TimestampError(RuntimeError):
    """The TSA could not be reached or answered with something that is not a token."""


@dataclass(frozen=True, slots=True)
class Timestamper:
    """The configured TSA. ``timeout`` is per request, in seconds."""

    url: str
    timeout: float = 10.0

    def for_pyhanko(self) -> HTTPTimeStamper:
        """For ``PdfSigner`` (PAdES B-T); pyHanko opens its own HTTP session."""
        return HTTPTimeStamper(self.url, timeout=int(self.timeout))

    async def stamp(self, data: bytes) -> bytes:
        """A token (DER ``ContentInfo``) over SHA-256 of ``data``."""
        digest = hashlib.sha256(data).digest()
        try:
            async with aiohttp.ClientSession() as session:
                stamper = HTTPTimeStamper(self.url, timeout=int(self.timeout), session=session)
                token = await stamper.async_timestamp(digest, DIGEST)
        except (TimestampRequestError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TimestampError(f"timestamp authority {self.url}: {exc}") from exc
        return bytes(token.dump())


def from_url(url: str | None) -> Timestamper | None:
    return Timestamper(url) if url else None


def encode(token: bytes) -> str:
    return base64.b64encode(token).decode()


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """What a stored token says about ``data``."""

    ok: bool  # well-formed, imprint matches ``data``, CMS signature intact
    time: dt.datetime | None  # the TSA's genTime
    tsa: str  # subject of the TSA certificate
    trusted: bool  # the TSA certificate chains to one of the given roots
    problem: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "time": self.time.isoformat() if self.time else None,
            "tsa": self.tsa,
            "trusted": self.trusted,
            "problem": self.problem,
        }


def _fail(problem: str) -> TokenCheck:
    return TokenCheck(ok=False, time=None, tsa="", trusted=False, problem=problem)


async def check(
    token_b64: str, data: bytes, roots: Sequence[asn1_x509.Certificate] = ()
) -> TokenCheck:
    """Check a stored token against ``data``. ``roots`` are the TSA trust roots known to
    the verifier; without them the token is checked for integrity only (``trusted`` is
    then false, which is not a failure: an offline verifier may not know the TSA's CA)."""
    try:
        info = cms.ContentInfo.load(base64.b64decode(token_b64, validate=True))
        signed = info["content"]
        tst = signed["encap_content_info"]["content"].parsed
        if not isinstance(tst, tsp.TSTInfo):
            return _fail("not a timestamp token")
        imprint = tst["message_imprint"]
        gen_time = tst["gen_time"].native
    except (ValueError, KeyError, TypeError):
        return _fail("unreadable timestamp token")
    algorithm = imprint["hash_algorithm"]["algorithm"].native
    if algorithm != DIGEST:
        return _fail(f"unexpected digest {algorithm}")
    expected = hashlib.sha256(data).digest()
    if imprint["hashed_message"].native != expected:
        return _fail("timestamp is for other data")
    context = ValidationContext(trust_roots=list(roots), allow_fetching=False)
    try:
        status = await validate_tst_signed_data(signed, context, lambda _alg: expected)
    except Exception:  # a damaged CMS structure fails anywhere inside pyHanko
        return _fail("timestamp signature damaged")
    tsa_cert = status.get("signing_cert")
    tsa = str(tsa_cert.subject.human_friendly) if tsa_cert is not None else ""
    if not (status.get("intact") and status.get("valid")):
        return TokenCheck(False, gen_time, tsa, False, "timestamp signature invalid")
    trusted = bool(roots) and status.get("trust_problem_indic") is None
    return TokenCheck(True, gen_time, tsa, trusted, None)
