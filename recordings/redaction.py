"""Masking a case for sharing outside the agency (PIPL; GB/T 35273 §3.14 去标识化).

A redacted export keeps what the evidence *is* (snapshots and recordings byte for byte:
faces and the background are not touched, that is what the recipient needs to judge) and
masks who the people are: names (张小明 -> 张*明), resident ID and credit-code numbers and
mobile numbers (``server.masking``) wherever they appear in the timeline, the tables, the
report and the documents, and the IP addresses of the documents' audit pages
(192.168.1.20 -> 192.168.*.*).

Names are not found by guessing: :func:`redactor_for` collects every name the case itself
knows (event actors, named parties, the applicant, document signers) and masks those
wherever they occur, so a name inside free text (a chat line, a letter body) is masked too.
An event whose content changed keeps its original ``hash`` and ``prev_hash`` and is marked
``"redacted": true``: the links of the chain can still be checked, the content cannot (the
head hash can be compared with ``yunkan verify case`` at the agency).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from server.masking import mask_text

_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}\.\d{1,3})\.\d{1,3}\.\d{1,3}(?![\d.])")
STANDARD = "PIPL / GB/T 35273-2020"
MASKED = ("names", "resident ID numbers", "credit codes", "mobile numbers", "IP addresses")
UNCHANGED = ("snapshot images (faces and background)", "recordings", "locations", "hashes")


def mask_name(name: str) -> str:
    """张三 -> 张*, 张小明 -> 张*明: enough to recognise, not enough to harvest."""
    if len(name) <= 2:
        return name[:1] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_ip(value: str) -> str:
    """192.168.1.20 -> 192.168.*.*; an IPv6 address keeps its first two groups."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return _IPV4.sub(lambda m: m.group(1) + ".*.*", value)
    if address.version == 4:
        return ".".join([*str(address).split(".")[:2], "*", "*"])
    return ":".join([*address.exploded.split(":")[:2], "*"])


@dataclass(frozen=True, slots=True)
class Redactor:
    names: tuple[str, ...]
    """Longest first, so 张小明 is masked before a shorter name inside it."""

    def text(self, value: str) -> str:
        for name in self.names:
            value = value.replace(name, mask_name(name))
        return _IPV4.sub(lambda m: m.group(1) + ".*.*", mask_text(value))

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            # Hashes and blob keys are hex: a mobile-number pattern can occur inside one.
            return {k: v if _kept(k) else self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The exported event with its actor and data masked; hashes kept as they were."""
        out = dict(event)
        actor = event.get("actor")
        if isinstance(actor, Mapping):
            out["actor"] = {**actor, "name": self.value(actor.get("name"))}
        data = event.get("data")
        out["data"] = self.value(data or {})
        if out["actor"] != event.get("actor") or out["data"] != data:
            out["redacted"] = True
        return out

    def rows(self, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [self.value(row) for row in rows]


def _kept(key: str) -> bool:
    return key in ("blobs", "key", "blob_key", "hash", "prev_hash") or key.endswith("sha256")


def redactor_for(events: Iterable[Mapping[str, Any]], extra: Iterable[str | None]) -> Redactor:
    """Every name the case knows: event actors, named parties, reviewers, and ``extra``."""
    found: set[str] = set()
    for event in events:
        actor = event.get("actor")
        if isinstance(actor, Mapping) and actor.get("name"):
            found.add(str(actor["name"]))
        data = event.get("data") or {}
        for key in ("name", "applicant_name", "contact_name"):
            if isinstance(data.get(key), str):
                found.add(data[key])
        reviewer = data.get("reviewer")
        if isinstance(reviewer, Mapping) and reviewer.get("name"):
            found.add(str(reviewer["name"]))
    found.update(n for n in extra if n)
    # A one-character "name" would mask that character everywhere.
    names = sorted((n.strip() for n in found if len(n.strip()) >= 2), key=len, reverse=True)
    return Redactor(tuple(names))
