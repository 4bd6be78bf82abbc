"""ICE server configuration and per-participant TURN credentials.

Phones on 4G sit behind carrier NAT, so production needs TURN. We use coturn's
shared-secret ("TURN REST API") scheme: the server and coturn share ``turn_secret``; each
participant gets a username ``"<expiry-unix-seconds>:<participant>"`` and the password
``base64(HMAC-SHA1(secret, username))``; coturn recomputes it and refuses it after expiry.
No credential is stored anywhere.

aiortc uses only the first STUN and the first TURN server it is given, so put the best one
first. The server's own candidates can be pinned to a public address (``public_ip``) when
the node sits behind 1:1 NAT (cloud VMs); ``signaling.relay`` applies that.

Configuration comes from ``Settings`` (``YUNKAN_ICE_SERVERS``, ``YUNKAN_TURN_SECRET``,
``YUNKAN_TURN_TTL``, ``YUNKAN_ICE_PUBLIC_IP``; validated, with the variable named, when the
settings load) through ``signaling.handlers.ice_config``. The checks below keep the value
object consistent for any other caller.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TurnCredential:
    username: str
    password: str
    expires: int


def turn_credential(
    secret: str, user: str, *, ttl: int, now: float | None = None
) -> TurnCredential:
    """coturn ``use-auth-secret`` credentials for ``user``, valid for ``ttl`` seconds."""
    expires = int(time.time() if now is None else now) + ttl
    username = f"{expires}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode("ascii"), expires)


@dataclass(frozen=True, slots=True)
class IceConfig:
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl: int = 3600
    public_ip: str | None = None
    """Address the relay advertises in its own candidates instead of its local one."""
    relay_turn: bool = False
    """Give TURN to the relay's own peer connections too. Off by default: participants
    relay through TURN when they must, and a relay that also allocated would hold one
    coturn allocation per connection (and hairpin media through coturn twice)."""
    extra: tuple[Mapping[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        for url in self.stun_urls:
            if not url.startswith(("stun:", "stuns:")):
                raise ValueError(f"stun_urls: {url!r} must start with stun: or stuns:")
        for url in self.turn_urls:
            if not url.startswith(("turn:", "turns:")):
                raise ValueError(f"turn_urls: {url!r} must start with turn: or turns:")
        if self.turn_urls and not self.turn_secret:
            raise ValueError("turn_secret is required with turn_urls")
        if self.turn_ttl <= 0:
            raise ValueError("turn_ttl must be a positive number of seconds")
        if self.public_ip is not None:
            try:
                ipaddress.ip_address(self.public_ip)
            except ValueError:
                raise ValueError(f"public_ip: {self.public_ip!r} is not an IP address") from None

    def rtc_servers(self, user: str = "relay") -> list[Any]:
        """``aiortc.RTCIceServer`` objects for the server's own peer connections: STUN, and
        TURN (credentials minted now) only with ``relay_turn``."""
        from aiortc import RTCIceServer

        out: list[Any] = [RTCIceServer(urls=list(self.stun_urls))] if self.stun_urls else []
        if self.relay_turn and self.turn_urls and self.turn_secret:
            cred = turn_credential(self.turn_secret, user, ttl=self.turn_ttl)
            out.append(RTCIceServer(list(self.turn_urls), cred.username, cred.password))
        return out

    def servers_for(self, participant: str, *, now: float | None = None) -> list[dict[str, Any]]:
        """``RTCConfiguration.iceServers`` for one participant (browser JSON shape)."""
        servers: list[dict[str, Any]] = []
        if self.stun_urls:
            servers.append({"urls": list(self.stun_urls)})
        if self.turn_urls and self.turn_secret:
            cred = turn_credential(self.turn_secret, participant, ttl=self.turn_ttl, now=now)
            servers.append(
                {
                    "urls": list(self.turn_urls),
                    "username": cred.username,
                    "credential": cred.password,
                }
            )
        servers.extend(dict(s) for s in self.extra)
        return servers
