"""Speech from Flite's voices (a second synthesiser family) with its word and phone times.

The alignment benchmark's "other voices" table: Flite (CMU, BSD-style licence) speaks with voices
built from real recordings of people, unlike espeak-ng's formant synthesis: ``kal16`` is a diphone
voice (concatenated human diphones), ``slt``, ``rms`` and ``awb`` are statistical parametric
(clustergen) voices trained on a US female, a US male and a Scottish male speaker. Flite knows
where it put every segment; this module reads its utterance structure through ``ctypes``
(Token -> Word -> syllable -> Segment) and returns the same :class:`aligner.speech.synthesis.Synthesis` as
espeak-ng, so the benchmark scores both the same way.

Needs the Debian package ``libflite1`` (``apt-get install libflite1``, also pulled in by
``flite``); :func:`available` says whether it is there and why not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re

import numpy as np

from aligner.speech.synthesis import SpokenPhone, SpokenWord, Synthesis

__all__ = ["CONDITIONS", "VOICES", "available", "synthesize"]

#: Flite voices and the shared library that registers each.
VOICES = {"kal16": "cmu_us_kal16", "slt": "cmu_us_slt", "rms": "cmu_us_rms", "awb": "cmu_us_awb"}
#: The benchmarks' Flite conditions: each voice and its duration stretch (below 1 is faster).
CONDITIONS = [("kal16", 1.0), ("slt", 0.8), ("rms", 1.0), ("awb", 0.8)]

_P = ctypes.c_void_p


class _Wave(ctypes.Structure):
    _fields_ = [("type", ctypes.c_char_p), ("sample_rate", ctypes.c_int),
                ("num_samples", ctypes.c_int), ("num_channels", ctypes.c_int),
                ("samples", ctypes.POINTER(ctypes.c_short))]


class _Voice(ctypes.Structure):  # the head of cst_voice: its name and feature set
    _fields_ = [("name", ctypes.c_char_p), ("features", _P)]


def _library(name: str) -> ctypes.CDLL:
    path = ctypes.util.find_library(name)
    if path is None:
        raise OSError(f"lib{name} not found (apt-get install libflite1)")
    return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


@functools.cache
def _flite() -> ctypes.CDLL:
    lib = _library("flite")
    for fn, res, args in (
            ("flite_init", ctypes.c_int, []),
            ("flite_synth_text", _P, [ctypes.c_char_p, _P]),
            ("utt_wave", ctypes.POINTER(_Wave), [_P]),
            ("utt_relation", _P, [_P, ctypes.c_char_p]),
            ("relation_head", _P, [_P]),
            ("item_next", _P, [_P]),
            ("item_as", _P, [_P, ctypes.c_char_p]),
            ("item_parent", _P, [_P]),
            ("item_daughter", _P, [_P]),
            ("item_feat_string", ctypes.c_char_p, [_P, ctypes.c_char_p]),
            ("item_feat_float", ctypes.c_float, [_P, ctypes.c_char_p]),
            ("feat_set_float", None, [_P, ctypes.c_char_p, ctypes.c_float]),
            ("delete_utterance", None, [_P])):
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args
    lib.flite_init()
    return lib


@functools.cache
def _voice(name: str) -> int:
    _flite()
    lib = _library(f"flite_{VOICES[name]}")
    register = getattr(lib, f"register_{VOICES[name]}")
    register.restype, register.argtypes = _P, [ctypes.c_char_p]
    voice = register(None)
    if not voice:
        raise OSError(f"flite voice {name} did not register")
    return voice


def available() -> str | None:
    """None when Flite and its voices load, else the reason they do not."""
    try:
        for name in VOICES:
            _voice(name)
    except OSError as exc:
        return str(exc)
    return None


def _items(lib: ctypes.CDLL, utt: int, relation: str) -> list[int]:
    out, item = [], lib.relation_head(lib.utt_relation(utt, relation.encode()))
    while item:
        out.append(item)
        item = lib.item_next(item)
    return out


def synthesize(text: str, voice: str = "slt", stretch: float = 1.0) -> Synthesis:
    """Speak ``text`` with a Flite voice.

    Args:
        text: what to say.
        voice: one of :data:`VOICES`.
        stretch: Flite's ``duration_stretch`` (above 1 is slower).

    Returns:
        Samples at the voice's rate, one :class:`SpokenWord` per whitespace token Flite spoke (a
        token it spoke as several words, "$42.50", is one), its segments as phones (Flite's
        names, ``pau`` for pauses, outside words).

    Raises:
        OSError: Flite or the voice is missing.
        ValueError: Flite's tokens do not match the text's whitespace tokens.
    """
    lib = _flite()
    v = _voice(voice)
    lib.feat_set_float(_Voice.from_address(v).features, b"duration_stretch", stretch)
    utt = lib.flite_synth_text(text.encode(), v)
    try:
        wave = lib.utt_wave(utt).contents
        samples = np.ctypeslib.as_array(wave.samples, (wave.num_samples,)).astype(np.int16)
        sample_rate = int(wave.sample_rate)
        tokens = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
        flite_tokens = _items(lib, utt, "Token")
        if len(flite_tokens) != len(tokens):
            raise ValueError(f"flite made {len(flite_tokens)} tokens of {len(tokens)}: {text!r}")
        token_of = {}  # Word item (as Word) -> token index
        for k, tok in enumerate(flite_tokens):
            w = lib.item_daughter(tok)
            while w:
                token_of[lib.item_as(w, b"Word")] = k
                w = lib.item_next(w)
        phones: list[list] = []  # [name, start, end, token index or -1]
        t = 0.0
        for seg in _items(lib, utt, "Segment"):
            end = float(lib.item_feat_float(seg, b"end"))
            syl = lib.item_parent(lib.item_as(seg, b"SylStructure"))
            word = lib.item_as(lib.item_parent(syl), b"Word") if syl else None
            name = lib.item_feat_string(seg, b"name").decode()
            phones.append([name, t, end, token_of.get(word, -1) if word else -1])
            t = end
    finally:
        lib.delete_utterance(utt)
    spans: dict[int, list[float]] = {}
    for _, a, b, k in phones:
        if k >= 0:
            spans.setdefault(k, [a, b])[1] = b
    order = sorted(spans)
    index = {k: i for i, k in enumerate(order)}
    words = tuple(SpokenWord(tokens[k][0], tokens[k][1], spans[k][0], spans[k][1]) for k in order)
    spoken = tuple(SpokenPhone(n, a, b, index.get(k, -1)) for n, a, b, k in phones)
    return Synthesis(text, samples, sample_rate, words, spoken)
