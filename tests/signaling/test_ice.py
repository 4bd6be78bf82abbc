from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings, SettingsError
from signaling.handlers import ice_config
from signaling.ice import IceConfig, turn_credential


def test_coturn_rest_credential_matches_the_scheme() -> None:
    cred = turn_credential("sharedsecret", "a-7", ttl=600, now=1_700_000_000)
    assert cred.username == "1700000600:a-7"
    expected = base64.b64encode(
        hmac.new(b"sharedsecret", b"1700000600:a-7", hashlib.sha1).digest()
    ).decode()
    assert cred.password == expected
    assert cred.expires == 1_700_000_600


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.load({"YUNKAN_DATA_DIR": str(tmp_path), **env})


def test_servers_for_participant_from_settings(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        YUNKAN_ICE_SERVERS="stun:stun.example.cn:3478, turn:t.example.cn:3478?transport=udp, "
        "turns:t.example.cn:5349",
        YUNKAN_TURN_SECRET="sharedsecret",
        YUNKAN_TURN_TTL="120",
    )
    cfg = ice_config(settings)
    servers = cfg.servers_for("a-7", now=100)
    assert servers[0] == {"urls": ["stun:stun.example.cn:3478"]}
    assert servers[1]["username"] == "220:a-7"
    assert len(servers[1]["urls"]) == 2
    # per participant: another user gets another credential
    assert cfg.servers_for("i-1", now=100)[1]["credential"] != servers[1]["credential"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"YUNKAN_ICE_SERVERS": "http://x"}, "YUNKAN_ICE_SERVERS"),
        ({"YUNKAN_ICE_SERVERS": "turn:x"}, "YUNKAN_TURN_SECRET"),
        ({"YUNKAN_TURN_TTL": "soon"}, "YUNKAN_TURN_TTL"),
        ({"YUNKAN_TURN_TTL": "0"}, "YUNKAN_TURN_TTL"),
        ({"YUNKAN_ICE_PUBLIC_IP": "my.host"}, "YUNKAN_ICE_PUBLIC_IP"),
    ],
)
def test_bad_config_names_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        _settings(tmp_path, **env)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stun_urls": ("http://x",)}, "stun_urls"),
        ({"turn_urls": ("turn:x",)}, "turn_secret"),
        ({"turn_ttl": 0}, "turn_ttl"),
        ({"public_ip": "my.host"}, "public_ip"),
    ],
)
def test_ice_config_refuses_inconsistent_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IceConfig(**fields)


def test_empty_config_means_host_candidates_only(tmp_path: Path) -> None:
    assert ice_config(_settings(tmp_path)).servers_for("x") == []


async def test_the_relay_mints_fresh_turn_credentials_for_each_connection() -> None:
    """A relay runs for weeks; TURN credentials expire after ``turn_ttl``. The live app
    hands the relay ``IceConfig.rtc_servers`` itself, called per peer connection."""
    import asyncio
    import time

    from signaling.relay import RelayConfig

    ice = IceConfig(
        turn_urls=("turn:turn.example:3478",), turn_secret="s3cret", turn_ttl=60, relay_turn=True
    )
    config = RelayConfig(ice_servers_factory=ice.rtc_servers)
    first = config.rtc_configuration().iceServers
    assert first is not None
    expires = int(first[0].username.split(":")[0])
    assert 58 <= expires - time.time() <= 60
    await asyncio.sleep(1.05)
    second = config.rtc_configuration().iceServers
    assert second is not None and second[0].username != first[0].username
    digest = hmac.new(b"s3cret", second[0].username.encode(), hashlib.sha1).digest()
    assert second[0].credential == base64.b64encode(digest).decode()


def test_the_relay_takes_no_turn_for_itself_unless_configured() -> None:
    """Participants get TURN; the relay's own connections only STUN (YUNKAN_RELAY_TURN)."""
    urls = {"stun_urls": ("stun:stun.example:3478",), "turn_urls": ("turn:turn.example:3478",)}
    default = IceConfig(**urls, turn_secret="s3cret")  # type: ignore[arg-type]
    assert [s.urls for s in default.rtc_servers()] == [["stun:stun.example:3478"]]
    assert [s["urls"] for s in default.servers_for("applicant-1")] == [
        ["stun:stun.example:3478"],
        ["turn:turn.example:3478"],
    ]
    opted = IceConfig(**urls, turn_secret="s3cret", relay_turn=True)  # type: ignore[arg-type]
    assert [s.urls for s in opted.rtc_servers()][1] == ["turn:turn.example:3478"]
