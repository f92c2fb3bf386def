"""Make the user clips of the demo call from ``dialogue.json``'s ``user_hints``.

Speaks each hint with espeak-ng (``aligner.speech.synthesis``, extra ``speech``) in a voice different from
the agent's and writes it as a small 16 kHz mono WAV file into the package data folder
(``aligner/data/samples``, :data:`aligner.cli.demo.SAMPLES`; ``samples/`` links there)::

    python samples/make_samples.py
"""

from __future__ import annotations

import json
import sys
import wave

from aligner import audio
from aligner.cli.demo import SAMPLES as HERE
from aligner.speech.synthesis import synthesize

VOICE = "en-us+f3"  # the agent speaks en-us; the user is another voice
RATE = 16000
NAMES = ("user1.wav", "user2_bargein.wav", "user3.wav")


def main() -> int:
    hints = json.loads((HERE / "dialogue.json").read_text(encoding="utf-8"))["user_hints"]
    for name, text in zip(NAMES, hints, strict=True):
        spoken = synthesize(text, voice=VOICE, rate=170)
        pcm = audio.resample(spoken.samples, spoken.sample_rate, RATE)
        with wave.open(str(HERE / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(audio.encode(pcm, "s16le"))
        print(f"{name}: {len(pcm) / RATE:.2f} s  {text!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
