"""Word-boundary accuracy and speed of the aligner against synthesisers' own word times.

Run: ``python benchmarks/alignment.py`` (``--quick`` for a 16-sentence smoke run, ``--limit N``
for N sentences, ``--voices espeak|other`` for one table, ``--no-pocketsphinx`` to skip the slow
systems).

Corpus: the sentences below (numbers, money, times, dates, acronyms, names, questions, short and
long), spoken by two synthesiser families, each measured in its own table:

- espeak-ng (formant synthesis) at two voices and two rates (:data:`CONDITIONS`);
- "other voices": Flite's voices made from recordings of people (:data:`flite_speech.CONDITIONS`: the
  ``kal16`` diphone voice and the ``slt``, ``rms``, ``awb`` statistical parametric voices, two at
  a faster rate), through ``benchmarks/flite_speech.py``. Needs the Debian package ``libflite1``
  (``apt-get install libflite1``); without it the table is skipped with the reason printed.
  MBROLA voices (real diphones driven by espeak-ng) were the first choice, but Debian has them
  outside ``main`` (non-free), the only component the machines' apt sources list.

Ground truth: the synthesiser's word times, one per whitespace token (tokens spoken as several
words, "$42.50", are one). For espeak-ng (``aligner.speech.synthesis.synthesize``) a token *starts* at the
earlier of espeak's word event and its first phone event, and *ends* where its last phone ends;
espeak's pause phones (``_:`` after punctuation, ``_`` between sentences) are outside words, so a
pause lies between one token's end and the next one's start. For Flite a token starts where its
first segment starts and ends where its last segment ends (Flite's ``pau`` segments are outside
words). Every token contributes two boundaries, its start and its end, compared as absolute
differences in milliseconds, with two adjustments (the figures without them are printed too, as
"raw"):

- espeak's word event for a word starting with a stop ("total") comes at the start of the stop's
  silent closure, while the previous word's last phone runs on until the burst, so the two words
  overlap by the closure (40-60 ms). Our aligner never overlaps words (captions and visemes want
  one word at a time) and gives the closure to the word it starts, so the ground-truth end of a
  word is cut at the next word's start: ``end = min(end, next.start)``.
- espeak sometimes speaks two tokens under one word event ("on the"): the second token has no
  ground truth and the first one's end covers both; those boundaries are not compared.

Systems:

- ``uniform``: tokens spread over the clip in proportion to their character offsets;
- ``pocketsphinx``: raw pocketsphinx forced alignment (:func:`aligner.speech.backends.sphinx.acoustic_spans`
  with ``plain=True``: the whole clip as it is, pocketsphinx's two passes; times clipped to the
  clip), on the tokens it reaches (the others are counted as not aligned and left out of its
  error figures): pocketsphinx as it comes, without the permissive path's cut, dither and trim;
- ``ours``: :func:`aligner.align` (default backend ``auto``: the espeak-ng reference warp, or
  pocketsphinx when the reference does not sound like the clip, see
  :data:`aligner.speech.alignment.MAX_REFERENCE_COST`);
- ``ours-fallback``: :func:`aligner.align` with ``backend="fallback"`` (the phone-class HMM with
  the duration model; fast, permissive);
- ``ours-permissive``: :func:`aligner.align` with ``backend="pocketsphinx"``, what ``auto`` does
  without espeak-ng: pocketsphinx where it reaches, the fallback elsewhere, every token timed.

Per stage: the "(reached)" rows compare every system on the tokens raw pocketsphinx reached, so
the permissive path's own gain is seen apart from the tokens pocketsphinx loses.

Caveat printed with the results: our default backend warps espeak-ng reference speech onto the
clip, so on the espeak-ng table the reference engine is the same as the one that made the test
audio (the voice and the rate differ in three of the four conditions; the rate of the reference
is estimated from the clip). The Flite table is the honest view for other voices.
Speed is audio seconds per CPU second of this process (``time.process_time``), BLAS limited to one
thread. Latency: the clips are cut into 1 s chunks (text cut at the character espeak was saying at
the cut) and fed to :class:`aligner.speech.stream.StreamAligner`; p99 wall and CPU time per ``feed``.
The streamed words (after ``finish``) are scored like the others, on those clips (2 s or more).
Phones: for each truth phone onset, the distance to our nearest phone start (a lip-sync view).
Each table ends with its verdict against the targets, and the permissive path's against
raw pocketsphinx.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

SENTENCES = [
    "Hello there, how are you doing today?",
    "Your appointment is confirmed for Tuesday at 3:45pm.",
    "The total comes to $42.50, including tax.",
    "I can transfer you to the billing department right now.",
    "Sure.",
    "Yes, absolutely!",
    "Could you spell your last name for me, please?",
    "My name is Samantha, and I'm calling from Riverside Dental.",
    "We have 3 openings next week: Monday, Wednesday, and Friday.",
    "The FBI and the CIA both declined to comment on the report.",
    "NASA launched the probe in 1997, and it reached Saturn in 2004.",
    "Please hold while I look that up.",
    "Is your date of birth 12/25/1985?",
    "Your order number is 4815162342.",
    "The meeting moved from the 3rd floor to the 21st floor.",
    "Our API handles about 50% more traffic than last year.",
    "Dr. Patel will see you at 10am on Thursday.",
    "I'm sorry, I didn't catch that. Could you repeat it?",
    "The package weighs 2.5 kilograms and ships tomorrow.",
    "Great! I have booked a table for four at Luigi's.",
    "Do you want the premium plan for $19.99 a month, or the basic plan for $9?",
    "Thank you for calling Acme Insurance, this is Jordan speaking.",
    "The wifi password is on the back of the router.",
    "Absolutely, we ship to Canada, Mexico, and the UK.",
    "Your balance is 1,204 dollars and 17 cents.",
    "Okay.",
    "Let me check whether Doctor Nguyen is available on Friday afternoon.",
    "The flight departs at 6:15 and lands at 9:40 local time.",
    "She scored in the 99th percentile on the exam.",
    "Would you like me to text you a confirmation?",
    "R&D spent roughly 3 million dollars on the prototype.",
    "Quixotic zorblaxian frobnicators rarely cooperate.",
    "The temperature will drop to 5 degrees overnight.",
    "Press 1 for sales, 2 for support, or 0 for an operator.",
    "I understand your frustration, and I want to help fix this.",
    "Your prescription will be ready after 4pm.",
    "We are open Monday through Friday, 9 to 5.",
    "The CEO of OpenAI spoke at the conference in San Francisco.",
    "How many people will be joining you?",
    "The invoice total is $1,250.",
    "Can I get your email address, please?",
    "He finished the marathon in 3 hours and 12 minutes.",
    "That's correct, the refund was processed on March 3rd.",
    "Is there anything else I can help you with today?",
    "Your ticket number is AB 1234.",
    "Mister Rodriguez asked for a window seat.",
    "Interest rates rose by 0.25% this quarter.",
    "The museum opens at 8:30 and closes at 17:00.",
    "Hmm, let me think about that for a second.",
    "Please bring two forms of identification to your appointment.",
    "Our new location is on 5th Avenue, next to the bakery.",
    "I will send the documents by Friday, at the latest.",
    "Wow, that is wonderful news!",
    "Approximately 7,500 customers signed up in January.",
    "The quick brown fox jumps over the lazy dog.",
    "Our support team is available 24 hours a day, 7 days a week.",
    "Alright, you're all set. Have a great weekend!",
    "Your reservation at the Grand Hotel is for 2 nights.",
    "Is this the correct address: 742 Evergreen Terrace?",
    "The vaccine is recommended for adults over 65.",
    "No problem at all.",
    "We received your payment of $250 on the 14th.",
    "Tchaikovsky and Dvorak are among her favourite composers.",
    "Could you confirm the last 4 digits of your card?",
]

CONDITIONS = [("en-us", 150), ("en-us", 200), ("en+m3", 150), ("en+m3", 200)]


def _uniform(text: str, tokens, duration: float):
    n = max(1, len(text))
    return [(t.char_start / n * duration, t.char_end / n * duration) for t in tokens]


def _chunk_feeds(synth, seconds=1.0):
    """Cut a synthesis into ``seconds`` chunks with the text espeak was saying in each."""
    sr = synth.sample_rate
    step = int(seconds * sr)
    cuts_t = np.arange(step, len(synth.samples), step) / sr
    cuts_c = []
    for t in cuts_t:
        c = len(synth.text)
        for w in synth.words:
            if w.end > t:
                frac = 0.0 if t <= w.start else (t - w.start) / max(1e-6, w.end - w.start)
                c = w.char_start + int(round(frac * (w.char_end - w.char_start)))
                break
        cuts_c.append(max(c, cuts_c[-1] if cuts_c else 0))
    sb = [0, *[int(t * sr) for t in cuts_t], len(synth.samples)]
    cb = [0, *cuts_c, len(synth.text)]
    return [(synth.samples[sb[i]:sb[i + 1]], synth.text[cb[i]:cb[i + 1]]) for i in range(len(sb) - 1)]


def _cut_overlaps(words):
    """(start, end) ground truth per token, None where espeak gives none (see the docstring)."""
    out = []
    for k, w in enumerate(words):
        if w is None:
            out.append((None, None))
            continue
        nxt = words[k + 1] if k + 1 < len(words) else None
        if k + 1 < len(words) and nxt is None:  # this word's end also covers the next token
            end = None
        else:
            end = min(w.end, nxt.start) if nxt is not None else w.end
        out.append((w.start, end))
    return out


def _figures(errors: list[float]) -> tuple[float, float, float, float]:
    e = np.array(errors) * 1000
    if len(e) == 0:
        return (float("nan"),) * 4
    return float(e.mean()), float(np.median(e)), float((e <= 20).mean() * 100), float((e <= 50).mean() * 100)


@dataclass
class _Family:
    """A synthesiser with its conditions: ``speak(text, voice, setting)`` gives a Synthesis."""

    name: str
    conditions: list[tuple[str, float]]
    speak: Callable[[str, str, float], Any]
    is_phone: Callable[[str], bool]  # a truth phone that is a speech sound (not a pause)
    label: str  # how a condition's setting reads


@dataclass
class _Scores:
    """Everything measured on one family's clips, per system."""

    systems: list[str]
    errors: dict[str, list[float]] = field(default_factory=dict)
    raw_errors: dict[str, list[float]] = field(default_factory=dict)
    reached_errors: dict[str, list[float]] = field(default_factory=dict)  # pocketsphinx's tokens
    phone_errors: dict[str, list[float]] = field(default_factory=dict)
    aligned: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0
    clips: int = 0
    skipped: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu_latencies: list[float] = field(default_factory=list)
    stream_errors: list[float] = field(default_factory=list)  # the streamed words, at the end

    def __post_init__(self) -> None:
        for table in (self.errors, self.raw_errors, self.reached_errors):
            table.update({s: [] for s in self.systems})
        self.phone_errors.update({s: [] for s in self.systems if s.startswith("ours")})
        self.aligned.update({s: 0 for s in self.systems})
        self.cpu.update({s: 0.0 for s in self.systems})


def _run_systems(s, tokens, systems: list[str], decoder, scores: _Scores) -> dict[str, list]:
    """Each system's (start, end) per token (None where it gave none) and its phones."""
    from aligner.speech.alignment import align
    from aligner.speech.backends.sphinx import acoustic_spans
    from aligner.speech.pronounce import token_phones

    results: dict[str, list] = {}
    phones: dict[str, list] = {}
    backends = {"ours": "auto", "ours-fallback": "fallback", "ours-permissive": "acoustic"}
    for name in systems:
        t0 = time.process_time()
        if name == "uniform":
            results[name] = _uniform(s.text, tokens, s.duration)
        elif name == "pocketsphinx":
            prons = [token_phones(t.word) for t in tokens]
            try:
                results[name] = acoustic_spans(s.samples, s.sample_rate, tokens, prons, decoder,
                                               plain=True)
            except RuntimeError:  # counted as no token aligned
                results[name] = [None] * len(tokens)
        else:
            a = align(s.samples, s.sample_rate, s.text, backend=backends[name])
            results[name] = [(w.start, w.end) for w in a.words]
            phones[name] = [p.start for p in a.phones if p.phone != "sil"]
        scores.cpu[name] += time.process_time() - t0
    return results | {f"{k} phones": v for k, v in phones.items()}


def _score_clip(s, family: _Family, systems: list[str], decoder, scores: _Scores,
                stream: bool) -> None:
    from aligner.speech.stream import StreamAligner
    from aligner.speech.text import tokenize

    tokens = tokenize(s.text)
    truth = {w.char_start: w for w in s.words}
    raw = [truth.get(t.token_start) for t in tokens]
    gt = _cut_overlaps(raw)
    scores.seconds += s.duration
    scores.tokens += len(tokens)
    scores.clips += 1
    results = _run_systems(s, tokens, systems, decoder, scores)
    reached = results.get("pocketsphinx", [()] * len(tokens))
    onsets = np.array([p.start for p in s.phones if p.word_index >= 0 and family.is_phone(p.phone)])
    for name in scores.phone_errors:
        starts = np.array(results[f"{name} phones"])
        if len(starts) and len(onsets):
            scores.phone_errors[name] += np.min(np.abs(starts[None] - onsets[:, None]), 1).tolist()
    for name in systems:
        spans = results[name]
        scores.aligned[name] += sum(sp is not None for sp in spans)
        for sp, g, r, ps in zip(spans, gt, raw, reached, strict=True):
            if sp is None:
                continue
            errs = [abs(sp[i] - g[i]) for i in (0, 1) if g[i] is not None]
            scores.errors[name] += errs
            if ps is not None:
                scores.reached_errors[name] += errs
            if r is not None:
                scores.raw_errors[name] += [abs(sp[0] - r.start), abs(sp[1] - r.end)]
    if stream and s.duration >= 2.0:
        sa = StreamAligner(s.sample_rate)
        for pcm, chunk_text in _chunk_feeds(s):
            t0, c0 = time.perf_counter(), time.process_time()
            sa.feed(pcm, chunk_text)
            scores.latencies.append(time.perf_counter() - t0)
            scores.cpu_latencies.append(time.process_time() - c0)
        words = sa.finish().words
        scores.stream_errors += [abs(x - y) for w, g in zip(words, gt, strict=True)
                                 for x, y in zip((w.start, w.end), g, strict=True) if y is not None]


def _evaluate(family: _Family, sentences: list[str], systems: list[str], decoder) -> _Scores:
    scores = _Scores(systems)
    n = len(sentences) * len(family.conditions)
    for voice, setting in family.conditions:
        for text in sentences:
            try:
                s = family.speak(text, voice, setting)
            except ValueError as exc:  # the synthesiser's words do not match the text's tokens
                scores.skipped.append(str(exc))
                continue
            _score_clip(s, family, systems, decoder, scores, stream=True)
            if scores.clips % 16 == 0:
                print(f"  {family.name}: {scores.clips}/{n} clips", file=sys.stderr)
    return scores


def _not_better(ours: tuple[float, ...], theirs: tuple[float, ...]) -> list[str]:
    """The accuracy figures (of :func:`_figures`) on which ``ours`` is not strictly better."""
    return [label for label, a, b, lower in zip(("mean", "median", "<=20ms", "<=50ms"), ours,
                                                theirs, (True, True, False, False), strict=True)
            if not (a < b if lower else a > b)]


def _verdict(scores: _Scores) -> str:
    """Ours against the targets and against the uniform and pocketsphinx peers."""
    ours = _figures(scores.errors["ours"])
    tokens = 100 * scores.aligned["ours"] / max(1, scores.tokens)
    speed = scores.seconds / scores.cpu["ours"] if scores.cpu["ours"] else float("inf")
    misses = []
    if not ours[0] <= 15:
        misses.append(f"mean {ours[0]:.1f} > 15 ms")
    if not ours[2] >= 85:
        misses.append(f"{ours[2]:.1f}% < 85% within 20 ms")
    if not ours[3] >= 98:
        misses.append(f"{ours[3]:.1f}% < 98% within 50 ms")
    if tokens < 100:
        misses.append(f"{tokens:.1f}% tokens")
    if speed < 50:
        misses.append(f"{speed:.0f}x < 50x real time")
    for peer in ("uniform", "pocketsphinx"):
        if peer not in scores.systems:
            continue
        worse = _not_better(ours, _figures(scores.errors[peer]))
        if worse:
            misses.append(f"not strictly better than {peer} on {', '.join(worse)}")
    return "MET" if not misses else "MISSED: " + "; ".join(misses)


def _permissive_verdict(scores: _Scores) -> str | None:
    """The permissive path (no espeak-ng) against raw pocketsphinx, figure by figure."""
    if "pocketsphinx" not in scores.systems:
        return None
    worse = _not_better(_figures(scores.errors["ours-permissive"]),
                        _figures(scores.errors["pocketsphinx"]))
    return "strictly better on every figure" if not worse else f"NOT better on {', '.join(worse)}"


def _report(family: _Family, scores: _Scores) -> None:
    conds = ", ".join(f"{v}@{family.label.format(x)}" for v, x in family.conditions)
    print(f"\n== {family.name}: {scores.clips} clips ({conds}), {scores.seconds:.0f} s audio, "
          f"{scores.tokens} tokens, {2 * scores.tokens} boundaries; compared: "
          f"{len(scores.errors['ours'])} (raw: {len(scores.raw_errors['ours'])})")
    for why in scores.skipped:
        print(f"skipped a clip: {why}")
    print(f"{'system':<24}{'mean ms':>9}{'median':>9}{'<=20ms':>9}{'<=50ms':>9}"
          f"{'tokens':>10}{'x realtime':>12}")
    for name in scores.systems:
        mean, med, p20, p50 = _figures(scores.errors[name])
        cpu = scores.cpu[name]
        speed = scores.seconds / cpu if cpu > 0 else float("inf")
        print(f"{name:<24}{mean:9.1f}{med:9.1f}{p20:8.1f}%{p50:8.1f}%"
              f"{100 * scores.aligned[name] / max(1, scores.tokens):9.1f}%{speed:12.0f}")
    for name in scores.systems:
        mean, med, p20, p50 = _figures(scores.raw_errors[name])
        print(f"{name + ' (raw)':<24}{mean:9.1f}{med:9.1f}{p20:8.1f}%{p50:8.1f}%")
    if "pocketsphinx" in scores.systems:
        print("on the tokens raw pocketsphinx reached (per-stage view of the permissive path):")
        for name in scores.systems:
            mean, med, p20, p50 = _figures(scores.reached_errors[name])
            print(f"{name + ' (reached)':<24}{mean:9.1f}{med:9.1f}{p20:8.1f}%{p50:8.1f}%")
    for name, errs in scores.phone_errors.items():
        e = np.array(errs) * 1000
        if len(e):
            print(f"phone onsets, {name}: each truth phone onset to our nearest phone start: "
                  f"median {np.median(e):.1f} ms, {np.mean(e <= 20) * 100:.1f}% within 20 ms")
    if scores.latencies:
        lat = np.array(scores.latencies) * 1000
        cl = np.array(scores.cpu_latencies) * 1000
        print(f"stream: {len(lat)} chunks of 1 s, per-chunk latency p50 "
              f"{np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms wall; CPU "
              f"time p50 {np.percentile(cl, 50):.1f} ms, p99 {np.percentile(cl, 99):.1f} ms "
              f"(target <= 30 ms; wall time includes waiting for a core on a busy machine, load "
              f"average {os.getloadavg()[0]:.1f})")
        mean, med, p20, p50 = _figures(scores.stream_errors)
        print(f"stream: word boundaries of those clips as streamed (after finish): mean "
              f"{mean:.1f} ms, median {med:.1f} ms, {p20:.1f}% within 20 ms, {p50:.1f}% within "
              f"50 ms")
    print(f"verdict (ours, targets: mean <= 15 ms, >= 85% within 20 ms, >= 98% within 50 ms, "
          f"100% tokens, >= 50x real time, strictly better than uniform and pocketsphinx): "
          f"{_verdict(scores)}")
    permissive = _permissive_verdict(scores)
    if permissive:
        print(f"verdict (ours-permissive, no espeak-ng, vs raw pocketsphinx): {permissive}")


def _families() -> tuple[list[_Family], str | None]:
    """The espeak-ng family, and Flite's when it loads (else the reason it does not)."""
    from aligner.speech.pronounce import espeak_to_arpabet
    from aligner.speech.synthesis import synthesize

    families = [_Family("espeak-ng", CONDITIONS, lambda t, v, r: synthesize(t, v, int(r)),
                        lambda p: bool(espeak_to_arpabet(p)), "{:.0f}wpm")]
    try:
        import flite_speech
    except ImportError as exc:
        return families, f"flite_speech did not import ({exc})"
    why = flite_speech.available()
    if why is None:
        families.append(_Family("flite (other voices)", flite_speech.CONDITIONS,
                                lambda t, v, x: flite_speech.synthesize(t, v, x),
                                lambda p: p != "pau", "x{:.2g} duration"))
    return families, why


def main(argv: list[str] | None = None) -> int:
    from aligner.speech.alignment import align
    from aligner.speech.backends.sphinx import _decoder

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 sentences, for a smoke run")
    parser.add_argument("--limit", type=int, default=0,
                        help="only N sentences, spread over the list (0: all)")
    parser.add_argument("--voices", choices=("all", "espeak", "other"), default="all",
                        help="which synthesiser family to measure")
    parser.add_argument("--no-pocketsphinx", action="store_true", help="skip the slow peer")
    parser.add_argument("--corpus", metavar="PATH",
                        help="instead of the synthesiser tables: a folder of speech with known "
                             "times (truth.json; see benchmarks/corpus_eval.py), e.g. "
                             "../shared/corpora/timit-dev")
    args = parser.parse_args(argv)
    if args.corpus:
        import corpus_eval

        corpus_eval.run(args.corpus, args.limit)
        return 0
    sentences = SENTENCES[::4] if args.quick else SENTENCES
    if args.limit:
        sentences = sentences[:: max(1, len(sentences) // args.limit)][: args.limit]
    systems = ["uniform", "ours", "ours-fallback"] + (
        [] if args.no_pocketsphinx else ["ours-permissive", "pocketsphinx"])
    decoder = None if args.no_pocketsphinx else _decoder()
    align(np.zeros(16000, np.int16), 16000, "warm up the tables")  # load dictionaries once
    families, why = _families()
    if args.voices == "other":
        families = families[1:]
    elif args.voices == "espeak":
        families = families[:1]
    print(f"systems: {', '.join(systems)}; {len(sentences)} sentences")
    if why is not None and args.voices != "espeak":
        print(f"other voices: SKIPPED, Flite is not available: {why} "
              f"(apt-get install libflite1)")
    for family in families:
        scores = _evaluate(family, sentences, systems, decoder)
        _report(family, scores)
    print("\ncaveat: 'ours' warps espeak-ng reference speech (voice en-us) onto the clip: on the "
          "espeak-ng clips the reference engine made the test audio too (same voice in the en-us "
          "conditions, other rates); the Flite table has voices made from recordings of people.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
