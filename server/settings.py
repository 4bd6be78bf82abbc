"""Settings: one frozen dataclass, read once from the environment and an optional TOML file.

Precedence: explicit overrides (CLI flags) > environment (``YUNKAN_*``, ``DATABASE_URL``,
``REDIS_URL``) > TOML file (``YUNKAN_CONFIG`` or ``--config``) > defaults. Invalid values stop
start-up with a :class:`SettingsError` naming the variable and what would be right.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import secrets
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = field(default=Path("var"), metadata={"env": "YUNKAN_DATA_DIR"})
    """Where the embedded database, blobs, keys and certificates live."""
    host: str = field(default="127.0.0.1", metadata={"env": "YUNKAN_HOST"})
    port: int = field(default=8080, metadata={"env": "YUNKAN_PORT"})
    database_url: str = field(default="", metadata={"env": "DATABASE_URL"})
    """SQLAlchemy async URL; empty means SQLite at ``<data_dir>/yunkan.db``."""
    redis_url: str | None = field(default=None, metadata={"env": "REDIS_URL"})
    """Redis for the bus, room directory, rate limits; ``None`` keeps all of it in-process."""
    redis_prefix: str = field(default="yunkan:", metadata={"env": "YUNKAN_REDIS_PREFIX"})
    secret_key: str = field(default="", metadata={"env": "YUNKAN_SECRET_KEY", "secret": True})
    """Signs tokens and links. Generated into ``<data_dir>/secret_key`` when not set."""
    public_url: str = field(default="", metadata={"env": "YUNKAN_PUBLIC_URL"})
    """Base of links sent to people (join, manage, verify). Defaults to http://host:port."""
    timezone: str = field(default="Asia/Shanghai", metadata={"env": "YUNKAN_TIMEZONE"})
    default_locale: str = field(default="zh_CN", metadata={"env": "YUNKAN_DEFAULT_LOCALE"})
    demo: bool = field(default=False, metadata={"env": "YUNKAN_DEMO"})
    """Seed demo data on start and show the SMS outbox page."""
    sms_sender: str = field(default="outbox", metadata={"env": "YUNKAN_SMS_SENDER"})
    cookie_secure: bool = field(default=False, metadata={"env": "YUNKAN_COOKIE_SECURE"})
    """Force the Secure flag on cookies (always set when the request itself is HTTPS)."""
    trust_proxy: bool = field(default=False, metadata={"env": "YUNKAN_TRUST_PROXY"})
    """Believe X-Forwarded-For/-Proto from the reverse proxy in front of us."""
    trusted_proxies: str = field(
        default="127.0.0.1,::1", metadata={"env": "YUNKAN_TRUSTED_PROXIES"}
    )
    """Comma-separated addresses or networks (10.0.0.0/8) of our reverse proxies: with
    trust_proxy, the client is the rightmost X-Forwarded-For hop that is not one of them."""
    metrics_token: str = field(default="", metadata={"env": "YUNKAN_METRICS_TOKEN", "secret": True})
    """Bearer token for ``/metrics``; without it only direct loopback requests may read."""
    client_max_size: int = field(default=8 * 1024 * 1024, metadata={"env": "YUNKAN_MAX_BODY"})
    session_hours: int = field(default=12, metadata={"env": "YUNKAN_SESSION_HOURS"})
    otp_ttl_seconds: int = field(default=300, metadata={"env": "YUNKAN_OTP_TTL"})
    log_format: str = field(default="json", metadata={"env": "YUNKAN_LOG_FORMAT"})
    log_level: str = field(default="INFO", metadata={"env": "YUNKAN_LOG_LEVEL"})
    cjk_font: str | None = field(default=None, metadata={"env": "YUNKAN_CJK_FONT"})
    node_id: str = field(default="", metadata={"env": "YUNKAN_NODE_ID"})
    """Names this process in the room directory; defaults to host:port."""
    advertise_url: str = field(default="", metadata={"env": "YUNKAN_ADVERTISE_URL"})
    """Where other nodes send participants of rooms living here; defaults to public_url."""
    ice_servers: str = field(default="", metadata={"env": "YUNKAN_ICE_SERVERS"})
    """Comma-separated stun:/turn: URLs given to browsers and the relay."""
    turn_secret: str = field(default="", metadata={"env": "YUNKAN_TURN_SECRET", "secret": True})
    turn_ttl: int = field(default=3600, metadata={"env": "YUNKAN_TURN_TTL"})
    """Seconds a participant's TURN credential stays valid."""
    relay_turn: bool = field(default=False, metadata={"env": "YUNKAN_RELAY_TURN"})
    """Whether the relay's own peer connections allocate on TURN too (default: only the
    participants use TURN; the relay is reachable on its host or public address)."""
    ice_public_ip: str = field(default="", metadata={"env": "YUNKAN_ICE_PUBLIC_IP"})
    ice_host_addresses: str = field(default="", metadata={"env": "YUNKAN_ICE_HOST_ADDRESSES"})
    """Comma-separated local IPs the relay gathers host candidates on; empty: every interface."""
    tls_cert: str = field(default="", metadata={"env": "YUNKAN_TLS_CERT"})
    tls_key: str = field(default="", metadata={"env": "YUNKAN_TLS_KEY"})
    seal_p12: str = field(default="", metadata={"env": "YUNKAN_SEAL_P12"})
    """The agency's sealing certificate and key (PKCS#12); empty: a development CA in var/pki."""
    seal_p12_password: str = field(
        default="", metadata={"env": "YUNKAN_SEAL_P12_PASSWORD", "secret": True}
    )
    seal_ca: str = field(default="", metadata={"env": "YUNKAN_SEAL_CA"})
    """PEM trust root for verification when the PKCS#12 file carries no CA certificate."""
    agency_name: str = field(default="云勘视频勘验服务中心", metadata={"env": "YUNKAN_AGENCY_NAME"})
    tsa_url: str = field(default="", metadata={"env": "YUNKAN_TSA_URL"})
    """RFC 3161 timestamp authority: seals become PAdES B-T/B-LT and checkpoints carry
    tokens. Empty: seals stay PAdES B-B and checkpoints are signed without a token."""
    reminder_offsets: str = field(default="24h,30m", metadata={"env": "YUNKAN_REMINDERS"})
    unfiled_check_s: int = field(default=3600, metadata={"env": "YUNKAN_UNFILED_CHECK_S"})
    """Seconds between checks for evidence files on disk that no case holds
    (``recordings.orphans``); the first runs a minute after start. 0 turns it off."""
    deadline_warning_percent: int = field(default=80, metadata={"env": "YUNKAN_DEADLINE_WARNING"})
    """电子监察: a step turns *warning* (预警) once this share of its promised days is used."""
    deadline_red_after: int = field(default=2, metadata={"env": "YUNKAN_DEADLINE_RED_AFTER"})
    """电子监察: a yellow card turns red when more than this many working days late."""
    deadline_check_s: int = field(default=300, metadata={"env": "YUNKAN_DEADLINE_CHECK_S"})
    """Seconds between passes of the deadline evaluator (background tasks); 0 turns it off."""
    background_tasks: bool = field(default=True, metadata={"env": "YUNKAN_BACKGROUND_TASKS"})
    """Run schedulers (reminders, no-shows, retention) in this process."""
    # ---- capacity: admission control and worker processes (issue 18) ----------------
    admit_max_lag_ms: int = field(default=0, metadata={"env": "YUNKAN_ADMIT_MAX_LAG_MS"})
    """Refuse new rooms while this node's event loop runs later than this (mean over the
    last seconds, ``signaling.admission``); 0 turns the check off."""
    admit_max_cpu: int = field(default=0, metadata={"env": "YUNKAN_ADMIT_MAX_CPU"})
    """Refuse new rooms while this process uses more than this percentage of one core
    (user + system over the last seconds); 0 turns the check off."""
    admit_max_streams: int = field(default=0, metadata={"env": "YUNKAN_ADMIT_MAX_STREAMS"})
    """Refuse new rooms while this node forwards this many streams or more (one per
    subscriber and publisher); 0 turns the check off."""
    workers: int = field(default=1, metadata={"env": "YUNKAN_WORKERS"})
    """``yunkan serve --workers N``: relay/HTTP processes sharing the port (SO_REUSEPORT);
    more than one needs ``REDIS_URL`` (``server.workers``)."""

    # ---- derived values -------------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'yunkan.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def ice_server_list(self) -> tuple[str, ...]:
        return _comma_list(self.ice_servers)

    @property
    def ice_host_address_list(self) -> tuple[str, ...]:
        return _comma_list(self.ice_host_addresses)

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return _networks(self.trusted_proxies)

    @property
    def effective_node_id(self) -> str:
        return self.node_id or f"{self.host}:{self.port}"

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict fit for logs: secrets and passwords in URLs hidden."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = "***"
            elif f.name in ("database_url", "redis_url", "tsa_url") and value:
                value = _redact_url(str(value))
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out

    # ---- construction ---------------------------------------------------------------
    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        config_file: str | Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Read settings; generate the secret key into the data dir on first run."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_file = config_file or environ.get("YUNKAN_CONFIG")
        if config_file:
            values.update(_read_toml(Path(config_file)))
        by_env = {f.metadata["env"]: f for f in dataclasses.fields(cls)}
        for env_name, f in by_env.items():
            if env_name in environ and environ[env_name] != "":
                values[f.name] = _convert(f, environ[env_name], env_name)
        for name, value in overrides.items():
            if value is not None:
                known = {f.name: f for f in dataclasses.fields(cls)}
                if name not in known:
                    raise SettingsError(f"unknown setting {name!r}")
                values[name] = _convert(known[name], value, f"--{name.replace('_', '-')}")
        settings = cls(**values)
        settings._validate()
        if not settings.secret_key:
            settings = dataclasses.replace(settings, secret_key=_stored_secret(settings.data_dir))
        return settings

    @classmethod
    def for_tests(cls, data_dir: Path, **overrides: Any) -> Settings:
        """Settings for a test: isolated data dir, fixed secret, no background schedulers."""
        base: dict[str, Any] = {
            "data_dir": data_dir,
            "secret_key": "test-secret-" + "x" * 32,
            "log_format": "text",
            "background_tasks": False,
        }
        base.update(overrides)
        settings = cls(**base)
        settings._validate()
        return settings

    def _validate(self) -> None:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"YUNKAN_TIMEZONE={self.timezone!r} is not an IANA zone (e.g. Asia/Shanghai)"
            ) from None
        if not 1 <= self.deadline_warning_percent <= 100:
            raise SettingsError(
                f"YUNKAN_DEADLINE_WARNING={self.deadline_warning_percent} must be a percentage"
                " between 1 and 100"
            )
        if self.deadline_red_after < 0:
            raise SettingsError(
                f"YUNKAN_DEADLINE_RED_AFTER={self.deadline_red_after} must be 0 or more"
            )
        if not 0 < self.port < 65536:
            raise SettingsError(f"YUNKAN_PORT={self.port} must be between 1 and 65535")
        url = self.effective_database_url
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise SettingsError(
                f"DATABASE_URL={_redact_url(url)!r}: use sqlite+aiosqlite:///path "
                "or postgresql+asyncpg://user@host/db"
            )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(
                f"REDIS_URL={_redact_url(self.redis_url)!r}: use redis://host:6379/0"
            )
        if self.default_locale not in ("zh_CN", "en"):
            raise SettingsError("YUNKAN_DEFAULT_LOCALE must be zh_CN or en")
        if self.log_format not in ("json", "text"):
            raise SettingsError("YUNKAN_LOG_FORMAT must be json or text")
        if self.client_max_size < 1024:
            raise SettingsError("YUNKAN_MAX_BODY must be at least 1024 bytes")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise SettingsError("YUNKAN_PUBLIC_URL must start with http:// or https://")
        self._validate_ice()
        try:
            _networks(self.trusted_proxies)
        except ValueError as exc:
            raise SettingsError(
                f"YUNKAN_TRUSTED_PROXIES: {exc.args[0]!r} is not an IP address or network "
                "(e.g. 127.0.0.1,10.0.0.0/8)"
            ) from None
        if self.tsa_url and not self.tsa_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"YUNKAN_TSA_URL={self.tsa_url!r} must be an http:// or https:// URL"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingsError("YUNKAN_TLS_CERT and YUNKAN_TLS_KEY go together")
        self._validate_capacity()

    def _validate_capacity(self) -> None:
        if self.admit_max_lag_ms < 0:
            raise SettingsError(
                f"YUNKAN_ADMIT_MAX_LAG_MS={self.admit_max_lag_ms} must be 0 (off) or a number"
                " of milliseconds, e.g. 100"
            )
        if not 0 <= self.admit_max_cpu <= 100:
            raise SettingsError(
                f"YUNKAN_ADMIT_MAX_CPU={self.admit_max_cpu} must be 0 (off) or a percentage"
                " of one core between 1 and 100, e.g. 85"
            )
        if self.admit_max_streams < 0:
            raise SettingsError(
                f"YUNKAN_ADMIT_MAX_STREAMS={self.admit_max_streams} must be 0 (off) or a"
                " number of forwarded streams, e.g. 48"
            )
        if not 1 <= self.workers <= 64:
            raise SettingsError(
                f"YUNKAN_WORKERS={self.workers} must be between 1 and 64 (e.g. the host's cores)"
            )
        if self.workers > 1 and not self.redis_url:
            raise SettingsError(
                f"YUNKAN_WORKERS={self.workers} (--workers) needs REDIS_URL: the workers share"
                " the bus and the room directory through Redis (one worker runs without it)"
            )

    def _validate_ice(self) -> None:
        for url in self.ice_server_list:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise SettingsError(
                    f"YUNKAN_ICE_SERVERS: {url!r} must start with stun:, stuns:, turn: or turns:"
                )
        turn = any(u.startswith(("turn:", "turns:")) for u in self.ice_server_list)
        if turn and not self.turn_secret:
            raise SettingsError(
                "YUNKAN_TURN_SECRET is required for the turn: URLs in YUNKAN_ICE_SERVERS"
            )
        if self.turn_ttl <= 0:
            raise SettingsError("YUNKAN_TURN_TTL must be a positive number of seconds")
        named = [("YUNKAN_ICE_PUBLIC_IP", a) for a in (self.ice_public_ip,) if a]
        named += [("YUNKAN_ICE_HOST_ADDRESSES", a) for a in self.ice_host_address_list]
        for name, address in named:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise SettingsError(
                    f"{name}: {address!r} is not an IP address (e.g. 10.0.0.5)"
                ) from None


@functools.lru_cache(maxsize=8)
def _networks(text: str) -> tuple[IPNetwork, ...]:
    """Parsed once per distinct value: ``client_ip`` asks on every request."""
    networks: list[IPNetwork] = []
    for part in _comma_list(text):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(part) from None
    return tuple(networks)


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _convert(f: dataclasses.Field[Any], raw: Any, name: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if not isinstance(raw, str):
        return Path(raw) if kind == "Path" else raw
    try:
        if kind == "int":
            return int(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError:
        expected = {"int": "a whole number", "bool": "true or false"}.get(kind, kind)
        raise SettingsError(f"{name}={raw!r} is not valid: expected {expected}") from None
    return raw


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"YUNKAN_CONFIG={str(path)!r}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"YUNKAN_CONFIG={str(path)!r}: invalid TOML: {exc}") from None
    names = {f.name: f for f in dataclasses.fields(Settings)}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise SettingsError(f"{path}: unknown setting {key!r}")
        out[key] = _convert(names[key], value if not isinstance(value, bool) else str(value), key)
    return out


def _stored_secret(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secret)
    return secret


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
