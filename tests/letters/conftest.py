from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import DummyCookieJar

from server.app import create_app
from server.letters import pki
from server.settings import Settings


@pytest.fixture(scope="session")
def seal_material(tmp_path_factory: pytest.TempPathFactory) -> pki.SealMaterial:
    return pki.load_or_create(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def other_material() -> pki.SealMaterial:
    _ca, p12 = pki.generate_dev_pki("Some Other Agency")
    return pki.load_p12(p12, None)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
async def sqlite_client(aiohttp_client: Any, sqlite_settings: Settings) -> Any:
    """For tests whose subject is not the database (verification, templates)."""
    return await aiohttp_client(create_app(sqlite_settings), cookie_jar=DummyCookieJar())
