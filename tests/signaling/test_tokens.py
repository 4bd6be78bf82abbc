from __future__ import annotations

import pytest

from signaling.errors import TokenError
from signaling.tokens import JoinGrant, TokenSigner

SECRET = "s3cret-key-for-tests-only-0123456789"


def test_round_trip_keeps_every_field() -> None:
    signer = TokenSigner(SECRET)
    token = signer.issue(JoinGrant("case-42", "a-7", "applicant", "张三"), ttl=60)
    grant = signer.verify(token, room="case-42")
    assert (grant.room, grant.participant, grant.role, grant.name) == (
        "case-42",
        "a-7",
        "applicant",
        "张三",
    )
    assert not grant.is_staff


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: "x" + t,
        lambda t: t.replace(".", ""),
        lambda t: t + ".x",
        lambda t: "",
    ],
)
def test_forged_tokens_are_refused(mangle: object) -> None:
    signer = TokenSigner(SECRET)
    token = signer.issue(JoinGrant("case-42", "a-7", "applicant"))
    with pytest.raises(TokenError) as err:
        signer.verify(mangle(token), room="case-42")  # type: ignore[operator]
    assert err.value.error_code == "bad_token"


def test_other_secret_and_role_escalation_refused() -> None:
    token = TokenSigner("another-secret-key-0123456789").issue(
        JoinGrant("case-42", "a-7", "inspector")
    )
    with pytest.raises(TokenError):
        TokenSigner(SECRET).verify(token)


def test_expired_token() -> None:
    now = [1_000_000.0]
    signer = TokenSigner(SECRET, clock=lambda: now[0])
    token = signer.issue(JoinGrant("case-42", "a-7", "applicant"), ttl=10)
    now[0] += 11
    with pytest.raises(TokenError) as err:
        signer.verify(token)
    assert err.value.error_code == "expired_token"


def test_wrong_room() -> None:
    signer = TokenSigner(SECRET)
    token = signer.issue(JoinGrant("case-42", "a-7", "applicant"))
    with pytest.raises(TokenError) as err:
        signer.verify(token, room="case-43")
    assert err.value.error_code == "wrong_room"


def test_short_secret_rejected() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        TokenSigner("short")
