from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from signaling.ice import IceConfig, turn_credential


def test_coturn_rest_credential_matches_the_scheme() -> None:
    cred = turn_credential("sharedsecret", "a-7", ttl=600, now=1_700_000_000)
    assert cred.username == "1700000600:a-7"
    expected = base64.b64encode(
        hmac.new(b"sharedsecret", b"1700000600:a-7", hashlib.sha1).digest()
    ).decode()
    assert cred.password == expected
    assert cred.expires == 1_700_000_600


def test_servers_for_participant_from_env() -> None:
    cfg = IceConfig.from_env(
        {
            "YUNKAN_STUN_URLS": "stun:stun.example.cn:3478",
            "YUNKAN_TURN_URLS": "turn:t.example.cn:3478?transport=udp, turns:t.example.cn:5349",
            "YUNKAN_TURN_SECRET": "sharedsecret",
            "YUNKAN_TURN_TTL": "120",
        }
    )
    servers = cfg.servers_for("a-7", now=100)
    assert servers[0] == {"urls": ["stun:stun.example.cn:3478"]}
    assert servers[1]["username"] == "220:a-7"
    assert len(servers[1]["urls"]) == 2
    # per participant: another user gets another credential
    assert cfg.servers_for("i-1", now=100)[1]["credential"] != servers[1]["credential"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"YUNKAN_STUN_URLS": "http://x"}, "YUNKAN_STUN_URLS"),
        ({"YUNKAN_TURN_URLS": "turn:x"}, "YUNKAN_TURN_SECRET"),
        ({"YUNKAN_TURN_TTL": "soon"}, "YUNKAN_TURN_TTL"),
        ({"YUNKAN_PUBLIC_IP": "my.host"}, "YUNKAN_PUBLIC_IP"),
    ],
)
def test_bad_config_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IceConfig.from_env(env)


def test_empty_config_means_host_candidates_only() -> None:
    assert IceConfig.from_env({}).servers_for("x") == []
