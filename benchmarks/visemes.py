"""Viseme benchmark: frame agreement with ground truth and speed, beside Rhubarb Lip Sync 1.14.

Speech is synthesised with espeak-ng, which reports when it spoke each phone: those phones,
mapped to ARPAbet, are the ground truth. Truth phones and ours (aligned with the text, or
recognised from the audio alone) go through the same viseme table; the truth is one shape per
phone, ours is the full motion (coarticulation lead, minimum holds, merges). A frame (100 fps)
agrees when our shape is the truth's shape at that time or within the coarticulation lead after
it (we anticipate on purpose); "strict" allows no lead.

Rhubarb Lip Sync 1.14 cannot run here (no binary, no network): its figures are the published
anchor measured on synthetic voices, printed beside ours for comparison.

Run: ``python benchmarks/visemes.py [--quick]``
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from aligner.alignment import align
from aligner.audio import resample
from aligner.speech import synthesize
from aligner.timeline import Phone, Timeline, Utterance
from aligner.viseme_sets import espeak_to_arpabet, get_set
from aligner.visemes import Motion, cues, estimate_phones, timeline_cues

SENTENCES = [
    ("Hello, thanks for calling Bright Dental. How can I help you today?", "en-us", 175),
    ("I can book you in for Tuesday at three thirty, or Wednesday morning.", "en-us+f3", 165),
    ("Please bring your insurance card and a photo ID to the appointment.", "en-us", 190),
    ("The quick brown fox jumps over the lazy dog, while my old cat sleeps.", "en-us+m3", 170),
    ("Would you like me to send a reminder by text message before your visit?", "en-us+f2", 180),
    ("Your order number is four two seven, and it ships tomorrow by express mail.", "en-us", 160),
    ("Maybe people believe him, but we moved the meeting to Monday afternoon.", "en-us+m1", 175),
    ("She sells sea shells by the shore; judge the measure of pleasure yourself.", "en-us+f4", 170),
]
RHUBARB = {"with text": 0.83, "audio only": 0.82, "x real time (recognition)": 8.0,
           "x real time (phonetic)": 28.0, "start-up s": 0.3}
FPS = 100


def truth_phones(syn) -> list[Phone]:
    """espeak's phone events -> ARPAbet phones (multi-phone mnemonics split evenly)."""
    out: list[Phone] = []
    for p in syn.phones:
        arpa = espeak_to_arpabet(p.phone)
        if not arpa:  # a mark with no sound of its own: the phone before takes its time
            if out:
                out[-1] = Phone(out[-1].phone, out[-1].start, p.end)
            continue
        step = (p.end - p.start) / len(arpa)
        for i, a in enumerate(arpa):
            out.append(Phone(a, p.start + i * step, p.start + (i + 1) * step))
    return out


def _frames(phones, vset, duration: float) -> np.ndarray:
    """One shape per phone (no motion), sampled at FPS; rest outside phones."""
    vs = get_set(vset)
    n = int(duration * FPS)
    out = np.full(n, str(vs.rest), dtype=object)
    for p in phones:
        shapes = vs.shapes(p.phone)
        a, b = int(round(p.start * FPS)), int(round(p.end * FPS))
        if len(shapes) == 2:
            m = int(round((p.start + (p.end - p.start) * 0.6) * FPS))
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


def agreement(truth: np.ndarray, ours: np.ndarray, lead: float) -> float:
    """Share of frames where ours equals the truth now or within ``lead`` s after."""
    k = int(round(lead * FPS))
    n = min(len(truth), len(ours))
    ok = np.zeros(n, bool)
    for d in range(k + 1):
        ok[: n - d] |= ours[: n - d] == truth[d:n]
    return float(ok.mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="three sentences only")
    args = ap.parse_args()
    motion = Motion()
    items = SENTENCES[:3] if args.quick else SENTENCES
    print(f"synthesising {len(items)} sentences with espeak-ng ...", file=sys.stderr)
    clips = []
    for text, voice, rate in items:
        syn = synthesize(text, voice=voice, rate=rate)
        pcm = resample(syn.samples, syn.sample_rate, 16000)
        clips.append((text, syn, pcm, truth_phones(syn)))
    total = sum(len(c[2]) / 16000 for c in clips)

    t_align = t_audio = 0.0
    results: dict[str, list] = {"truth phones": [], "with text": [], "audio only": []}
    estimate_phones(clips[0][2][:16000], 16000)  # start-up once (model load), timed apart
    for _text, _syn, pcm, truth in clips:
        dur = len(pcm) / 16000
        t0 = time.perf_counter()
        aligned = list(align(pcm, 16000, _text).phones)
        t_align += time.perf_counter() - t0
        t0 = time.perf_counter()
        heard = estimate_phones(pcm, 16000)
        t_audio += time.perf_counter() - t0
        for key, phones in (("truth phones", truth), ("with text", aligned), ("audio only", heard)):
            results[key].append((dur, truth, phones))

    print(f"\nframe agreement at {FPS} fps on {total:.1f} s of espeak-ng speech "
          f"({len(clips)} clips, 5 voices), lead {motion.lead * 1000:.0f} ms allowed (strict in "
          f"brackets)")
    print(f"{'input':<14} {'oculus':>16} {'rhubarb':>16}   Rhubarb 1.14 (published, rhubarb set)")
    for key, rows in results.items():
        cells = []
        for vset in ("oculus", "rhubarb"):
            num = den = strict = 0.0
            for dur, truth, phones in rows:
                tf = _frames(truth, vset, dur)
                of = _cue_frames(cues(phones, vset, motion=motion, end=dur), dur)
                num += agreement(tf, of, motion.lead) * len(tf)
                strict += agreement(tf, of, 0.0) * len(tf)
                den += len(tf)
            cells.append(f"{num / den:6.1%} ({strict / den:5.1%})")
        anchor = f"{RHUBARB[key]:.0%}" if key in RHUBARB else "-"
        print(f"{key:<14} {cells[0]:>16} {cells[1]:>16}   {anchor}")

    # speed: from an existing timeline (phones known), from audio + text, audio only
    phones_all, t = [], 0.0
    for dur, truth, _ in results["truth phones"]:
        phones_all += [Phone(p.phone, p.start + t, p.end + t) for p in truth]
        t += dur
    tl = Timeline(utterances=(Utterance("agent", 0.0, t, "", phones=tuple(phones_all)),),
                  duration=t)
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        for vset in ("oculus", "rhubarb"):
            timeline_cues(tl, vset, motion=motion)
    t_tl = (time.perf_counter() - t0) / (2 * reps)
    t_cues = t_tl * total / t
    print(f"\nspeed on one core ({total:.1f} s of audio):")
    print(f"  from a timeline   {t / t_tl:9.0f}x real time   (target >= 1000x)")
    print(f"  audio + text      {total / (t_align + t_cues):9.1f}x real time   "
          f"(aligner alone {total / t_align:.1f}x; target: as fast as the aligner)")
    print(f"  audio only        {total / t_audio:9.1f}x real time   (target >= 30x; "
          f"Rhubarb 1.14: ~{RHUBARB['x real time (recognition)']:.0f}x recognition, "
          f"~{RHUBARB['x real time (phonetic)']:.0f}x phonetic, +{RHUBARB['start-up s']} s/file)")
    print("\nRhubarb Lip Sync 1.14 cannot run here (no binary, no network): its figures are the "
          "published anchor on synthetic voices, not measured on this audio.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
