"""Viseme benchmark: frame agreement with ground truth and speed, beside Rhubarb Lip Sync 1.14.

Speech is synthesised with espeak-ng (32 fixed sentences: questions, numbers, names; 8 voices,
145-200 words per minute), which reports when it spoke each phone: those phones, mapped to
ARPAbet, are the ground truth. Truth phones and ours (aligned with the text and refined, or
recognised from the audio alone) go through the same viseme table; the truth is one shape per
phone, ours is the full motion (coarticulation lead, minimum holds, closures). A frame (100 fps)
agrees when our shape is the truth's shape at that time or within the coarticulation lead after
it (we anticipate on purpose). The same rule scores every row.

Missed frames are split by cause (:func:`misses`): phone identity (our pronunciation or
recognised phones differ from espeak's in that word), boundary timing, the motion rules, and
pauses (one side silent). ``--quick`` runs every fifth sentence.

"audio only (words)", the default, places the phones of the words pocketsphinx recognises with
its language model (:func:`aligner.visemes.heard_phones`; on a voice the aligner finds
espeak-like, the phone model's phones); "audio only" uses the small phone model shipped in
``aligner/data``, trained on random dictionary words in 26 espeak-ng voices, none of the 8 below
(``aligner.visemes.model``); "audio only (acoustic)" is the phone loop of pocketsphinx's acoustic
model decoded by the aligner's own search with the English phone bigram
(:func:`aligner.speech.backends.acoustic.recognize_phones`); "audio only (pocketsphinx)" is
pocketsphinx's own phone-loop decoder; none knows anything of espeak.

The same sentences are then spoken by other kinds of voice and scored alike: Flite's voices,
made from recordings of people (truth = Flite's own segment times; when Debian's ``libflite1``
is installed), and hibari's neural voice (truth = the phone times of its duration predictor,
in 25 ms units, its phones mapped to ARPAbet; hibari's lexicon is not the CMU dictionary, so
some of its pronunciations differ from ours).

Rhubarb Lip Sync 1.14 beside ``aligner-rhubarb``, when Rhubarb is at hand (``--rhubarb PATH``,
or ``rhubarb`` on PATH; else the section says it was not found): both run as programs, one
process per clip as the animation plugins run them, on the same clips written as 16 kHz WAV
files with their text as the dialog file: end-to-end wall time and CPU time per file, with a
dialog file, and without one by the default recognizer (words recognised, then aligned) and
with ``-r phonetic`` (both programs' fast recognizer), run in turn so the shared machine's
load falls on both alike. Both programs' JSON cues are scored by
the same frame rule, in Rhubarb's shapes; Rhubarb's own animation rules (in-between shapes such
as C from D to B, its own anticipation) are not what this truth, one shape per espeak-ng phone,
rewards, so its figure is a lower bound of how good it looks. The agreement table keeps
Rhubarb's published figures beside ours as an anchor.

Speed is audio seconds per CPU second of this process (``time.process_time``), BLAS limited to
one thread as in ``benchmarks/alignment.py`` (the targets are per core; a multi-threaded BLAS
spinning on a shared machine inflated the CPU time of the re-timing 2-3x).

The breakdown's "our phones, anticipated" reference (:func:`_anticipated`) keeps a sound's end
before a pause, as the motion does (the mouth relaxes when the sound stops): that only moves
frames between causes, never the agreement. The aligner's and the re-timing's tables load before
the speed is timed (the aligner's first call would otherwise carry its dictionary load, 0.7 s).

"with text" is :func:`aligner.visemes.refine_alignment` of the aligner's result, as
``aligner visemes --text`` does: phones the aligner warped from espeak-ng's speech go where that
speech says they sound, the others are re-timed on the phone model. The speed verdict "as fast as
the aligner" allows 5% (the aligner is part of the path, so the ratio cannot exceed 100%); the
per-backend lines and the Flite table's speed line show where the rest goes.

Run: ``python benchmarks/visemes.py [--quick] [--rhubarb PATH]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import wave  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from processes import timed_run  # noqa: E402

from aligner.audio import resample  # noqa: E402
from aligner.speech.alignment import align  # noqa: E402
from aligner.speech.dictionary import dictionary_variants  # noqa: E402
from aligner.speech.synthesis import synthesize  # noqa: E402
from aligner.speech.voices import synthesize as speak  # noqa: E402
from aligner.timeline import Phone, Timeline, Utterance  # noqa: E402
from aligner.visemes import (  # noqa: E402
    METHODS,
    Cue,
    Motion,
    cues,
    estimate_phones,
    refine_alignment,
    timeline_cues,
)
from aligner.visemes.model import PhoneModel  # noqa: E402
from aligner.visemes.sets import espeak_phones, get_set  # noqa: E402

# (text, espeak-ng voice, words per minute): a fixed list. Voices are disjoint from the ones the
# shipped phone model was trained on (aligner.visemes.model._TRAIN_VOICES), and so are the
# sentences (it learnt from random dictionary words).
SENTENCES = [
    ("Hello, thanks for calling Bright Dental. How can I help you today?", "en-us", 175),
    ("I can book you in for Tuesday at three thirty, or Wednesday morning.", "en-us+f3", 165),
    ("Please bring your insurance card and a photo ID to the appointment.", "en-us", 190),
    ("The quick brown fox jumps over the lazy dog, while my old cat sleeps.", "en-us+m3", 170),
    ("Would you like me to send a reminder by text message before your visit?", "en-us+f2", 180),
    ("Your order number is four two seven, and it ships tomorrow by express mail.", "en-us", 160),
    ("Maybe people believe him, but we moved the meeting to Monday afternoon.", "en-us+m1", 175),
    ("She sells sea shells by the shore; judge the measure of pleasure yourself.", "en-us+f4", 170),
    ("Is this Doctor Patel's office, or did I dial the wrong number?", "en-us+m6", 185),
    ("Your balance is two hundred and forty five dollars and sixty cents.", "en-us+f2", 150),
    ("Could you spell your last name for me, please?", "en-us+m8", 160),
    ("Margaret Johnson will call you back before five o'clock on Friday.", "en-us+f3", 195),
    ("We're open from nine in the morning until six in the evening.", "en-us+m1", 145),
    ("Have you ever visited our clinic in Boston before?", "en-us", 200),
    ("The flight from Chicago to Denver leaves at seven fifteen.", "en-us+m3", 155),
    ("Thank you for your patience; an agent will be with you shortly.", "en-us+f4", 185),
    ("Which day works better for you, Thursday or Saturday?", "en-us+m6", 165),
    ("My name is Olivia, and I'll be helping you with your booking.", "en-us+f2", 175),
    ("Press one for billing, two for support, or stay on the line.", "en-us+m8", 180),
    ("The package weighs about three point five kilograms.", "en-us", 150),
    ("Did you receive the confirmation email we sent on Monday?", "en-us+f3", 190),
    ("Unfortunately, that appointment slot has already been taken.", "en-us+m1", 170),
    ("Please hold while I transfer you to Michael in accounting.", "en-us+f4", 160),
    ("Your prescription will be ready for pickup after four thirty.", "en-us+m3", 185),
    ("Why don't we move the call to Wednesday at noon instead?", "en-us+m6", 175),
    ("Every month, about twelve thousand people use our service.", "en-us+f2", 145),
    ("Could I have your date of birth, starting with the month?", "en-us+m8", 195),
    ("Great, you're all set for March the twenty first at ten.", "en-us", 165),
    ("Bob bought a big blue boat, but Pam preferred the maple boat.", "en-us+f3", 170),
    ("Is there anything else I can help you with this evening?", "en-us+m1", 180),
    ("The vet in Phoenix offers free checkups for puppies and kittens.", "en-us+f4", 155),
    ("Alright, I've cancelled your order and refunded eighty dollars.", "en-us+m3", 200),
]
RHUBARB = {"with text": 0.83, "audio only": 0.82, "x real time (recognition)": 8.0,
           "x real time (phonetic)": 28.0, "start-up s": 0.3}
FPS = 100


def _frames(phones, vset, duration: float) -> np.ndarray:
    """One shape per phone (no motion), sampled at FPS; rest outside phones."""
    vs = get_set(vset)
    n = int(duration * FPS)
    out = np.full(n, str(vs.rest), dtype=object)
    for p in phones:
        shapes = vs.shapes(p.phone)
        a, b = max(0, int(round(p.start * FPS))), max(0, int(round(p.end * FPS)))
        if len(shapes) == 2:
            m = max(0, int(round((p.start + (p.end - p.start) * 0.6) * FPS)))
            out[a:m], out[m:b] = str(shapes[0]), str(shapes[1])
        else:
            out[a:b] = str(shapes[0])
    return out


def _cue_frames(cue_list, duration: float) -> np.ndarray:
    n = int(duration * FPS)
    out = np.full(n, "", dtype=object)
    for c in cue_list:
        out[int(round(c.start * FPS)):int(round(c.end * FPS))] = str(c.viseme)
    return out


def agrees(truth: np.ndarray, ours: np.ndarray, lead: float) -> np.ndarray:
    """Per frame: ours equals the truth now or within ``lead`` s after."""
    k = int(round(lead * FPS))
    n = min(len(truth), len(ours))
    ok = np.zeros(n, bool)
    for d in range(k + 1):
        ok[: n - d] |= ours[: n - d] == truth[d:n]
    return ok


def agreement(truth: np.ndarray, ours: np.ndarray, lead: float) -> float:
    """Share of frames where ours equals the truth now or within ``lead`` s after."""
    return float(agrees(truth, ours, lead).mean())


CAUSES = ("identity", "timing", "motion", "pause")


def misses(truth, phones, vset: str, duration: float, motion: Motion) -> dict[str, int]:
    """Frames where our full motion stream disagrees with the truth, by cause.

    Each missed frame is compared with ``lead``: our phones one shape each, only anticipated by
    the lead (no merges, holds or closures). In order:

    - ``motion``: ``lead`` agrees, so the motion rules (minimum hold, merges, closure holds)
      changed a right shape;
    - ``pause``: the truth (at the anticipated time) or ``lead`` is the rest shape: silence
      between or around words, one side speaking and the other not;
    - ``identity``: the frame lies in a word whose shape sequence differs from the truth's
      (our pronunciation, or for audio only our recognised phones, is not espeak's);
    - ``timing``: the right shapes in the right order, with a boundary in another place.
    """
    vs = get_set(vset)
    k = int(round(motion.lead * FPS))
    tf = _frames(truth, vset, duration)
    full = _cue_frames(cues(phones, vset, motion=motion, end=duration), duration)
    lead = _frames(_anticipated(phones, motion.lead), vset, duration)
    bad = ~agrees(tf, full, motion.lead)
    n = len(bad)
    moved = bad & agrees(tf, lead, motion.lead)[:n]
    rest = str(vs.rest)
    ahead = np.concatenate([tf[k:], np.full(k, rest, dtype=object)])[:n]
    pause = bad & ~moved & ((ahead == rest) | (lead[:n] == rest))
    wrong_word = np.zeros(n + k, bool)  # on the truth's clock
    words: dict[int, list] = {}
    for p in truth:
        if p.phone != "sil":
            words.setdefault(p.word_index, []).append(p)
    for ps in words.values():
        a, b = ps[0].start, ps[-1].end
        heard = [p for p in phones if p.phone != "sil" and a <= (p.start + p.end) / 2 < b]
        if _shape_run(ps, vs) != _shape_run(heard, vs):
            wrong_word[int(round(a * FPS)):int(round(b * FPS))] = True
    identity = bad & ~moved & ~pause & wrong_word[k:k + n]
    timing = bad & ~moved & ~pause & ~identity
    return {"frames": n, "identity": int(identity.sum()), "timing": int(timing.sum()),
            "motion": int(moved.sum()), "pause": int(pause.sum())}


def _anticipated(phones, lead: float) -> list[Phone]:
    """``phones`` each starting ``lead`` early, as our motion moves them: a sound before a pause
    keeps its end (the mouth relaxes when it stops), the others end where the next one starts."""
    said = [p for p in phones if p.phone != "sil" and p.end > p.start]
    out = []
    for i, p in enumerate(said):
        gap = i + 1 == len(said) or said[i + 1].start > p.end + 1e-6
        out.append(Phone(p.phone, p.start - lead, p.end if gap else p.end - lead))
    return out


def _shape_run(phones, vs) -> list:
    """The shapes of ``phones`` in order, repeats folded."""
    out: list = []
    for p in phones:
        for v in vs.shapes(p.phone):
            if not out or out[-1] != v:
                out.append(v)
    return out


def _table(results: dict[str, list], motion: Motion) -> dict[str, list[dict[str, int]]]:
    """Print OVR and Rhubarb-set agreement per input; return the missed frames by cause."""
    print(f"{'input':<26} {'oculus':>8} {'rhubarb':>8}   Rhubarb 1.14 (published, its set)")
    missed: dict[str, list[dict[str, int]]] = {}
    for key, rows in results.items():
        cells, missed[key] = [], []
        for vset in ("oculus", "rhubarb"):
            count = {"frames": 0, **dict.fromkeys(CAUSES, 0)}
            for dur, truth, phones in rows:
                for c, v in misses(truth, phones, vset, dur, motion).items():
                    count[c] += v
            missed[key].append(count)
            cells.append(f"{1 - sum(count[c] for c in CAUSES) / count['frames']:6.1%}")
        anchor = f"{RHUBARB[key]:.0%}" if key in RHUBARB else "-"
        print(f"{key:<26} {cells[0]:>8} {cells[1]:>8}   {anchor}")
    return missed


_FLITE_NAMES = {"AX": "AH", "PAU": "sil"}  # Flite's phones not spelt as ARPAbet
# hibari's phones (misaki's alphabet, stress marks dropped) as ARPAbet: its diphthongs are
# capitals, T is the flap, the small schwa and barred i are reduced vowels; pauses are silence
_HIBARI_NAMES = {"A": "EY", "I": "AY", "O": "OW", "W": "AW", "Y": "OY", "T": "D", "ɐ": "AH",
                 "ə": "AH", "ᵊ": "AH", "ʌ": "AH", "ɑ": "AA", "ɔ": "AO", "ɛ": "EH", "æ": "AE",
                 "ɪ": "IH", "ᵻ": "IH", "i": "IY", "u": "UW", "ʊ": "UH", "ɜ": "ER", "ɡ": "G",
                 "ɹ": "R", "ʃ": "SH", "ʒ": "ZH", "ʤ": "JH", "ʧ": "CH", "ð": "DH", "θ": "TH",
                 "ŋ": "NG", "j": "Y"}


def _hibari_phone(name: str) -> str:
    name = name.lstrip("ˈˌ")
    if name in _HIBARI_NAMES:
        return _HIBARI_NAMES[name]
    return name.upper() if name.isalpha() and name.isascii() else "sil"


def _voice_table(items, motion: Motion, speak, what: str) -> None:
    """The same sentences and scoring on another kind of voice: ``speak(i, text)`` gives
    ``(16 kHz samples, truth phones)``; with text and every audio-only method."""
    results: dict[str, list] = {"with text": [], "with text (aligner timing)": [],
                                **{f"audio only ({m})": [] for m in METHODS}}
    total = t_align = t_refine = 0.0
    t_audio = dict.fromkeys(METHODS, 0.0)
    for i, (text, _voice, _rate) in enumerate(items):
        pcm, truth = speak(i, text)
        dur = len(pcm) / 16000
        total += dur
        t0 = time.process_time()
        result = align(pcm, 16000, text)
        t1 = time.process_time()
        refined = refine_alignment(pcm, 16000, result)
        t_align, t_refine = t_align + t1 - t0, t_refine + time.process_time() - t1
        results["with text"].append((dur, truth, refined))
        results["with text (aligner timing)"].append((dur, truth, list(result.phones)))
        for method in METHODS:
            t0 = time.process_time()
            results[f"audio only ({method})"].append(
                (dur, truth, estimate_phones(pcm, 16000, method=method)))
            t_audio[method] += time.process_time() - t0
    print(f"\n{what}, the same sentences, {total:.1f} s")
    _table(results, motion)
    print(f"speed (CPU time): with text {total / (t_align + t_refine):.1f}x (the aligner alone "
          f"{total / t_align:.1f}x); audio only "
          + ", ".join(f"{m} {total / t:.1f}x" for m, t in t_audio.items()))


def _other_voices(items, motion: Motion) -> None:
    """Flite's voices made from recordings of people (the phone model never heard them; truth =
    Flite's own segment times), when Flite loads; hibari's neural voice (truth = the phone times
    of its duration predictor, in 25 ms units)."""
    try:
        import flite_speech
    except ImportError as exc:
        why = f"flite_speech did not import ({exc})"
    else:
        why = flite_speech.available()
        why = why and f"Flite is not available: {why} (apt-get install libflite1)"
    if why is not None:
        print(f"\nother voices: Flite SKIPPED, {why}")
    else:
        def flite(i: int, text: str):
            voice, stretch = flite_speech.CONDITIONS[i % len(flite_speech.CONDITIONS)]
            syn = flite_speech.synthesize(text, voice, stretch)
            return resample(syn.samples, syn.sample_rate, 16000), [
                Phone(_FLITE_NAMES.get(p.phone.upper(), p.phone.upper()), p.start, p.end,
                      p.word_index) for p in syn.phones]

        _voice_table(items, motion, flite,
                     f"other voices: Flite ({', '.join(v for v, _ in flite_speech.CONDITIONS)}; "
                     "voices made from recordings of people, never heard by the phone model); "
                     "truth = Flite's segment times")

    def hibari(_i: int, text: str):
        syn = speak(text, "hibari")
        return resample(syn.samples, syn.sample_rate, 16000), [
            Phone(_hibari_phone(p.phone), p.start, p.end, p.word_index) for p in syn.phones]

    _voice_table(items, motion, hibari,
                 "neural voice: hibari (a distillation of Kokoro's af_heart); truth = its "
                 "duration predictor's phone times (25 ms units)")


def _timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of one program run that must succeed."""
    wall, cpu, done = timed_run(cmd, cwd)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {done.stderr.strip()[-300:]}")
    return wall, cpu, done.stdout


def _json_cues(text: str) -> list[Cue]:
    return [Cue(c["start"], c["end"], c["value"]) for c in json.loads(text)["mouthCues"]]


def _programs(clips, rhubarb: str | None, motion: Motion) -> None:
    """``aligner-rhubarb`` and Rhubarb Lip Sync as programs on the same WAV files, side by side:
    wall and CPU time per file, and their cues' agreement with the truth."""
    ours = [sys.executable, "-m", "aligner.cli.rhubarb"]
    print(f"\nper-file programs, {len(clips)} clips as 16 kHz WAV files, JSON out "
          f"(wall s / CPU s per file; one process per file, as the animation plugins run them):")
    found = shutil.which(rhubarb) if rhubarb else None
    if found is None:
        where = f"no program at {rhubarb}" if rhubarb else "give --rhubarb PATH or put rhubarb on PATH"
        print(f"  Rhubarb Lip Sync: not found ({where}); aligner-rhubarb alone")
    else:
        version = subprocess.run([found, "--version"], capture_output=True, text=True)
        print(f"  Rhubarb Lip Sync: {found} ({version.stdout.strip()})")
    modes = (("with dialog", ["-d", "dialog.txt"], ["-d", "dialog.txt"]),
             ("recognition", [], []),
             ("phonetic", ["-r", "phonetic"], ["-r", "phonetic"]))
    header = "  ".join(f"{m + ': ours':>18} {'rhubarb':>13}" for m, *_ in modes)
    print(f"  {'clip':<5} {'audio s':>7}  {header}")
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    scored: dict[tuple[str, str], list] = {}
    with tempfile.TemporaryDirectory(prefix="visemes-bench-") as tmp:
        for i, (text, _syn, pcm, truth) in enumerate(clips):
            d = Path(tmp) / f"clip{i}"
            d.mkdir()
            with wave.open(str(d / "clip.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes(pcm.astype("<i2").tobytes())
            (d / "dialog.txt").write_text(text + "\n", encoding="utf-8")
            dur = len(pcm) / 16000
            cells = []
            for mode, our_args, their_args in modes:
                row = [("ours", [*ours, "-q", "-f", "json", *our_args, "clip.wav"])]
                if found is not None:
                    row.append(("rhubarb", [found, "-q", "-f", "json", *their_args,
                                            "clip.wav"]))
                cell = []
                for who, cmd in row:
                    wall, cpu, out = _timed(cmd, d)
                    times.setdefault((mode, who), []).append((wall, cpu))
                    scored.setdefault((mode, who), []).append((dur, truth, _json_cues(out)))
                    cell.append(f"{wall:.2f}/{cpu:.2f}")
                cells.append(f"{cell[0]:>18} {cell[1] if len(cell) > 1 else '-':>13}")
            print(f"  {i:<5} {dur:7.2f}  " + "  ".join(cells))
    for (mode, who), got in times.items():
        walls, cpus = [w for w, _ in got], [c for _, c in got]
        print(f"  {mode:<12} {'aligner-rhubarb' if who == 'ours' else 'Rhubarb 1.14':<16} "
              f"median {statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s "
              f"CPU per file (min {min(walls):.2f} s wall)")
    print("  agreement in Rhubarb's shapes, the same frame rule as above:")
    for (mode, who), rows in scored.items():
        ok = frames = 0
        for dur, truth, cue_list in rows:
            t, c = _frames(truth, "rhubarb", dur), _cue_frames(cue_list, dur)
            good = agrees(t, c, motion.lead)
            ok, frames = ok + int(good.sum()), frames + len(good)
        print(f"    {mode:<12} {'aligner-rhubarb' if who == 'ours' else 'Rhubarb 1.14':<16} "
              f"{ok / frames:6.1%}")


def _pick(quick: bool) -> list[tuple[str, str, int]]:
    """The sentences: all, or (quick) every fifth, still several voices and rates."""
    return SENTENCES[::5] if quick else SENTENCES


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"{len(_pick(True))} of the {len(SENTENCES)} sentences")
    ap.add_argument("--rhubarb", metavar="PATH", default=shutil.which("rhubarb"),
                    help="the Rhubarb Lip Sync 1.14 executable to run beside aligner-rhubarb "
                         "(default: rhubarb on PATH)")
    ap.add_argument("--corpus", metavar="PATH",
                    help="instead of the espeak-ng sentences: a folder of speech with truth "
                         "phones (benchmarks/visemes_corpus.py), e.g. ../shared/corpora/timit-dev")
    ap.add_argument("--limit", type=int, default=0, help="with --corpus: only the first N clips")
    args = ap.parse_args()
    if args.corpus:
        import visemes_corpus

        visemes_corpus.run(args.corpus, args.rhubarb, args.limit)
        return 0
    motion = Motion()
    items = _pick(args.quick)
    print(f"synthesising {len(items)} sentences with espeak-ng ...", file=sys.stderr)
    clips = []
    for text, voice, rate in items:
        syn = synthesize(text, voice=voice, rate=rate)
        pcm = resample(syn.samples, syn.sample_rate, 16000)
        clips.append((text, syn, pcm, list(espeak_phones(syn.phones))))
    total = sum(len(c[2]) / 16000 for c in clips)

    t_align = t_refine = 0.0
    # tables and models load once per process, before the timing: the re-timing's phone model
    # and pronunciation variants, the aligner's dictionary and espeak-ng
    PhoneModel.load()
    dictionary_variants("a")
    align(clips[0][2][:16000], 16000, clips[0][0])
    t_audio = dict.fromkeys(METHODS, 0.0)
    by_backend: dict[str, list[float]] = {}  # aligner backend -> [audio s, align s, refine s]
    startup = {}
    results: dict[str, list] = {"truth phones": [], "with text": [],
                                "with text (aligner timing)": [], "audio only (words)": [],
                                "audio only": [], "audio only (acoustic)": [],
                                "audio only (pocketsphinx)": []}
    for method in t_audio:  # start-up once (model load), timed apart
        t0 = time.process_time()
        estimate_phones(clips[0][2][:1600], 16000, method=method)
        startup[method] = time.process_time() - t0
    for _text, _syn, pcm, truth in clips:
        dur = len(pcm) / 16000
        t0 = time.process_time()
        result = align(pcm, 16000, _text)
        aligned = list(result.phones)
        t1 = time.process_time()  # then what aligner.visemes.text_phones adds to the aligner
        refined = refine_alignment(pcm, 16000, result)
        t2 = time.process_time()
        t_align, t_refine = t_align + t1 - t0, t_refine + t2 - t1
        part = by_backend.setdefault(result.backend, [0.0, 0.0, 0.0])
        part[0], part[1], part[2] = part[0] + dur, part[1] + t1 - t0, part[2] + t2 - t1
        heard = {}
        for method in t_audio:
            t0 = time.process_time()
            heard[method] = estimate_phones(pcm, 16000, method=method)
            t_audio[method] += time.process_time() - t0
        for key, phones in (("truth phones", truth), ("with text", refined),
                            ("with text (aligner timing)", aligned),
                            ("audio only (words)", heard["words"]),
                            ("audio only", heard["model"]),
                            ("audio only (acoustic)", heard["acoustic"]),
                            ("audio only (pocketsphinx)", heard["pocketsphinx"])):
            results[key].append((dur, truth, phones))

    print(f"\nframe agreement at {FPS} fps on {total:.1f} s of espeak-ng speech "
          f"({len(clips)} clips, {len({v for _, v, _ in items})} voices, "
          f"{min(r for *_, r in items)}-{max(r for *_, r in items)} wpm), "
          f"lead {motion.lead * 1000:.0f} ms allowed")
    missed = _table(results, motion)
    print("\nmissed frames by cause, % of all frames, oculus | rhubarb (see misses()):")
    print(f"{'input':<26} " + "  ".join(f"{c:>15}" for c in CAUSES))
    for key, counts in missed.items():
        cells = [" | ".join(f"{cnt[c] / cnt['frames']:5.1%}" for cnt in counts) for c in CAUSES]
        print(f"{key:<26} " + "  ".join(f"{c:>15}" for c in cells))
    for key, target in (("with text", 0.92), ("audio only", 0.85)):
        cnt = missed[key][0]
        got = 1 - sum(cnt[c] for c in CAUSES) / cnt["frames"]
        print(f"verdict {key}: oculus {got:.1%}, target >= {target:.0%}: "
              f"{'MET' if got >= target else 'MISSED'}")
    _other_voices(items, motion)

    # speed: from an existing timeline (phones known), from audio + text, audio only
    phones_all, t = [], 0.0
    for dur, truth, _ in results["truth phones"]:
        phones_all += [Phone(p.phone, p.start + t, p.end + t) for p in truth]
        t += dur
    tl = Timeline(utterances=(Utterance("agent", 0.0, t, "", phones=tuple(phones_all)),),
                  duration=t)
    reps = 20 if not args.quick else 5
    t0 = time.process_time()
    for _ in range(reps):
        for vset in ("oculus", "rhubarb"):
            timeline_cues(tl, vset, motion=motion)
    t_tl = (time.process_time() - t0) / (2 * reps)
    t_cues = t_tl * total / t
    with_text = total / (t_align + t_refine + t_cues)
    print(f"\nspeed, CPU time of this process (one core; the machine is shared), "
          f"{total:.1f} s of audio:")
    print(f"  from a timeline   {t / t_tl:9.0f}x real time   (target >= 1000x: "
          f"{'MET' if t / t_tl >= 1000 else 'MISSED'})")
    ratio = with_text / (total / t_align)
    print(f"  audio + text      {with_text:9.1f}x real time   (aligner alone "
          f"{total / t_align:.1f}x; target: as fast as the aligner: {ratio:.0%} of it, "
          f"{'MET' if ratio >= 0.95 else 'MISSED'} (within 5%))")
    for backend, (secs, a, r) in sorted(by_backend.items()):
        print(f"    clips the aligner timed with {backend + ':':<13} {secs:5.1f} s, aligner "
              f"{secs / a:5.1f}x, phones refined {secs / r:6.0f}x, together {a / (a + r):.0%} "
              f"of the aligner")
    print(f"  audio only        {total / t_audio['model']:9.1f}x real time   (target >= 30x: "
          f"{'MET' if total / t_audio['model'] >= 30 else 'MISSED'}; "
          f"Rhubarb 1.14: ~{RHUBARB['x real time (recognition)']:.0f}x recognition, "
          f"~{RHUBARB['x real time (phonetic)']:.0f}x phonetic, +{RHUBARB['start-up s']} s/file)")
    for method in ("words", "acoustic", "pocketsphinx"):
        print(f"  audio only, {method:<12} {total / t_audio[method]:6.1f}x real time")
    print("  start-up once per process: " + ", ".join(f"{m} {t:.2f} s" for m, t in startup.items()))
    _programs(clips, args.rhubarb, motion)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
