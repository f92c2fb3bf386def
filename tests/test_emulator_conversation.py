"""Whole calls against the emulator over real loopback sockets, with real speech both ways.

The client streams user speech at ``SPEED`` x real time and the emulator runs its clocks at the
same ``time_scale``, so turn-taking and barge-in keep their real-time semantics.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import numpy as np
from aiohttp import web
from emulator_helpers import (
    AGENT_LINES,
    USER_LINES,
    Received,
    read_twilio,
    read_web,
    register,
    silence,
    stream_twilio,
    stream_web,
    user_speech,
    wait_ended,
)
from loopback import serve

from aligner import audio
from aligner.emulator import EmbeddedEmulator
from aligner.speech.recognize import recognize, word_overlap
from aligner.speech.voices import synthesize

SPEED = 3.0


def _chunk_texts(got: Received) -> list[str]:
    return [text for text, _, _ in got.of("chunk")]


async def _heard(pcm: np.ndarray, rate: int) -> str:
    """What pocketsphinx hears, knowing only the words the agent may use (not which line)."""
    return await asyncio.to_thread(recognize, pcm, rate, AGENT_LINES)


async def test_web_call_s16le_24k_speech_barge_in_and_transcript():
    rate = 24000
    async with EmbeddedEmulator(time_scale=SPEED) as emu, aiohttp.ClientSession() as session:
        call = await register(session, emu, sample_rate=rate)
        url = (f"{emu.ws_url}/audio-websocket/{call['call_id']}"
               "?enable_update=true&enable_audio_alignment=true")
        async with session.ws_connect(url) as ws:
            got = Received()
            reader = asyncio.create_task(read_web(ws, got))

            async def say(pcm):
                await stream_web(ws, pcm, "s16le", rate, SPEED)

            # the greeting arrives, then plays out (it plays in real time after arriving)
            while "".join(_chunk_texts(got)) != AGENT_LINES[0]:
                await say(silence(0.1, rate))
            await say(silence(4.6, rate))
            greeting = list(got.of("chunk"))
            assert "".join(t for t, _, _ in greeting) == AGENT_LINES[0]
            assert not got.of("metadata")  # only an LLM (or a script) that sends metadata

            await say(user_speech(USER_LINES[0], rate))
            await say(silence(3.0, rate))  # end of turn; the long line 1 starts playing
            n_before = len(got.items)
            await say(user_speech(USER_LINES[1], rate))  # barge in
            await say(silence(6.0, rate))  # end of turn; line 2 plays
            await say(user_speech(USER_LINES[2], rate))
            await say(silence(6.0, rate))  # line 3 ends the call
            await asyncio.wait_for(reader, 20)

        assert (got.close_code, got.close_reason) == (1000, "agent_hangup")
        kinds = [k for k, _, _ in got.items]
        clear_at = kinds.index("clear")
        assert clear_at > n_before
        line1_sent = "".join(p[0] for k, _, p in got.items[:clear_at] if k == "chunk")
        line1_sent = line1_sent[len(AGENT_LINES[0]):]
        assert line1_sent and AGENT_LINES[1].startswith(line1_sent)
        assert line1_sent != AGENT_LINES[1]  # the barge-in stopped it
        after = got.items[clear_at + 1:]
        assert after[0][0] == "update" and after[0][2]["turntaking"] == "user_turn"
        rest = "".join(p[0] for k, _, p in after if k == "chunk")
        assert rest == AGENT_LINES[2] + AGENT_LINES[3]
        # every whole line the agent said is intelligible: recognise each and compare words
        pcm = audio.decode(b"".join(a for _, a, _ in greeting), "s16le")
        heard = await _heard(pcm, rate)
        assert word_overlap(AGENT_LINES[0], heard) >= 0.5, heard
        assert word_overlap(AGENT_LINES[0], heard) > word_overlap(AGENT_LINES[2], heard)
        overlaps = [word_overlap(AGENT_LINES[0], heard)]
        for line in AGENT_LINES[2:]:
            chunks, text = [], ""
            for k, _, p in after:
                if k == "chunk" and text != line and (text + p[0]) and line.startswith(text + p[0]):
                    chunks.append(p[1])
                    text += p[0]
            assert text == line
            heard = await _heard(audio.decode(b"".join(chunks), "s16le"), rate)
            overlaps.append(word_overlap(line, heard))
        assert sum(overlaps) / len(overlaps) >= 0.6, overlaps

        ended = await wait_ended(session, emu, call["call_id"], timeout=30, turns=7)
        assert ended["call_status"] == "ended" and ended["disconnection_reason"] == "agent_hangup"
        turns = ended["transcript_object"]
        assert [t["role"] for t in turns] == ["agent", "user"] * 3 + ["agent"]
        assert turns[0]["content"] == AGENT_LINES[0]
        cut = turns[2]["content"]
        # cut to what was PLAYED (sent faster than real time: less than what was sent)
        assert cut and line1_sent.startswith(cut) and len(cut) < len(line1_sent.rstrip()), [(k, round(t - got.items[0][1], 2), p[0] if k == "chunk" else p) for k, t, p in got.items[n_before - 25:clear_at + 2]]
        assert [t["content"] for t in turns[4::2]] == AGENT_LINES[2:]
        assert all(t["content"] for t in turns[1::2])  # the recogniser heard the user
        assert word_overlap(USER_LINES[0], turns[1]["content"]) >= 0.4, turns[1]["content"]
        starts = [w["start"] for t in turns for w in t["words"] if t["role"] == "agent"]
        assert starts == sorted(starts)
        assert turns[2]["words"][-1]["end"] <= turns[3]["words"][-1]["end"]
        assert turns[2]["words"][-1]["end"] <= turns[4]["words"][0]["start"]
        assert all(w["start"] <= w["end"] for t in turns for w in t["words"])
        assert ended["transcript"].startswith("Agent: " + AGENT_LINES[0] + "\nUser: ")


async def test_twilio_call_mulaw_8k_speech_barge_in_and_stop():
    async with EmbeddedEmulator(time_scale=SPEED) as emu, aiohttp.ClientSession() as session:
        call = await register(session, emu, audio_websocket_protocol="twilio")
        async with session.ws_connect(f"{emu.ws_url}/audio-websocket/{call['call_id']}") as ws:
            got = Received()
            await ws.send_str(json.dumps({"event": "connected", "protocol": "Call",
                                          "version": "1.0.0"}))
            await ws.send_str(json.dumps({
                "event": "start", "sequenceNumber": "1", "streamSid": "MZtest",
                "start": {"streamSid": "MZtest", "accountSid": "AC1", "callSid": "CA1",
                          "tracks": ["inbound"], "customParameters": {},
                          "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                          "channels": 1}}}))
            reader = asyncio.create_task(read_twilio(ws, got))
            n = 1
            while not got.of("mark"):  # the greeting arrives, then plays out
                n = await stream_twilio(ws, silence(0.1, 8000), "MZtest", SPEED, n)
            n = await stream_twilio(ws, silence(4.6, 8000), "MZtest", SPEED, n)
            greeting = b"".join(got.of("media"))
            marks = got.of("mark")
            assert marks and marks[0]["mark"]["name"] == "response-0"
            assert all(m["streamSid"] == "MZtest" for m in marks)
            n = await stream_twilio(ws, user_speech(USER_LINES[0], 8000), "MZtest", SPEED, n)
            n = await stream_twilio(ws, silence(2.0, 8000), "MZtest", SPEED, n)
            media_before = len(got.of("media"))
            n = await stream_twilio(ws, user_speech(USER_LINES[1], 8000), "MZtest", SPEED, n)
            n = await stream_twilio(ws, silence(1.5, 8000), "MZtest", SPEED, n)
            await ws.send_str(json.dumps({"event": "stop", "sequenceNumber": str(n + 1),
                                          "streamSid": "MZtest"}))
            await asyncio.wait_for(reader, 20)
        heard = await _heard(audio.decode(greeting, "mulaw"), 8000)
        # pocketsphinx on 8 kHz mulaw espeak speech hears 0.38-0.53 of the words (espeak's output
        # varies slightly with what it synthesised before): a floor, then the real check, that
        # the greeting is clearly what it heard rather than another line
        assert word_overlap(AGENT_LINES[0], heard) >= 0.3, heard
        assert word_overlap(AGENT_LINES[0], heard) > word_overlap(AGENT_LINES[2], heard)
        kinds = [k for k, _, _ in got.items]
        assert "clear" in kinds and len(got.of("media")) > media_before
        assert got.of("clear")[0]["streamSid"] == "MZtest"
        ended = await wait_ended(session, emu, call["call_id"], timeout=30, turns=5)
        assert ended["call_status"] == "ended" and ended["disconnection_reason"] == "user_hangup"
        roles = [t["role"] for t in ended["transcript_object"]]
        assert roles[:4] == ["agent", "user", "agent", "user"]
        cut = ended["transcript_object"][2]["content"]
        assert cut and AGENT_LINES[1].startswith(cut) and cut != AGENT_LINES[1]


async def _greeting(emu, session, rate=16000, query="enable_audio_alignment=true",
                    seconds=6.0) -> Received:
    call = await register(session, emu, sample_rate=rate)
    url = f"{emu.ws_url}/audio-websocket/{call['call_id']}?{query}"
    async with session.ws_connect(url) as ws:
        got = Received()
        reader = asyncio.create_task(read_web(ws, got))
        await stream_web(ws, silence(seconds, rate), "s16le", rate, speed=emu.config.time_scale)
        await _quiet(got)  # on a busy machine the greeting may still be on its way
        await ws.close()
        await asyncio.wait_for(reader, 10)
    return got


async def _quiet(got: Received, idle: float = 0.5, limit: float = 10.0) -> None:
    """Wait until frames have arrived and nothing new came for ``idle`` s (``limit`` s at most)."""
    loop = asyncio.get_running_loop()
    deadline, seen, since = loop.time() + limit, -1, loop.time()
    while loop.time() < deadline:
        if len(got.items) != seen:
            seen, since = len(got.items), loop.time()
        elif seen and loop.time() - since >= idle:
            return
        await asyncio.sleep(0.05)


async def test_web_call_with_the_hibari_voice():
    """The agent speaks with the neural voice: chunks cut between words, each with exactly its
    text; the call's words are hibari's, in order, inside the audio it sent."""
    async with EmbeddedEmulator(time_scale=8.0, recognition=False, voice="hibari") as emu, \
            aiohttp.ClientSession() as session:
        call = await register(session, emu, sample_rate=16000)
        url = f"{emu.ws_url}/audio-websocket/{call['call_id']}?enable_audio_alignment=true"
        async with session.ws_connect(url) as ws:
            got = Received()
            reader = asyncio.create_task(read_web(ws, got))
            await stream_web(ws, silence(7.0, 16000), "s16le", 16000, speed=8.0)
            await _quiet(got)
            await ws.close()
            await asyncio.wait_for(reader, 10)
        ended = await wait_ended(session, emu, call["call_id"], turns=1)
    texts = _chunk_texts(got)
    assert "".join(texts) == AGENT_LINES[0] and len(texts) >= 8
    for a, b in zip(texts, texts[1:], strict=False):  # cut between words
        assert (not a or a[-1] in " .,?!") and not b.startswith(" "), (a, b)
    pcm = audio.decode(b"".join(a for _, a, _ in got.of("chunk")), "s16le")
    # it is hibari's speech of the line (resampled to the call's rate), not espeak-ng's
    own = audio.resample(synthesize(AGENT_LINES[0], "hibari").samples, 24000, 16000)
    assert abs(len(pcm) - len(own)) <= len(texts)
    n = min(len(pcm), len(own))
    assert np.corrcoef(pcm[:n].astype(float), own[:n].astype(float))[0, 1] > 0.99
    (turn,) = ended["transcript_object"]
    words = turn["words"]
    assert [w["word"] for w in words] == AGENT_LINES[0].split()
    for w, nxt in zip(words, words[1:], strict=False):
        assert w["start"] < w["end"] <= nxt["start"] + 0.001
    heard_from = words[0]["start"] - synthesize(AGENT_LINES[0], "hibari").words[0].start
    assert heard_from >= 0 and words[-1]["end"] <= heard_from + len(pcm) / 16000 + 0.01


async def test_custom_alignment_keys_and_split_words():
    async with EmbeddedEmulator(time_scale=8.0, recognition=False, split_words=True,
                                alignment_event_type="agent_audio",
                                alignment_text_key="content") as emu, \
            aiohttp.ClientSession() as session:
        got = await _greeting(emu, session)
    frames = [data for _, _, data in got.of("chunk")]
    assert frames and all(f["event_type"] == "agent_audio" and "text" not in f for f in frames)
    texts = [f["content"] for f in frames]
    assert "".join(texts) == AGENT_LINES[0]
    words = AGENT_LINES[0].split()
    inside = [t for t in texts[:-1] if t and not t.endswith(" ") and t.split()[-1] not in words]
    assert inside, texts  # some chunk ends inside a word


async def test_alignment_off_sends_binary_faster_than_real_time():
    async with EmbeddedEmulator(recognition=False, send_speed=3.0) as emu, \
            aiohttp.ClientSession() as session:
        got = await _greeting(emu, session, rate=16000, query="", seconds=3.0)
    frames = [(t, p) for k, t, p in got.items if k == "binary"]
    assert frames and not got.of("chunk") and not got.of("update")
    audio_s = sum(len(p) for _, p in frames) / 2 / 16000
    assert audio_s > 3.5  # the whole greeting
    span = frames[-1][0] - frames[0][0]
    assert span < audio_s * 0.7  # sent faster than it plays
    pcm = np.frombuffer(b"".join(p for _, p in frames), "<i2")
    assert np.abs(pcm).max() > 1000


async def test_updates_are_sent_only_when_enabled():
    async with EmbeddedEmulator(recognition=False, time_scale=8.0) as emu, \
            aiohttp.ClientSession() as session:
        got = await _greeting(emu, session, query="enable_update=true")
    updates = got.of("update")
    assert updates and updates[0]["turntaking"] == "agent_turn"
    assert updates[0]["transcript"][0]["role"] == "agent"
    assert AGENT_LINES[0].startswith(updates[0]["transcript"][0]["content"])


async def test_llm_websocket_brain_drives_the_agent():
    """A real custom-LLM server (protocol section 6) on loopback decides what the agent says."""
    seen: list[dict] = []

    async def llm(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        seen.append({"path": request.path})
        await ws.send_json({"response_type": "config",
                            "config": {"auto_reconnect": False, "call_details": True}})
        await ws.send_json({"response_type": "response", "response_id": 0,
                            "content": "Hello from the model.", "content_complete": True})
        async for msg in ws:
            data = json.loads(msg.data)
            seen.append(data)
            if data["interaction_type"] == "response_required":
                rid = data["response_id"]
                await ws.send_json({"response_type": "metadata", "metadata": {"rid": rid}})
                await ws.send_json({"response_type": "response", "response_id": rid - 1,
                                    "content": "Stale text.", "content_complete": True})
                await ws.send_json({"response_type": "response", "response_id": rid,
                                    "content": "Yes, ", "content_complete": False})
                await ws.send_json({"response_type": "response", "response_id": rid,
                                    "content": "please. Goodbye.", "content_complete": True,
                                    "end_call": True})
        return ws

    runner, base = await serve("/llm-websocket/{call_id}", llm)
    try:
        async with EmbeddedEmulator(llm_url=base.replace("http", "ws", 1) + "/llm-websocket",
                                    time_scale=SPEED) as emu, aiohttp.ClientSession() as session:
            call = await register(session, emu, sample_rate=16000)
            url = (f"{emu.ws_url}/audio-websocket/{call['call_id']}"
                   "?enable_update=true&enable_audio_alignment=true")
            async with session.ws_connect(url) as ws:
                got = Received()
                reader = asyncio.create_task(read_web(ws, got))
                await stream_web(ws, silence(2.0, 16000), "s16le", 16000, SPEED)
                await stream_web(ws, user_speech("Yes please.", 16000), "s16le", 16000, SPEED)
                await stream_web(ws, silence(6.0, 16000), "s16le", 16000, SPEED)
                await asyncio.wait_for(reader, 20)
            ended = await wait_ended(session, emu, call["call_id"])
    finally:
        await runner.cleanup()
    assert seen[0]["path"] == f"/llm-websocket/{call['call_id']}"
    kinds = [d.get("interaction_type") for d in seen[1:]]
    assert kinds[0] == "call_details" and seen[1]["call"]["call_id"] == call["call_id"]
    required = [d for d in seen[1:] if d.get("interaction_type") == "response_required"]
    assert len(required) == 1 and required[0]["response_id"] == 1
    user_turn = required[0]["transcript"][-1]  # recognised before the LLM is asked
    assert user_turn["role"] == "user" and user_turn["content"]
    assert ended["transcript_object"][1]["content"] == user_turn["content"]
    assert "".join(_chunk_texts(got)) == "Hello from the model.Yes, please. Goodbye."
    assert got.of("metadata") == [{"event_type": "metadata", "metadata": {"rid": 1}}]
    assert (got.close_code, got.close_reason) == (1000, "agent_hangup")
    assert [t["content"] for t in ended["transcript_object"] if t["role"] == "agent"] == [
        "Hello from the model.", "Yes, please. Goodbye."]
