"""Word and phone boundaries on a folder of speech with known times (``alignment.py --corpus``).

A corpus folder holds WAV files and a ``truth.json`` (the format of the evaluation corpora):
``{key: {"text", "wav", "tokens": [{"token", "start", "end"}], "phones"?: [{"phone", "start",
"end"}], "final_end_unreliable"?: bool}}``, the voice (speaker) being the key's folder. Every
token start and end is a boundary; the first start and the last end of an utterance are its
*edges* (breaths, lip smacks and room noise lie around them), the others *interior*. A final end
marked unreliable is left out.

Systems, side by side in one run:

- ``ours (cold)``: :func:`aligner.align`, each utterance on its own (no voice profile);
- ``ours (adapted)``: each utterance aligned with a voice profile learned from the *other*
  utterances of its voice (leave one out: what a call's later chunks, or the next call of the
  same agent, get); its speed is that of a live stream's chunks: aligning with the profile (and
  the guard that checks it fits) while learning from the clip, in one pass;
- speed of a voice's utterances aligned in turn with one profile that learns from each (as the
  calls of one agent are): the profile's guard checks each clip until the transform has fitted
  :data:`~aligner.speech.adaptation.TRUSTED_AFTER` in a row, then now and then, where the
  leave-one-out profiles above are new for every clip and so always checked;
- ``pocketsphinx``: raw pocketsphinx forced alignment (the whole clip, its two passes), on the
  tokens it reaches;
- ``uniform``: tokens spread over the clip by their characters.

Phones (when the truth has them, TIMIT's 61 symbols): closures are joined to their stop (``tcl
t`` is one ``T``), pauses dropped, and for every truth phone onset the distance to the nearest
phone start of a system is measured: ours (cold) beside raw pocketsphinx's phone alignment.

Speed: audio seconds per CPU second of this process, one BLAS thread. Streaming: each voice's
utterances of 2 s or more, one after the other as in a call, are cut into 1 s chunks (the text
cut where the truth says the voice is at the cut, inside a word if it falls there) and fed to
stream aligners (:class:`aligner.speech.stream.StreamAligner`) sharing one voice profile that starts empty and
learns as it goes: the CPU time of each ``feed``, p50 and p99.
"""

from __future__ import annotations

import json
import time
import wave
from collections import defaultdict
from pathlib import Path

import numpy as np

__all__ = ["boundary_errors", "read_clip", "run"]

#: a voice's utterances in turn, one profile learning from each (its guard sampled once trusted)
_IN_TURN = "ours, utterances in turn with one learning profile"
#: TIMIT's symbols as ARPAbet (closures and pauses are handled apart)
TIMIT = {"ax": "AH", "ix": "IH", "axr": "ER", "ax-h": "AH", "ux": "UW", "hv": "HH", "el": "L",
         "em": "M", "en": "N", "eng": "NG", "nx": "N", "dx": "D", "q": None}
_CLOSURES = {"bcl": "B", "dcl": "D", "gcl": "G", "pcl": "P", "tcl": "T", "kcl": "K"}
_PAUSES = {"h#", "pau", "epi"}


def read_clip(path: Path) -> tuple[np.ndarray, int]:
    """A corpus clip's samples (int16) and rate."""
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), np.int16), w.getframerate()


def boundary_errors(item: dict, spans: list) -> list[tuple[float, str]]:
    """(|error| s, "edge"/"interior") per scored boundary; None spans are not scored."""
    toks = item["tokens"]
    out = []
    for i, (t, sp) in enumerate(zip(toks, spans, strict=True)):
        if sp is None:
            continue
        if t["start"] is not None:
            out.append((abs(sp[0] - t["start"]), "edge" if i == 0 else "interior"))
        last = i == len(toks) - 1
        if t["end"] is not None and not (last and item.get("final_end_unreliable")):
            out.append((abs(sp[1] - t["end"]), "edge" if last else "interior"))
    return out


def _truth_onsets(phones: list[dict]) -> np.ndarray:
    """Onsets of the truth's speech phones, closures joined to their stop."""
    onsets = []
    prev = None
    for p in phones:
        sym = p["phone"]
        if sym in _PAUSES or TIMIT.get(sym, "") is None:
            prev = None
            continue
        if prev in _CLOSURES and _CLOSURES[prev] == sym.upper():
            prev = sym
            continue  # the stop's release continues its closure
        onsets.append(p["start"])
        prev = sym
    return np.array(onsets)


def _figures(errors: list[float]) -> str:
    e = np.array(errors) * 1000
    if not len(e):
        return "none"
    return (f"{e.mean():6.1f} {np.median(e):6.1f} {100 * np.mean(e <= 20):6.1f}% "
            f"{100 * np.mean(e <= 50):6.1f}% {e.max():6.0f}")


def _raw_pocketsphinx(pcm: np.ndarray, rate: int, text: str, decoder):
    """Raw pocketsphinx's word spans (None where it did not reach) and phone onsets."""
    from aligner.speech.backends.sphinx import acoustic_spans
    from aligner.speech.pronounce import token_phones
    from aligner.speech.text import tokenize

    tokens = tokenize(text)
    prons = [token_phones(t.word) for t in tokens]
    try:
        spans = acoustic_spans(pcm, rate, tokens, prons, decoder, plain=True)
    except RuntimeError:
        spans = [None] * len(tokens)
    onsets: list[float] = []
    try:  # the phones of its second pass, which acoustic_spans(plain=True) just ran
        al = decoder.get_alignment()
        onsets = [p.start / 100 - 0.1 for p in al.phones() if p.name not in ("SIL", "+NSN+",
                                                                                "+SPN+")]
    except (RuntimeError, AttributeError):
        pass
    return spans, np.array(onsets)


def _chunks(item: dict, pcm: np.ndarray, rate: int, seconds: float = 1.0):
    """``(pcm, text)`` pieces of ``seconds`` each, the text cut where the truth is at the cut."""
    text, toks = item["text"], item["tokens"]
    offsets, at = [], 0
    for t in toks:  # where each token's word stands in the text
        at = text.index(t["token"], at)
        offsets.append((at, at + len(t["token"])))
        at += len(t["token"])
    step = int(seconds * rate)
    cuts_s = list(range(step, len(pcm), step))
    cuts_c = []
    for c in cuts_s:
        t = c / rate
        char = len(text)
        for (a, b), tok in zip(offsets, toks, strict=True):
            if tok["end"] is not None and tok["end"] > t:
                if tok["start"] is None or t <= tok["start"]:
                    char = a
                else:
                    char = a + int(round((t - tok["start"]) / max(1e-6, tok["end"] - tok["start"])
                                         * (b - a)))
                break
        cuts_c.append(max(char, cuts_c[-1] if cuts_c else 0))
    sb, cb = [0, *cuts_s, len(pcm)], [0, *cuts_c, len(text)]
    return [(pcm[sb[i]:sb[i + 1]], text[cb[i]:cb[i + 1]]) for i in range(len(sb) - 1)]


def run(folder: str, limit: int = 0) -> None:
    """Print the corpus tables (see the module docstring)."""
    from aligner import align
    from aligner.speech.adaptation import VoiceProfile
    from aligner.speech.alignment import time_tokens
    from aligner.speech.backends.sphinx import _decoder
    from aligner.speech.pronounce import token_phones
    from aligner.speech.stream import StreamAligner
    from aligner.speech.text import tokenize

    root = Path(folder)
    truth = json.loads((root / "truth.json").read_text())
    items = [dict(v, key=k, voice=k.rsplit("/", 1)[0]) for k, v in truth.items()]
    if limit:
        items = items[:limit]
    voices = defaultdict(list)
    for it in items:
        voices[it["voice"]].append(it)
    errors: dict[str, list] = defaultdict(list)
    phone_err: dict[str, list] = defaultdict(list)
    cpu: dict[str, float] = defaultdict(float)
    reached = [0, 0]
    seconds = 0.0
    feeds: list[float] = []
    decoder = _decoder()
    align(np.zeros(16000, np.int16), 16000, "warm up")  # load the model and dictionaries once
    for n, (voice, its) in enumerate(voices.items()):
        clips = []
        for it in its:
            pcm, rate = read_clip(root / it["wav"])
            seconds += len(pcm) / rate
            tokens = tokenize(it["text"])
            prons = [token_phones(t.word) for t in tokens]
            t0 = time.process_time()
            cold = time_tokens(pcm, rate, it["text"], tokens, prons)
            cpu["ours (cold)"] += time.process_time() - t0
            cold = time_tokens(pcm, rate, it["text"], tokens, prons, learn=True)  # its statistics
            errors["ours (cold)"] += boundary_errors(it, cold.spans)
            clips.append((pcm, rate, tokens, prons, cold))
            n_tok = len(tokens)
            errors["uniform"] += boundary_errors(it, [(t.char_start / max(1, len(it["text"]))
                                                   * len(pcm) / rate,
                                                   t.char_end / max(1, len(it["text"]))
                                                   * len(pcm) / rate) for t in tokens])
            t0 = time.process_time()
            raw, raw_onsets = _raw_pocketsphinx(pcm, rate, it["text"], decoder)
            cpu["pocketsphinx"] += time.process_time() - t0
            reached[0] += sum(s is not None for s in raw)
            reached[1] += n_tok
            errors["pocketsphinx"] += boundary_errors(it, raw)
            if it.get("phones"):
                onsets = _truth_onsets(it["phones"])
                ours = np.array([a for ph in (cold.phones or []) for _, a, _ in ph])
                for name, starts in (("ours (cold)", ours), ("pocketsphinx", raw_onsets)):
                    if len(starts) and len(onsets):
                        phone_err[name] += np.min(np.abs(starts[None] - onsets[:, None]),
                                                  1).tolist()
        for i, (it, (pcm, rate, tokens, prons, _)) in enumerate(zip(its, clips, strict=True)):
            profile = VoiceProfile(voice)
            for j, other in enumerate(clips):
                if j != i:
                    profile.learn(other[4].stats)
            t0 = time.process_time()
            adapted = time_tokens(pcm, rate, it["text"], tokens, prons, profile=profile,
                                  learn=True)
            cpu["ours (adapted)"] += time.process_time() - t0
            errors["ours (adapted)"] += boundary_errors(it, adapted.spans)
        turn = VoiceProfile(voice)  # the voice's utterances aligned in turn, one profile
        for it, (pcm, rate, tokens, prons, _) in zip(its, clips, strict=True):  # learning
            t0 = time.process_time()
            done = time_tokens(pcm, rate, it["text"], tokens, prons, profile=turn, learn=True)
            turn.learn(done.stats)
            cpu[_IN_TURN] += time.process_time() - t0
        call = VoiceProfile(voice)  # a call of the voice: its utterances one after the other,
        for it, (pcm, rate, *_rest) in zip(its, clips, strict=True):  # the profile learning
            if len(pcm) / rate >= 2.0:
                stream = StreamAligner(rate, voice=call)
                for piece, piece_text in _chunks(it, pcm, rate):
                    t0 = time.process_time()
                    stream.feed(piece, piece_text)
                    feeds.append(time.process_time() - t0)
                stream.finish()
        print(f"  {n + 1}/{len(voices)} voices", flush=True)
    print(f"\ncorpus {folder}: {len(items)} utterances, {len(voices)} voices, {seconds:.0f} s; "
          f"raw pocketsphinx reached {reached[0]}/{reached[1]} tokens")
    print(f"{'system':18s} {'bounds':>6s} |  all: mean median <=20ms <=50ms worst | "
          f"interior: mean median <=20ms <=50ms worst | edges: mean median <=20 <=50 worst | x RT")
    for name in ("ours (cold)", "ours (adapted)", "pocketsphinx", "uniform"):
        e = errors[name]
        speed = f"{seconds / cpu[name]:5.0f}" if cpu.get(name) else "    -"
        print(f"{name:18s} {len(e):6d} | {_figures([x for x, _ in e])} | "
              f"{_figures([x for x, k in e if k == 'interior'])} | "
              f"{_figures([x for x, k in e if k == 'edge'])} | {speed}")
    print(f"speed of {_IN_TURN}: {seconds / cpu[_IN_TURN]:.0f} x real time (CPU)")
    if feeds:
        ms = np.array(feeds) * 1000
        print(f"\nstreaming, 1 s chunks, a voice profile learning as a call goes: {len(ms)} "
              f"chunks, CPU per chunk "
              f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
              f"max {ms.max():.1f} ms (target p99 <= 30 ms)")
    if phone_err:
        print("\nphone onsets (truth onset -> nearest phone start): mean median <=20ms <=50ms worst")
        for name, e in phone_err.items():
            print(f"{name:18s} {len(e):6d} | {_figures(e)}")
