"""Fixtures of the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Playwright, sync_playwright

from tests.e2e.browser import write_tone_wav


@pytest.fixture
def tones(tmp_path: Path) -> dict[int, Path]:
    return {hz: write_tone_wav(tmp_path / f"tone{hz}.wav", hz) for hz in (440, 660)}


@pytest.fixture
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright
