"""Viseme agreement on a folder of human (or any) speech with known phones (``visemes.py
--corpus``), beside Rhubarb Lip Sync 1.14.

The corpus is a folder in the evaluation corpora's format (``truth.json`` with ``phones`` in
TIMIT's 61 symbols, see ``benchmarks/corpus_eval.py``): its phones, closures joined to their
stop (``tcl t`` is one T, starting at the closure: the lips close for the closure), glottal stops
and pauses silent, are the truth. Ours: the text path (:func:`aligner.align`, then
:func:`aligner.visemes.refine_alignment`, as ``aligner visemes --text`` does) and the audio-only
paths (:func:`aligner.visemes.estimate_phones`: the phones of the words recognised, the
default, and the phone loops), each turned into cues by the same motion as every renderer.
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
import wave
from pathlib import Path

import numpy as np

__all__ = ["run"]

FPS = 100
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


def ovr_score(truth: np.ndarray, ours: np.ndarray, lead: float) -> tuple[int, int]:
    k = int(round(lead * FPS))
    n = min(len(truth), len(ours))
    ok = np.zeros(n, bool)
    for d in range(k + 1):
        ok[: n - d] |= ours[: n - d] == truth[d:n]
    return int(ok.sum()), n


def run(folder: str, rhubarb: str | None, limit: int = 0) -> None:
    from processes import timed_run

    from aligner.speech.alignment import align
    from aligner.visemes import METHODS, Motion, cues, estimate_phones, refine_alignment
    from aligner.visemes.model import PhoneModel

    root = Path(folder)
    truth_all = json.loads((root / "truth.json").read_text())
    items = [v for v in truth_all.values() if v.get("phones")]
    if limit:
        items = items[:limit]
    if not items:
        print(f"corpus {folder}: no utterance has truth phones; nothing to score")
        return
    motion = Motion()
    PhoneModel.load()
    program = shutil.which(rhubarb) if rhubarb else None
    ours = ["with text", *(f"audio only ({m})" for m in METHODS)]
    systems = ours + (["Rhubarb with dialog", "Rhubarb recognition", "Rhubarb phonetic"]
                      if program else [])
    score = {s: [0.0, 0] for s in systems}
    ovr = {s: [0, 0] for s in ours}
    cpu = {s: 0.0 for s in systems}
    seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="visemes-corpus-") as tmp:
        for n, it in enumerate(items):
            with wave.open(str(root / it["wav"])) as w:
                rate = w.getframerate()
                pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
            dur = len(pcm) / rate
            seconds += dur
            truth = truth_phones(it["phones"])
            t_rh, t_ovr = _frames(truth, "rhubarb", dur), _frames(truth, "oculus", dur)
            t0 = time.process_time()
            phones = {"with text": refine_alignment(pcm, rate, align(pcm, rate, it["text"]))}
            cpu["with text"] += time.process_time() - t0
            for method in METHODS:
                key = f"audio only ({method})"
                t0 = time.process_time()
                phones[key] = estimate_phones(pcm, rate, method=method)
                cpu[key] += time.process_time() - t0
            for key, ph in phones.items():
                c, f = rhubarb_score(t_rh, _cue_frames(cues(ph, "rhubarb", motion=motion), dur,
                                                       "X"))
                score[key][0] += c
                score[key][1] += f
                c, f = ovr_score(t_ovr, _cue_frames(cues(ph, "oculus", motion=motion), dur,
                                                    "sil"), motion.lead)
                ovr[key][0] += c
                ovr[key][1] += f
            if program:
                d = Path(tmp)
                with wave.open(str(d / "clip.wav"), "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(rate)
                    w.writeframes(pcm.tobytes())
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
                    c, f = rhubarb_score(t_rh, frames)
                    score[key][0] += c
                    score[key][1] += f
            if (n + 1) % 20 == 0:
                print(f"  {n + 1}/{len(items)} clips", flush=True)
    print(f"\nvisemes on {folder}: {len(items)} clips, {seconds:.0f} s "
          f"(Rhubarb set: +-{WINDOW * 1000:.0f} ms, half credit for a neighbouring shape; "
          f"OVR: lead {motion.lead * 1000:.0f} ms)")
    if not program:
        print("  Rhubarb Lip Sync: not found (--rhubarb PATH); ours alone")
    for key in systems:
        rh = score[key][0] / max(score[key][1], 1)
        cell = f"OVR {ovr[key][0] / max(ovr[key][1], 1):6.1%}" if key in ovr else " " * 10
        print(f"  {key:<26} Rhubarb set {rh:6.1%}   {cell}   "
              f"{seconds / max(cpu[key], 1e-9):6.1f}x real time")
    print("  (speed: CPU time; Rhubarb's includes its start-up, a process per clip)")
    for key, target in (("with text", 0.92), ("audio only (words)", 0.88)):
        rh = score[key][0] / max(score[key][1], 1)
        print(f"verdict {key}: Rhubarb set {rh:.1%}, target >= {target:.0%}: "
              f"{'MET' if rh >= target else 'MISSED'}")
