"""Helpers of the browser tests: Debian's headless Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from playwright.async_api import async_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"  # screenshots to look at


def chromium_args(mic_wav: Path | None = None) -> list[str]:
    """Headless flags; pages may play audio without a gesture; with ``mic_wav`` the fake
    microphone plays that file (looped)."""
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--autoplay-policy=no-user-gesture-required"]
    if mic_wav is not None:
        args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={mic_wav}"]
    return args


@contextlib.asynccontextmanager
async def chromium(mic_wav: Path | None = None):
    """A running headless Chromium (closed on exit)."""
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=chromium_args(mic_wav))
        try:
            yield browser
        finally:
            await browser.close()
