"""The ``picture`` renderer: the PNG decoded and checked where the words are; the HTML page played
in real Chromium. The call is real (espeak-ng speech through capture, session and aligner) with
a barge-in: the agent is cut by a clear at 2.0 s."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from browser_helpers import ARTIFACTS, chromium
from PIL import Image
from session_helpers import barge_in_timeline

import renderers
from aligner.cli import main
from aligner.timeline import Phone, Timeline, TimelineEvent, Utterance, Word
from renderers.picture import COLOURS, Picture

CLEAR = 2.0
LANE_BG = (247, 247, 250)


@pytest.fixture(scope="module")
def call(tmp_path_factory) -> Timeline:
    return barge_in_timeline(str(tmp_path_factory.mktemp("call")))


@pytest.fixture(scope="module")
def drawn(call, tmp_path_factory):
    out = tmp_path_factory.mktemp("picture")
    paths = renderers.get("picture")().render(call, out)
    png = np.asarray(Image.open(out / "call.png").convert("RGB")).astype(int)
    return out, paths, png, Picture().layout(call)


def _near(px, colour, tol=12) -> bool:
    return all(abs(int(a) - b) <= tol for a, b in zip(px, colour, strict=True))


def test_files_and_size(drawn):
    out, paths, png, lay = drawn
    assert [p.name for p in paths] == ["call.png", "call.html", "call.picture.wav"]
    assert png.shape == (lay.page_height(1), 1600, 3)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "picture.png").write_bytes((out / "call.png").read_bytes())


def test_word_tiers_are_drawn_where_the_words_are(call, drawn):
    _out, _paths, png, lay = drawn
    heard = {(b.speaker, b.text) for b in lay.words}
    assert ("agent", "four") in heard and ("agent", "people") not in heard
    assert ("user", "Actually") in heard
    row = lay.rows[0]
    for b in lay.words:
        y = (b.y0 + b.y1) // 2
        inside = png[y, int(b.x0) + 2:int(b.x1) - 1]
        # a tinted box with its label where the word sounds, a boundary line at its start
        assert not any(_near(px, LANE_BG, 2) for px in inside), b
        edge = png[y, int(b.x0) - 1:int(b.x0) + 2]
        assert any(_near(px, COLOURS[b.speaker], 40) for px in edge), b
    # in the pause after "Sure," the agent's word tier is empty
    sure, i = (next(b for b in lay.words if b.text == w) for w in ("Sure", "I"))
    gap = png[(sure.y0 + sure.y1) // 2, int(sure.x1) + 3:int(i.x0) - 2]
    assert len(gap) > 5 and all(_near(px, LANE_BG, 2) for px in gap)
    # the waveform lane has ink while the agent speaks and only its midline after the clear
    top, bottom = lay.lane("agent", "wave", row)
    speaking = png[top:bottom, int(lay.x(0.3, row)):int(lay.x(1.8, row))]
    silent = png[top:bottom, int(lay.x(2.6, row)):int(lay.x(3.8, row))]
    def ink(a):  # agent-coloured pixels a column
        return np.all(np.abs(a - COLOURS["agent"]) < 30, axis=-1).sum() / a.shape[1]

    assert ink(silent) <= 1 and ink(speaking) > 5  # a flat line, then a moving wave
    # the spectrogram is darker where the user speaks than where nobody does
    top, bottom = lay.lane("user", "spectrogram", row)
    assert png[top:bottom, int(lay.x(2.5, row)):int(lay.x(3.0, row))].mean() < \
        png[top:bottom, int(lay.x(0.2, row)):int(lay.x(1.0, row))].mean() - 30
    # the clear: a red line across the row
    x = round(lay.x(CLEAR, row))
    column = png[row.y0 + 20:row.y1 - 6, x - 1:x + 2]
    assert np.mean(np.all(np.abs(column - (212, 38, 38)) < 40, axis=-1).any(axis=1)) > 0.9


def test_unheard_words_are_grey_after_the_clear(drawn):
    _out, _paths, png, lay = drawn
    row = lay.rows[0]
    top, bottom = lay.lane("agent", "words", row)
    after = png[top:bottom, round(lay.x(CLEAR, row)) + 4:round(lay.x(CLEAR + 1.0, row))]
    grey = np.all(np.abs(after - (150, 150, 158)) < 25, axis=-1).sum()
    green = np.all(np.abs(after - COLOURS["agent"]) < 40, axis=-1).sum()
    assert grey > 200 and green == 0  # "people at seven ...": drawn, but not as heard words


def test_confidence_is_drawn_under_a_word_when_the_timeline_has_it(call):
    call = dataclasses.replace(call, utterances=tuple(  # no confidence anywhere, but ...
        dataclasses.replace(u, words=tuple(dataclasses.replace(w, confidence=None)
                                           for w in u.words)) for u in call.utterances))
    agent = call.utterances[0]
    words = list(agent.words)
    low, high = 2, 5  # "can", "table"
    words[low] = dataclasses.replace(words[low], confidence=0.1)
    words[high] = dataclasses.replace(words[high], confidence=0.95)
    tl = dataclasses.replace(call, utterances=(dataclasses.replace(agent, words=tuple(words)),
                                               *call.utterances[1:]))
    png = np.asarray(Picture().draw(tl, Picture().layout(tl))[0]).astype(int)
    boxes = {b.text: b for b in Picture().layout(tl).words}

    def bar(b):  # the pixels of the bar along the box's bottom: (count, mean colour)
        strip = png[b.y1 - 4, int(b.x0) + 1:int(b.x1) - 1]
        tinted = np.any(np.abs(strip - png[b.y0 + 3, int(b.x0) + 2]) > 30, axis=-1)
        return tinted.sum() / len(strip), strip[tinted].mean(axis=0) if tinted.any() else None

    frac_low, c_low = bar(boxes["can"])
    frac_high, c_high = bar(boxes["table"])
    frac_none, _ = bar(boxes["Sure"])
    assert frac_none == 0
    assert 0.02 < frac_low < 0.3 and frac_high > 0.8  # the bar's length is the confidence
    assert c_low[0] > c_low[1] and c_high[1] > c_high[0]  # red when low, green when high
    # and the field survives timeline.json
    back = Timeline.from_json(tl.to_json())
    assert back.utterances[0].words[high].confidence == 0.95


def test_a_word_narrower_than_a_pixel_with_a_confidence_is_drawn(call, tmp_path):
    """A word of a millisecond (a word the aligner squeezed, or one a clear cut) still has a
    confidence: its box is drawn and the picture is written (its bar once failed to draw)."""
    agent = call.utterances[0]
    words = list(agent.words)
    w = words[3]
    words[3] = dataclasses.replace(w, end=w.start + 0.001, confidence=0.9)
    tl = dataclasses.replace(call, utterances=(dataclasses.replace(agent, words=tuple(words)),
                                               *call.utterances[1:]))
    box = next(b for b in Picture().layout(tl).words if b.text == w.word)
    assert box.x1 - box.x0 < 2
    paths = renderers.get("picture")().render(tl, tmp_path)
    assert (tmp_path / "call.png").stat().st_size > 0 and len(paths) >= 1


def _long_call(minutes: float) -> Timeline:
    words, phones, text, t = [], [], [], 0.3
    while t < minutes * 60 - 1:
        w = f"word{len(words)}"
        start = len(" ".join(text)) + (1 if text else 0)
        text.append(w)
        phones += [Phone("W", t, t + 0.1, len(words)), Phone("ER", t + 0.1, t + 0.4, len(words))]
        words.append(Word(w, t, t + 0.4, start, start + len(w)))
        t += 0.6
    # one utterance over every row: each row draws only its own phones
    u = Utterance("agent", 0.3, t, " ".join(text), words=tuple(words), phones=tuple(phones))
    return Timeline(utterances=(u,), events=(TimelineEvent(61.0, "clear"),), duration=t + 0.5)


def test_a_long_call_is_paged_and_every_page_stays_readable(tmp_path):
    tl = _long_call(5.0)  # 5 minutes: 30 rows of 10 s, 12 a page
    seen = []
    paths = Picture(progress=lambda done, total: seen.append((done, total))).render(tl, tmp_path)
    pngs = [p for p in paths if p.suffix == ".png"]
    assert [p.name for p in pngs] == ["call.png", "call.p2.png", "call.p3.png"]
    sizes = [Image.open(p).size for p in pngs]
    assert all(w == 1600 and h <= Picture().layout(tl).page_height(1) for w, h in sizes)
    assert sizes[2][1] < sizes[0][1]  # the last page holds the 6 rows left
    assert seen[-1] == (30, 30) and [d for d, _ in seen] == list(range(31))  # visemes, rows
    # a word across a row edge is drawn in both rows
    lay = Picture().layout(tl)
    across = [b for b in lay.words if b.start < 10.0 < b.end]
    assert len(across) == 2 and {b.row for b in across} == {0, 1}


def test_render_command_writes_the_picture(call, tmp_path, capsys):
    call.save(tmp_path / "timeline.json")  # no audio files: tiers and events only
    assert main(["render", str(tmp_path / "timeline.json"), "--to", "picture",
                 "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "call.png").is_file() and (tmp_path / "out" / "call.html").is_file()


async def test_the_page_plays_and_lights_up_the_sounding_word(call, drawn):
    out, _paths, _png, lay = drawn
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 720})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto((out / "call.html").as_uri())
        await page.evaluate("document.getElementById('audio').play()")
        await page.wait_for_function("window.picture.log.length >= 6", timeout=20_000)
        now = await page.evaluate("""() => ({ t: document.getElementById('audio').currentTime,
            lit: [...document.querySelectorAll('.word.sounding')].map(e => e.title) })""")
        await page.screenshot(path=str(ARTIFACTS / "picture_page.png"))
        await page.wait_for_function("document.getElementById('audio').currentTime > 3.2",
                                     timeout=20_000)
        log = await page.evaluate("window.picture.log")
    assert not errors, errors
    # each word lit while the audio was inside it, in the order they were spoken
    for e in log:
        assert e["start"] <= e["t"] < e["end"], e
    order = [(round(b.start, 4), b.text) for b in lay.words]
    for speaker in ("agent", "user"):
        lit = [(e["start"], e["text"]) for e in log if e["speaker"] == speaker]
        assert lit == sorted(lit) and set(lit) <= set(order)
    texts = [e["text"] for e in log]
    assert "Sure" in texts and "Actually" in texts and len(set(texts)) >= 6
    # what is lit at a moment is the word sounding then
    expect = {b.text for b in lay.words if b.start <= now["t"] < b.end}
    assert set(now["lit"]) <= expect | {e["text"] for e in log[-2:]}
