"""Where join links point: room names, participant ids and join URLs.

Kept apart from ``signaling.handlers`` (which needs aiohttp, the hub and booking's
tables) so that other domains can mint a live join link for one of their rooms — booking
does for a served walk-in ticket — without importing the web layer, and with the one
token scheme of ``signaling.tokens``.
"""

from __future__ import annotations

from server.accounts.principal import Principal
from server.settings import Settings
from signaling.tokens import JoinGrant, TokenSigner


def signer_for(settings: Settings) -> TokenSigner:
    """A signer with the same derived key as the live hub's, so its tokens open the room."""
    return TokenSigner(settings.secret_key)


def participant_id(principal: Principal) -> str:
    return f"{principal.kind}-{principal.id}"


def join_url(settings: Settings, signer: TokenSigner, grant: JoinGrant, ttl: int) -> str:
    """The link a participant opens (booking puts the applicant's in its confirmation)."""
    return f"{settings.effective_public_url.rstrip('/')}/live/j/{signer.issue(grant, ttl=ttl)}"


def case_room(case_id: int) -> str:
    return f"case-{case_id}"


def appointment_room(appointment_id: int) -> str:
    return f"appt-{appointment_id}"
