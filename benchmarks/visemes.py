"""Viseme benchmark: frame agreement with ground truth and speed, beside Rhubarb Lip Sync 1.14.

Speech is synthesised with espeak-ng, which reports when it spoke each phone: those phones,
mapped to ARPAbet, are the ground truth. Truth phones and ours (aligned with the text, or
recognised from the audio alone) go through the same viseme table; the truth is one shape per
phone, ours is the full motion (coarticulation lead, minimum holds, merges). A frame (100 fps)
agrees when our shape is the truth's shape at that time or within the coarticulation lead after
it (we anticipate on purpose).

"audio only" uses the small phone model shipped in ``aligner/data`` (trained on espeak-ng
voices other than the ones below, on random dictionary words); "audio only (pocketsphinx)" is
pocketsphinx's phone-loop decoder, which knows nothing of espeak.

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
from aligner.viseme_model import PhoneModel
from aligner.viseme_sets import espeak_phones, get_set
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
        clips.append((text, syn, pcm, list(espeak_phones(syn.phones))))
    total = sum(len(c[2]) / 16000 for c in clips)

    t_align = t_refine = 0.0
    model = PhoneModel.load()
    t_audio = {"model": 0.0, "pocketsphinx": 0.0}
    startup = {}
    results: dict[str, list] = {"truth phones": [], "with text": [],
                                "with text (aligner timing)": [], "audio only": [],
                                "audio only (pocketsphinx)": []}
    for method in t_audio:  # start-up once (model load), timed apart
        t0 = time.process_time()
        estimate_phones(clips[0][2][:1600], 16000, method=method)
        startup[method] = time.process_time() - t0
    for _text, _syn, pcm, truth in clips:
        dur = len(pcm) / 16000
        t0 = time.process_time()
        aligned = list(align(pcm, 16000, _text).phones)
        t_align += time.process_time() - t0
        t0 = time.process_time()
        refined = model.force_align(pcm, 16000, aligned)
        t_refine += time.process_time() - t0
        heard = {}
        for method in t_audio:
            t0 = time.process_time()
            heard[method] = estimate_phones(pcm, 16000, method=method)
            t_audio[method] += time.process_time() - t0
        for key, phones in (("truth phones", truth), ("with text", refined),
                            ("with text (aligner timing)", aligned),
                            ("audio only", heard["model"]),
                            ("audio only (pocketsphinx)", heard["pocketsphinx"])):
            results[key].append((dur, truth, phones))

    print(f"\nframe agreement at {FPS} fps on {total:.1f} s of espeak-ng speech "
          f"({len(clips)} clips, {len({v for _, v, _ in items})} voices), "
          f"lead {motion.lead * 1000:.0f} ms allowed")
    print(f"{'input':<26} {'oculus':>8} {'rhubarb':>8}   Rhubarb 1.14 (published, its set)")
    for key, rows in results.items():
        cells = []
        for vset in ("oculus", "rhubarb"):
            num = den = 0.0
            for dur, truth, phones in rows:
                tf = _frames(truth, vset, dur)
                of = _cue_frames(cues(phones, vset, motion=motion, end=dur), dur)
                num += agreement(tf, of, motion.lead) * len(tf)
                den += len(tf)
            cells.append(f"{num / den:6.1%}")
        anchor = f"{RHUBARB[key]:.0%}" if key in RHUBARB else "-"
        print(f"{key:<26} {cells[0]:>8} {cells[1]:>8}   {anchor}")

    # speed: from an existing timeline (phones known), from audio + text, audio only
    phones_all, t = [], 0.0
    for dur, truth, _ in results["truth phones"]:
        phones_all += [Phone(p.phone, p.start + t, p.end + t) for p in truth]
        t += dur
    tl = Timeline(utterances=(Utterance("agent", 0.0, t, "", phones=tuple(phones_all)),),
                  duration=t)
    reps = 20
    t0 = time.process_time()
    for _ in range(reps):
        for vset in ("oculus", "rhubarb"):
            timeline_cues(tl, vset, motion=motion)
    t_tl = (time.process_time() - t0) / (2 * reps)
    t_cues = t_tl * total / t
    print(f"\nspeed, CPU time of this process (one core; the machine is shared), "
          f"{total:.1f} s of audio:")
    print(f"  from a timeline   {t / t_tl:9.0f}x real time   (target >= 1000x)")
    print(f"  audio + text      {total / (t_align + t_refine + t_cues):9.1f}x real time   "
          f"(aligner alone {total / t_align:.1f}x, re-timing alone {total / t_refine:.0f}x; "
          f"target: as fast as the aligner)")
    print(f"  audio only        {total / t_audio['model']:9.1f}x real time   (target >= 30x; "
          f"Rhubarb 1.14: ~{RHUBARB['x real time (recognition)']:.0f}x recognition, "
          f"~{RHUBARB['x real time (phonetic)']:.0f}x phonetic, +{RHUBARB['start-up s']} s/file)")
    print(f"  audio only, pocketsphinx phone loop {total / t_audio['pocketsphinx']:.1f}x real time")
    print(f"  start-up once per process: model {startup['model']:.2f} s, pocketsphinx "
          f"{startup['pocketsphinx']:.2f} s")
    print("\nRhubarb Lip Sync 1.14 cannot run here (no binary, no network): its figures are the "
          "published anchor on synthetic voices, not measured on this audio.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
