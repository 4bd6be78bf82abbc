"""Who is making a request: a member of staff or an applicant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PrincipalKind = Literal["staff", "applicant"]


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    id: int
    role: str  # "applicant", "inspector", "supervisor" or "admin"
    name: str
    mobile: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    def has_role(self, *roles: str) -> bool:
        return self.role in roles
