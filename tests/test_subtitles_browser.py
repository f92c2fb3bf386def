"""Our WebVTT files as a browser reads them: Chromium's own WebVTT parser (Debian's chromium,
driven by Playwright) must find every cue, its voice and every karaoke timestamp."""

from __future__ import annotations

import shutil

from caption_helpers import conversation
from playwright.async_api import async_playwright

from aligner.timeline import Timeline, Utterance, Word
from renderers.segment import segment
from renderers.subtitles import VTT, VTTKaraoke

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Loads call.vtt into a hidden text track and reports what the browser parsed.
PAGE = """<!doctype html><meta charset=utf-8><video id=v muted></video><script>
const tr = document.createElement('track');
tr.kind = 'captions'; tr.src = 'call.vtt'; tr.default = true;
document.getElementById('v').appendChild(tr);
tr.track.mode = 'hidden';
window.result = new Promise(res => {
  tr.addEventListener('error', () => res({state: 'error'}));
  tr.addEventListener('load', () => res({state: 'ok', cues: Array.from(tr.track.cues, c => {
    const frag = c.getCueAsHTML();
    const walk = document.createTreeWalker(frag, NodeFilter.SHOW_PROCESSING_INSTRUCTION);
    const stamps = [];
    while (walk.nextNode()) stamps.push(walk.currentNode.data);
    const voice = frag.querySelector('span[title]');
    return {start: c.startTime, end: c.endTime, text: frag.textContent,
            voice: voice ? voice.title : null, stamps};
  })}));
});
</script>"""


async def _parsed(files: dict[str, str]) -> dict[str, dict]:
    """What Chromium parses from each WebVTT text in ``files`` (name -> text)."""
    out = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page()
            current = {"vtt": ""}

            async def serve(route):
                if route.request.url.endswith(".vtt"):
                    await route.fulfill(body=current["vtt"].encode("utf-8"),
                                        content_type="text/vtt; charset=utf-8")
                else:
                    await route.fulfill(body=PAGE, content_type="text/html; charset=utf-8")

            await page.route("http://captions.test/**", serve)
            for name, text in files.items():
                current["vtt"] = text
                await page.goto("http://captions.test/page.html")
                out[name] = await page.evaluate("window.result")
        finally:
            await browser.close()
    return out


def _stamp(s: str) -> float:
    h, m, rest = s.split(":")
    return int(h) * 3600 + int(m) * 60 + float(rest)


async def test_chromium_reads_cues_voices_and_word_timestamps():
    tl = conversation()
    text = "Tom & Jerry <3 {braces} ünï 你好 🎉"
    spans = [(0, 3), (4, 5), (6, 11), (12, 14), (15, 23), (24, 27), (28, 30), (31, 32)]
    words = tuple(Word(text[a:b], 7200 + 0.4 * i, 7200 + 0.4 * i + 0.3, a, b)
                  for i, (a, b) in enumerate(spans))
    tricky = Timeline(utterances=(Utterance("user", 7200, 7204, text, words=words),))
    got = await _parsed({"vtt": VTT().render_string(tl), "karaoke": VTTKaraoke().render_string(tl),
                         "tricky": VTTKaraoke().render_string(tricky)})
    cues = segment(tl)
    for name in ("vtt", "karaoke"):
        assert got[name]["state"] == "ok"
        parsed = got[name]["cues"]
        assert len(parsed) == len(cues)
        for p, c in zip(parsed, cues, strict=True):
            assert abs(p["start"] - c.start) <= 0.001 and abs(p["end"] - c.end) <= 0.001
            assert p["voice"] == c.speaker.capitalize()
            assert p["text"].split() == " ".join(c.lines).split()
            want = [w.start for w in c.words if c.start + 1e-3 < w.start < c.end - 1e-3]
            stamps = [_stamp(s) for s in p["stamps"]]
            if name == "vtt":
                assert stamps == []
            else:
                # every word starting inside the cue has its stamp (one within 1 ms of the
                # cue's edges, on the 10 ms grid, may or may not), every stamp is a word's;
                # Chromium serialises a stamp by truncating to whole ms: allow that on top of ours
                assert all(any(abs(a - b) <= 0.0015 for a in stamps) for b in want)
                assert all(any(abs(a - w.start) <= 0.0015 for w in c.words) for a in stamps)
                assert stamps == sorted(stamps) and all(c.start < a < c.end for a in stamps)
    (cue,) = got["tricky"]["cues"]
    assert cue["text"].split() == text.split() and cue["voice"] == "User"
    assert cue["start"] == 7200 and len(cue["stamps"]) == len(spans) - 1
