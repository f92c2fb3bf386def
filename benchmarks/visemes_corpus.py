"""Viseme agreement on a folder of human (or any) speech with known phones (``visemes.py
--corpus``), beside Rhubarb Lip Sync 1.14.

The corpus is a folder in the evaluation corpora's format (``truth.json`` with ``phones`` in
TIMIT's 61 symbols, see ``benchmarks/corpus_eval.py``): its phones, closures joined to their
stop (``tcl t`` is one T, starting at the closure: the lips close for the closure), glottal stops
and pauses silent, are the truth. Ours: the text path (:func:`aligner.visemes.text_phones`, as
``aligner visemes --text`` does) and the audio-only paths (:func:`aligner.visemes.estimate_phones`:
the phones of the words recognised, the default, and the phone loops), each turned into cues by
the same motion as every renderer. The text path and the words heard are also scored
*adapted*: each clip with a voice profile learned from its speaker's other clips (from their
text; from the words heard in them), as ``aligner visemes --voice-profile`` keeps one. Audio
only, adapted, the words are recognised on the model adapted to the profile: a new profile for
every clip here, so its speed includes loading a decoder per clip (about 0.2 s), which a
profile learning across a narrator's clips pays only when its transform moves. Last, each
speaker's clips joined into one recording, aligned or heard once and with ``adapt`` (two
passes: the second on the voice learned from the first, as ``aligner visemes --adapt``).
Rhubarb: its executable, one process per clip, with the text as the dialog file, and without
it by its default recognizer (words recognised with its language model, then aligned) and by
``-r phonetic``.

Two scores per frame (100 fps):

- **Rhubarb set**: the truth phones mapped to Rhubarb's shapes (A-H, X) by the table of its
  README (the project's ``rhubarb`` viseme set), ours and Rhubarb's cues in the same shapes. A
  frame scores 1 when the cue's shape is the truth's shape within +-60 ms of it, 1/2 when it is
  a neighbour in openness (A-B, B-C, C-D, E-F: the in-between shapes Rhubarb itself draws on the
  way from one to the other), else 0.
- **OVR** (ours only): the Oculus set with the rule of the espeak-ng table (the cue's shape is
  the truth's now or within the motion's lead after).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from corpus_eval import read_clip
from visemes import FPS, agrees

from aligner.audio import resample, wav_bytes

__all__ = ["run"]

WINDOW = 0.06
_NEIGHBOURS = {frozenset(p) for p in ("AB", "BC", "CD", "EF")}
_TIMIT = {"ax": "AH", "ix": "IH", "axr": "ER", "ax-h": "AH", "ux": "UW", "hv": "HH", "el": "L",
          "em": "M", "en": "N", "eng": "NG", "nx": "N", "dx": "D"}
_CLOSURES = {"bcl": "B", "dcl": "D", "gcl": "G", "pcl": "P", "tcl": "T", "kcl": "K"}
_SILENT = {"h#", "pau", "epi", "q"}


def truth_phones(phones: list[dict]):
    """TIMIT phones as ARPAbet :class:`aligner.timeline.Phone` (closure + release = the stop)."""
    from aligner.timeline import Phone

    out: list[Phone] = []
    for p in phones:
        sym = p["phone"]
        if sym in _SILENT:
            out.append(Phone("sil", p["start"], p["end"]))
        elif sym in _CLOSURES:
            out.append(Phone(_CLOSURES[sym], p["start"], p["end"]))
        elif out and out[-1].phone == sym.upper() and out[-1].end == p["start"] and \
                sym.upper() in _CLOSURES.values():
            out[-1] = Phone(out[-1].phone, out[-1].start, p["end"])  # the release
        else:
            out.append(Phone(_TIMIT.get(sym, sym.upper()), p["start"], p["end"]))
    return out


def _frames(phones, vset: str, duration: float) -> np.ndarray:
    from aligner.visemes.sets import get_set

    vs = get_set(vset)
    out = np.full(int(duration * FPS), str(vs.rest), dtype=object)
    for p in phones:
        a, b = max(0, int(round(p.start * FPS))), max(0, int(round(p.end * FPS)))
        out[a:b] = str(vs.shapes(p.phone)[0])
    return out


def _cue_frames(cue_list, duration: float, rest: str) -> np.ndarray:
    out = np.full(int(duration * FPS), rest, dtype=object)
    for c in cue_list:
        out[int(round(c.start * FPS)):int(round(c.end * FPS))] = str(c.viseme)
    return out


def rhubarb_score(truth: np.ndarray, ours: np.ndarray) -> tuple[float, int]:
    """(credit, frames) of the Rhubarb-set rule (module docstring)."""
    k = int(round(WINDOW * FPS))
    n = min(len(truth), len(ours))
    credit = 0.0
    for i in range(n):
        near = set(truth[max(0, i - k):i + k + 1])
        if ours[i] in near:
            credit += 1
        elif any(frozenset((ours[i], t)) in _NEIGHBOURS for t in near):
            credit += 0.5
    return credit, n


def phones_score(truth: np.ndarray, phones, duration: float, motion) -> tuple[float, int]:
    """(credit, frames) of ``phones`` turned into Rhubarb's shapes by ``motion`` (as every
    renderer does), by the Rhubarb-set rule against the ``truth`` frames (:func:`_frames`)."""
    from aligner.visemes import cues

    return rhubarb_score(truth, _cue_frames(cues(phones, "rhubarb", motion=motion), duration,
                                            "X"))


def ovr_score(truth: np.ndarray, ours: np.ndarray, lead: float) -> tuple[int, int]:
    """Frames where ours equals the truth now or within ``lead`` s after, and frames."""
    ok = agrees(truth, ours, lead)
    return int(ok.sum()), len(ok)


def _recordings(voices: list[list[dict]], motion) -> dict[str, tuple[float, float]]:
    """Each speaker's clips joined into one recording (``voices``: the clips of each, as
    :func:`run` keeps them), with text and audio only, once and with ``adapt``: name ->
    (Rhubarb-set agreement, x real time)."""
    from aligner.timeline import Phone
    from aligner.visemes import estimate_phones, text_phones

    ways = {"with text": lambda x, text: text_phones(x, 16000, text),
            "with text, --adapt": lambda x, text: text_phones(x, 16000, text, adapt=True),
            "audio only (words)": lambda x, text: estimate_phones(x, 16000),
            "audio only (words), --adapt": lambda x, text: estimate_phones(x, 16000, adapt=True)}
    got = {k: [0.0, 0, 0.0] for k in ways}
    seconds = 0.0
    for clips in voices:
        pieces = [resample(c["pcm"], c["rate"], 16000) for c in clips]
        pcm = np.concatenate(pieces)
        truth, t0 = [], 0.0
        for c, piece in zip(clips, pieces, strict=True):
            truth += [Phone(p.phone, p.start + t0, p.end + t0) for p in c["truth"]]
            t0 += len(piece) / 16000
        dur = len(pcm) / 16000
        seconds += dur
        text = " ".join(c["text"] for c in clips)
        for key, way in ways.items():
            t = time.process_time()
            phones = way(pcm, text)
            got[key][2] += time.process_time() - t
            c, f = phones_score(_frames(truth, "rhubarb", dur), phones, dur, motion)
            got[key][0] += c
            got[key][1] += f
    return {k: (c / max(f, 1), seconds / max(t, 1e-9)) for k, (c, f, t) in got.items()}


def run(folder: str, rhubarb: str | None, limit: int = 0) -> None:
    from processes import timed_run

    from aligner.speech.adaptation import VoiceProfile
    from aligner.speech.recognize import recognize_words
    from aligner.visemes import METHODS, Motion, cues, estimate_phones, heard_phones, text_phones
    from aligner.visemes.model import PhoneModel

    root = Path(folder)
    truth_all = json.loads((root / "truth.json").read_text())
    items = [dict(v, voice=k.rsplit("/", 1)[0]) for k, v in truth_all.items() if v.get("phones")]
    if limit:
        items = items[:limit]
    if not items:
        print(f"corpus {folder}: no utterance has truth phones; nothing to score")
        return
    motion = Motion()
    PhoneModel.load()
    program = shutil.which(rhubarb) if rhubarb else None
    ours = ["with text", "with text, adapted",
            *(k for m in METHODS for k in (f"audio only ({m})", *(
                ["audio only (words), adapted"] if m == "words" else [])))]
    systems = ours + (["Rhubarb with dialog", "Rhubarb recognition", "Rhubarb phonetic"]
                      if program else [])
    score = {s: [0.0, 0] for s in systems}
    ovr = {s: [0, 0] for s in ours}
    cpu = {s: 0.0 for s in systems}
    seconds = 0.0

    def tally(key: str, phones, clip: dict) -> None:
        c, f = phones_score(clip["rhubarb"], phones, clip["duration"], motion)
        score[key][0] += c
        score[key][1] += f
        c, f = ovr_score(clip["oculus"], _cue_frames(cues(phones, "oculus", motion=motion),
                                                     clip["duration"], "sil"), motion.lead)
        ovr[key][0] += c
        ovr[key][1] += f

    voices: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="visemes-corpus-") as tmp:
        for n, it in enumerate(items):
            pcm, rate = read_clip(root / it["wav"])
            dur = len(pcm) / rate
            seconds += dur
            truth = truth_phones(it["phones"])
            clip = {"pcm": pcm, "rate": rate, "text": it["text"], "duration": dur, "truth": truth,
                    "rhubarb": _frames(truth, "rhubarb", dur),
                    "oculus": _frames(truth, "oculus", dur)}
            t0 = time.process_time()
            phones = {"with text": text_phones(pcm, rate, it["text"])}
            cpu["with text"] += time.process_time() - t0
            for method in METHODS:
                key = f"audio only ({method})"
                t0 = time.process_time()
                if method == "words":  # as estimate_phones does, keeping the words heard
                    clip["heard"] = " ".join(w.word for w in recognize_words(pcm, rate))
                    phones[key] = heard_phones(pcm, rate, clip["heard"])
                else:
                    phones[key] = estimate_phones(pcm, rate, method=method)
                cpu[key] += time.process_time() - t0
            for key, ph in phones.items():
                tally(key, ph, clip)
            # what a profile of the voice learns from the clip: from its text, from the words heard
            for kind, learn in (("text", text_phones), ("heard", heard_phones)):
                own = VoiceProfile(it["voice"])
                learn(pcm, rate, it["text"] if kind == "text" else clip["heard"], voice=own)
                clip[f"{kind} stats"] = own.stats
            voices.setdefault(it["voice"], []).append(clip)
            if program:
                d = Path(tmp)
                (d / "clip.wav").write_bytes(wav_bytes(pcm, rate))
                (d / "dialog.txt").write_text(it["text"] + "\n", encoding="utf-8")
                for key, extra in (("Rhubarb with dialog", ["-d", "dialog.txt"]),
                                   ("Rhubarb recognition", []),
                                   ("Rhubarb phonetic", ["-r", "phonetic"])):
                    _, spent, out = timed_run([program, "-q", "-f", "json", *extra, "clip.wav"],
                                              d)
                    cpu[key] += spent
                    got = [c for c in json.loads(out.stdout)["mouthCues"]] if \
                        out.returncode == 0 else []
                    frames = np.full(int(dur * FPS), "X", dtype=object)
                    for c in got:
                        frames[int(round(c["start"] * FPS)):int(round(c["end"] * FPS))] = \
                            c["value"]
                    c, f = rhubarb_score(clip["rhubarb"], frames)
                    score[key][0] += c
                    score[key][1] += f
            if (n + 1) % 20 == 0:
                print(f"  {n + 1}/{len(items)} clips", flush=True)
    # adapted: each clip with a profile learned from its speaker's other clips (from their text,
    # or from the words heard in them), as an agent's or a narrator's profile is across clips
    for clips in voices.values():
        for i, clip in enumerate(clips):
            for key, kind in (("with text, adapted", "text"),
                              ("audio only (words), adapted", "heard")):
                profile = VoiceProfile()
                for j, other in enumerate(clips):
                    if j != i:
                        profile.learn(other[f"{kind} stats"])
                t0 = time.process_time()
                if kind == "text":
                    phones = text_phones(clip["pcm"], clip["rate"], clip["text"], voice=profile)
                else:  # recognised on the model adapted to the profile, then placed
                    phones = estimate_phones(clip["pcm"], clip["rate"], voice=profile)
                cpu[key] += time.process_time() - t0
                tally(key, phones, clip)
    whole = _recordings(list(voices.values()), motion)
    print(f"\nvisemes on {folder}: {len(items)} clips, {seconds:.0f} s "
          f"(Rhubarb set: +-{WINDOW * 1000:.0f} ms, half credit for a neighbouring shape; "
          f"OVR: lead {motion.lead * 1000:.0f} ms)")
    if not program:
        print("  Rhubarb Lip Sync: not found (--rhubarb PATH); ours alone")
    for key in systems:
        rh = score[key][0] / max(score[key][1], 1)
        cell = f"OVR {ovr[key][0] / max(ovr[key][1], 1):6.1%}" if key in ovr else " " * 10
        print(f"  {key:<28} Rhubarb set {rh:6.2%}   {cell}   "
              f"{seconds / max(cpu[key], 1e-9):6.1f}x real time")
    print("  (speed: CPU time; Rhubarb's includes its start-up, a process per clip)")
    print(f"each speaker's clips as one recording ({len(voices)} recordings, Rhubarb set):")
    for key, (rh, speed) in whole.items():
        print(f"  {key:<28} Rhubarb set {rh:6.2%}   {speed:6.1f}x real time")
    for key, target in (("with text", 0.92), ("with text, adapted", 0.92),
                        ("audio only (words)", 0.88), ("audio only (words), adapted", 0.88)):
        rh = score[key][0] / max(score[key][1], 1)
        print(f"verdict {key}: Rhubarb set {rh:.2%}, target >= {target:.0%}: "
              f"{'MET' if rh >= target else 'MISSED'}")
