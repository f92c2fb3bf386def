"""Helpers of the client-SDK tests: Retell's browser SDK under Node (tests/node/sdk_call.mjs),
Retell's server SDKs, and the short dialogue those calls follow."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from aligner import audio
from aligner.emulator.config import DEFAULT_DIALOGUE

ROOT = Path(__file__).resolve().parents[1]
NODE = ROOT / "tests" / "node"
SAMPLES = ROOT / "samples"
#: retell-sdk 2.0.8 (module ``retellclient``) lives here, installed by scripts/test.sh: its
#: distribution name is the same as the 3.x in the test extra, so it cannot share site-packages.
RETELL_SDK_2 = ROOT / "build" / "test-deps" / "retell-sdk-2"
SDK_133 = "retell-client-js-sdk"  # 1.3.3: RetellWebClient(customEndpoint)
SDK_121 = "retell-client-js-sdk-1.2"  # 1.2.1: no custom endpoint (docs/service.md's override)

LINES = json.loads(DEFAULT_DIALOGUE.read_text("utf-8"))["lines"]


async def register_call(http: aiohttp.ClientSession, base: str, key: str, **body: Any) -> dict:
    """``POST {base}/register-call`` with ``key``; the call object (201 expected)."""
    body = {"agent_id": "riverside-bistro", **body}
    async with http.post(f"{base}/register-call", json=body,
                         headers={"Authorization": f"Bearer {key}"}) as resp:
        assert resp.status == 201, await resp.text()
        return await resp.json()


async def ended_call(http: aiohttp.ClientSession, base: str, key: str, call_id: str,
                     turns: int, timeout: float = 30.0) -> dict:
    """``GET {base}/get-call/{call_id}`` once the call has ended with ``turns`` turns (the
    last user turn's words may come a moment after the hang-up), or at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(f"{base}/get-call/{call_id}",
                            headers={"Authorization": f"Bearer {key}"}) as resp:
            call = await resp.json()
        if (call["call_status"] == "ended" and len(call.get("transcript_object", ())) >= turns) \
                or time.monotonic() > deadline:
            return call
        await asyncio.sleep(0.1)


def need_node_packages() -> None:
    """Fail with the command to run when the test command has not installed the SDKs."""
    if shutil.which("node") is None or not (NODE / "node_modules" / SDK_121).is_dir():
        raise AssertionError("Node and the npm packages of tests/node are needed: run "
                             "scripts/test.sh (it runs `npm ci` in tests/node)")


def host_override(endpoint: str) -> str:
    """docs/service.md's snippet that points SDK 1.2.1 at the service, for ``endpoint``."""
    doc = (ROOT / "docs" / "service.md").read_text("utf-8")
    after = doc[doc.index("<!-- sdk-1.2-host-override"):]
    code = after[after.index("```js") + 5:]
    code = code[:code.index("```")]
    assert "ws://127.0.0.1:8090/audio-websocket/" in code
    return code.replace("ws://127.0.0.1:8090/audio-websocket/", endpoint)


def import_retell_sdk_2():
    """``retellclient`` (retell-sdk 2.0.8), from where scripts/test.sh installed it."""
    if not (RETELL_SDK_2 / "retellclient").is_dir():
        raise AssertionError(f"retell-sdk 2.0.8 is not in {RETELL_SDK_2}: run scripts/test.sh")
    if str(RETELL_SDK_2) not in sys.path:
        sys.path.append(str(RETELL_SDK_2))  # last: its dependencies come from the environment
    import retellclient

    return retellclient


def short_dialogue(folder: Path) -> Path:
    """A two-line script (greeting; after the user's turn, goodbye and hang-up), with the
    sample dialogue's hints for recognition."""
    data = json.loads(DEFAULT_DIALOGUE.read_text("utf-8"))
    data["lines"] = [{"text": "Hello, how can I help you today?"},
                     {"text": "Of course, a table for two at seven. Goodbye!", "end_call": True}]
    path = folder / "short_dialogue.json"
    path.write_text(json.dumps(data), "utf-8")
    return path


def wav_at(name: str, rate: int, folder: Path) -> Path:
    """A samples/ clip resampled to ``rate`` (a telephone caller's 8 kHz, say)."""
    path = folder / f"{Path(name).stem}_{rate}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(audio.load(SAMPLES / name, rate).tobytes())
    return path


@dataclass
class SdkRun:
    """What tests/node/sdk_call.mjs printed: ``lines`` of ``{t, at, kind, name, data}``."""

    lines: list[dict[str, Any]]
    returncode: int
    stderr: str

    def of(self, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        return [x for x in self.lines if x["kind"] == kind and name in (None, x["name"])]

    def sdk_events(self, name: str) -> list[Any]:
        """The data of every SDK event ``name``, in order."""
        return [x.get("data") for x in self.of("sdk", name)]

    @property
    def updates(self) -> list[dict[str, Any]]:
        return self.sdk_events("update")

    @property
    def ended(self) -> dict[str, Any]:
        (ended,) = self.sdk_events("conversationEnded")
        return ended

    def at(self, kind: str, name: str, nth: int = 0) -> float:
        """Audio-clock time of the ``nth`` line ``kind``/``name``."""
        return self.of(kind, name)[nth]["at"]

    def texts(self) -> list[dict[str, Any]]:
        """Text frames the page's socket received: ``{"at", "text", "queued_samples"}``."""
        return [{"at": x["at"], **x["data"]} for x in self.of("ws", "text")]


async def run_sdk(sdk: str, call_id: str, sample_rate: int, endpoint: str, *,
                  script: list[dict[str, Any]], speed: float = 2.0,
                  timeout: float = 120.0) -> SdkRun:
    """One call through the browser SDK ``sdk``, to ``endpoint``
    (``ws://host:port/audio-websocket/``): the SDK's custom endpoint for 1.3.3, the WebSocket
    host override of docs/service.md for 1.2.1."""
    need_node_packages()
    config: dict[str, Any] = {"sdk": sdk, "callId": call_id, "sampleRate": sample_rate,
                              "speed": speed, "script": script, "timeout": timeout * speed,
                              "enableUpdate": True}
    if sdk == SDK_121:
        config["hostOverride"] = host_override(endpoint)
    else:
        config["customEndpoint"] = endpoint
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE / "sdk_call.mjs"), json.dumps(config), cwd=NODE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    return SdkRun(lines, proc.returncode, err.decode())


#: The user's side of a call of the sample dialogue: answer the greeting, barge into the long
#: offer 1.5 s after it starts playing, answer the next line; then the agent says goodbye and
#: hangs up.
FULL_CALL = [{"say": str(SAMPLES / "user1.wav"), "after": "agent_done", "pause": 0.7},
             {"say": str(SAMPLES / "user2_bargein.wav"), "after": "agent_speaking", "for": 1.5},
             {"say": str(SAMPLES / "user3.wav"), "after": "agent_done", "pause": 0.7}]
