"""End to end: `aligner record` against `aligner emulate` (separate processes), and the demo."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import tomllib
import urllib.request
from importlib.resources import files
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from emulator_helpers import Received, read_web

import aligner
from aligner import audio
from aligner.cli.demo import SAMPLES, USER_TURNS, run_demo, transcript_lines
from aligner.emulator.config import DEFAULT_DIALOGUE
from aligner.speech.recognize import recognize, word_overlap
from aligner.speech.voices import synthesize
from aligner.wire import capture
from aligner.wire.events import AlignedAudio, Clear, MicAudio

ROOT = Path(__file__).resolve().parents[1]
DIALOGUE = json.loads((SAMPLES / "dialogue.json").read_text())
GREETING = DIALOGUE["lines"][0]["text"]


@pytest.fixture
def emulator(request):
    """`aligner emulate --port 0` (plus the test's parameters, if any) as its own process;
    yields its base URL."""
    extra = getattr(request, "param", [])
    proc = subprocess.Popen([sys.executable, "-m", "aligner", "emulate", "--port", "0", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, base = time.monotonic() + 60, None
        while base is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                raise RuntimeError("aligner emulate exited")
            m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            base = m.group(1) if m else None
        assert base, "aligner emulate printed no URL"
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.stderr.close()


def _register(base: str) -> str:
    req = urllib.request.Request(
        f"{base}/register-call", method="POST",
        data=json.dumps({"agent_id": "riverside-bistro", "audio_encoding": "s16le",
                         "sample_rate": 16000}).encode(),
        headers={"Authorization": "Bearer dev-key", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["call_id"]


def test_record_against_emulate_replays_to_the_live_events_and_sounds_like_the_script(
        emulator, tmp_path):
    call_id = _register(emulator)
    out = tmp_path / "cap"
    rec = subprocess.run(
        [sys.executable, "-m", "aligner", "record", "--url", emulator, "--call-id", call_id,
         "--input", "silence:3", "--out", str(out), "--json", "--quiet"],
        capture_output=True, text=True, timeout=90)
    assert rec.returncode == 0, rec.stderr
    replay = subprocess.run([sys.executable, "-m", "aligner", "replay", str(out), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stderr
    live = rec.stdout.splitlines()
    assert len(live) > 30
    assert replay.stdout.splitlines() == live  # replay goes through the live codec path

    cap = capture.read(out)
    assert cap.info["call_id"] == call_id and cap.close.by == "client"
    events = list(cap.events())
    chunks = [s.event for s in events if isinstance(s.event, AlignedAudio)]
    assert "".join(c.text for c in chunks).strip() == GREETING
    pcm = audio.decode(b"".join(c.audio for c in chunks), "s16le")
    vocabulary = [line["text"] for line in DIALOGUE["lines"]]  # the script's words only
    heard = recognize(pcm, 16000, vocabulary)
    # pocketsphinx on espeak speech gets about half the words (as on espeak's own output); the
    # greeting must be what it hears, and clearly the best match among the scripted lines
    scores = [word_overlap(text, heard) for text in vocabulary]
    assert scores[0] >= 0.45 and scores[0] == max(scores), (heard, scores)
    # control: other speech, same vocabulary, does not pass for the greeting
    other = recognize(audio.load(SAMPLES / "user1.wav", 16000), 16000, vocabulary)
    assert word_overlap(GREETING, other) < 0.3, other
    mic = b"".join(s.event.audio for s in events if isinstance(s.event, MicAudio))
    assert len(mic) >= 3 * 16000 * 2  # the whole 3 s of user audio went out (then silence
    # until the agent's greeting had finished: the recorder lingers for the agent)
    assert cap.close.t >= sum(len(c.audio) for c in chunks) / 32000


def test_demo_records_a_call_with_one_barge_in_and_builds_every_output(tmp_path):
    # One test (not a module fixture shared by several) so that pytest-xdist runs the call once.
    # A brisker agent than the default keeps it short; every renderer runs but mp4, which
    # renders video for seconds and has its own tests.
    import renderers

    names = tuple(n for n in renderers.available() if n != "mp4")
    lines: list[str] = []
    result = run_demo(tmp_path, progress=lines.append, renderers=names,
                      emulator_options={"words_per_minute": 240})
    assert any("call recorded" in line for line in lines)

    # the call: every scripted line started, the long one was cut by exactly one barge-in
    cap = capture.read(result.capture)
    events = list(cap.events())
    chunks = [s for s in events if isinstance(s.event, AlignedAudio)]
    agent_text = "".join(s.event.text for s in chunks)
    for line in DIALOGUE["lines"]:
        assert line["text"][:20] in agent_text
    assert DIALOGUE["lines"][1]["text"] not in agent_text
    (clear,) = [s.t for s in events if isinstance(s.event, Clear)]
    # the offer's first chunk: "Of course. ..." may be cut after any word ("Of ")
    offer = next(s.t for s in chunks if s.event.text.startswith("Of"))
    offer_audio = sum(len(s.event.audio) for s in chunks if offer <= s.t <= clear) / 32000
    assert offer + USER_TURNS[1][1] <= clear < offer + offer_audio  # user waited, then cut in
    assert cap.close is not None and cap.close.by == "server"  # the agent hung up (end_call)

    # the outputs
    assert result.timeline and result.timeline.exists() and not result.failures
    for name in names:
        assert [p for p in result.outputs[name] if p.exists() and p.stat().st_size > 0]
    text = result.transcript.read_text()
    assert text.count("agent:") == 4 and text.count("user:") == 3
    assert "[interrupted]" in text and GREETING in text
    # without a timeline the transcript comes from the server's last update
    fallback = transcript_lines(None, cap)
    assert fallback[0] == f"agent: {GREETING}"
    assert [ln.split(":")[0] for ln in fallback] == ["agent", "user"] * 3 + ["agent"]


@pytest.mark.parametrize("emulator", [["--voice", "hibari", "--no-recognition"]], indirect=True)
async def test_emulate_speaks_with_the_voice_it_is_given(emulator):
    """`aligner emulate --voice hibari`: the greeting comes in hibari's voice, whole words per
    chunk."""
    call_id = _register(emulator)
    got = Received()
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"ws{emulator[4:]}/audio-websocket/{call_id}?enable_audio_alignment=true") as ws:
        reader = asyncio.create_task(read_web(ws, got))
        deadline = time.monotonic() + 30
        while "".join(t for t, _, _ in got.of("chunk")) != GREETING:
            assert time.monotonic() < deadline, got.of("chunk")
            await ws.send_bytes(bytes(640))  # 20 ms of silence from the user
            await asyncio.sleep(0.02)
        await ws.close()
        await asyncio.wait_for(reader, 10)
    texts = [t for t, _, _ in got.of("chunk")]
    assert all(t.endswith((" ", ".", ",", "?")) for t in texts[:-1] if t), texts
    pcm = audio.decode(b"".join(a for _, a, _ in got.of("chunk")), "s16le")
    own = audio.resample(synthesize(GREETING, "hibari").samples, 24000, 16000)
    n = min(len(pcm), len(own))
    assert abs(len(pcm) - len(own)) <= len(texts)
    assert np.corrcoef(pcm[:n].astype(float), own[:n].astype(float))[0, 1] > 0.99


@pytest.mark.parametrize("command", [["emulate", "--port", "0"], ["run", "--out", "unused"]])
def test_an_unknown_voice_is_a_one_line_error(command, tmp_path):
    out = subprocess.run([sys.executable, "-m", "aligner", *command, "--voice", "en-us"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 2
    assert "unknown voice 'en-us'; choose from espeak, hibari" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "unused").exists()


def test_demo_speaks_with_espeak_when_hibari_is_not_installed():
    code = ("import sys; sys.modules['hibari'] = None  # as if hibari-tts were not installed\n"
            "from aligner.cli.demo import _load_voice\n"
            "from aligner.errors import MissingBackendError\n"
            "said = []\n"
            "print(_load_voice(None, said.append)); print(said[0])\n"
            "try:\n"
            "    _load_voice('hibari', said.append)\n"
            "except MissingBackendError as exc:\n"
            "    print(exc.extra)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    voice, said, extra = out.stdout.splitlines()
    assert voice == "espeak" and "pip install 'aligner[speech]'" in said and extra == "speech"


def test_demo_command_help_names_the_barge_in_clip():
    out = subprocess.run([sys.executable, "-m", "aligner", "run", "--help"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "user2_bargein.wav" in out.stdout


def test_demo_inputs_ship_as_package_data():
    """`aligner run` outside a checkout: its inputs resolve through importlib.resources inside
    the installed package, and pyproject's package-data ships them."""
    data = files("aligner").joinpath("data", "samples")
    needed = ["dialogue.json"] + [name for name, _ in USER_TURNS]
    assert all(data.joinpath(name).is_file() for name in needed)
    package = Path(aligner.__file__).resolve().parent
    assert SAMPLES.resolve() == Path(str(data)).resolve() and SAMPLES.resolve().is_relative_to(package)
    assert DEFAULT_DIALOGUE.resolve() == (SAMPLES / "dialogue.json").resolve()
    assert json.loads(DEFAULT_DIALOGUE.read_text())["lines"][0]["text"] == GREETING
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["aligner"]
    shipped = {p.resolve() for pattern in patterns for p in package.glob(pattern) if p.is_file()}
    assert {(SAMPLES / name).resolve() for name in needed} <= shipped


@pytest.mark.parametrize("argv", [["run"], ["record", "--input", "silence:1"], ["serve"],
                                  ["emulate", "--port", "0"]])
def test_without_the_speech_extra_the_commands_that_speak_say_so_in_one_line(tmp_path, argv):
    import os

    # a Python where the speech extra's synthesisers (espeak-ng's loader, hibari) cannot be
    # imported, as without aligner[speech]: 'aligner run' failed after 6.7 s with 25 lines
    # ending in code 1011, reason 'error_retell'
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\nsys.modules['espeakng_loader'] = sys.modules['hibari'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "aligner", *argv, *(
        ["--out", str(tmp_path / "out")] if argv[0] in ("run", "record") else [])],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert "espeak-ng is not installed: pip install 'aligner[speech]'" in lines[0], lines
    assert not (tmp_path / "out" / "capture").exists()  # nothing started
    version = subprocess.run([sys.executable, "-m", "aligner", "--help"], env=env,
                             capture_output=True, timeout=60)
    assert version.returncode == 0
    assert took < 10 * max(0.5, time.monotonic() - started - took)  # about as quick as --help
