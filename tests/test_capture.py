"""The capture format: write/read, replay equals live, what a crash or kill -9 leaves."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aligner.errors import CaptureError
from aligner.wire import capture
from aligner.wire.events import (
    AgentAudio,
    AlignedAudio,
    Clear,
    MicAudio,
    Ping,
    Pong,
    Unknown,
    Update,
)
from aligner.wire.protocol import encode

ROOT = Path(__file__).resolve().parents[1]

FRAMES = [
    (0.010, "out", "ping"),
    (0.020, "in", "pong"),
    (0.100, "in", encode(AlignedAudio(b"\x01\x00" * 800, "Hello "))),
    (0.120, "out", b"\x00\x00" * 320),
    (0.200, "in", b"\x02\x00" * 400),
    (0.300, "in", '{"event_type": "update", "transcript": [{"role": "agent", "content": "Hi"}]}'),
    (0.350, "in", "{broken"),
    (0.400, "out", b"\x03\x00" * 320),
    (0.500, "in", "clear"),
]


def _wav(samples, rate: int) -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def _write(path: Path, frames=FRAMES, close=True) -> None:
    with capture.CaptureWriter(path, {"call_id": "c1", "audio_encoding": "s16le",
                                      "sample_rate": 16000, "protocol": "web"}) as w:
        for t, d, payload in frames:
            w.write(t, d, payload)
        if close:
            w.write_close(0.6, 1011, "error_no_audio_received", "server")


def test_write_read_round_trip(tmp_path):
    _write(tmp_path / "cap")
    cap = capture.read(tmp_path / "cap")
    assert [(f.t, f.direction, f.payload) for f in cap.frames()] == FRAMES
    assert cap.info["call_id"] == "c1" and cap.info["version"] == capture.VERSION
    assert cap.info["frames"] == len(FRAMES)
    assert cap.close == capture.Close(0.6, 1011, "error_no_audio_received", "server")
    kinds = [(s.direction, type(s.event)) for s in cap.events()]
    assert kinds == [("out", Ping), ("in", Pong), ("in", AlignedAudio),
                     ("out", MicAudio), ("in", AgentAudio), ("in", Update), ("in", Unknown),
                     ("out", MicAudio), ("in", Clear)]
    assert len(cap) == len(FRAMES) and cap.skipped == 0 and cap.duration == 0.6
    # binary payloads live in the raw files, not in the lines
    assert (tmp_path / "cap" / "agent.raw").stat().st_size == 800
    assert b"\\u" not in (tmp_path / "cap" / "events.jsonl").read_bytes()[:10]


def test_every_truncation_of_the_events_file_reads_as_a_prefix(tmp_path):
    _write(tmp_path / "full", close=False)
    data = (tmp_path / "full" / "events.jsonl").read_bytes()
    full = list(capture.read(tmp_path / "full").frames())
    for cut in range(0, len(data), 7):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        for name in ("capture.json", "agent.raw", "user.raw"):
            (d / name).write_bytes((tmp_path / "full" / name).read_bytes())
        (d / "events.jsonl").write_bytes(data[:cut])
        cap = capture.read(d)
        frames = list(cap.frames())
        assert frames == full[:len(frames)]
        complete = data[:cut].count(b"\n")
        # only the partial last line is lost (a last line missing just its newline is whole)
        assert len(frames) in (complete, complete + 1)
        assert cap.skipped == (0 if cut == 0 or data[cut - 1:cut] == b"\n"
                               else complete + 1 - len(frames))


def test_raw_file_shorter_than_a_line_says_drops_only_that_frame(tmp_path):
    _write(tmp_path / "cap", close=False)
    raw = tmp_path / "cap" / "user.raw"
    raw.write_bytes(raw.read_bytes()[:-10])  # the last mic frame's bytes did not all reach disk
    cap = capture.read(tmp_path / "cap")
    assert len(cap) == len(FRAMES) - 1 and cap.skipped == 1
    assert cap.close is None


def test_a_damaged_time_costs_its_own_line_and_not_a_timeline_years_long(tmp_path):
    from aligner.session import build_timeline

    _write(tmp_path / "cap")
    events = tmp_path / "cap" / "events.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    damaged = json.loads(lines[2])
    damaged["t"] = 6.7e12  # one flipped exponent: 200,000 years into the call
    lines[2] = json.dumps(damaged).encode() + b"\n"
    events.write_bytes(b"".join(lines))
    cap = capture.read(tmp_path / "cap")
    assert len(cap) == len(FRAMES) - 1 and cap.skipped == 1
    assert cap.duration < 60
    timeline = build_timeline(cap, align=False, recognize=False)
    assert timeline.duration < 60


def test_bad_captures_raise_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="not a capture"):
        capture.read(tmp_path)
    (tmp_path / "capture.json").write_text(json.dumps({"format": "aligner-capture",
                                                       "version": 99}))
    with pytest.raises(CaptureError, match="newer"):
        capture.read(tmp_path)
    _write(tmp_path / "cap")
    with pytest.raises(CaptureError, match="already holds"):
        capture.CaptureWriter(tmp_path / "cap")


def test_kill_9_mid_call_leaves_a_readable_capture(tmp_path):
    out = tmp_path / "cap"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aligner", "record", "--input", "silence:30",
         "--out", str(out), "--quiet"], cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    events = out / "events.jsonl"
    deadline = time.monotonic() + 60
    try:
        # wait until the call is well under way: agent audio in, mic audio out
        while time.monotonic() < deadline and proc.poll() is None:
            if events.exists() and events.read_bytes().count(b'"d":"in"') >= 8:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    cap = capture.read(out)
    assert cap.close is None  # killed: no close recorded
    assert cap.skipped <= 1
    events_list = list(cap.events())
    assert sum(isinstance(s.event, AlignedAudio) for s in events_list) >= 1
    assert sum(isinstance(s.event, MicAudio) for s in events_list) >= 1
    assert not any(isinstance(s.event, Unknown) for s in events_list)
    assert all(a.t <= b.t for a, b in zip(events_list, events_list[1:], strict=False))
    lines = events.read_bytes().split(b"\n")
    assert len(events_list) >= len(lines) - 2  # at most the frame being written is lost


def test_ctrl_c_ends_the_recording_cleanly_with_the_capture_closed(tmp_path):
    out = tmp_path / "cap"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aligner", "record", "--input", "silence:30", "--out", str(out),
         "--quiet"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "events.jsonl").exists() and \
                    (out / "events.jsonl").read_bytes().count(b'"d":"in"') >= 3:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "capture closed" in err and "Traceback" not in err
    cap = capture.read(out)
    assert cap.close is not None and cap.close.by == "client" and cap.skipped == 0
    assert cap.info["frames"] == len(cap)  # the header was finalised
    assert any(isinstance(s.event, AlignedAudio) for s in cap.events())


_frame = st.tuples(st.sampled_from(["in", "out"]), st.text() | st.binary(max_size=64))


@settings(max_examples=40, deadline=None)
@given(st.lists(_frame, max_size=30))
def test_any_frames_round_trip_through_a_capture(frames):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        timed = [(round(i * 0.013, 6), direction, payload)
                 for i, (direction, payload) in enumerate(frames)]
        _write(Path(d) / "cap", timed, close=False)
        cap = capture.read(Path(d) / "cap")
        assert [(f.t, f.direction, f.payload) for f in cap.frames()] == timed
        assert len(list(cap.events())) == len(timed) and cap.skipped == 0


def test_the_documented_record_example_holds_a_real_exchange(tmp_path):
    # aligner record --input samples/user1.wav --out cap1 (the embedded emulator): the clip
    # barged into the greeting at 0.29 s and the call hung up as the file ended
    out = tmp_path / "cap1"
    proc = subprocess.run(
        [sys.executable, "-m", "aligner", "record", "--input", str(ROOT / "samples" / "user1.wav"),
         "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    events = list(capture.read(out).events())
    assert not any(isinstance(s.event, Clear) for s in events)
    said = [s for s in events if isinstance(s.event, MicAudio)
            and np.abs(np.frombuffer(s.event.audio, np.int16)).max() > 1000]
    agent = [s.t for s in events if isinstance(s.event, AlignedAudio) and s.event.text.strip()]
    assert agent[0] < said[0].t  # the greeting first, then the user
    assert any(t > said[-1].t for t in agent)  # and the agent's answer
    last = [s.event for s in events if isinstance(s.event, Update)][-1]
    roles = [t.role for t in last.transcript]
    assert roles[:3] == ["agent", "user", "agent"] and "table" in last.transcript[1].content


@pytest.mark.parametrize("command", ["replay", "replay-json", "align", "rhubarb"])
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path, command):
    # aligner replay out/capture | head: the command ended in a BrokenPipeError traceback
    frames = [(k * 0.02, "in", f"frame {k} " + "x" * 60) for k in range(5000)]
    _write(tmp_path / "cap", frames)
    program = ["-m", "aligner"]
    if command in ("align", "rhubarb"):
        from aligner.speech.synthesis import synthesize

        s = synthesize("Hello there, how are you doing today? " * 40)  # 300 KB of JSON
        (tmp_path / "clip.wav").write_bytes(_wav(s.samples, s.sample_rate))
        argv = ["align", str(tmp_path / "clip.wav"), "--text", s.text, "--backend", "fallback",
                "--indent", "1"]
        if command == "rhubarb":  # aligner-rhubarb, Rhubarb's TSV on stdout
            program, argv = ["-m", "aligner.cli.rhubarb"], [str(tmp_path / "clip.wav")]
    else:
        argv = ["replay", str(tmp_path / "cap"), *(["--json"] if command == "replay-json" else [])]
    proc = subprocess.Popen([sys.executable, *program, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    if command != "rhubarb":  # its output is small: the reader is gone before it writes
        assert proc.stdout.readline()  # like head -1
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(60) == 141  # as a Unix tool killed by SIGPIPE
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception" not in err, err


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3), max_leaves=8)
# lines a damaged or hostile events.jsonl may hold: shapes of real lines with any values
_line_keys = st.sampled_from(["t", "d", "text", "bin", "close", "code", "reason", "by"])
_templates = ({"t": 0.5, "d": "in", "text": "x"}, {"t": 0.5, "d": "out", "bin": [0, 2]},
              {"t": 0.5, "close": {"code": 1000, "reason": "", "by": "server"}})


def _mutated(template: dict, key: str, value) -> bytes:
    line = json.loads(json.dumps(template))
    target = line["close"] if key in ("code", "reason", "by") and "close" in line else line
    target[key] = value
    return json.dumps(line).encode()


_hostile_line = (
    st.builds(_mutated, st.sampled_from(_templates), _line_keys, _json_value)
    | st.dictionaries(_line_keys, _json_value | st.sampled_from(["in", "out"]), max_size=4)
    .map(lambda d: json.dumps(d).encode())
    | _json_value.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=40).filter(lambda b: b"\n" not in b))
_header = st.one_of(st.none(), st.binary(max_size=60), _json_value.map(json.dumps).map(str.encode),
                    st.dictionaries(st.sampled_from(["format", "version", "sample_rate",
                                                     "audio_encoding", "protocol"]),
                                    _json_value, max_size=4).map(
                        lambda d: json.dumps({"format": "aligner-capture", "version": 1, **d})
                        .encode()))


@settings(max_examples=150, deadline=None)
@example(frames=[], hostile=[(0, b'{"t": 1, "close": 5}')], header=None, cut_raw=0)  # found:
@example(frames=[], hostile=[(0, b'{"t": 0.5, "d": "in", "text": "x", "close": null}')],
         header=None, cut_raw=0)
@example(frames=[("out", b"\x00\x00")],
         hostile=[(0, b'{"t": 0.5, "d": "out", "bin": [0, 2], "text": null}')], header=None,
         cut_raw=0)
@example(frames=[], hostile=[(0, b'{"t": 0.5, "d": "in", "bin": [-4, 2]}')], header=None,
         cut_raw=0)
@example(frames=[("in", b"\x00\x00")], hostile=[(0, b'{"t": 6.7e12, "d": "in", "text": "x"}')],
         header=None, cut_raw=0)  # a timeline 200,000 years long: MemoryError
@example(frames=[("in", "a"), ("in", "b")], hostile=[(2, b'{"t": 0.0, "d": "in", "text": "x"}')],
         header=None, cut_raw=0)  # a time too early: nothing lost
@given(frames=st.lists(_frame, max_size=12), hostile=st.lists(st.tuples(
    st.integers(0, 12), _hostile_line), max_size=8), header=_header, cut_raw=st.integers(0, 64))
def test_any_damage_reads_as_a_capture_error_or_keeps_every_intact_frame(frames, hostile, header,
                                                                        cut_raw):
    import tempfile

    from aligner.errors import CaptureError
    from aligner.session import build_timeline

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cap"
        good = []
        with capture.CaptureWriter(path, {"audio_encoding": "s16le", "sample_rate": 16000}) as w:
            for k, (direction, payload) in enumerate([*frames, ("in", "")]):
                for _, line in (h for h in hostile if h[0] == k):  # garbage between the frames
                    with open(path / "events.jsonl", "ab") as f:
                        f.write(line + b"\n")
                w.write(round(k * 0.013, 6), direction, payload)
                good.append((round(k * 0.013, 6), direction, payload))
        if header is not None:
            (path / "capture.json").write_bytes(header)
        raw = path / "agent.raw"
        if raw.exists() and cut_raw:  # a torn raw file: the frames past its end are gone
            raw.write_bytes(raw.read_bytes()[:-cut_raw])
        try:
            cap = capture.read(path)
        except CaptureError:
            assert header is not None  # only a damaged header makes it unreadable
            return
        got = [(f.t, f.direction, f.payload) for f in cap.frames()]
        events = list(cap.events())
        assert len(events) >= len(got) - sum(1 for g in got if g[2] == "") and cap.duration >= 0
        assert cap.close is None or isinstance(cap.close.reason, str)
        kept = [g for g in good if not (cut_raw and g[1] == "in" and isinstance(g[2], bytes))]
        it = iter(got)  # every intact frame is read, in order, as it was written
        assert all(any(frame == g for g in it) for frame in kept), (kept, got)
        with contextlib.suppress(CaptureError):  # a header without a usable rate or encoding
            build_timeline(cap, align=False, recognize=False)
