"""Run Alembic migrations programmatically (``yunkan migrate``, ``yunkan serve``, tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from server.settings import Settings

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_sync(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "heads")


async def upgrade(settings: Settings) -> None:
    """Bring the database to the newest revision; safe to call on every start."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Alembic's env.py runs its own event loop for the async driver, so keep it off ours.
    await asyncio.to_thread(upgrade_sync, settings.effective_database_url)
