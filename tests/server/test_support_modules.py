"""Settings, masking, logging, translations, blobs and the CLI."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from recordings.blobs import BlobError, BlobStore
from server.errors import YunkanError
from server.i18n import Catalogs
from server.logs import JsonFormatter
from server.masking import mask_text
from server.openapi import _MESSAGES
from server.parsing import MESSAGES as PARSING_MESSAGES
from server.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_settings_from_env_and_toml(tmp_path: Path) -> None:
    toml = tmp_path / "yunkan.toml"
    toml.write_text('port = 9000\ntimezone = "Asia/Urumqi"\n', encoding="utf-8")
    settings = Settings.load(
        {"YUNKAN_DATA_DIR": str(tmp_path), "YUNKAN_PORT": "9001"}, config_file=toml
    )
    assert settings.port == 9001  # environment beats the file
    assert settings.timezone == "Asia/Urumqi"
    assert len(settings.secret_key) > 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    again = Settings.load({"YUNKAN_DATA_DIR": str(tmp_path)})
    assert again.secret_key == settings.secret_key


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"YUNKAN_PORT": "eighty"}, "YUNKAN_PORT"),
        ({"YUNKAN_TIMEZONE": "Mars/Olympus"}, "YUNKAN_TIMEZONE"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"YUNKAN_DEMO": "maybe"}, "YUNKAN_DEMO"),
        ({"YUNKAN_ICE_HOST_ADDRESSES": "127.0.0.1,eth0"}, "YUNKAN_ICE_HOST_ADDRESSES"),
        ({"YUNKAN_TRUSTED_PROXIES": "10.0.0.0/8,nginx"}, "YUNKAN_TRUSTED_PROXIES"),
    ],
)
def test_bad_settings_name_the_variable(tmp_path: Path, env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.load({"YUNKAN_DATA_DIR": str(tmp_path), **env})


def test_ice_host_addresses_are_a_list_of_ips(tmp_path: Path) -> None:
    env = {"YUNKAN_DATA_DIR": str(tmp_path), "YUNKAN_ICE_HOST_ADDRESSES": " 10.0.0.5, ::1 ,"}
    assert Settings.load(env).ice_host_address_list == ("10.0.0.5", "::1")
    assert Settings.load({"YUNKAN_DATA_DIR": str(tmp_path)}).ice_host_address_list == ()


def test_redacted_settings_hide_secrets(tmp_path: Path) -> None:
    settings = Settings.for_tests(
        tmp_path, database_url="postgresql+asyncpg://u:hunter2@db/x", turn_secret="s3"
    )
    text = json.dumps(settings.redacted())
    assert "hunter2" not in text and 's3"' not in text and "test-secret" not in text


def test_masking() -> None:
    line = "applicant 13800138000 id 11010519491231002X credit 91350100M000100Y43 order 20261201"
    masked = mask_text(line)
    assert "13800138000" not in masked and "138****8000" in masked
    assert "11010519491231002X" not in masked and "110105********002X" in masked
    assert "91350100M000100Y43" not in masked
    assert "20261201" in masked


def test_json_logs_mask_personal_data() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("booking for %s", "13800138000", extra={"id_number": "11010519491231002X"})
    record = json.loads(stream.getvalue())
    assert record["msg"] == "booking for 138****8000"
    assert record["id_number"] == "110105********002X"


def _all_errors() -> list[type[YunkanError]]:
    import server.app  # noqa: F401  (imports every domain, so every error class is defined)

    found: list[type[YunkanError]] = []
    stack: list[type[YunkanError]] = [YunkanError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def test_every_message_has_a_chinese_translation() -> None:
    zh = Catalogs().get("zh_CN")
    missing: set[str] = set()
    for cls in _all_errors():
        if zh.gettext(cls.message) == cls.message:
            missing.add(cls.message)
    missing.update(m for m in _MESSAGES.values() if zh.gettext(m) == m)
    missing.update(m for m in PARSING_MESSAGES if zh.gettext(m) == m)
    for path in ("web/templates",):
        for _file, _line, message, _comments, _ctx in extract_from_dir(
            ROOT / path,
            method_map=[("**.html", "jinja2")],
            options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
            keywords={"_": None},
        ):
            text = message if isinstance(message, str) else message[0]
            if text and zh.gettext(text) == text:
                missing.add(text)
    assert not missing, f"no zh_CN translation for: {sorted(missing)}"


async def test_blobs_are_content_addressed_and_checked(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = await store.put(b"evidence", suffix=".jpg", kind="snapshot")
    assert ref.key.startswith("snapshot/") and ref.key.endswith(f"{ref.sha256}.jpg")
    assert await store.read(ref.key) == b"evidence"
    assert await store.check(ref.key, ref.sha256) is None
    store.path(ref.key).write_bytes(b"changed")
    assert await store.check(ref.key, ref.sha256) == "content changed (sha256 mismatch)"
    with pytest.raises(BlobError):
        store.path("../../etc/passwd")


def _yunkan(*args: str, data_dir: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_cli_migrate_demo_and_user_add(tmp_path: Path) -> None:
    assert _yunkan("migrate", data_dir=tmp_path).returncode == 0
    first = _yunkan("demo", data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "admin / yunkan-admin" in first.stdout
    assert _yunkan("demo", data_dir=tmp_path).returncode == 0  # idempotent
    made = _yunkan(
        "user",
        "add",
        "zhao",
        "--role",
        "inspector",
        "--password-stdin",
        data_dir=tmp_path,
        stdin="long-enough-pw\n",
    )
    assert made.returncode == 0, made.stderr
    again = _yunkan(
        "user",
        "add",
        "zhao",
        "--role",
        "inspector",
        "--password-stdin",
        data_dir=tmp_path,
        stdin="long-enough-pw\n",
    )
    assert again.returncode == 1 and "already exists" in again.stderr
    short = _yunkan(
        "user", "add", "qian", "--role", "admin", "--password-stdin", data_dir=tmp_path, stdin="x\n"
    )
    assert short.returncode == 1


def test_cli_reports_bad_configuration(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "migrate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "YUNKAN_PORT": "nope"},
    )
    assert result.returncode == 2
    assert "YUNKAN_PORT" in result.stderr
