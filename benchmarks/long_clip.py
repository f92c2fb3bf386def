"""``aligner align`` on one long clip: word-time accuracy, CPU and peak memory per backend and rate.

Run: ``python benchmarks/long_clip.py`` (``--seconds 210``, ``--rates 16000,22050``,
``--backends auto,pocketsphinx,fallback``; ``--corpus PATH [--repeat N]``).

The clip is espeak-ng (``aligner.speech.synthesize``, ``en-us`` at 175 words a minute) reading
call-centre sentences in turn for ``--seconds`` (210 s: about 500 words), written as a 22050 Hz WAV
(espeak-ng's own rate). Ground truth is espeak-ng's own word times (``tests/speech_helpers.py``:
a word's start and end; a word ends at the latest where the next starts). Each run is the command
a user types, ``aligner align clip.wav --text-file clip.txt --rate R --backend B``, in its own
process: CPU seconds and peak resident memory (``ru_maxrss``) are that process's, so the figures
include decoding the file and loading the models. The peers are side by side in the table: the
same clip at the other decode rate, and the other backends. The errors are printed as the median
over every word boundary, the median over the last 40 words (drift shows there first), and the
share within 50 ms.

With ``--corpus PATH`` (a folder in the evaluation corpora's format, e.g.
``../shared/corpora/timit-dev``) the clip is instead every clip of the corpus joined into one
recording (TIMIT: 233 s, 8 speakers, people; each clip at 16 kHz), scored against the corpus's
word times (mean, median, within 20 ms, worst, over every token's start and end the truth
gives), for ``--backend acoustic`` as it is, beside the same backend cut where pocketsphinx's
alignment puts the words (what it did before it ran its own first pass, and still does where
that pass finds no path) and beside ``--backend pocketsphinx``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from speech_helpers import long_speech, word_errors  # noqa: E402

from aligner.audio import resample, wav_bytes  # noqa: E402


def run_align(wav: Path, text: Path, rate: int, backend: str, out: Path,
              code: str | None = None) -> tuple[float, float, str]:
    """Run ``aligner align`` in a child process (``code``: a ``python -c`` program that runs the
    command line instead of ``-m aligner``); returns (CPU seconds, peak RSS in MB, the backend
    that timed the words, from its last line)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    program = ["-m", "aligner"] if code is None else ["-c", code]
    proc = subprocess.Popen([sys.executable, *program, "align", str(wav), "--text-file",
                             str(text), "--rate", str(rate), "--backend", backend, "--out",
                             str(out)], env=env, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode:
        raise RuntimeError(f"aligner align failed ({proc.returncode}): {err[-500:]}")
    used = re.search(r"backend (\w+)", err)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, used[1] if used else "?"


def _clip_files(folder: str, samples: np.ndarray, rate: int, text: str) -> tuple[Path, Path]:
    """The clip as a WAV file and its text as a file in ``folder``."""
    wav, txt = Path(folder) / "clip.wav", Path(folder) / "clip.txt"
    wav.write_bytes(wav_bytes(samples, rate))
    txt.write_text(text, encoding="utf-8")
    return wav, txt


_POCKETSPHINX_CUTS = ("import sys; import aligner.speech.backends.acoustic as a; "
                      "a._anchor_spans = lambda *args: None; from aligner.cli import main; "
                      "raise SystemExit(main(sys.argv[1:]))")


def corpus(folder: str, repeat: int = 1) -> None:
    """The corpus's clips joined into one recording (``repeat`` times over), aligned whole (see
    the module docstring); the peer cut where pocketsphinx puts the words runs once over."""
    from corpus_eval import boundary_errors, read_clip

    root = Path(folder)
    truth = json.loads((root / "truth.json").read_text())
    rate = 16000  # the corpus's voices may each have their own rate
    items, pieces, offsets, offset = list(truth.values()) * repeat, [], [], 0.0
    for it in items:
        pcm, clip_rate = read_clip(root / it["wav"])
        pieces.append(resample(pcm, clip_rate, rate))
        offsets.append(offset)
        offset += len(pieces[-1]) / rate
    n_words = sum(len(it["tokens"]) for it in items)
    print(f"recording: {folder}'s {len(truth)} clips joined{f' {repeat} times' * (repeat > 1)}, "
          f"{offset:.0f} s, {n_words} words")
    print(f"{'system':48} {'mean':>7} {'median':>7} {'<=20ms':>7} {'worst':>7} {'CPU s':>6} "
          f"{'peak MB':>8}")
    with tempfile.TemporaryDirectory(prefix="aligner-long-") as tmp:
        wav, text = _clip_files(tmp, np.concatenate(pieces), rate,
                                " ".join(it["text"] for it in items))
        systems = [("acoustic", "acoustic", None),
                   ("acoustic, cut where pocketsphinx puts the words", "acoustic",
                    _POCKETSPHINX_CUTS), ("pocketsphinx", "pocketsphinx", None)]
        for name, backend, code in systems[::2] if repeat > 1 else systems:
            out = Path(tmp) / "out.json"
            cpu, peak, _ = run_align(wav, text, rate, backend, out, code)
            words = json.loads(out.read_text(encoding="utf-8"))["words"]
            errors, k = [], 0
            for it, at in zip(items, offsets, strict=True):  # each clip's words, as alignment.py
                mine = words[k:k + len(it["tokens"])]
                k += len(mine)
                errors += [x for x, _ in boundary_errors(
                    it, [(w["start"] - at, w["end"] - at) for w in mine])]
            if k != len(words):
                raise RuntimeError(f"{len(words)} words aligned for {k} tokens")
            e = np.array(errors) * 1000
            print(f"{name:48} {e.mean():5.1f}ms {np.median(e):5.1f}ms {np.mean(e <= 20):6.1%} "
                  f"{e.max():5.0f}ms {cpu:6.1f} {peak:8.0f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=210.0, help="clip length (default 210)")
    ap.add_argument("--rates", default="16000,22050", help="decode rates (default 16000,22050)")
    ap.add_argument("--backends", default="auto,pocketsphinx,fallback",
                    help="backends (default auto,pocketsphinx,fallback)")
    ap.add_argument("--corpus", metavar="PATH",
                    help="instead: a corpus folder's clips joined into one recording")
    ap.add_argument("--repeat", type=int, default=1,
                    help="with --corpus: join the clips this many times over")
    args = ap.parse_args(argv)
    if args.corpus:
        corpus(args.corpus, args.repeat)
        return 0
    synth = long_speech(args.seconds)
    rates = [int(r) for r in args.rates.split(",")]
    backends = [b.strip() for b in args.backends.split(",")]
    print(f"clip: {synth.duration:.1f} s of espeak-ng speech, {len(synth.words)} words, "
          f"a {synth.sample_rate} Hz WAV")
    print(f"{'backend':13} {'rate':>6} {'used':>13} {'median':>9} {'last 40':>9} {'<=50ms':>7} "
          f"{'CPU s':>6} {'peak MB':>8}")
    with tempfile.TemporaryDirectory(prefix="aligner-long-") as tmp:
        wav, text = _clip_files(tmp, synth.samples, synth.sample_rate, synth.text)
        for backend in backends:
            for rate in rates:
                out = Path(tmp) / f"{backend}-{rate}.json"
                t0 = time.perf_counter()
                cpu, peak, used = run_align(wav, text, rate, backend, out)
                wall = time.perf_counter() - t0
                doc = json.loads(out.read_text(encoding="utf-8"))
                spans = [(w["start"], w["end"]) for w in doc["words"]]
                e = word_errors(spans, synth) * 1000
                last = word_errors(spans[-40:], synth, last=40) * 1000
                print(f"{backend:13} {rate:>6} {used:>13} {np.median(e):7.1f}ms "
                      f"{np.median(last):7.1f}ms {np.mean(e <= 50) * 100:6.1f}% "
                      f"{cpu:6.1f} {peak:8.0f}   ({wall:.1f} s wall)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
