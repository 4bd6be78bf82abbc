"""Which local addresses an aiortc peer gathers ICE host candidates on, and what it announces.

aioice (under aiortc 1.16.0) gathers a host candidate on every interface address except
127.0.0.1, and aiortc gathers before it answers (half-trickle), so the only places to
steer candidates are the gathering itself and the SDP we hand out:

* :func:`gather_on` limits host candidates to the given addresses *for the peer
  connections whose ``setLocalDescription`` runs inside the ``with`` block*. It works through
  a context variable read by a wrapper around ``aioice.ice.get_host_addresses``; aiortc
  gathers in tasks created by ``asyncio.gather`` inside ``setLocalDescription``, which copy
  the context. Outside such a block the wrapper returns aioice's own answer, so other peers
  in the process are unaffected. Tests and benchmarks use ``("127.0.0.1",)`` to stay on
  loopback.
* :func:`pin_candidates` rewrites the address of the host candidates (and the ``c=`` line)
  in an SDP to a configured public address: the usual 1:1 NAT set-up where the server's
  UDP ports are forwarded unchanged from the public address.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
from collections.abc import Iterator, Sequence

import aioice.ice

_HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "yunkan_ice_host_addresses", default=None
)
_original_get_host_addresses = aioice.ice.get_host_addresses


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _HOST_ADDRESSES.get()
    if chosen is None:
        return _original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    result = []
    for address in chosen:
        version = ipaddress.ip_address(address).version
        if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
            result.append(address)
    return result


if getattr(aioice.ice.get_host_addresses, "__module__", "") != __name__:
    aioice.ice.get_host_addresses = _get_host_addresses


@contextlib.contextmanager
def gather_on(addresses: Sequence[str] | None) -> Iterator[None]:
    """Gather host candidates only on ``addresses`` (None: aioice's default) in this block."""
    if addresses is not None:
        for address in addresses:
            ipaddress.ip_address(address)  # ValueError names the bad address
    token = _HOST_ADDRESSES.set(tuple(addresses) if addresses is not None else None)
    try:
        yield
    finally:
        _HOST_ADDRESSES.reset(token)


def pin_candidates(sdp: str, public_address: str | None) -> str:
    """Announce host candidates (and the ``c=`` line) on ``public_address``."""
    if not public_address:
        return sdp
    version = ipaddress.ip_address(public_address).version
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and " typ host" in line:
            parts = line.split(" ")
            # foundation component transport priority address port typ host ...
            if len(parts) > 5:
                parts[4] = public_address
                line = " ".join(parts)
        elif line.startswith("c=IN "):
            line = f"c=IN IP{version} {public_address}"
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"
