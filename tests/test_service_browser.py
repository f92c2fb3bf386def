"""The demo page in real headless Chromium (Debian's chromium, driven by Playwright).

Chromium's fake audio capture plays a samples/ clip as the microphone; the page registers a call
through the service, streams the mic, plays the agent through the browser client module
(/client.js), moves the avatar's mouth with the viseme events and highlights the caption word
being spoken. A screenshot is saved under test-artifacts/.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from browser_helpers import ARTIFACTS, chromium
from service_helpers import GREETING, SAMPLES, running_service

from aligner import audio
from aligner.service.proxy import Limits


def _mic_wav(path: Path) -> Path:
    """The fake microphone: silence while the agent greets, the user's request, then a barge-in
    into the agent's long answer, then silence (Chromium loops the file)."""
    def quiet(seconds: float) -> np.ndarray:
        return np.zeros(int(16000 * seconds), np.int16)

    parts = [quiet(5.5), audio.load(SAMPLES / "user1.wav", 16000), quiet(3.5),
             audio.load(SAMPLES / "user2_bargein.wav", 16000), quiet(30)]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.concatenate(parts).tobytes())
    return path


async def test_demo_page_lip_syncs_in_chromium(tmp_path):
    # a generous alignment budget: on a loaded machine, events still precede their audio
    async with running_service(tmp_path, lipsync=True, emulator={"send_speed": 2.0},
                               limits=Limits(align_budget=3.0)) as svc, \
            chromium(_mic_wav(tmp_path / "mic.wav")) as browser:
        page = await browser.new_page(viewport={"width": 1000, "height": 620})
        errors: list[str] = []
        requested: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda req: requested.append(req.url))
        await page.goto(svc.base + "/")
        await page.click("#start")
        await page.wait_for_function("window.demo.state === 'live'", timeout=10_000)
        await page.wait_for_function("window.demo.framesReceived > 0", timeout=10_000)
        # mid-greeting: the mouth has moved and the caption shows words being spoken
        await page.wait_for_function("window.demo.shownWords.includes('Riverside')",
                                     timeout=20_000)
        await page.screenshot(path=str(ARTIFACTS / "service_demo.png"))
        await page.wait_for_function("window.demo.shownWords.includes('today')",
                                     timeout=20_000)
        demo = await page.evaluate("window.demo")
        caption = await page.inner_text("#caption")
        # the answer to the user is a new utterance: a new caption line
        await page.wait_for_function("window.demo.shownWords.includes('course')",
                                     timeout=30_000)
        await page.screenshot(path=str(ARTIFACTS / "service_demo_answer.png"))
        answer_caption = await page.inner_text("#caption")
        captions = await page.evaluate("window.demo.captions")
        # the user barges into the agent's answer: the emulator sends clear
        await page.wait_for_function("window.demo.clears > 0", timeout=30_000)
        before, after = await page.evaluate("[window.demo.beforeClear, window.demo.afterClear]")
        await page.screenshot(path=str(ARTIFACTS / "service_demo_clear.png"))
        player = await page.evaluate("window.demo.player.constructor.name")
        await page.click("#hangup")
        await page.wait_for_function("window.demo.state === 'closed'", timeout=10_000)
    assert not errors, errors
    # the page schedules through the browser client module the service serves
    assert svc.base + "/client.js" in requested and player == "AgentPlayer"
    assert demo["error"] is None
    assert demo["samplesReceived"] > 4 * 24000  # the greeting's audio
    # the caption followed the words in spoken order
    shown = [w for i, w in enumerate(demo["shownWords"]) if i == 0 or demo["shownWords"][i - 1] != w]
    greeting = GREETING.split()
    assert [w for w in shown if w in greeting][:len(greeting)] == greeting
    assert "today" in caption
    # captions show the words as written (punctuation) and one utterance per line: the answer's
    # line starts with its own first word, not with the greeting's last one
    assert "Bistro." in caption and "today?" in caption, caption
    assert answer_caption.startswith("Of course."), answer_caption
    answer = [c for c in captions.values() if "course" in c]
    assert answer and all(c.startswith("Of course.") for c in answer), captions
    assert any(c.endswith("today?") for c in captions.values()), captions
    # the mouth changed shape many times, through many shapes, and only while audio played
    changes = demo["visemeChanges"]
    shapes = {c["viseme"] for c in changes}
    assert len(changes) >= 20 and len(shapes) >= 6, changes
    assert "PP" in shapes  # the closed lips of "Bistro", "bistro", "help"...
    assert all(c["playing"] for c in changes if c["viseme"] != "sil")
    # in time: the first word appeared when the first audio started playing
    assert abs(demo["firstWordAt"] - demo["firstAudioAt"]) < 0.35, demo
    # a clear stops audio, mouth and captions at once: agent audio was playing and queued
    assert before["playing"] and before["queued"] > 0, before
    assert after == {"viseme": "sil", "highlighted": 0, "queued": 0, "playing": False}, after
