"""Text-less agent audio in the timeline: how good and how fast the estimates are.

Agent speech without text comes as web binary frames (alignment off; here 16 kHz s16le, 200 ms
frames) or Twilio media (8 kHz mu-law, 20 ms frames). Each sentence of the viseme benchmark's
fixed list (espeak-ng, several voices and rates; ``benchmarks/visemes.py``) is fed as one such
utterance to :class:`aligner.session.Session`, and the timeline's agent utterance is compared
with the truth (the sentence and espeak's own word and phone times):

- words: recall (share of the spoken words found, in order, in the recognised text: longest
  common subsequence) and precision (share of the recognised words that are in it);
- word timing: share of the recognised words' time that lies on spoken words, and share of the
  spoken time the recognised words cover;
- visemes: frame agreement of the timeline's phones (full motion) with the truth in the OVR
  set, by the viseme benchmark's own rule (its ``misses()``: 100 fps, coarticulation lead
  allowed);
- speed: call audio seconds per CPU second of this process (one core; the machine is shared).

Systems: ``align=False`` (no words and no phones: the mouth stays closed), ``recognize=False``
(phones from the audio only: the acoustic phone loop) and ours (default: words recognised and
aligned, and their phones, :func:`aligner.visemes.heard_phones`: on a voice the aligner finds
espeak-like, as most of these clips, the shipped phone model's phones).
Targets (audio only): >= 85% OVR and >= 30x real time on one core.
Rhubarb Lip Sync 1.14 is not run here (``benchmarks/visemes.py --rhubarb`` runs it): its
published figures on synthetic voices (82% audio only, ~8x real time in recognition mode) are
printed beside ours.

With ``--corpus PATH`` (e.g. ``../shared/corpora/timit-dev``), each speaker instead is an agent
that never sends text, its clips in turn the utterances of its calls: ours with and without
the agent's voice profile learning from the words heard (recall, precision, the Rhubarb-set
viseme agreement of ``benchmarks/visemes_corpus.py``, speed); then agents taking turns on one
worker, two at a time, with the adapted decoders of the last few voices kept and with one.

Run: ``python benchmarks/textless.py [--quick] [--corpus PATH]``
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from visemes import CAUSES, SENTENCES, misses  # noqa: E402  (the same truth and rule)

from aligner.audio import encode, resample  # noqa: E402
from aligner.session import Session  # noqa: E402
from aligner.speech.recognize import word_overlap  # noqa: E402
from aligner.speech.synthesis import synthesize  # noqa: E402
from aligner.visemes import Motion  # noqa: E402
from aligner.visemes.sets import espeak_phones  # noqa: E402
from aligner.wire.events import AgentAudio, Stamped, TwilioMedia  # noqa: E402

FORMS = {  # name: (rate, encoding, frame seconds, event type)
    "web binary 16 kHz": (16000, "s16le", 0.2, AgentAudio),
    "twilio 8 kHz mu-law": (8000, "mulaw", 0.02, None),
}
SYSTEMS = {"align=False (no estimate)": {"align": False},
           "recognize=False (phones)": {"recognize": False},
           "ours (phones + words)": {}}
RHUBARB = {"audio only": 0.82, "x real time": 8.0}


def events(pcm: np.ndarray, rate: int, encoding: str, frame: float, kind) -> list[Stamped]:
    """One text-less agent utterance from t = 0, frames sent twice as fast as they play."""
    data = encode(pcm, encoding)
    step = round(frame * rate) * (2 if encoding == "s16le" else 1)
    out = []
    for k, i in enumerate(range(0, len(data), step)):
        ev = kind(data[i:i + step]) if kind else TwilioMedia(data[i:i + step], "MZ1")
        out.append(Stamped(k * frame / 2, "in", ev))
    return out


def tokens(text: str) -> list[str]:
    """Words as :func:`aligner.speech.recognize.word_overlap` counts them."""
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())


def union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping spans merged (espeak's adjacent words overlap by a few ms)."""
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def on(spans: list[tuple[float, float]], a: float, b: float) -> float:
    return sum(max(0.0, min(b, e) - max(a, s)) for s, e in spans)


def corpus(folder: str) -> None:
    """Each speaker of a corpus (the evaluation corpora's format) as an agent that never sends
    text: its clips in turn as the text-less utterances (web binary, 16 kHz) of its calls, each
    call a session; ours without a profile, and with the agent's profile learning from the
    words heard in every call before (``Session(voice=...)``, as ``--voice-profiles`` keeps).
    Visemes are scored where the truth has phones."""
    import json

    from corpus_eval import read_clip
    from visemes_corpus import _frames, phones_score, truth_phones

    from aligner.speech.adaptation import VoiceProfile

    root = Path(folder)
    agents: dict[str, list] = {}
    for key, it in json.loads((root / "truth.json").read_text()).items():
        agents.setdefault(key.rsplit("/", 1)[0], []).append(it)
    motion = Motion()
    names = ("ours, no profile", "ours, the agent's profile learning")
    rows = {n: np.zeros(6) for n in names}  # spoken, right, heard, agreement, frames, cpu
    seconds = 0.0
    for n, its in enumerate(agents.values()):
        profile = VoiceProfile("agent")
        for it in its:
            pcm = resample(*read_clip(root / it["wav"]), 16000)
            dur = len(pcm) / 16000
            seconds += dur
            truth = _frames(truth_phones(it["phones"]), "rhubarb", dur) if it.get("phones") \
                else None  # words only
            for name, voice in zip(names, (None, profile), strict=True):
                t0 = time.process_time()
                session = Session(16000, voice=voice)
                session.receive_all(events(pcm, 16000, "s16le", 0.2, AgentAudio))
                (u,) = session.finish().speaker("agent")
                cpu = time.process_time() - t0
                agree, frames = (0.0, 0) if truth is None else phones_score(
                    truth, list(u.phones), dur, motion)
                rows[name] += (len(tokens(it["text"])),
                               word_overlap(it["text"], u.text) * len(tokens(it["text"])),
                               len(tokens(u.text)), agree, frames, cpu)
        print(f"  {n + 1}/{len(agents)} agents", file=sys.stderr, flush=True)
    print(f"\n{folder}: {len(agents)} agents (speakers), their clips in turn as text-less "
          f"utterances, {seconds:.0f} s")
    print(f"{'system':<36} {'recall':>7} {'precis.':>7} {'Rhubarb set':>11} {'x real time':>11}")
    for name, (spoken, right, heard, agree, frames, cpu) in rows.items():
        visemes = f"{agree / frames:11.2%}" if frames else f"{'-':>11}"  # no truth phones
        print(f"{name:<36} {right / spoken:7.1%} {right / max(heard, 1):7.1%} {visemes} "
              f"{seconds / cpu:11.1f}")
    taking_turns(root, list(agents.values()))


def taking_turns(root: Path, agents: list[list[dict]]) -> None:
    """Agents that take turns on one worker: two at a time, each with a profile learned from
    the first half of its clips, their second halves' utterances alternating; x real time with
    the adapted decoders of the last ``ADAPTED_VOICES`` voices kept, beside one kept (each turn
    loads the other agent's again)."""
    import copy

    from corpus_eval import read_clip

    from aligner.session.textless import estimate
    from aligner.speech import recognize
    from aligner.speech.adaptation import VoiceProfile

    def read(it: dict) -> np.ndarray:
        return resample(*read_clip(root / it["wav"]), 16000)

    pairs = []
    for a, b in zip(agents[::2], agents[1::2], strict=False):
        profiles = []
        for k, its in enumerate((a, b)):
            profile = VoiceProfile(f"agent-{len(pairs)}-{k}")
            for it in its[:len(its) // 2]:
                estimate(read(it), 16000, voice=profile)
            profiles.append(profile)
        turns = [(profiles[k], read(its[i])) for i in range(len(a) // 2, min(len(a), len(b)))
                 for k, its in enumerate((a, b))]
        pairs.append(turns)
    kept = recognize.ADAPTED_VOICES
    speed = {}
    for keep in (kept, 1):
        recognize.ADAPTED_VOICES = keep
        recognize._adapted.clear()
        cpu = seconds = 0.0
        for turns in pairs:
            for profile, pcm in turns:
                mine = copy.deepcopy(profile)  # the stored profile: one transform per agent
                t0 = time.process_time()
                estimate(pcm, 16000, voice=mine)
                cpu += time.process_time() - t0
                seconds += len(pcm) / 16000
        speed[keep] = seconds / cpu
    recognize.ADAPTED_VOICES = kept
    print(f"\nagents taking turns on one worker ({len(pairs)} pairs, {seconds:.0f} s of "
          f"alternating utterances): {speed[kept]:.1f}x real time with the last {kept} voices' "
          f"adapted decoders kept, {speed[1]:.1f}x with one kept")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 sentences instead of 12")
    ap.add_argument("--corpus", metavar="PATH",
                    help="instead: a folder of speech with known phones (truth.json), each "
                         "speaker an agent without text, with and without its voice profile")
    args = ap.parse_args()
    if args.corpus:
        corpus(args.corpus)
        return 0
    items = SENTENCES[::8] if args.quick else SENTENCES[::8] + SENTENCES[3::8] + SENTENCES[5::8]
    motion = Motion()
    print(f"synthesising {len(items)} sentences with espeak-ng ...", file=sys.stderr)
    clips = []
    for text, voice, wpm in items:
        syn = synthesize(text, voice=voice, rate=wpm)
        clips.append((text, syn, list(espeak_phones(syn.phones))))
    warm = Session(16000)  # load the recogniser, dictionaries and models once, untimed
    warm.receive_all(events(resample(clips[0][1].samples, clips[0][1].sample_rate, 16000)[:8000],
                            16000, "s16le", 0.2, AgentAudio))
    warm.finish()
    for form, (rate, encoding, frame, kind) in FORMS.items():
        print(f"\n{form}: {len(clips)} sentences, {len({v for _, v, _ in items})} voices")
        print(f"{'system':<28} {'recall':>7} {'precis.':>7} {'on speech':>9} {'covered':>8} "
              f"{'OVR':>6} {'x real time':>11}")
        rows: dict[str, list] = {}
        for text, syn, truth in clips:
            pcm = resample(syn.samples, syn.sample_rate, rate)
            feed = events(pcm, rate, encoding, frame, kind)
            dur = len(pcm) / rate
            spoken = union([(w.start, w.end) for w in syn.words])
            for name, options in SYSTEMS.items():
                t0 = time.process_time()
                session = Session(rate, encoding, **options)
                session.receive_all(feed)
                (u,) = session.finish().speaker("agent")
                cpu = time.process_time() - t0
                n_heard = len(tokens(u.text))
                right = word_overlap(text, u.text) * len(tokens(text))
                word_time = sum(w.end - w.start for w in u.words)
                hit = sum(on(spoken, w.start, w.end) for w in u.words)
                rows.setdefault(name, []).append(
                    (len(tokens(text)), right, n_heard, word_time, hit,
                     sum(e - s for s, e in spoken), misses(truth, u.phones, "oculus", dur, motion),
                     dur, cpu))
        for name, r in rows.items():
            spoken_n, right, heard_n, word_time, hit, speech, miss, dur, cpu = zip(*r, strict=True)
            frames = sum(m["frames"] for m in miss)
            ovr = 1 - sum(m[c] for m in miss for c in CAUSES) / frames
            print(f"{name:<28} {sum(right) / sum(spoken_n):7.1%} "
                  f"{sum(right) / max(1, sum(heard_n)):7.1%} "
                  f"{sum(hit) / max(1e-9, sum(word_time)):9.1%} {sum(hit) / sum(speech):8.1%} "
                  f"{ovr:6.1%} {sum(dur) / sum(cpu):11.1f}")
        ovr, speed = {}, {}
        for name, r in rows.items():
            ovr[name] = 1 - sum(x[6][c] for x in r for c in CAUSES) / sum(x[6]["frames"] for x in r)
            speed[name] = sum(x[7] for x in r) / max(1e-9, sum(x[8] for x in r))
        ours, phones = "ours (phones + words)", "recognize=False (phones)"
        print(f"verdict ({form}): OVR {ovr[ours]:.1%} (target >= 85%: "
              f"{'MET' if ovr[ours] >= 0.85 else 'MISSED'}; Rhubarb 1.14 "
              f"{RHUBARB['audio only']:.0%}); speed, target >= 30x (Rhubarb 1.14 "
              f"~{RHUBARB['x real time']:.0f}x): default with words {speed[ours]:.1f}x "
              f"{'MET' if speed[ours] >= 30 else 'MISSED'}, phones only "
              f"{speed[phones]:.1f}x {'MET' if speed[phones] >= 30 else 'MISSED'}")
    print("\nRhubarb Lip Sync 1.14: its published figures on synthetic voices, not measured on "
          "this audio (benchmarks/visemes.py --rhubarb runs it).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
