"""Observers (/live), recordings (/calls) and the service's small parts, over real sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os

import aiohttp
import numpy as np
import pytest
import yarl
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from loopback import serve_app
from service_helpers import GREETING, collect, running_service

from aligner.service.observers import ObserverHub, TokenIssuer
from aligner.service.options import CallOptions, Limits, TokenBucket
from aligner.service.recordings import RecordingStore, valid_call_id


async def test_observer_needs_its_calls_token_and_sees_only_its_call(tmp_path):
    async with running_service(tmp_path, lipsync=True) as svc:
        a, b = await svc.register(), await svc.register()
        assert a["observer_token"] != b["observer_token"]
        live = f"{svc.base}/live/{a['call_id']}"
        for bad in ("", "?token=nope", f"?token={b['observer_token']}"):  # b's token opens not a
            async with svc.http.get(live + bad) as resp:
                assert resp.status == 403
        async with svc.http.get(f"{svc.base}/live/..%2F{a['call_id']}",
                                params={"token": a["observer_token"]}) as resp:
            assert resp.status in (403, 404)
        watcher = await svc.http.ws_connect(f"{svc.ws_base}/live/{a['call_id']}",
                                            params={"token": a["observer_token"]})
        sse = await svc.http.get(f"{svc.base}/live/{b['call_id']}",
                                 params={"token": b["observer_token"]},
                                 headers={"Accept": "text/event-stream"})
        assert sse.status == 200 and sse.content_type == "text/event-stream"
        # a: a plain front end (the observer still gets words); b: a lip-sync front end
        fe_a = await svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/{a['call_id']}")
        fe_b = await svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/{b['call_id']}"
                                         "?enable_words=true&enable_visemes=true")
        got_a, got_b = await asyncio.gather(
            collect(fe_a, 5.0),
            collect(fe_b, 10.0, until=lambda k, d: k == "json" and d.get("index") == 3))
        assert not [d for k, d in got_a if k == "json" and d["event_type"] == "word"]
        await fe_a.close()
        await fe_b.close()
        seen = [d for k, d in await collect(watcher, 5.0) if k == "json"]
        kinds = [d["event_type"] for d in seen]
        assert kinds[0] == "call_started" and kinds[-1] == "call_ended"
        assert {"word", "viseme", "agent_text"} <= set(kinds)
        assert all(d.get("call_id", a["call_id"]) == a["call_id"] for d in seen)
        words = {d["index"]: d["word"] for d in seen if d["event_type"] == "word"}
        assert [words[i] for i in sorted(words)] == GREETING.split()
        assert watcher.closed or (await watcher.receive()).type in (
            aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        body = (await asyncio.wait_for(sse.content.read(), 10)).decode()
        assert "event: call_started" in body and "event: word" in body and b["call_id"] in body
        assert a["call_id"] not in body
        sse.release()


async def test_recordings_are_rendered_and_served_without_traversal(tmp_path):
    (tmp_path / "secret.txt").write_text("top secret")
    async with running_service(tmp_path, renderers=("vtt", "visemes")) as svc:
        call = await svc.register()
        cid = call["call_id"]
        async with svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/{cid}") as ws:
            await collect(ws, 2.5)
        info = await svc.call_info(cid, state_not=("recording", "queued", "rendering"), timeout=90)
        assert info["state"] == "done", info
        assert {"timeline.json", "call.vtt"} <= set(info["files"]), info
        assert any(f.endswith(".jsonl") for f in info["files"]), info
        listing = await (await svc.http.get(f"{svc.base}/calls", headers=svc.auth)).json()
        assert [c["call_id"] for c in listing["calls"]] == [cid]
        async with svc.http.get(f"{svc.base}/calls/{cid}/files/call.vtt",
                                headers=svc.auth) as resp:
            assert resp.status == 200 and (await resp.text()).startswith("WEBVTT")
            assert "Riverside" in await resp.text()
        os.symlink(tmp_path / "secret.txt", svc.config.recordings / cid / "link.txt")
        attempts = [f"/calls/{cid}/files/..%2F..%2Fsecret.txt", f"/calls/{cid}/files/%2e%2e",
                    f"/calls/{cid}/files/link.txt", "/calls/..%2F/files/secret.txt",
                    f"/calls/{cid}/files/capture", f"/calls/{cid}/files/.",
                    f"/calls/{cid}/files/%2Fetc%2Fpasswd", "/calls/%2E%2E/files/x",
                    f"/calls/{cid}/files/call.vtt%00.txt"]
        raw = [f"/calls/{cid}/files/../../../secret.txt", "/calls/../../secret.txt",
               f"/calls/{cid}/files/..\\..\\secret.txt"]
        for path in attempts + raw:  # raw: sent as is, not normalised by the client
            url = yarl.URL(svc.base + path, encoded=path in raw)
            async with svc.http.get(url, headers=svc.auth) as resp:
                body = await resp.read()
                assert resp.status in (400, 404), (path, resp.status)
                assert b"top secret" not in body


async def test_recordings_need_the_key_or_the_calls_own_token(tmp_path):
    async with running_service(tmp_path) as svc:
        call, other = await svc.register(), await svc.register()
        cid = call["call_id"]
        async with svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/{cid}") as ws:
            await collect(ws, 1.0)
        await svc.call_info(cid)
        own, foreign = call["observer_token"], other["observer_token"]
        bearer = {"Authorization": f"Bearer {own}"}
        cases = [  # (path, headers, status): before, every one of them was 200
            ("/calls", {}, 401), ("/calls", {"Authorization": "Bearer nope"}, 401),
            ("/calls", bearer, 401), ("/calls", svc.auth, 200),
            (f"/calls/{cid}", {}, 401), (f"/calls/{cid}?token={foreign}", {}, 401),
            (f"/calls/{cid}?token={own}", {}, 200), (f"/calls/{cid}", bearer, 200),
            (f"/calls/{cid}", svc.auth, 200),
            (f"/calls/{cid}/files/call.json", {}, 401),
            (f"/calls/{cid}/files/call.json?token={own}", {}, 200),
            (f"/calls/nosuch/files/call.json?token={own}", {}, 401),  # says nothing of it
            (f"/get-call/{cid}", {}, 401), (f"/get-call/{cid}?token={own}", {}, 200),
            (f"/get-call/{cid}?token={foreign}", {}, 401)]
        for path, headers, status in cases:
            async with svc.http.get(svc.base + path, headers=headers) as resp:
                assert resp.status == status, (path, headers, resp.status)
                if status == 401:
                    assert cid.encode() not in await resp.read()


async def test_a_symlinked_call_folder_is_never_followed(tmp_path):
    from aligner.errors import AlignerError

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_text("top secret")
    (elsewhere / "call.json").write_text('{"call_id": "evil_link", "state": "done"}')
    async with running_service(tmp_path) as svc:
        os.symlink(elsewhere, svc.config.recordings / "evil_link")
        for path in ("/calls/evil_link/files/secret.txt", "/calls/evil_link"):
            async with svc.http.get(svc.base + path, headers=svc.auth) as resp:
                assert resp.status == 404 and b"top secret" not in await resp.read()
        listing = await (await svc.http.get(f"{svc.base}/calls", headers=svc.auth)).json()
        assert listing["calls"] == []
    store = RecordingStore(svc.config.recordings)
    with pytest.raises(AlignerError, match="not a folder"):  # nor is a recording written there
        store.begin("evil_link", {})
    assert json.loads((elsewhere / "call.json").read_text())["state"] == "done"


async def test_demo_page_and_samples_are_served(tmp_path):
    async with running_service(tmp_path) as svc:
        async with svc.http.get(svc.base + "/") as resp:
            assert resp.status == 200 and "demo.js" in await resp.text()
        async with svc.http.get(svc.base + "/static/demo.js") as resp:
            text = await resp.text()
            assert resp.status == 200 and 'from "/client.js"' in text and "enable_visemes" in text
        async with svc.http.get(svc.base + "/client.js") as resp:  # the browser client module
            assert resp.status == 200 and "export class AgentPlayer" in await resp.text()
            assert resp.headers["Content-Type"].startswith("text/javascript")
        async with svc.http.get(svc.base + "/blendshapes") as resp:
            assert resp.status == 200 and "blendshapes.js" in await resp.text()
        async with svc.http.get(svc.base + "/samples/user1.wav") as resp:
            assert resp.status == 200 and (await resp.read())[:4] == b"RIFF"
        for path in ("/samples/dialogue.json", "/samples/..%2Fpyproject.toml", "/static/../app.py"):
            async with svc.http.get(svc.base + path) as resp:
                assert resp.status in (403, 404), path


# --- parts without sockets ---------------------------------------------------------------------

def test_tokens_bind_the_call_and_the_secret():
    t1, t2 = TokenIssuer(b"one"), TokenIssuer(b"two")
    tok = t1.issue("call_a")
    assert t1.check("call_a", tok) and not t1.check("call_b", tok)
    assert not t2.check("call_a", tok) and not t1.check("call_a", "") and not t1.check("call_a", None)


async def test_hub_never_blocks_and_replays_sticky_events():
    hub = ObserverHub()
    hub.publish("c", {"event_type": "call_started"})
    sub = hub.subscribe("c")
    other = hub.subscribe("d")
    assert sub.queue.get_nowait()["event_type"] == "call_started"
    for i in range(sub.queue.maxsize + 10):
        hub.publish("c", {"event_type": "word", "i": i})
    assert sub.dropped == 10 and hub.dropped == 10 and other.queue.empty()
    hub.end("c")
    items = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert items[-1] is None
    hub.unsubscribe(sub)
    hub.unsubscribe(sub)
    assert not hub.has_observers("c") and hub.has_observers("d")


def test_token_bucket_allows_burst_then_rate():
    b = TokenBucket(rate=100.0, burst=50.0)
    assert b.take(50, 0.0) and not b.take(1, 0.0)
    assert b.take(10, 0.1) and not b.take(1, 0.1)


def test_call_options_from_query():
    opts = CallOptions.from_query({"enable_words": "true", "enable_update": "1",
                                   "enable_visemes": "no"})
    assert opts.enable_words and opts.enable_update and not opts.enable_visemes and opts.lipsync
    assert not CallOptions.from_query({}).lipsync


@pytest.mark.parametrize("call_id", ["../x", "a/b", "", ".", "..", "a" * 129, "x\x00", "é"])
def test_unsafe_call_ids_are_refused(tmp_path, call_id):
    assert not valid_call_id(call_id)
    store = RecordingStore(tmp_path)
    assert store.info(call_id) is None and store.files(call_id) == []


async def test_store_lists_only_plain_files_by_exact_name(tmp_path):
    store = RecordingStore(tmp_path / "rec")
    folder = store.begin("call_1", {"sample_rate": 24000})
    (folder / "call.vtt").write_text("WEBVTT\n")
    (folder / ".hidden").write_text("x")
    (folder / "sub").mkdir()
    os.symlink(tmp_path, folder / "escape")
    assert store.files("call_1") == ["call.json", "call.vtt"]
    await store.finish("call_1", {"close_code": 1000})
    info = store.info("call_1")
    assert info["state"] == "done" and info["close_code"] == 1000
    assert json.loads((folder / "call.json").read_text())["sample_rate"] == 24000


async def test_calls_ending_together_are_all_rendered_or_refused_with_a_reason(tmp_path):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from aligner.wire.capture import CaptureWriter

    busy = threading.Event()
    pool = ThreadPoolExecutor(1)
    store = RecordingStore(tmp_path / "rec", ["vtt"], max_pending=3, executor=pool)
    store.start()
    pool.submit(busy.wait, 30)  # the render worker is busy: jobs wait
    ids = [f"call_{k}" for k in range(12)]
    for cid in ids:
        with CaptureWriter(store.begin(cid, {}) / "capture", {"audio_encoding": "s16le",
                                                               "sample_rate": 16000}):
            pass
    # the queue's room was checked, then call.json written, then the job put: those that came
    # in between raised QueueFull and stayed "queued" forever
    results = await asyncio.gather(*(store.finish(cid, {"close_code": 1000}) for cid in ids),
                                   return_exceptions=True)
    busy.set()
    await store.close(60)
    assert results == [None] * len(ids)
    states = {cid: store.info(cid) for cid in ids}
    done = [c for c, i in states.items() if i["state"] == "done"]
    refused = [c for c, i in states.items() if i["state"] == "failed"]
    assert len(done) + len(refused) == len(ids) and 3 <= len(done) <= 4, states
    assert all("render queue full" in states[c]["errors"]["queue"] for c in refused)
    assert all("call.vtt" in states[c]["files"] for c in done)
    assert store.refused == len(refused)


async def test_a_restart_finishes_every_call_left_unrendered(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from aligner.service.recordings import recover_calls
    from aligner.wire.capture import CaptureWriter

    before = RecordingStore(tmp_path / "rec", ["vtt"])
    states = {"call_a": "recording", "call_b": "queued", "call_c": "rendering", "call_d": "done"}
    for cid, state in states.items():
        with CaptureWriter(before.begin(cid, {}) / "capture", {"audio_encoding": "s16le",
                                                                "sample_rate": 16000}):
            pass
        before._update(before.call_dir(cid), {"state": state})
    before.io.shutdown()
    pool = ThreadPoolExecutor(1)
    store = RecordingStore(tmp_path / "rec", ["vtt"], max_pending=1, executor=pool)
    store.start()
    store.begin("call_new", {})  # this run's call, live: not touched
    assert sorted(await recover_calls(store)) == ["call_a", "call_b", "call_c"]
    await store.close(60)
    info = {cid: store.info(cid) for cid in [*states, "call_new"]}
    assert {cid: i["state"] for cid, i in info.items()} == {
        "call_a": "done", "call_b": "done", "call_c": "done", "call_d": "done",
        "call_new": "recording"}
    assert info["call_a"]["close_reason"] == "service_restarted"
    assert "close_reason" not in info["call_b"] and "call.vtt" in info["call_b"]["files"]


def test_chunk_events_stay_contiguous_across_flush_and_restart_after_clear():
    from aligner.service.lipsync import ChunkEvents
    from aligner.speech.synthesis import synthesize

    speech = synthesize("Hello there, my friend.")
    pcm = speech.samples if hasattr(speech, "samples") else speech.audio
    half = len(pcm) // 2
    ce = ChunkEvents(22050, "s16le")
    first = ce.align_now(pcm[:half].tobytes(), "Hello there, ")
    held = ce.flush()
    second = ce.align_now((np.zeros(8000, np.int16)).tobytes() + pcm[half:].tobytes(),
                          "my friend.")
    # held-back cues and the second chunk are relative to sample `half`: put all on one clock
    cues = [e for e in first if e["event_type"] == "viseme"]
    cues += [{**e, "start_sample": e["start_sample"] + half, "end_sample": e["end_sample"] + half}
             for e in held + second if e["event_type"] == "viseme"]
    assert held and held[0]["start_sample"] < 0  # the tail lies at the end of the first chunk
    assert all(a["end_sample"] == b["start_sample"] for a, b in zip(cues, cues[1:], strict=False))
    assert [e["word"] for e in first + second if e["event_type"] == "word"] == [
        "Hello", "there", "my", "friend"]
    ce.clear()
    again = [e for e in ce.align_now(pcm[:half].tobytes(), "Hello there, ")
             if e["event_type"] == "word"]
    before = [e for e in first if e["event_type"] == "word"]
    assert [e["index"] for e in again] == [4, 5]  # indexes stay unique across a clear
    assert all(abs(a["start_sample"] - b["start_sample"]) < 0.01 * 22050  # the clock restarts
               for a, b in zip(again, before, strict=True))


def test_word_events_carry_the_written_text_and_their_utterance():
    from aligner.service.lipsync import ChunkEvents

    ce = ChunkEvents(16000, "s16le", backend="fallback")
    quiet = np.zeros(16000, np.int16).tobytes()
    first = [e for e in ce.align_now(quiet, "How can I help you today?", 0)
             if e["event_type"] == "word"]
    second = [e for e in ce.align_now(quiet, "Of course.", 1) if e["event_type"] == "word"]
    assert [e["text"] for e in first][-1] == "today?"
    assert [(e["word"], e["text"], e["utterance"]) for e in second] == [
        ("Of", "Of", 1), ("course", "course.", 1)]
    assert {e["utterance"] for e in first} == {0}
    # a new utterance never continues the last word of the previous one
    assert all(e["index"] > first[-1]["index"] for e in second)


async def test_recorder_never_waits_for_the_capture_and_keeps_every_frame(tmp_path):
    from aligner.service.recorder import CallRecorder
    from aligner.wire.capture import CaptureWriter, read

    opening = asyncio.get_running_loop().create_future()  # the capture is still being opened
    rec = CallRecorder(opening, interval=0.01)
    rec.write(0.1, "in", b"\x01\x00" * 10)  # returns at once: no file work on the event loop
    rec.write(0.2, "out", "ping")
    await asyncio.sleep(0.05)  # the batch task runs and waits for the capture, not the caller
    opening.set_result(CaptureWriter(tmp_path / "cap", {"audio_encoding": "s16le",
                                                        "sample_rate": 16000}))
    rec.write(0.3, "in", "clear")
    rec.write_close(0.4, 1000, "bye", "client")
    assert await rec.close() is not None
    cap = read(tmp_path / "cap")
    assert [(s.t, s.direction) for s in cap.events()] == [(0.1, "in"), (0.2, "out"), (0.3, "in")]
    assert cap.close.reason == "bye"


def _live_cues(text: str, speech, cuts: list[int], backend: str = "auto",
               ) -> list[tuple[float, float, str]]:
    """(start, end, viseme) of the live cues of ``speech`` fed in chunks cut before the words
    ``cuts``, on the clock of the whole audio."""
    from aligner.service.lipsync import ChunkEvents

    rate = speech.sample_rate
    edges = [0, *(round(speech.words[k].start * rate) for k in cuts), len(speech.samples)]
    chars = [0, *(speech.words[k].char_start for k in cuts), len(text)]
    ce = ChunkEvents(rate, "s16le", backend=backend)
    fed = [(edges[i], ce.align_now(speech.samples[edges[i]:edges[i + 1]].tobytes(),
                                   text[chars[i]:chars[i + 1]])) for i in range(len(edges) - 1)]
    fed.append((edges[-1], ce.flush()))  # relative to the end of the audio fed
    return [((e["start_sample"] + at) / rate, (e["end_sample"] + at) / rate, e["viseme"])
            for at, events in fed for e in events if e["event_type"] == "viseme"]


def test_live_visemes_are_refined_on_the_chunks_audio(monkeypatch):
    """The service refines each chunk's phones as ``aligner visemes --text`` does: a voice like
    espeak-ng's, warped, gets espeak-ng's own phone times (no phone model); phones spread by a
    duration model (pocketsphinx) are re-timed on the chunk's audio (and the audio before it,
    where a grown word's phones lie). Either way its cues match espeak-ng's own phone times
    better than the aligner's phones as they are, and are still contiguous."""
    from aligner.service import lipsync
    from aligner.speech.synthesis import synthesize
    from aligner.visemes import phones as viseme_phones
    from aligner.visemes.sets import espeak_phones, get_set

    vs = get_set("oculus")

    def agreement(truth, cue_list) -> float:
        """Share of 10 ms frames whose cue shows the truth's shape now or within 60 ms."""
        def truth_at(t):
            p = next((p for p in truth if p.start <= t < p.end), None)
            return vs.rest if p is None else vs.shapes(p.phone)[0]
        frames = np.arange(0, truth[-1].end, 0.01)
        ok = 0
        for t in frames:
            ours = next((v for s, e, v in cue_list if s <= t < e), vs.rest)
            ok += any(ours == truth_at(t + d) for d in np.arange(0, 0.061, 0.01))
        return ok / len(frames)

    seen = []
    real = viseme_phones.retime

    def spy(phones, pcm, rate, *, start=0.0, **kw):
        seen.append((phones[0].start, phones[-1].end, start, start + len(pcm) / rate))
        return real(phones, pcm, rate, start=start, **kw)

    def as_they_are(phones, *a, **k):
        return list(phones)

    for backend in ("auto", "pocketsphinx"):
        gain = 0.0
        for text, voice, wpm in (
                ("Thank you for your patience; an agent will be with you shortly.",
                 "en-us+f4", 185),
                ("Why don't we move the call to Wednesday at noon instead?", "en-us+m6", 175)):
            speech = synthesize(text, voice=voice, rate=wpm)
            truth = espeak_phones(speech.phones)
            cuts = [len(speech.words) // 3, 2 * len(speech.words) // 3]
            seen.clear()
            monkeypatch.setattr(viseme_phones, "retime", spy)
            refined = _live_cues(text, speech, cuts, backend)
            if backend == "auto":  # warped (chunks cut between words): no phone model
                assert seen == []
            else:  # the re-timing saw the audio where the phones lie, the grown words' included
                assert len(seen) >= 3
                assert all(a <= s + 1e-6 and e <= b + 1e-6 for s, e, a, b in seen)
            assert all(a[1] == pytest.approx(b[0])
                       for a, b in zip(refined, refined[1:], strict=False))
            monkeypatch.setattr(lipsync, "refine_phones", as_they_are)
            plain = _live_cues(text, speech, cuts, backend)
            monkeypatch.undo()
            gain += agreement(truth, refined) - agreement(truth, plain)
        assert gain > 0.04, backend


@pytest.mark.parametrize("where", ["folder", "redis"])
async def test_voice_profiles_learn_each_agents_voice_across_calls(tmp_path, where):
    """Each call of an agent adds what it taught to the agent's profile, once (its live chunks
    and its recording both learn from it), in a folder or in Redis (where every instance and
    worker of a cluster shares it)."""
    from cluster_helpers import RedisServer

    from aligner.service.profiles import RedisProfiles, open_profiles

    redis = RedisServer(tmp_path).start() if where == "redis" else None
    voices = redis.url if redis else str(tmp_path / "voices")
    try:
        async with running_service(tmp_path, lipsync=True, renderers=("vtt",),
                                   voice_profiles=voices,
                                   emulator={"send_speed": 4.0, "voice": "hibari"}) as svc:
            learned = []
            for _ in range(2):
                call = await svc.register(agent_id="agent-7")
                fe = await svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/"
                                               f"{call['call_id']}?enable_words=true")
                got = await collect(fe, 20.0,
                                    until=lambda k, d: k == "json" and d.get("index") == 5)
                assert [d for k, d in got if k == "json" and d.get("event_type") == "word"]
                await fe.close()
                info = await svc.call_info(call["call_id"], timeout=120,
                                           state_not=("recording", "queued", "rendering"))
                assert info["state"] == "done", info
                # the render has merged; the live learner merges when its worker drops the call
                # (or did before): either way the call counts once
                seen = []
                for _ in range(30):
                    seen.append(open_profiles(voices).load("agent-7"))
                    await asyncio.sleep(0.1)
                assert {p.clips for p in seen} == {len(learned) + 1}, [p.clips for p in seen]
                assert seen[-1].sources[-1] == call["call_id"]
                learned.append((seen[-1].clips, seen[-1].frames))
        store = open_profiles(voices)
        if isinstance(store, RedisProfiles):  # one profile per agent id, only this one
            assert store.client.keys("aligner:voice:*") == [b"aligner:voice:agent-7"]
        else:
            assert sorted(p.name for p in store.folder.glob("*.json")) == ["agent-7.json"]
        # every call of the agent adds to its profile
        assert learned[0][1] > 0 and learned[1][0] > learned[0][0] and learned[1][1] > learned[0][1]
    finally:
        if redis:
            redis.stop()


async def test_an_agent_without_text_teaches_its_profile_from_the_words_heard(tmp_path):
    """A call whose agent audio comes without text (Twilio, binary frames): each utterance's
    words are recognised with the agent's profile, which learns the voice from them, and the
    call adds what it learned to the stored profile when it ends."""
    from test_visemes import LINES, _shifted

    from aligner.audio import encode
    from aligner.service.lipsync import LipSync
    from aligner.service.profiles import open_profiles

    voices = str(tmp_path / "voices")
    lip = LipSync("call-1", 16000, "s16le", None, profiles=voices, voice="agent-9")
    for i, text in enumerate(LINES[1:]):
        events = await lip.estimate(encode(_shifted(text)[0], "s16le"), i, 0)
        assert any(e["event_type"] == "word" and e["source"] == "recognized" for e in events)
    await lip.close()
    stored = open_profiles(voices).load("agent-9")
    assert stored.clips == 1 and stored.transform is not None  # one call, seconds of speech


async def _status(svc, path: str) -> int:
    async with svc.http.get(svc.base + path) as resp:
        await resp.read()
        return resp.status


@pytest.fixture(scope="module")
def service_thread(tmp_path_factory):
    from service_helpers import LoopThread

    svc = LoopThread(running_service(tmp_path_factory.mktemp("fuzz"),
                                     limits=Limits(max_frame_bytes=4096)))
    yield svc
    svc.close()


_PREFIXES = ["/", "/calls", "/calls/", "/calls/call_x", "/calls/call_x/files/",
             "/calls/call_x/files/call.json", "/get-call/", "/live/", "/register-call",
             "/audio-websocket/", "/samples/", "/static/", "/healthz", "/stats", "/stats/reset"]
_tail = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(method="GET", prefix="/calls/call_x", tail="", query={"token": "\x80"}, auth=None,
         body=None)  # found: a non-ASCII token was a 500
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"]),
       prefix=st.sampled_from(_PREFIXES), tail=_tail,
       query=st.dictionaries(st.sampled_from(["token", "enable_words", "x", "key"]), _tail,
                             max_size=2),
       auth=st.one_of(st.none(), st.just("key"), _tail.map(lambda t: f"Bearer {t}"), _tail),
       body=st.one_of(st.none(), st.binary(max_size=64), st.dictionaries(
           st.sampled_from(["agent_id", "sample_rate", "audio_encoding", "metadata"]),
           st.none() | st.integers() | _tail, max_size=3).map(lambda d: json.dumps(d).encode())))
def test_no_request_makes_the_service_fail(service_thread, method, prefix, tail, query, auth,
                                           body):
    svc = service_thread.value

    async def request() -> tuple[int, int]:
        headers = {}
        if auth == "key":
            headers.update(svc.auth)
        elif auth is not None and auth.isprintable():
            headers["Authorization"] = auth
        url = yarl.URL(svc.base) / prefix.lstrip("/")
        url = yarl.URL(str(url).rstrip("/") + "/" + yarl.URL.build(path=tail).raw_path.lstrip("/")
                       if tail else str(url)).with_query(query)
        async with svc.http.request(method, url, headers=headers, data=body) as resp:
            await resp.read()
            return resp.status, await _status(svc, "/healthz")

    status, health = service_thread.run(request())
    assert status < 500 and health == 200, (method, prefix, tail, status)


_frames = st.lists(st.one_of(
    st.binary(max_size=700),
    st.binary(min_size=4097, max_size=5000),  # over the frame limit: closes the call (1009)
    st.sampled_from(["ping", "pong", "clear", "{}", '{"event_type": "update"}']),
    st.text(max_size=60)), max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=_frames, close_first=st.booleans())
def test_any_front_end_frames_keep_the_service_up_and_every_accepted_frame_recorded(
        service_thread, frames, close_first):
    from aligner.wire.capture import read

    svc = service_thread.value

    async def call() -> str:
        cid = (await svc.register())["call_id"]
        async with svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/{cid}") as ws:
            for frame in frames:
                if ws.closed:
                    break
                with contextlib.suppress(ConnectionError):
                    await (ws.send_bytes(frame) if isinstance(frame, bytes)
                           else ws.send_str(frame))
            if not close_first:
                await asyncio.sleep(0.3)  # the agent speaks meanwhile
        return cid

    cid = service_thread.run(call())
    info = service_thread.run(svc.call_info(cid))
    too_big = [k for k, f in enumerate(frames) if len(f) > 4096]
    sent = frames[:too_big[0]] if too_big else frames
    odd = [k for k, f in enumerate(sent) if isinstance(f, bytes) and len(f) % 2]
    cap = read(svc.config.recordings / cid / "capture")  # readable, whatever was sent
    recorded = [f.payload for f in cap.frames() if f.direction == "out"]
    assert recorded == sent[:len(recorded)]  # in order, as sent
    # the call ends as the front end closed it; a frame over the limit closes it (1009); half
    # a sample makes the upstream end it (1008, corrupted payload) if it gets there first
    ended = (info["close_code"], info["closed_by"])
    allowed = {(1009, "proxy")} if too_big else {(1000, "frontend")}
    assert ended in allowed | ({(1008, "upstream")} if odd else set()), info
    assert info["close_reason"]
    if ended == (1008, "upstream"):
        assert len(recorded) > odd[0]  # up to that frame at least
    else:
        assert recorded == sent  # nothing lost (and the too-big one never forwarded)
    assert info["state"] == "done" and info["counts"]["mic_frames"] == len(recorded)
    assert service_thread.run(_status(svc, "/healthz")) == 200


_PLANS: dict[str, tuple[list, tuple[int, str] | None]] = {}  # call id -> what the upstream sends


@contextlib.asynccontextmanager
async def _hostile_upstream():
    """An upstream (its base URL) that registers calls and then sends each call's planned
    frames."""
    async def register(request):
        body = await request.json()
        call = {"call_id": f"call_{body['agent_id']}", "agent_id": body["agent_id"],
                "audio_encoding": "s16le", "sample_rate": 16000, "call_status": "registered"}
        return web.json_response(call)

    async def get_call(request):
        return web.json_response({"call_id": request.match_info["call_id"],
                                  "audio_encoding": "s16le", "sample_rate": 16000})

    async def socket(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        frames, close = _PLANS[request.match_info["call_id"]]
        for frame in frames:
            await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
        if close is not None:
            await ws.close(code=close[0], message=close[1].encode())
        else:
            async for _ in ws:
                pass
        return ws

    app = web.Application()
    app.router.add_post("/register-call", register)
    app.router.add_get("/get-call/{call_id}", get_call)
    app.router.add_get("/audio-websocket/{call_id}", socket)
    runner, base = await serve_app(app)
    try:
        yield base
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def hostile_service(tmp_path_factory):
    from service_helpers import LoopThread

    upstream = LoopThread(_hostile_upstream())  # on a loop of its own
    svc = LoopThread(running_service(tmp_path_factory.mktemp("hostile"),
                                     upstream=upstream.value, lipsync=True))
    yield svc
    svc.close()
    upstream.close()


_b64 = st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=12)
_upstream_frames = st.lists(st.one_of(
    st.binary(max_size=600), st.text(max_size=40), st.sampled_from(["clear", "ping", "pong"]),
    st.fixed_dictionaries({"event_type": st.sampled_from(["audio", "update", "metadata", "x"])},
                          optional={"audio": _b64, "text": st.text(max_size=30),
                                    "content": st.none() | st.integers() | st.text(max_size=8),
                                    "transcript": st.lists(st.dictionaries(
                                        st.sampled_from(["role", "content", "words"]),
                                        st.none() | st.text(max_size=8), max_size=3), max_size=2),
                                    "metadata": st.none() | st.text(max_size=8)})
    .map(json.dumps)), max_size=10)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=_upstream_frames, close=st.one_of(st.none(), st.tuples(
    st.sampled_from([1000, 1008, 1011, 4000]), st.text(max_size=20))),
       words=st.booleans())
def test_any_upstream_frames_reach_the_front_end_and_the_recording(hostile_service, frames, close,
                                                                   words):
    from aligner.wire.capture import read

    svc = hostile_service.value
    agent = f"fuzz{len(_PLANS)}"
    _PLANS[f"call_{agent}"] = (frames, close)

    async def call() -> tuple[str, list]:
        cid = (await svc.register(agent_id=agent))["call_id"]
        query = "?enable_audio_alignment=true" + ("&enable_words=true&enable_visemes=true"
                                                 if words else "")
        async with svc.http.ws_connect(f"{svc.ws_base}/audio-websocket/{cid}{query}") as ws:
            got = await collect(ws, 1.0 if close is None else 10.0)  # until the upstream closes
        return cid, got

    cid, got = hostile_service.run(call())
    info = hostile_service.run(svc.call_info(cid))
    recorded = [f.payload for f in read(svc.config.recordings / cid / "capture").frames()
                if f.direction == "in"]
    assert recorded == frames  # every upstream frame recorded, in order, once
    assert info["state"] == "done" and info["close_code"], info
    if close is not None:  # the upstream's own code and reason are kept
        assert (info["close_code"], info["close_reason"]) == close, info
    else:
        assert (info["close_code"], info["close_reason"]) == (1000, "frontend_closed"), info
    assert hostile_service.run(_status(svc, "/healthz")) == 200
