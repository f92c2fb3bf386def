"""User audio sources: file decoding, chunk sizes, scripted turns, pacing on a real socket."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest
from aiohttp import WSMsgType, web
from loopback import serve, sink

from aligner import audio
from aligner.errors import AudioError, MissingBackendError
from aligner.wire.client import audio_websocket_url, record, stream
from aligner.wire.source import (
    CallState,
    FileSource,
    SamplesSource,
    SilenceSource,
    Turn,
    TurnSource,
    check_chunk_ms,
    open_source,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _drain(src, call, n):
    out = []
    while (data := src.read(call, n)) is not None:
        out.append(data)
    return b"".join(out)


@pytest.mark.parametrize("ext,codec,rate", [("ogg", "libopus", 48000), ("mp3", "libmp3lame", 44100),
                                            ("m4a", "aac", 44100)])
def test_any_file_pyav_decodes_becomes_call_audio(tmp_path, ext, codec, rate):
    ref = audio.load(SAMPLES / "user1.wav", 16000)
    path = tmp_path / f"clip.{ext}"
    with av.open(str(path), "w") as out:
        st = out.add_stream(codec, rate=rate)
        st.layout = "stereo"
        stereo = np.repeat(audio.resample(ref, 16000, rate)[:, None], 2, 1).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = rate
        for packet in st.encode(frame):
            out.mux(packet)
        for packet in st.encode(None):
            out.mux(packet)
    for encoding, rate in (("s16le", 24000), ("mulaw", 8000)):
        call = CallState(encoding, rate)
        src = FileSource(path)
        src.open(call)
        data = _drain(src, call, rate // 50)
        seconds = audio.duration(len(data), encoding, rate)
        assert abs(seconds - len(ref) / 16000) < 0.15  # codec padding only
        pcm = audio.decode(data, encoding).astype(float)
        assert np.sqrt(np.mean(pcm ** 2)) > 300  # speech, not silence


def test_chunk_sizes_outside_20_to_250_ms_are_rejected():
    assert check_chunk_ms(20) == 20 and check_chunk_ms(250) == 250
    for bad in (0, 10, 19, 251, 1000):
        with pytest.raises(AudioError, match="20-250 ms"):
            check_chunk_ms(bad)


async def test_client_rejects_bad_chunk_size_before_connecting():
    with pytest.raises(AudioError):
        async for _ in stream("ws://127.0.0.1:9/audio-websocket/x", SilenceSource(1), chunk_ms=10):
            pass


def test_missing_files_and_missing_microphone_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(AudioError, match="not found"):
        open_source(tmp_path / "nope.wav")
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if not installed
    with pytest.raises(MissingBackendError, match=r"aligner\[mic\]"):
        open_source("mic")
    assert isinstance(open_source("silence:2"), SilenceSource)


@pytest.mark.parametrize("broken", ["no PortAudio", "not installed"])
def test_a_microphone_that_cannot_work_says_why(tmp_path, broken):
    import os
    import subprocess

    # sounddevice installed without the PortAudio library raises OSError when imported; the
    # message blamed a missing sounddevice and hid that
    stand_in = tmp_path / "site"
    stand_in.mkdir()
    if broken == "no PortAudio":
        (stand_in / "sounddevice.py").write_text('raise OSError("PortAudio library not found")\n')
    else:
        (stand_in / "sitecustomize.py").write_text("import sys\nsys.modules['sounddevice'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stand_in), *sys.path])}
    proc = subprocess.run([sys.executable, "-m", "aligner", "record", "--input", "mic",
                           "--out", str(tmp_path / "cap")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, err
    if broken == "no PortAudio":
        assert "PortAudio library not found" in err[0] and "libportaudio2" in err[0], err
        assert "not installed" not in err[0]
    else:
        assert "sounddevice is not installed: pip install 'aligner[mic]'" in err[0], err


def test_turn_source_waits_for_the_agent_then_barges_in():
    call = CallState("s16le", 8000)
    tone = np.full(800, 1000, np.int16)  # 0.1 s
    turns = TurnSource([Turn(SamplesSource(tone, 8000), gap=0.5),
                        Turn(SamplesSource(tone, 8000), barge_in=1.0)])
    turns.open(call)
    n = 160  # 20 ms

    def step(t):
        call.now = t
        return turns.read(call, n)

    assert step(0.0) == bytes(2 * n)                 # silence: the agent has not spoken yet
    call.agent_audio(0.1, 16000)                     # 1 s greeting arriving at 0.1 s
    assert step(0.5) == bytes(2 * n)                 # agent still talking
    assert step(1.3) == bytes(2 * n)                 # quiet for only 0.2 s
    assert step(1.61) != bytes(2 * n)                # quiet for 0.5 s: the first turn starts
    for k in range(5):
        step(1.62 + k * 0.02)
    assert turns.started == [1.61]
    call.agent_audio(2.0, 16000 * 5)                 # a 5 s answer starts at 2.0
    assert step(2.5) == bytes(2 * n)                 # only 0.5 s into it
    assert step(3.01) != bytes(2 * n)                # 1 s in: barge in
    assert turns.started == [1.61, 3.01]


async def test_user_audio_is_paced_in_real_time(tmp_path):
    arrivals = []

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        loop = __import__("asyncio").get_running_loop()
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                arrivals.append((loop.time(), len(msg.data)))
        return ws

    runner, base = await serve("/audio-websocket/{call_id}", handler)
    try:
        src = SamplesSource(np.ones(16000, np.int16), 16000)  # 1 s of audio, in 100 ms chunks
        await record(audio_websocket_url(base, "p"), src, None, chunk_ms=100, linger=0.0,
                     heartbeat=0)
    finally:
        await runner.cleanup()
    sizes = [n for _, n in arrivals]
    assert sizes[:10] == [3200] * 10  # 100 ms of s16le at 16 kHz per frame
    span = arrivals[9][0] - arrivals[0][0]
    assert 0.8 <= span / 0.9 <= 1.5  # ten frames spread over ~0.9 s: real time, not a burst


async def test_a_failing_source_ends_the_call_with_its_error_and_a_closed_capture(tmp_path):
    from aligner.wire import capture
    from aligner.wire.source import Source

    class Broken(Source):
        def __init__(self):
            self.reads = 0

        def read(self, call, nsamples):
            self.reads += 1
            if self.reads > 3:
                raise AudioError("device unplugged")
            return bytes(2 * nsamples)

    runner, base = await serve("/audio-websocket/{call_id}", sink)
    try:
        with pytest.raises(AudioError, match="unplugged"):
            await record(audio_websocket_url(base, "b"), Broken(), tmp_path / "cap")
    finally:
        await runner.cleanup()
    cap = capture.read(tmp_path / "cap")
    assert cap.close is not None and cap.close.by == "client"
    assert sum(1 for f in cap.frames() if isinstance(f.payload, bytes)) == 3
