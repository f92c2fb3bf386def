"""The browser client module (/client.js) and the blend-shape avatar page in real Chromium.

A real call through the service: the embedded emulator greets, the page plays the greeting
through ``AgentPlayer`` and follows it. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import io

import numpy as np
from browser_helpers import ARTIFACTS, chromium
from PIL import Image
from service_helpers import running_service

from aligner.service.proxy import Limits

# A call driven from the test through the module, logging every callback in order.
HARNESS = """async () => {
  const m = await import("/client.js");
  const ctx = new AudioContext({ sampleRate: 24000 });
  await ctx.resume();
  const player = new m.AgentPlayer(ctx, { sampleRate: 24000 });
  const log = window.log = [];
  player.onViseme((v) => log.push({ k: "viseme", viseme: v.viseme, playing: v.playing }));
  player.onWord((w) => log.push({ k: "word", word: w && w.word }));
  player.onCaption((c) => log.push({ k: "caption", current: c.current, text: c.text }));
  player.onClear((c) => log.push({ k: "clear", dropped: c.dropped, playing: c.wasPlaying }));
  const counted = { n: 0 };
  const stop = player.onWord(() => { counted.n += 1; });
  window.unsubscribed = () => { stop(); return counted.n; };
  window.counted = counted;
  player.start();
  const call = await m.registerCall({ sample_rate: 24000 });
  const ws = new WebSocket(m.audioWebsocketUrl(call.call_id, { enable_words: true,
                                                             enable_visemes: true }));
  ws.binaryType = "arraybuffer";
  ws.onmessage = (msg) => {
    if (typeof msg.data !== "string") log.push({ k: "audio" });
    player.receive(msg.data);
  };
  window.player = player;
  window.barge = () => {           // what the page does when the service sends "clear"
    log.push({ k: "receive-clear", queued: player.queued });
    player.receive("clear");
    log.push({ k: "returned", queued: player.queued, playing: player.sampleNow() !== null });
  };
  return typeof m.AgentPlayer;
}"""


async def test_a_clear_stops_mouth_and_caption_at_once(tmp_path):
    async with running_service(tmp_path, lipsync=True, emulator={"send_speed": 2.0},
                               limits=Limits(align_budget=3.0)) as svc, chromium() as browser:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(svc.base + "/healthz")  # any page of the service: same origin
        assert await page.evaluate(HARNESS) == "function"
        # mid-greeting, the agent speaking: the user barges in
        await page.wait_for_function(
            "window.log.filter(e => e.k === 'word' && e.word).length >= 4", timeout=30_000)
        await page.evaluate("window.barge()")
        n_before = await page.evaluate("window.unsubscribed()")
        await page.wait_for_function(  # the server goes on sending the greeting
            "window.log.filter(e => e.k === 'word' && e.word).length >= 9", timeout=30_000)
        log = await page.evaluate("window.log")
        n_after = await page.evaluate("window.counted.n")
    assert not errors, errors
    i = next(k for k, e in enumerate(log) if e["k"] == "receive-clear")
    j = next(k for k, e in enumerate(log) if e["k"] == "returned")
    before, during, after = log[:i], log[i + 1:j], log[j + 1:]
    # the agent was speaking: audio queued, the mouth moving, a word lit
    assert log[i]["queued"] > 0
    assert any(e["k"] == "viseme" and e["viseme"] != "sil" and e["playing"] for e in before)
    # inside the one call to receive("clear"): audio stopped, mouth at rest, caption unlit
    kinds = [e["k"] for e in during]
    assert kinds[0] == "clear" and during[0]["dropped"] > 0 and during[0]["playing"]
    assert {"k": "viseme", "viseme": "sil", "playing": False} in during
    assert {"k": "word", "word": None} in during
    assert any(e["k"] == "caption" and e["current"] == -1 for e in during)
    assert log[j]["queued"] == 0 and not log[j]["playing"]
    # nothing announced for the cleared audio is shown: until new audio arrives, the mouth
    # stays at rest and no word lights up
    upto = next((k for k, e in enumerate(after) if e["k"] == "audio"), len(after))
    assert all(e["k"] != "word" and (e["k"] != "viseme" or e["viseme"] == "sil")
               for e in after[:upto])
    # the new audio plays and is followed again; an unsubscribed listener hears nothing more
    assert any(e["k"] == "viseme" and e["viseme"] != "sil" for e in after[upto:])
    assert n_after == n_before


def _mouth_crop(png: bytes) -> np.ndarray:
    """The avatar's mouth and chin region of a screenshot, as a numpy array."""
    im = Image.open(io.BytesIO(png)).convert("RGB")
    return np.asarray(im.crop((60, 210, 300, 390))).astype(np.int16)


async def test_the_blendshape_page_moves_with_the_audio(tmp_path):
    async with running_service(tmp_path, lipsync=True, emulator={"send_speed": 2.0},
                               limits=Limits(align_budget=3.0)) as svc, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1000, "height": 560})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(svc.base + "/blendshapes")
        rest = await page.screenshot()
        await page.click("#start")
        await page.wait_for_function("window.blend.state === 'live'", timeout=10_000)
        shots = []
        for _ in range(12):  # the greeting plays: look at the face every 0.25 s
            await page.wait_for_timeout(250)
            shots.append(await page.screenshot())
        await page.wait_for_function("window.blend.paths.filter(p => p.playing).length > 60",
                                     timeout=20_000)
        (ARTIFACTS / "blendshapes_page.png").write_bytes(
            max(shots, key=lambda s: np.abs(_mouth_crop(s) - _mouth_crop(rest)).mean()))
        paths = await page.evaluate("window.blend.paths")
    assert not errors, errors
    playing = [p for p in paths if p["playing"]]
    # the drawn mouth changes over time while the audio plays, through many shapes
    assert len({p["d"] for p in playing}) >= 20
    jaw = [p["jawOpen"] for p in playing]
    assert max(jaw) > 0.4 and min(jaw) < 0.1
    # and on screen: the mouth region differs between moments of the greeting
    crops = [_mouth_crop(s) for s in shots]
    diffs = [np.abs(a - b).mean() for a, b in zip(crops, crops[1:], strict=False)]
    assert sum(d > 0.5 for d in diffs) >= 3, diffs
