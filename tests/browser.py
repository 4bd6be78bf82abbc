"""Headless Chromium for tests: Debian's build driven by Playwright (never a downloaded one)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("YUNKAN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Chromium not found at {CHROMIUM} (CI=true: .ci/run installs it)")
        pytest.skip("Chromium not installed: apt-get install chromium (or set YUNKAN_CHROMIUM)")


@asynccontextmanager
async def chromium(extra_args: list[str] | None = None) -> AsyncIterator[Any]:
    """A Playwright ``Browser`` on Debian's Chromium."""
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS + (extra_args or []))
        try:
            yield browser
        finally:
            await browser.close()
