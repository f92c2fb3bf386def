"""Front-end formats as live service events, over real loopback sockets against the emulator.

A front end asks for every format at once (``enable_talkinghead``, ``enable_characters``,
``enable_azure_visemes``, ``enable_blendshapes``) next to the plain ``word``/``viseme`` events,
and each format must say what those say, in its own shape, before the audio it describes.
"""

from __future__ import annotations

import re

from service_helpers import GREETING, collect, running_service

from aligner.service.formats import FrontEndFrames
from aligner.service.options import CallOptions
from aligner.service.proxy import Limits
from aligner.visemes.sets import ARKIT_SHAPES, SETS

RATE = 24000
FLAGS = ("enable_words", "enable_visemes", "enable_talkinghead", "enable_characters",
         "enable_azure_visemes", "enable_blendshapes")


async def test_every_format_arrives_before_its_audio(tmp_path):
    async with running_service(tmp_path, lipsync=True, limits=Limits(align_budget=30.0)) as svc:
        call = await svc.register()
        url = (f"{svc.ws_base}/audio-websocket/{call['call_id']}?"
               + "&".join(f"{f}=true" for f in FLAGS))
        async with svc.http.ws_connect(url) as ws:
            frames = await collect(ws, 10.0, until=lambda k, d: k == "json" and d.get("index") == 12
                                   and d.get("final"))
            frames += await collect(ws, 1.0)
    received = 0  # agent samples received so far
    words: dict[int, dict] = {}
    heads, chars, azure, blends = [], [], [], []
    for kind, data in frames:
        if kind == "bin":
            received += len(data) // 2
            continue
        if kind != "json":
            continue
        now_ms = received * 1000 / RATE
        kind = data["event_type"]
        if kind == "word":
            words.setdefault(data["index"], data)
        elif kind == "talkinghead":
            # each word is announced once, before its audio
            assert all(t >= now_ms - 1 for t in data["wtimes"]), (data, now_ms)
            heads.append(data)
        elif kind == "characters":
            assert data["character_start_times_seconds"][0] >= received / RATE - 1e-3
            chars.append(data)
        elif kind == "azure_viseme":
            azure.append(data)
        elif kind == "blendshapes":
            blends.append(data)
    first = [words[i] for i in sorted(words)]
    assert [w["word"] for w in first] == GREETING.split()

    # TalkingHead: streamAudio's fields; its words are the word events, in ms, once each
    for h in heads:
        assert set(h) == {"event_type", "words", "wtimes", "wdurations", "visemes", "vtimes",
                          "vdurations"}
        assert len(h["words"]) == len(h["wtimes"]) == len(h["wdurations"])
        assert len(h["visemes"]) == len(h["vtimes"]) == len(h["vdurations"])
    th_words = [w for h in heads for w in h["words"]]
    assert th_words == [w["text"] for w in first]  # as written: "Bistro." for captions
    assert [t for h in heads for t in h["wtimes"]] == [
        round(w["start_sample"] * 1000 / RATE) for w in first]
    visemes = [v for h in heads for v in h["visemes"]]
    vtimes = [t for h in heads for t in h["vtimes"]]
    assert set(visemes) <= set(SETS["talkinghead"].visemes) - {"sil"} and "PP" in visemes
    assert vtimes == sorted(vtimes) and len(visemes) > 15

    # ElevenLabs: the characters of the chunks' text, in order, timed in seconds
    text = "".join(c for ch in chars for c in ch["characters"])
    assert re.findall(r"[A-Za-z']+", text)[:13] == GREETING.split()
    starts = [t for ch in chars for t in ch["character_start_times_seconds"]]
    ends = [t for ch in chars for t in ch["character_end_times_seconds"]]
    assert len(starts) == len(ends) == len(text) and starts == sorted(starts)
    bistro = text.index("Bistro")
    w = next(w for w in first if w["word"] == "Bistro")
    assert abs(starts[bistro] - w["start_sample"] / RATE) < 0.02

    # Azure: VisemeReceived's fields, ticks of 100 ns, ids 0-21, lips closed for "Bistro"
    assert all(list(a) == ["event_type", "AudioOffset", "VisemeId"] for a in azure)
    offsets = [a["AudioOffset"] for a in azure]
    assert offsets == sorted(offsets) and all(0 <= a["VisemeId"] <= 21 for a in azure)
    assert any(a["VisemeId"] == 21 and abs(a["AudioOffset"] / 1e7 - w["start_sample"] / RATE) < 0.1
               for a in azure)

    # blend shapes: ARKit names, 60 fps frames on the stream clock, one after another
    assert all(b["names"] == list(ARKIT_SHAPES) and b["fps"] == 60 for b in blends)
    for a, b in zip(blends, blends[1:], strict=False):
        assert b["start_sample"] == a["start_sample"] + len(a["frames"]) * RATE // 60
    weights = [x for b in blends for f in b["frames"] for x in f]
    assert min(weights) >= 0 and max(weights) <= 1
    jaw = [f[0] for b in blends for f in b["frames"]]
    assert max(jaw) > 0.4 and min(jaw) < 0.1  # the jaw opens and closes


def _word(index, start, end, text):
    return {"event_type": "word", "index": index, "word": text.strip(".,"), "text": text,
            "utterance": 0, "start_sample": start, "end_sample": end, "sample_rate": 1000,
            "final": True}


def test_talkinghead_frames_announce_each_word_once_and_carry_late():
    f = FrontEndFrames(CallOptions(enable_talkinghead=True))
    first = f.frames([_word(0, 100, 400, "Hello,"),
                      {"event_type": "viseme", "for": "talkinghead", "viseme": "kk",
                       "start_sample": 100, "end_sample": 200, "sample_rate": 1000},
                      {"event_type": "viseme", "for": "talkinghead", "viseme": "sil",
                       "start_sample": 400, "end_sample": 500, "sample_rate": 1000}])
    assert first == [{"event_type": "talkinghead", "words": ["Hello,"], "wtimes": [100],
                      "wdurations": [300], "visemes": ["kk"], "vtimes": [100],
                      "vdurations": [100]}]
    # the word grew over the next chunk (same index): not announced again; late events say so
    again = f.frames([{**_word(0, 100, 450, "Hello,"), "late": True},
                      {**_word(1, 500, 700, "there."), "late": True}])
    assert again == [{"event_type": "talkinghead", "words": ["there."], "wtimes": [500],
                      "wdurations": [200], "visemes": [], "vtimes": [], "vdurations": [],
                      "late": True}]
    assert FrontEndFrames(CallOptions(enable_words=True)).frames([_word(0, 1, 2, "x")])[0][
        "event_type"] == "word"


def test_options_parse_every_format_flag():
    opts = CallOptions.from_query({f: "true" for f in FLAGS[2:]})
    assert opts.enable_talkinghead and opts.enable_characters and opts.enable_azure_visemes
    assert opts.enable_blendshapes and opts.lipsync and not opts.enable_words
    assert not CallOptions.from_query({"enable_update": "1"}).lipsync
