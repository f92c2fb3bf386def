"""``aligner serve`` as a user runs it: help, bad options, start, serve, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from aligner.cli import main


def test_help_has_examples(capsys):
    try:
        main(["serve", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "--upstream" in out and "examples:" in out and "enable_visemes=true" in out


def test_bad_options_are_one_line_errors(capsys, tmp_path):
    for argv, needle in ((["--render", "nope"], "unknown renderer 'nope'"),
                         (["--viseme-set", "klingon"], "unknown viseme set"),
                         (["--upstream", "ftp://x"], "http(s)://"),
                         (["--port", "70000"], "outside 0-65535")):
        assert main(["serve", "--recordings", str(tmp_path), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err


def test_serve_starts_answers_and_stops_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "aligner", "serve", "--port", "0",
                             "--recordings", str(tmp_path / "rec"), "--align-workers", "1"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        port = re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


_KEY = {"Authorization": "Bearer dev-key"}  # the embedded emulator's key


def _start_serve(rec, *options: str, verbose: bool = False) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "aligner", *(["-v"] if verbose else []),
                             "serve", "--port", "0",
                             "--recordings", str(rec), "--align-workers", "1", *options],
                            stderr=subprocess.PIPE, text=True)
    while not (found := re.search(r"listening on http://127\.0\.0\.1:(\d+)/",
                                  proc.stderr.readline())):
        assert proc.poll() is None
    base = f"http://127.0.0.1:{found.group(1)}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5):
                return proc, base
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.2)


def _get(url: str, key: str = "dev-key") -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.read()


def test_calls_left_behind_by_kill_9_are_finished_on_the_next_start(tmp_path):
    import aiohttp

    rec = tmp_path / "rec"
    proc, base = _start_serve(rec, "--render", "vtt")

    async def call_then_kill() -> str:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/register-call", headers=_KEY, json={
                    "agent_id": "a", "audio_encoding": "s16le", "sample_rate": 16000}) as r:
                call_id = (await r.json())["call_id"]
            ws_url = base.replace("http", "ws") + f"/audio-websocket/{call_id}"
            async with http.ws_connect(ws_url) as ws:
                events = rec / call_id / "capture" / "events.jsonl"
                deadline = time.monotonic() + 60
                while not (events.exists() and b"Riverside" in events.read_bytes()):
                    assert time.monotonic() < deadline
                    await ws.send_bytes(bytes(640))  # 20 ms of silence, as a caller sends
                    await asyncio.sleep(0.02)
                os.kill(proc.pid, signal.SIGKILL)  # mid-call
                proc.wait(10)
        return call_id

    try:
        call_id = asyncio.run(call_then_kill())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert json.loads((rec / call_id / "call.json").read_text())["state"] == "recording"
    proc, base = _start_serve(rec, "--render", "vtt")
    try:
        deadline = time.monotonic() + 90
        while (info := json.loads(_get(f"{base}/calls/{call_id}")))["state"] != "done":
            assert time.monotonic() < deadline and info["state"] != "failed", info
            time.sleep(0.2)
        assert info["close_reason"] == "service_restarted" and info["recovered"]
        assert info["started"] < info["ended"] < info["recovered"]
        # what was captured before the kill
        assert "Hello" in _get(f"{base}/calls/{call_id}/files/call.vtt").decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        proc.stderr.close()


def test_a_host_beyond_loopback_needs_a_key_or_insecure(capsys, tmp_path):
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        assert main(["serve", "--host", host, "--recordings", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "refusing" in err and "--insecure" in err, err


def test_the_secret_opens_the_recordings_when_no_api_key_is_given(tmp_path):
    import urllib.error

    env_key = os.environ.pop("RETELL_API_KEY", None)
    try:
        proc, base = _start_serve(tmp_path / "rec", "--secret", "s3cret", "--host", "127.0.0.1")
    finally:
        if env_key is not None:
            os.environ["RETELL_API_KEY"] = env_key
    try:
        assert json.loads(_get(f"{base}/calls", key="s3cret")) == {"calls": []}
        for key in ("dev-key", "nope"):
            try:
                _get(f"{base}/calls", key=key)
                raise AssertionError(f"{key} opened the recordings")
            except urllib.error.HTTPError as exc:
                assert exc.code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        proc.stderr.close()


_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"]+)(?:\s+|$)')


def _logfmt(line: str) -> dict[str, str] | None:
    """The key=value pairs of a logfmt line, None if the line is anything else."""
    pairs, at = {}, 0
    while at < len(line):
        m = _PAIR.match(line, at)
        if m is None:
            return None
        pairs[m[1]] = json.loads(m[2]) if m[2].startswith('"') else m[2]
        at = m.end()
    return pairs


def test_every_log_line_is_key_value_with_its_call_id(tmp_path):
    import aiohttp

    proc, base = _start_serve(tmp_path / "rec", "--render", "vtt", verbose=True)

    async def call() -> str:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/register-call", headers=_KEY, json={
                    "agent_id": "a", "audio_encoding": "s16le", "sample_rate": 16000}) as r:
                call_id = (await r.json())["call_id"]
            async with http.ws_connect(base.replace("http", "ws")
                                       + f"/audio-websocket/{call_id}") as ws:
                await ws.send_str("is anybody there?")  # not the protocol's: logged, kept
                await ws.send_bytes(bytes(640))
                await asyncio.sleep(1.0)
            deadline = time.monotonic() + 60
            while json.loads(_get(f"{base}/calls/{call_id}"))["state"] != "done":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        return call_id

    try:
        call_id = asyncio.run(call())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if not line.startswith("aligner serve:")]
    parsed = [_logfmt(line) for line in lines]
    assert all(p is not None and {"time", "level", "logger", "msg"} <= set(p)
               for p in parsed), [line for line, p in zip(lines, parsed, strict=True)
                                  if p is None or "msg" not in p]
    about = [p for p in parsed if p.get("call_id") == call_id]
    said = " | ".join(p["msg"] for p in about)
    # the proxy's, the render worker's (the session's) and the store's lines about the call
    for needle in ("call started", "unexpected text frame", "malformed out frame",
                   "call ended", "recording rendered"):
        assert needle in said, (needle, said)
    assert not [p for p in parsed if "frame" in p["msg"] and "call_id" not in p]
