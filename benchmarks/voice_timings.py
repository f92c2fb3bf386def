"""How exact the emulator voices' word times are, measured on their audio, and how fast they speak.

The emulator cuts agent speech into chunks at the word times its voice reports and sends them as
the call's ``transcript_object`` words (:mod:`aligner.speech.voices`). espeak-ng reports word
events from inside the synthesiser; hibari's word times come from its duration predictor, moved
earlier by :data:`aligner.speech.hibari_synthesis.SHIFT` and fitted to the sound next to pauses
(:mod:`aligner.speech.hibari_synthesis`). Both voices are measured with the same four
yardsticks, taken from the audio alone, so the espeak-ng rows show what the yardsticks
themselves miss by (their floor) and the hibari rows sit beside them:

- ``onsets``: words after silence (the 100 ms before the word's start under 1% of the peak) not
  starting with a stop: where the sound starts (the first 2.5 ms frame after that silence within
  40 dB of the clip's loudest frame);
- ``falls``: word boundaries inside speech where a vowel meets a voiceless consonant (``the
  total``, ``is safe``; by the CMU dictionary's phones of the two words, no pause between):
  the steepest 15 ms fall of the energy under 900 Hz (voicing stops, the closure or frication
  starts);
- ``pocketsphinx``: raw pocketsphinx forced alignment (``acoustic_spans(plain=True)``, 10 ms
  frames) of the clip and its text: word starts inside speech;
- ``ends``: words before silence (the next 100 ms under 1% of the peak, or the clip's end): where
  the sound ends (the last 2.5 ms frame within 40 dB of the loudest). hibari's model lets the
  last phone before a pause run on into the silence after it, so
  :mod:`aligner.speech.hibari_synthesis` ends it where the sound ends by a similar rule: for
  hibari this row is a check of that fit, not an independent measure (raw pocketsphinx is no help here: it stretches words over the
  pauses after them, by 56 ms on average on espeak-ng's).

Each row: how many boundaries, signed median (positive: the yardstick puts the start later than
the voice says), mean absolute error, share within 20 ms. Speed: seconds of speech per CPU second
of synthesis (one thread; the first call, which loads the voice, left out).

Sentences: the alignment benchmark's list and the emulator's dialogue.

Run: ``python benchmarks/voice_timings.py [--limit N]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alignment import SENTENCES  # noqa: E402

from aligner.emulator.config import DEFAULT_DIALOGUE  # noqa: E402
from aligner.speech.backends.sphinx import acoustic_spans  # noqa: E402
from aligner.speech.pronounce import token_phones  # noqa: E402
from aligner.speech.synthesis import Synthesis  # noqa: E402
from aligner.speech.text import tokenize  # noqa: E402
from aligner.speech.voices import VOICES, synthesize  # noqa: E402
from aligner.workers import one_blas_thread  # noqa: E402

HOP = 0.0025
VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
VOICELESS = {"P", "T", "K", "F", "TH", "S", "SH", "CH"}
STOPS = {"P", "T", "K", "B", "D", "G", "CH", "JH"}
YARDSTICKS = ("onsets", "falls", "pocketsphinx", "ends")


def _bands(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame times (centres), energy under 900 Hz and in all bands (dB), 20 ms Hann frames."""
    w, h = int(0.020 * sr), int(HOP * sr)
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), w)[::h] * np.hanning(w)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    low = np.fft.rfftfreq(w, 1 / sr) < 900
    t = np.arange(len(frames)) * HOP + 0.010
    return t, 10 * np.log10(power[:, low].sum(1) + 1e-3), 10 * np.log10(power.sum(1) + 1e-3)


def _phones(word: str) -> tuple[str, ...]:
    prons = token_phones(word)
    return prons[0] if prons and prons[0] else ()


def observe(s: Synthesis) -> dict[str, list[tuple[int, float]]]:
    """Where each yardstick puts word starts (ends for ``ends``) of a synthesis:
    ``(word index, seconds)``."""
    text, x, sr = s.text, s.samples, s.sample_rate
    t, low, full = _bands(x, sr)
    quiet = np.abs(x.astype(np.float64)) < 0.01 * np.abs(x).max(initial=1)
    toks = tokenize(text)
    spans = acoustic_spans(x, sr, toks, [token_phones(k.word) for k in toks], plain=True)
    found: dict[str, list[tuple[int, float]]] = {k: [] for k in YARDSTICKS}
    for i, w in enumerate(s.words):
        here = [k for k in toks if w.char_start <= k.char_start and k.char_end <= w.char_end]
        first = _phones(here[0].word) if here else ()
        span = spans[toks.index(here[0])] if len(here) == 1 else None
        a, b = int(w.end * sr), int((w.end + 0.1) * sr)
        if b <= len(x) and quiet[a:b].mean() > 0.95 or w.end >= s.duration - 0.01:
            k0, k1 = np.searchsorted(t, [w.end - 0.3, w.end + 0.09])
            seg = full[k0:k1]
            if len(seg):
                k = len(seg) - 1 - int(np.argmax(seg[::-1] > full.max() - 40))
                found["ends"].append((i, t[k0 + k] + 0.010 - HOP))
        a, b = max(0, int((w.start - 0.1) * sr)), int(w.start * sr)
        after_silence = b - a >= int(0.09 * sr) and quiet[a:b].mean() > 0.95
        if after_silence and first and first[0] not in STOPS:
            k0, k1 = np.searchsorted(t, [w.start - 0.09, w.start + 0.15])
            seg = full[k0:k1]
            if len(seg):
                k = int(np.argmax(seg > full.max() - 40))
                found["onsets"].append((i, t[k0 + k] - 0.010 + HOP))
        if i == 0 or s.words[i - 1].end < w.start - 0.01:
            continue  # a pause before the word: not a boundary inside speech
        prev = [k for k in toks if s.words[i - 1].char_start <= k.char_start
                and k.char_end <= s.words[i - 1].char_end]
        last = _phones(prev[-1].word) if prev else ()
        if last and first and last[-1] in VOWELS and first[0] in VOICELESS:
            k0, k1 = np.searchsorted(t, [w.start - 0.1, w.start + 0.1])
            fall = low[k0 + 6:k1] - low[k0:k1 - 6]
            if len(fall):
                found["falls"].append((i, t[k0 + int(np.argmin(fall)) + 3]))
        if span is not None:
            found["pocketsphinx"].append((i, span[0]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N sentences")
    args = parser.parse_args()
    one_blas_thread()
    lines = [line["text"] for line in json.loads(Path(DEFAULT_DIALOGUE).read_text())["lines"]]
    texts = SENTENCES + lines
    if args.limit:
        texts = texts[:args.limit]
    print(f"{len(texts)} sentences; errors in ms (yardstick - voice)\n")
    print(f"{'voice':8} {'yardstick':13} {'n':>5} {'median':>7} {'mean |e|':>9} {'<=20 ms':>8}")
    for voice in VOICES:
        synthesize("Hello.", voice)  # load the voice
        errors: dict[str, list[float]] = {}
        audio = cpu = 0.0
        for text in texts:
            used = time.process_time()
            s = synthesize(text, voice)
            cpu += time.process_time() - used
            audio += s.duration
            for kind, found in observe(s).items():
                edge = [w.end if kind == "ends" else w.start for w in s.words]
                errors.setdefault(kind, []).extend(at - edge[i] for i, at in found)
        for name, values in errors.items():
            ms = np.array(values) * 1000
            print(f"{voice:8} {name:13} {len(ms):5d} {np.median(ms):+7.1f} "
                  f"{np.abs(ms).mean():9.1f} {np.mean(np.abs(ms) <= 20) * 100:7.0f}%")
        print(f"{voice:8} speed: {audio / max(cpu, 1e-9):.0f}x real time on one core "
              f"({audio:.0f} s of speech)\n")


if __name__ == "__main__":
    main()
