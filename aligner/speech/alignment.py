"""``align(pcm, sample_rate, text)``: word, character and phone times of one clip.

The pipeline: tokenise and normalise the text (:mod:`aligner.speech.text`), pronounce every token
(:mod:`aligner.speech.pronounce`), time the tokens with a backend, then derive character and phone
times. Backends:

- ``"reference"``: dynamic time warping against espeak-ng speech of the same text (a male or a
  female voice by the clip's pitch, :func:`aligner.speech.backends.reference.reference_voice`), carrying espeak's
  word and phone times over with sub-frame interpolation (the best on TTS audio; needs the
  ``speech`` extra), see :mod:`aligner.speech.backends.reference`;
- ``"acoustic"``: forced alignment on pocketsphinx's acoustic model with our own search
  (:mod:`aligner.speech.backends.acoustic`): every pronunciation and reading of each word,
  optional pauses and noise, boundaries at their posterior mean, utterance edges on the energy
  of their phones, per-word confidence, and adaptation to a voice
  (:class:`aligner.speech.adaptation.VoiceProfile`); the best on human and neural voices;
- ``"pocketsphinx"``: pocketsphinx forced alignment (:mod:`aligner.speech.backends.sphinx`) for the tokens it
  reaches, with the pauses it stretched words over taken back out
  (:func:`aligner.speech.refine.trim_pauses`), the fallback's times for the others (permissive; slower:
  about 25x real time);
- ``"fallback"``: the permissive core (always works): a phone-class HMM over energy and spectral
  balance with the phone-duration model (:mod:`aligner.speech.backends.hmm`), or for clips under 0.3 s silence
  detection plus the duration model alone (:mod:`aligner.speech.durations`); then boundary refinement.

``"auto"`` (default) uses ``"reference"`` when espeak-ng is installed and its speech warps onto
the clip closely (a voice like espeak's; the warp cost is at most :data:`MAX_REFERENCE_COST`),
else ``"acoustic"``. A clip of 2 s or more is first judged on its start (a clip clearly
unlike espeak-ng skips the whole warp), and a stream judges its voice once for all its chunks
(:data:`VOICE_SECONDS`). Any backend failure falls back, so every token is always timed and
times are always monotonic.

>>> import numpy as np
>>> a = align(np.zeros(16000, np.int16), 16000, "Hello, world!", backend="fallback")
>>> [w.word for w in a.words], a.duration
(['Hello', 'world'], 1.0)
>>> a.words[0].end <= a.words[1].start
True
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import MAX_RATE, MIN_RATE, as_int16, check_rate
from ..errors import AlignmentError, AudioError, MissingBackendError
from ..timeline import Char, Phone, Word
from .durations import PHONE_SECONDS, expected_seconds, place
from .pronounce import token_phones
from .signal import HOP, frame_db, speech_mask
from .text import Token, tokenize

if TYPE_CHECKING:
    from .adaptation import VoiceProfile
    from .backends.reference import Reference

__all__ = ["BACKENDS", "MAX_REFERENCE_COST", "MISMATCH_BELOW", "VOICE_SECONDS", "Alignment",
           "Timing", "align", "aligner_rate", "assemble", "time_tokens", "voice_verdict"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "reference", "acoustic", "pocketsphinx", "fallback")
#: Above this warp cost (:func:`aligner.speech.backends.reference.reference_spans`) the espeak-ng reference does
#: not sound like the clip's voice, and ``"auto"`` times the clip with pocketsphinx instead.
#: Measured on the alignment benchmark: whole espeak-ng clips cost under 2.5, Flite's voices
#: over 3.4; 1 s stream chunks of espeak-ng speech (cut mid-word) reach 3.4 in 5% of cases.
MAX_REFERENCE_COST = 3.3
#: Seconds of a stream's judged speech (its chunks' whole words, see :func:`time_tokens`) after
#: which its verdict on the voice holds: a voice like espeak's stays on the reference whatever one
#: odd chunk costs, a voice clearly unlike it (mean cost over ``MAX_REFERENCE_COST + 0.2``) goes
#: straight to pocketsphinx, without the warp. Measured on the alignment benchmark's 1 s chunks,
#: whole words only: first chunks of espeak-ng speech cost at most 3.0 (99th percentile), of
#: Flite's voices at least 3.4 (1st percentile).
VOICE_SECONDS = 1.0
_UNLIKE_MARGIN = 0.2
#: Clips at least this long (seconds) are judged on their start first (the warp of about a third
#: of the clip, :func:`aligner.speech.backends.reference.prefix_cost`): one clearly unlike espeak-ng goes to
#: pocketsphinx without the whole warp. Measured on the alignment benchmark's clips: prefix costs
#: of espeak-ng speech at most 3.1, of Flite's voices at least 3.2 (95% over 3.4).
_PREFIX_ABOVE = 2.0
_SIL = 0.03  # gaps between words at least this long become "sil" phones
#: A clip whose confidence (:attr:`Alignment.confidence`) is below this most likely does not say
#: its text: :attr:`Alignment.mismatch`.
MISMATCH_BELOW = 0.5


@dataclass(frozen=True, slots=True)
class Alignment:
    """Timings of one clip: seconds from its first sample.

    ``words``: one per token of ``text`` holding a letter or digit, in order; ``chars``: every
    character of ``text``; ``phones``: ARPAbet (no stress) with ``word_index``, ``"sil"`` (index
    -1) for pauses. ``backend`` names what timed it. ``confidence``: how well the audio fits the
    text, 0..1 (the words' confidences weighted by their length), and ``mismatch``: True when it
    is below :data:`MISMATCH_BELOW`, the text most likely not what the audio says (other words,
    audio cut short, another language); None/False where the backend gives no confidence.
    ``adapted``: whether a voice's transform (a profile, or ``adapt=True``) was used. A word's ``onset`` is set where the backend
    timed its phones itself (the reference warp carries espeak-ng's phone events over); it is
    None where they are spread over the word by the duration model (pocketsphinx, the fallback,
    a word espeak-ng said under another's word event, a word split between stream chunks). Not
    part of the JSON.
    """

    duration: float
    words: tuple[Word, ...] = ()
    chars: tuple[Char, ...] = ()
    phones: tuple[Phone, ...] = ()
    text: str = ""
    backend: str = "fallback"
    confidence: float | None = None
    mismatch: bool = False
    adapted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``aligner align``: duration, words (with ``confidence`` where the backend
        gives one), chars, phones; the clip's ``confidence`` and ``mismatch`` where known."""
        r = _r
        d: dict[str, Any] = {"duration": r(self.duration)}
        if self.confidence is not None:
            d["confidence"] = r(self.confidence)
            d["mismatch"] = self.mismatch
        d["words"] = [{"word": w.word, "start": r(w.start), "end": r(w.end),
                       "char_start": w.char_start, "char_end": w.char_end,
                       **({"confidence": r(w.confidence)} if w.confidence is not None else {})}
                      for w in self.words]
        d["chars"] = [{"char": c.char, "start": r(c.start), "end": r(c.end)} for c in self.chars]
        d["phones"] = [{"phone": p.phone, "start": r(p.start), "end": r(p.end),
                        "word_index": p.word_index} for p in self.phones]
        return d


def _r(x: float) -> float:
    return round(float(x), 4)


def aligner_rate(sample_rate: int) -> int:
    """``sample_rate`` as an int if the aligner can work at it (8000-48000 Hz,
    :func:`aligner.audio.check_rate`).

    Raises:
        AlignmentError: another rate (the message gives the range).
    """
    try:
        return check_rate(sample_rate)
    except AudioError as exc:
        raise AlignmentError(f"{exc}: the aligner works on audio at {MIN_RATE}-{MAX_RATE} Hz; "
                             "resample it (aligner align --rate)") from None


def align(pcm: Any, sample_rate: int | None, text: str, *, backend: str = "auto",
          voice: VoiceProfile | None = None, adapt: bool = False,
          progress: Callable[..., None] | None = None) -> Alignment:
    """Align ``text`` to the speech in ``pcm``.

    Args:
        pcm: the samples: int16, other integers in int16 units, or floats in -1..1; mono, or
            a few channels mixed down (:func:`aligner.audio.as_int16`); or a
            ``pydub.AudioSegment`` (any width and channels: mixed to mono, see
            :func:`aligner.audio.as_pcm`).
        sample_rate: samples per second (any, e.g. 8000-48000); for an ``AudioSegment``,
            None aligns it at its own rate and a rate resamples it to that rate.
        text: what the audio says (any punctuation, numbers, symbols).
        backend: one of :data:`BACKENDS`.
        voice: the voice's profile (:class:`aligner.speech.adaptation.VoiceProfile`): the
            acoustic backend uses its transform where it fits the clip better than the model,
            and the profile learns from the clip (save it to keep what it learned).
        adapt: adapt to the clip itself first (two passes: align, learn the clip's voice, align
            again with it), for a recording of one voice with no profile yet.
        progress: called as ``progress(fraction_done, what_now)`` as the work goes on
            (pronouncing the words, timing them, assembling), e.g. an
            :func:`aligner.progress.reporter`.

    Returns:
        An :class:`Alignment`: one word per token, every character, phones; monotonic times
        inside ``[0, duration]``.

    Raises:
        AlignmentError: a sample rate outside 8000-48000 Hz, or a bad backend name.
        AudioError: ``pcm`` is not audio (:func:`aligner.audio.as_int16`).
        MissingBackendError: ``backend="reference"`` without the ``speech`` extra.
    """
    from ..audio import as_pcm

    pcm, sample_rate = as_pcm(pcm, sample_rate)
    sample_rate = aligner_rate(sample_rate)
    if backend not in BACKENDS:
        raise AlignmentError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    report = progress or _quiet
    pcm = as_int16(pcm)
    tokens = tokenize(text)
    report(0.0, f"pronouncing {len(tokens)} words")
    prons = []
    for k, t in enumerate(tokens, 1):
        prons.append(token_phones(t.word))
        if k % 200 == 0:
            report(0.1 * k / len(tokens), f"pronouncing {len(tokens)} words")
    report(0.1, f"timing {len(tokens)} words in {len(pcm) / sample_rate:.1f} s of audio")
    learn = voice is not None or adapt
    timing = time_tokens(pcm, sample_rate, text, tokens, prons, backend=backend, profile=voice,
                         learn=learn)
    if adapt and timing.stats is not None:
        from .adaptation import VoiceProfile

        report(0.5, "timing them again, adapted to the clip's voice")
        own = VoiceProfile("clip")
        if voice is not None and voice.stats is not None:
            own.learn(voice.stats)
        own.learn(timing.stats)
        if own.transform is not None:
            again = time_tokens(pcm, sample_rate, text, tokens, prons, backend=timing.backend,
                                profile=own)
            timing = replace(again, stats=timing.stats)
    if voice is not None:
        voice.learn(timing.stats)
    report(0.95, f"assembling ({timing.backend})")
    result = replace(assemble(text, tokens, prons, timing.spans, len(pcm) / sample_rate,
                              timing.backend, timing.phones, timing.confidence),
                     adapted=timing.adapted)
    report(1.0, f"aligned ({timing.backend})")
    return result


def _quiet(done: float, note: str = "") -> None:
    return None


@dataclass(frozen=True, slots=True)
class Timing:
    """What a backend found: ``spans`` (start, end) per token, the ``backend`` name, and where
    the backend times phones itself, ``phones``: per token ``(ARPAbet, start, end)`` (an empty
    list for a token whose phones are to be spread by the duration model). ``cost``: the
    reference warp's cost (:data:`MAX_REFERENCE_COST`) where it was measured: of the whole clip,
    or of its start alone when that was enough to judge the voice unlike espeak-ng's.
    ``reference_voice``: the espeak-ng voice chosen for the reference by the clip's pitch
    (:func:`aligner.speech.backends.reference.reference_voice`), None when no pitch was found or none was
    needed. ``confidence``: per token, 0..1, where the backend scores its fit; ``stats``: the
    acoustic backend's adaptation statistics (when asked to learn); ``adapted``: whether a voice
    profile's transform was used."""

    spans: list[tuple[float, float]]
    backend: str
    phones: list[list[tuple[str, float, float]]] | None = None
    cost: float | None = None
    reference_voice: str | None = None
    confidence: list[float] | None = None
    stats: dict | None = None
    adapted: bool = False


def time_tokens(pcm: np.ndarray, sample_rate: int, text: str, tokens: tuple[Token, ...],
                prons: list[tuple[tuple[str, ...], ...]], *, backend: str = "auto",
                voice: tuple[float, float] = (0.0, 0.0),
                partial: tuple[bool, bool] = (False, False),
                reference_voice: str | None = None, profile: VoiceProfile | None = None,
                learn: bool = False) -> Timing:
    """Time each token with a backend (see :func:`align`); never fails, never skips a token.

    ``voice``: (sum of cost x seconds, seconds) of earlier clips of the same voice (a stream's
    earlier chunks, see :attr:`Timing.cost`): ``auto`` then judges the voice by the running mean
    of their costs and this clip's, not this clip's alone, and after :data:`VOICE_SECONDS` of
    them by theirs only. ``partial``: whether the first and last token are pieces of words split
    with the neighbouring chunks, left out of the cost (the reference says "Hel" as a word).
    ``reference_voice``: the espeak-ng voice of the reference (a stream's, chosen on its first
    chunk with a pitch: :attr:`Timing.reference_voice`); by default chosen by the clip's pitch.
    ``profile``: the voice's profile, whose transform the acoustic backend may use (a profile
    with a transform learned the voice from the acoustic backend, so the voice is judged unlike
    espeak-ng's without the reference warp); ``learn``:
    return the acoustic backend's adaptation statistics (:attr:`Timing.stats`).
    """
    if not tokens:
        return Timing([], "fallback")
    duration = len(pcm) / sample_rate
    db = frame_db(pcm, sample_rate)
    mask = speech_mask(db)
    seconds = [sum(expected_seconds(p) for p in pr) for pr in prons]
    audible = duration >= 0.25 and bool(mask.any())
    known = voice_verdict(voice)
    if known is None and profile is not None and profile.transform is not None:
        known = False  # the profile learned the voice from the acoustic backend: not espeak's
    cost: float | None = None
    reference = None
    # the reference's voice follows the clip's pitch, when it may be warped
    if reference_voice is None and audible and (
            backend == "reference" or (backend == "auto" and known is not False)):
        from .backends.reference import reference_voice as by_pitch

        reference_voice = by_pitch(pcm, sample_rate)
    ref_voice = reference_voice or "en-us"
    if backend == "auto" and known is None and audible and duration >= _PREFIX_ABOVE:
        reference, first = _start_cost(pcm, sample_rate, text, tokens, seconds, mask, ref_voice)
        if first is not None and voice_verdict((first, 1.0), 0.0) is False:
            log.debug("the start of the clip does not sound like the reference (cost %.2f): "
                      "pocketsphinx", first)
            known, cost = False, first
    warp = backend == "reference" or (backend == "auto" and known is not False)
    if warp and audible:
        try:
            from .backends.reference import reference_spans

            spans, phones, cost, word_costs = reference_spans(
                pcm, sample_rate, text, tokens, speech_seconds=float(mask.sum()) * HOP,
                expected_seconds=sum(seconds), voice=ref_voice, mask=mask, partial=partial,
                reference=reference)
            # No refinement here: espeak's times carried over are already sub-frame exact, and
            # measured, snapping to energy edges made them worse (3.5 -> 3.9 ms mean error).
            if known is None and cost is not None:
                so_far = (voice[0] + cost * duration, voice[1] + duration)
                known = voice_verdict(so_far, 0.0, 0.0)
            if backend == "reference" or known is not False:
                return Timing(_clamp(spans, duration), "reference", phones, cost,
                              reference_voice, [_warp_confidence(c) for c in word_costs])
            log.debug("the reference does not sound like the clip (cost %.2f): acoustic", cost)
        except MissingBackendError:
            if backend == "reference":
                raise
        except Exception as exc:  # the fallback below always works: never lose a token
            log.warning("reference alignment failed (%s); using the fallback", exc)
    found: list[tuple[float, float] | None] = [None] * len(tokens)
    unfit = None  # confidences when the text cannot fit the audio
    if backend in ("acoustic", "auto") and audible:
        timing = _acoustic(pcm, sample_rate, tokens, prons, db, profile, learn, cost,
                           reference_voice)
        if timing.backend == "acoustic":
            return timing
        unfit = timing.confidence
    if backend == "pocketsphinx" and audible:
        found = _pocketsphinx_spans(pcm, sample_rate, tokens, prons, db, partial[1])
        if all(f is not None for f in found):
            return Timing(_clamp(found, duration), "pocketsphinx", cost=cost)
    from .refine import refine

    weights = [x or 0.05 for x in seconds]
    pause_after = [_pause_after(text, t) for t in tokens]
    spans = place(weights, mask, pause_after=pause_after)
    if duration >= 0.3 and mask.any():
        try:
            from .backends.hmm import hmm_spans

            spans = hmm_spans(pcm, sample_rate, prons, speech_seconds=float(mask.sum()) * HOP,
                              guide=_clamp(spans, duration)) or spans
        except Exception as exc:
            log.warning("phone-class alignment failed (%s); using the duration model", exc)
    spans = _clamp(refine(_clamp(spans, duration), pcm, sample_rate, db), duration)
    if any(f is not None for f in found):  # pocketsphinx where it reached, the HMM elsewhere
        spans = _clamp([f if f is not None else s for f, s in zip(found, spans, strict=True)],
                       duration)
        return Timing(spans, "pocketsphinx", cost=cost)
    return Timing(spans, "fallback", cost=cost, confidence=unfit)


def _start_cost(pcm: np.ndarray, sample_rate: int, text: str, tokens: tuple[Token, ...],
                seconds: list[float], mask: np.ndarray, voice: str,
                ) -> tuple[Reference | None, float | None]:
    """espeak-ng's reference speech of the clip's text in ``voice`` (:func:`aligner.speech.backends.reference.
    speak`, which the warp of the whole clip reuses) and the warp cost of the clip's start on
    its start (:func:`aligner.speech.backends.reference.prefix_cost`); None for what cannot be made or
    measured."""
    reference = None
    try:
        from .backends.reference import prefix_cost, speak

        reference = speak(text, float(mask.sum()) * HOP, sum(seconds), voice)
        return reference, prefix_cost(pcm, sample_rate, text, tokens, seconds, mask,
                                      reference=reference)
    except MissingBackendError:
        return None, None
    except Exception as exc:  # the whole warp will try again, and fall back if it must
        log.warning("reference alignment of the clip's start failed (%s)", exc)
        return reference, None


def voice_verdict(voice: tuple[float, float], seconds: float = VOICE_SECONDS,
                  margin: float = _UNLIKE_MARGIN) -> bool | None:
    """Whether ``voice`` (cost x seconds, seconds) sounds like espeak's: None (undecided) before
    ``seconds`` of evidence, or when its mean cost is above the limit by less than ``margin``.

    >>> voice_verdict((2.0, 1.0)), voice_verdict((4.0, 1.0)), voice_verdict((3.4, 1.0))
    (True, False, None)
    >>> voice_verdict((2.0, 0.5)) is None  # not enough evidence yet
    True
    """
    if voice[1] <= 0 or voice[1] < seconds:
        return None
    mean = voice[0] / voice[1]
    return True if mean <= MAX_REFERENCE_COST else (
        False if mean > MAX_REFERENCE_COST + margin else None)


def _pocketsphinx_spans(pcm: np.ndarray, sample_rate: int, tokens: tuple[Token, ...],
                        prons: list[tuple[tuple[str, ...], ...]], db: np.ndarray,
                        cut: bool = False) -> list[tuple[float, float] | None]:
    """pocketsphinx's spans with the pauses it stretched words over taken back out (None for
    the tokens it did not reach, all None when it failed). ``cut``: the clip ends mid-word (a
    stream chunk): no second search for the last word."""
    from .backends.sphinx import acoustic_spans
    from .refine import trim_pauses

    try:
        found = acoustic_spans(pcm, sample_rate, tokens, prons, retry=not cut)
    except Exception as exc:
        log.warning("pocketsphinx alignment failed (%s); using the phone-class HMM", exc)
        return [None] * len(tokens)
    reached = [k for k, f in enumerate(found) if f is not None]
    trimmed = trim_pauses([found[k] for k in reached], [prons[k] for k in reached], pcm,
                          sample_rate, db)
    for k, span in zip(reached, trimmed, strict=True):
        found[k] = span
    return found


def _acoustic(pcm: np.ndarray, sample_rate: int, tokens: tuple[Token, ...],
              prons: list[tuple[tuple[str, ...], ...]], db: np.ndarray,
              profile: VoiceProfile | None, learn: bool, cost: float | None,
              reference_voice: str | None) -> Timing:
    """The acoustic backend's timing; when the clip cannot hold its text (too short for it), a
    Timing named ``"unfit"`` with no spans and zero confidence. A clip over 30 s is first timed
    roughly (by the acoustic model's context-independent phones, or where they find no path, by
    pocketsphinx), which gives the pieces it is cut into."""
    from ..audio import resample
    from .backends.acoustic import align_tokens

    duration = len(pcm) / sample_rate

    def anchors() -> list[tuple[float, float] | None]:  # where the acoustic model finds no path
        return _pocketsphinx_spans(pcm, sample_rate, tokens, prons, db)

    transform = profile.transform if profile is not None else None
    guard = transform is not None and profile.should_check()
    try:
        r = align_tokens(pcm if sample_rate == 16000 else resample(pcm, sample_rate, 16000),
                         tokens, prons, transform=transform, learn=learn, anchors=anchors,
                         guard=guard)
    except ValueError as exc:  # the text cannot fit the audio: say so in the confidence
        log.debug("acoustic alignment not possible (%s); the fallback", exc)
        return Timing([], "unfit", cost=cost, confidence=[0.0] * len(tokens))
    if transform is not None:
        profile.checked(r.adapted if guard else None)
    return Timing(_clamp(r.spans, duration), "acoustic", r.phones, cost, reference_voice,
                  r.confidence, r.stats, r.adapted)


def _warp_confidence(cost: float | None) -> float:
    """A word's confidence from its mean warp distance: 0.5 at :data:`MAX_REFERENCE_COST`."""
    if cost is None:
        return 0.5
    return float(1.0 / (1.0 + np.exp((cost - MAX_REFERENCE_COST) / 0.3)))


def _pause_after(text: str, tok: Token) -> bool:
    tail = text[tok.char_end:tok.token_end]
    return any(c in ",.;:!?)—–-…" for c in tail)


def _clamp(spans: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Monotonic, non-overlapping spans inside ``[0, duration]``.

    Starts are kept (made non-decreasing); a word that overlaps the next one ends where the next
    begins: the silent closure of a stop ("total" after "the") belongs to the word it starts.
    """
    starts = np.maximum.accumulate(np.clip([s for s, _ in spans], 0.0, duration)).tolist()
    out = []
    for i, (_, e) in enumerate(spans):
        nxt = starts[i + 1] if i + 1 < len(starts) else duration
        out.append((starts[i], min(max(float(e), starts[i]), nxt)))
    return out


def assemble(text: str, tokens: tuple[Token, ...], prons: list[tuple[tuple[str, ...], ...]],
             spans: list[tuple[float, float]], duration: float, backend: str = "fallback",
             phone_times: list[list[tuple[str, float, float]]] | None = None,
             confidence: list[float | None] | None = None) -> Alignment:
    """Build the :class:`Alignment` (words, chars, phones) from token spans.

    Args:
        text: the clip's text; tokens/prons: from :func:`tokenize`/:func:`token_phones`.
        spans: monotonic (start, end) per token.
        duration: clip length in seconds.
        backend: name recorded in the result.
        phone_times: per token, phones the backend timed itself (kept inside the word's span,
            the first one from the word's start; where it starts is the word's ``onset``);
            tokens without them get their pronunciation spread by expected phone durations.
        confidence: per token, 0..1, where the backend gives one.

    Returns:
        The alignment; characters inside a word share its span in proportion, characters
        between words span the gap.
    """
    words = tuple(Word(t.word, s, e, t.char_start, t.char_end,
                       onset=_onset(phone_times, k, s, e),
                       confidence=None if confidence is None or confidence[k] is None
                       else round(float(confidence[k]), 4))
                  for k, (t, (s, e)) in enumerate(zip(tokens, spans, strict=True)))
    chars: list[Char] = []
    wi = 0
    for i, c in enumerate(text):
        while wi < len(words) and words[wi].char_end <= i:
            wi += 1
        w = words[wi] if wi < len(words) else None
        if w is not None and w.char_start <= i < w.char_end:
            n = w.char_end - w.char_start
            k = i - w.char_start
            d = (w.end - w.start) / n
            chars.append(Char(c, w.start + k * d, w.end if k == n - 1 else w.start + (k + 1) * d))
        else:
            prev_end = words[wi - 1].end if wi > 0 else (w.start if w else 0.0)
            nxt = w.start if w else prev_end
            a, b = (prev_end, nxt) if c.isspace() else ((prev_end, prev_end) if wi > 0 else (nxt, nxt))
            chars.append(Char(c, a, max(a, b)))
    phones: list[Phone] = []
    t = 0.0
    for k, (w, pr) in enumerate(zip(words, prons, strict=True)):
        if w.start - t >= _SIL:
            phones.append(Phone("sil", t, w.start, -1))
        timed = phone_times[k] if phone_times is not None and k < len(phone_times) else None
        if timed:
            a = w.start
            for j, (p, _, e) in enumerate(timed):
                e = w.end if j == len(timed) - 1 else min(max(e, a), w.end)
                phones.append(Phone(p, a, e, k))
                a = e
        else:
            seq = [p for word in pr for p in word] or ["AH"]
            weights = np.array([PHONE_SECONDS.get(p, 0.05) for p in seq])
            edges = w.start + (np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
                               * (w.end - w.start))
            edges[-1] = w.end  # exactly: the next word's phones may start right there
            phones += [Phone(p, float(edges[j]), float(edges[j + 1]), k)
                       for j, p in enumerate(seq)]
        t = w.end
    if duration - t >= _SIL:
        phones.append(Phone("sil", t, duration, -1))
    clip = None
    scored = [w for w in words if w.confidence is not None]
    if scored:
        weight = np.array([max(w.end - w.start, 0.01) for w in scored])
        clip = float(np.dot(weight, [w.confidence for w in scored]) / weight.sum())
    return Alignment(duration, words, tuple(chars), tuple(phones), text, backend, clip,
                     clip is not None and clip < MISMATCH_BELOW)


def _onset(phone_times: list[list[tuple[str, float, float]]] | None, k: int, start: float,
           end: float) -> float | None:
    """Where token ``k``'s first phone starts (inside its span), if the backend timed it."""
    timed = phone_times[k] if phone_times is not None and k < len(phone_times) else None
    return min(max(timed[0][1], start), end) if timed else None
