"""Phones for visemes from audio: refined on it when the text is known, or recognised from it.

:func:`text_phones` aligns audio with its text (:func:`aligner.align`) and refines the phones
(:func:`refine_alignment`): where espeak-ng's own speech of the text says they sound when the
aligner warped it onto the clip (:func:`by_sound`), else re-timed on the frame scores of
:class:`aligner.visemes.model.PhoneModel`; :func:`retime` re-times phones already aligned (a
recorded timeline with its audio, or live chunk by chunk); :func:`estimate_phones` recognises
phones from audio alone (no text): by default those of the words a recogniser heard
(:func:`heard_phones`), else by a phone loop. :mod:`aligner.visemes` turns them into mouth
shapes.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..audio import as_int16, check_rate, resample
from ..timeline import Phone, Word
from .sets import SETS

if TYPE_CHECKING:
    from ..speech.adaptation import VoiceProfile
    from ..speech.alignment import Alignment

__all__ = ["METHODS", "by_sound", "estimate_phones", "heard_phones", "pause_after",
           "pronunciation_variants", "refine_alignment", "refine_phones", "retime", "text_phones"]

_EPS = 1e-9


def retime(phones: Sequence[Phone], pcm: np.ndarray, sample_rate: int, *, start: float = 0.0,
           pauses: Collection[int] = (), context: float = 0.5,
           variants: Mapping[int, Sequence[tuple[str, ...]]] | None = None) -> list[Phone]:
    """``phones`` re-timed on their audio with the shipped phone model, stretch by stretch.

    Each stretch of phones without a gap between them keeps its first start and last end (the
    aligner's word edges are accurate) and is re-timed inside on the frame scores of
    :meth:`aligner.visemes.model.PhoneModel.force_align`, with ``context`` seconds of audio on
    each side for the features. Pure and local, so a recorded timeline and a live stream re-time
    alike; live, a stretch cut by a chunk edge is re-timed as two (the edge stays in place).

    Args:
        phones: time-ordered phones, on a clock where ``pcm`` starts at ``start``.
        pcm: mono int16 samples covering them (silence elsewhere is fine).
        sample_rate: their rate.
        start: the time of ``pcm``'s first sample (a live caller keeps only recent audio).
        pauses: word indexes after which the text allows a pause (:func:`pause_after`).
        context: seconds of audio around each stretch seen by the features.
        variants: other pronunciations by word index (:func:`pronunciation_variants`).

    Returns:
        The phones with new times; stretches not inside the audio keep theirs.
    """
    from .model import PhoneModel

    pcm = as_int16(pcm)
    model = PhoneModel.load()
    out: list[Phone] = []
    total = len(pcm) / sample_rate
    for run in _stretches(phones):
        a, b = run[0].start - start, run[-1].end - start
        if a < -_EPS or b > total + _EPS:
            out += run
            continue
        # round half up (not to even): a live caller's audio cut at an odd sample count rounds
        # the window's edges to the same samples as the whole audio does
        first = math.floor(max(0.0, a - context) * sample_rate + 0.5)
        w0 = first / sample_rate  # the window's start, on the clock of ``pcm``
        window = pcm[first:math.floor(min(total, b + context) * sample_rate + 0.5)]
        run_w = [Phone(p.phone, p.start - start - w0, p.end - start - w0, p.word_index)
                 for p in run]
        got = [Phone(p.phone, p.start + w0 + start, p.end + w0 + start, p.word_index)
               for p in model.force_align(window, sample_rate, run_w, span=(a - w0, b - w0),
                                          pauses=pauses, variants=variants)]
        if got:  # the model works in whole frames: the stretch's ends go back in place
            got[0] = Phone(got[0].phone, run[0].start, got[0].end, got[0].word_index)
            got[-1] = Phone(got[-1].phone, got[-1].start, run[-1].end, got[-1].word_index)
        out += got
    return out


def pronunciation_variants(words: Sequence[Word], phones: Sequence[Phone]
                           ) -> dict[int, tuple[tuple[str, ...], ...]]:
    """The dictionary's pronunciations of the words said with its first one.

    The aligner pronounces a word as the CMU dictionary's first entry unless its backend heard
    the phones itself (espeak-ng's rendering on the reference backend, a recogniser's): the
    phone model may then pick another entry (``Tuesday`` ending ``D EY``, not ``D IY``; ``on``
    as ``AO N``). Words said otherwise keep their phones, and so do the words with an
    ``onset`` (the reference backend timed their phones itself, from espeak-ng's rendering) without
    a dictionary lookup.

    Args:
        words: the utterance's words (``word_index`` of ``phones`` indexes them).
        phones: its phones.

    Returns:
        Word index -> all its pronunciations (the one said first), for
        :meth:`aligner.visemes.model.PhoneModel.force_align`.
    """
    from ..speech.dictionary import dictionary_variants
    from ..speech.text import spoken

    said: dict[int, list[str]] = {}
    for p in phones:
        if p.word_index >= 0 and p.phone != "sil" and p.end >= p.start:
            said.setdefault(p.word_index, []).append(p.phone)
    out = {}
    for k, names in said.items():
        if k < len(words) and words[k].onset is not None:
            continue
        spelt = spoken(words[k].word) if k < len(words) else ()
        found = dictionary_variants(spelt[0]) if len(spelt) == 1 else ()
        if len(found) > 1 and found[0] == tuple(names):
            out[k] = found
    return out


def pause_after(text: str, words: Sequence[Word]) -> set[int]:
    """Indexes of the ``words`` (with ``char_start``/``char_end`` into ``text``) followed by
    punctuation, where a speaker may pause even if the aligner heard none."""
    return {i for i in range(len(words) - 1)
            if _PUNCTUATION.search(text[words[i].char_end:words[i + 1].char_start])}


_PUNCTUATION = re.compile(r"[,;:.!?()\u2013\u2014-]")


def _stretches(phones: Sequence[Phone]) -> list[list[Phone]]:
    """Runs of phones with no gap between neighbours."""
    runs: list[list[Phone]] = []
    for p in phones:
        if p.end <= p.start:
            continue
        if runs and p.start <= runs[-1][-1].end + 1e-3:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def text_phones(pcm: np.ndarray, sample_rate: int, text: str, *, refine: bool = True,
                voice: VoiceProfile | None = None, adapt: bool = False) -> list[Phone]:
    """Phones of audio whose text is known: :func:`aligner.align`, then (``refine``) sharper
    mouth-shape boundaries (:func:`refine_alignment`).

    ``voice`` and ``adapt`` are :func:`aligner.align`'s: the phones of a voice the aligner has
    learned (a profile of its other clips, or the clip itself in two passes) are timed on the
    acoustic model adapted to it (TIMIT, a speaker's other clips: 92.3% in Rhubarb's shapes
    against 92.0% cold), and the profile learns from this clip.

    Raises:
        AlignmentError: the aligner cannot work with the input.
    """
    from ..speech.alignment import align

    pcm = as_int16(pcm)
    result = align(pcm, sample_rate, text, voice=voice, adapt=adapt)
    return refine_alignment(pcm, sample_rate, result) if refine else list(result.phones)


def refine_alignment(pcm: np.ndarray, sample_rate: int, result: Alignment) -> list[Phone]:
    """The phones of ``result`` (an alignment of ``pcm``) with sharper mouth-shape boundaries.

    Where the aligner timed words' phones itself (the words' ``onset``: the reference warp of a
    voice like espeak-ng's), they go where espeak-ng's own speech of the text says they sound
    (:func:`by_sound`): as accurate as the phone model there, for nearly nothing (viseme
    benchmark, espeak-ng voices: OVR 94.5% against 94.2%; on three test sentences the phone
    model loses 1-6 points on these phones). Otherwise (pocketsphinx and the fallback spread
    each word's phones by a duration model) every phone is re-timed on the frame scores of the
    shipped phone model (:meth:`aligner.visemes.model.PhoneModel.force_align`, a pause allowed at
    punctuation, each dictionary word in the pronunciation that fits best,
    :func:`pronunciation_variants`).
    """
    pcm = as_int16(pcm)
    pauses = pause_after(result.text, result.words)
    variants = pronunciation_variants(result.words, result.phones)
    onsets = [w.onset for w in result.words]
    if any(t is not None for t in onsets):
        return by_sound(result.phones, onsets, pcm, sample_rate, pauses=pauses, variants=variants)
    from .model import PhoneModel

    return PhoneModel.load().force_align(pcm, sample_rate, list(result.phones), pauses=pauses,
                                         variants=variants)


def refine_phones(phones: Sequence[Phone], words: Sequence[Word], pcm: np.ndarray,
                  sample_rate: int, *, start: float = 0.0, offset: float = 0.0,
                  pauses: Collection[int] = (),
                  variants: Mapping[int, Sequence[tuple[str, ...]]] | None = None,
                  before: Phone | None = None) -> list[Phone]:
    """``phones`` of ``words`` (a timeline's, or a stream's) refined on their audio as
    :func:`refine_alignment` does: where the words have an ``onset`` (``offset`` moves it onto
    the phones' clock), :func:`by_sound` (``before`` as there), else every phone re-timed
    (:func:`retime`). Arguments as :func:`retime`."""
    onsets = [None if w.onset is None else w.onset + offset for w in words]
    if any(t is not None for t in onsets):
        return by_sound(phones, onsets, pcm, sample_rate, start=start, pauses=pauses,
                        variants=variants, before=before)
    return retime(phones, pcm, sample_rate, start=start, pauses=pauses, variants=variants)


def by_sound(phones: Sequence[Phone], onsets: Sequence[float | None], pcm: np.ndarray,
             sample_rate: int, *, start: float = 0.0, pauses: Collection[int] = (),
             variants: Mapping[int, Sequence[tuple[str, ...]]] | None = None,
             before: Phone | None = None) -> list[Phone]:
    """``phones`` where their sound is: each word's first phone starts at the word's onset and
    the sound before it (the last phone of the word before, or a pause) runs on until then, as
    in espeak-ng's own phone times (it starts a word at the silent closure of a stop it begins
    with, "calling", and the stop's phone at the burst); the words without an onset (their
    phones spread by a duration model) are re-timed on the phone model (:func:`retime`), each
    run of them between its outer edges.

    Args:
        phones: time-ordered phones, on a clock where ``pcm`` starts at ``start``.
        onsets: by word index, the words' :attr:`aligner.timeline.Word.onset` on the same clock.
        pcm, sample_rate, start, pauses, variants: for the re-timing, as :func:`retime`.
        before: live, the phone just before ``phones``, already used: if it has to run on into
            the first of them, the piece it runs on comes first (a phone of its own, the same
            sound, which a viseme stream joins to it).
    """
    out = list(phones)
    lead = before is not None and bool(out)  # ``before`` may come from another stream chunk
    if lead:
        out.insert(0, before)
    for i in range(1, len(out)):
        prev, p = out[i - 1], out[i]
        t = onsets[p.word_index] if 0 <= p.word_index < len(onsets) else None
        if t is not None and (p.word_index != prev.word_index or (lead and i == 1)) \
                and p.start < t < p.end and abs(prev.end - p.start) < _EPS:
            out[i - 1] = Phone(prev.phone, prev.start, t, prev.word_index)
            out[i] = Phone(p.phone, t, p.end, p.word_index)
    runs: list[list[int]] = []  # index runs of consecutive phones of words without an onset
    for i, p in enumerate(out):
        if i == 0 and lead:
            continue  # used already: it stays as it is (or runs on)
        if 0 <= p.word_index < len(onsets) and onsets[p.word_index] is None and p.end > p.start:
            if runs and i == runs[-1][-1] + 1:
                runs[-1].append(i)
            else:
                runs.append([i])
    for run in reversed(runs):
        out[run[0]:run[-1] + 1] = retime([out[i] for i in run], pcm, sample_rate, start=start,
                                         pauses=pauses, variants=variants)
    if lead:  # only the piece it runs on, if any
        head = out.pop(0)
        if head.end > before.end + _EPS:
            out.insert(0, Phone(before.phone, before.end, head.end, before.word_index))
    return out


METHODS = ("words", "acoustic", "model", "pocketsphinx")


def heard_phones(pcm: np.ndarray, sample_rate: int, text: str, *,
                 voice: VoiceProfile | None = None, adapt: bool = False) -> list[Phone]:
    """Phones of audio from the words a recogniser heard in it (``text``), as Rhubarb Lip Sync's
    default recognizer gets them: the words aligned and refined as known text is
    (:func:`text_phones`), so each phone comes from a dictionary word and sits where the
    acoustic model hears it.

    A wrong word mostly sounds like the right one, so its phones mostly give the right mouth
    shapes (TIMIT: 88% in Rhubarb's shapes against the phone loop's 83%, with 57% of the words
    right). Where the aligner finds the voice espeak-like (its auto choice is the espeak-ng
    reference warp: espeak-ng's speech of the heard words fits the clip), the shipped phone
    model, trained on such voices, reads the phones instead (espeak-ng voices: 86% OVR
    against 64% from the heard words).

    Args:
        pcm: mono int16 samples.
        sample_rate: their rate.
        text: the words heard (empty: the acoustic phone loop's phones).
        voice, adapt: as :func:`text_phones` (the profile learns from the heard words).
    """
    from ..speech.alignment import align

    result = align(pcm, sample_rate, text, voice=voice, adapt=adapt) if text.strip() else None
    return _phones_heard(pcm, sample_rate, result)


def _phones_heard(pcm: np.ndarray, sample_rate: int, result: Alignment | None) -> list[Phone]:
    """:func:`heard_phones` from the alignment of the words heard (None: none heard)."""
    if result is None:
        return estimate_phones(pcm, sample_rate, "acoustic")
    if result.backend == "reference":
        return estimate_phones(pcm, sample_rate, "model")
    return refine_alignment(pcm, sample_rate, result)


def _hear_and_place(pcm: np.ndarray, sample_rate: int, voice: VoiceProfile | None,
                    adapt: bool) -> list[Phone]:
    """:func:`estimate_phones`' ``"words"``: the words recognised on the model adapted to the
    voice (its profile's transform as pocketsphinx's MLLR; with ``adapt``, a profile that
    first learned the clip's own voice from the words heard in it), their phones placed by
    :func:`heard_phones`. The guard: a profile whose transform does not explain the clip
    better than the model alone, the text unknown, is not used for it at all
    (:func:`aligner.speech.backends.acoustic.fitting_voice`), and the aligner checks the
    transform again on the words heard."""
    from ..speech.adaptation import VoiceProfile
    from ..speech.alignment import align
    from ..speech.backends.acoustic import heard_words

    def hear(profile: VoiceProfile | None) -> Alignment | None:
        """The alignment of the words heard with ``profile`` where it fits (which learns from
        them); None when nothing is heard."""
        words, fits = heard_words(profile, pcm, sample_rate)
        text = " ".join(w.word for w in words)
        return align(pcm, sample_rate, text, voice=fits) if text.strip() else None

    before = voice.stats if voice is not None else None
    profile, learned = voice, None
    if adapt:  # a first hearing teaches a profile the clip's voice, on top of what voice knew
        profile = VoiceProfile("clip", before)
        hear(profile)
        learned = profile.learned_since(before)
    result = hear(profile)
    if adapt and voice is not None:
        voice.learn(learned)
    return _phones_heard(pcm, sample_rate, result)


def estimate_phones(pcm: np.ndarray, sample_rate: int, method: str = "words", *,
                    voice: VoiceProfile | None = None, adapt: bool = False) -> list[Phone]:
    """Phones from audio alone, for audio without text (binary audio with alignment off, a
    Twilio stream, a WAV file).

    Args:
        pcm: mono int16 samples.
        sample_rate: their rate (resampled to 16 kHz).
        method: ``"words"`` (default): the words pocketsphinx recognises with its general
            English language model (:func:`aligner.speech.recognize.recognize_words`), their
            phones placed by :func:`heard_phones` (the most accurate on human speech and on
            voices made from recordings of people: TIMIT 88% in Rhubarb's shapes against
            84% for Rhubarb's own recognizer, Flite's voices 93% OVR; about 6x real time, as
            Rhubarb's recognizer); ``"acoustic"``: the phone loop of pocketsphinx's acoustic
            model with the English phone bigram, decoded by the aligner's own search
            (:func:`aligner.speech.backends.acoustic.recognize_phones`; TIMIT 83%, Flite's
            voices 83% OVR; 160x real time); ``"model"``: the small phone model shipped with the
            package (:mod:`aligner.visemes.model`; trained on espeak-ng voices: the best on
            espeak-like synthetic speech, 86% OVR, but 60% on Flite's; 680x real time, and it
            streams: :class:`aligner.visemes.model.PhoneStream`); ``"pocketsphinx"``:
            pocketsphinx's own phone-loop decoder with its en-us phone LM.
        voice: ``"words"`` only: the voice's profile; the words are recognised on the
            acoustic model adapted to it (pocketsphinx with the transform as its MLLR, where
            the transform explains the clip better than the model alone) and placed on it, and
            the profile learns from them, no text needed (TIMIT, a profile of the speaker's
            other clips: 88.9% in Rhubarb's shapes against 88.2%).
        adapt: ``"words"`` only: hear the recording twice, the second time on the model
            adapted to the voice learned from the first (a speaker's 30 s: 88.1% against
            87.7%, at half the speed).

    Returns:
        ARPAbet phones with times in seconds from the start of ``pcm`` (``"sil"`` pauses).

    Raises:
        ValueError: unknown method, or a voice or ``adapt`` with a method other than words.
    """
    pcm, sample_rate = as_int16(pcm), check_rate(sample_rate)
    if method == "words":
        return _hear_and_place(pcm, sample_rate, voice, adapt)
    if voice is not None or adapt:
        raise ValueError(f"a voice profile and adapt apply to the words method, not {method!r}")
    if method == "model":
        from .model import PhoneModel

        return PhoneModel.load().phones(pcm, sample_rate)
    total = len(pcm) / sample_rate  # at 16 kHz the audio may last a fraction of a sample more
    if method == "acoustic":
        from ..speech.backends.acoustic import recognize_phones

        x = pcm if sample_rate == 16000 else resample(pcm, sample_rate, 16000)
        return [Phone(p, a, min(b, total)) for p, a, b in recognize_phones(x) if a < total]
    if method != "pocketsphinx":
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if sample_rate != 16000:
        pcm = resample(pcm, sample_rate, 16000)
    with _DECODER_LOCK:
        dec = _phone_decoder()
        dec.start_utt()
        dec.process_raw(np.ascontiguousarray(pcm, dtype="<i2").tobytes(), full_utt=True)
        dec.end_utt()
        segs = [(s.word, s.start_frame, s.end_frame) for s in dec.seg() or ()]
    from .model import _QUIET_DB, _frame_db

    level = _frame_db(pcm)
    out: list[Phone] = []
    for word, start_frame, end_frame in segs:
        name = word.upper()
        name = name if name in SETS["oculus"].mapping else "sil"
        if level[start_frame:end_frame + 1].max(initial=-200.0) < _QUIET_DB:
            name = "sil"  # the phone loop hears phones in digital silence
        s, e = start_frame / 100, min((end_frame + 1) / 100, total)
        if out and out[-1].phone == "sil" == name:
            out[-1] = Phone("sil", out[-1].start, e)
        elif e > s:
            out.append(Phone(name, s, e))
    return out


_DECODER_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _phone_decoder():
    """The phone-loop decoder, made on first use (0.4 s: model load) and reused under a lock.

    Beams of 1e-10 (1e-20 before): on the viseme benchmark's sentences, every other one, OVR
    agreement the same (espeak-ng 50.6 -> 51.4%, Flite 75.9 -> 75.8%) at 22x real time instead
    of 16x; 1e-8 reaches 30x but loses 5-17 points, ``ds=2``/``topn=2`` with 1e-10 35x and 5."""
    import os

    from pocketsphinx import Config, Decoder, get_model_path

    model = os.path.join(get_model_path(), "en-us")
    cfg = Config(hmm=os.path.join(model, "en-us"),
                 allphone=os.path.join(model, "en-us-phone.lm.bin"),
                 lw=2.0, beam=1e-10, pbeam=1e-10, loglevel="FATAL")
    return Decoder(cfg)
