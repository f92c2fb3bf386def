"""The voices the emulator, the demo and the tests speak with: a voice is a name, and
:func:`synthesize` gives its audio with the time of every word.

- ``"espeak"``: espeak-ng's ``en-us`` (:mod:`aligner.speech.synthesis`), formant synthesis,
  exact word events; ``"espeak:VOICE"`` picks another espeak-ng voice (``"espeak:en-us+f3"``).
- ``"hibari"``: hibari (:mod:`aligner.speech.hibari_synthesis`), a small neural voice (a
  distillation of Kokoro-82M's ``af_heart``) that sounds like the voices agents speak with;
  word times from its duration predictor.

Both come with the ``speech`` extra; nothing downloads at run time.

>>> check("hibari")
'hibari'
>>> s = synthesize("Hello there", "hibari")                # doctest: +SKIP
>>> [(s.text[w.char_start:w.char_end], round(w.start, 2)) for w in s.words]  # doctest: +SKIP
[('Hello', 0.29), ('there', 0.61)]
"""

from __future__ import annotations

from .synthesis import Synthesis

__all__ = ["DEFAULT_RATE", "VOICES", "check", "load", "synthesize"]

#: The voice names (``"espeak:VOICE"`` also names any espeak-ng voice).
VOICES = ("espeak", "hibari")
#: Words per minute of :func:`synthesize` by default: espeak-ng's usual rate, hibari's own pace.
DEFAULT_RATE = 175
_ESPEAK_DEFAULT = "en-us"


def check(voice: str) -> str:
    """Return ``voice`` if it names a voice, else raise ``ValueError`` listing the choices."""
    name, _, variant = voice.partition(":")
    if voice in VOICES or (name == "espeak" and variant):
        return voice
    raise ValueError(f"unknown voice {voice!r}; choose from {', '.join(VOICES)} "
                     "(or espeak:VOICE for another espeak-ng voice)")


def synthesize(text: str, voice: str = "espeak",
               words_per_minute: int = DEFAULT_RATE) -> Synthesis:
    """Speak ``text`` with a voice.

    Args:
        text: what to say.
        voice: a name of :data:`VOICES` (or ``"espeak:VOICE"``).
        words_per_minute: espeak-ng's rate; hibari speaks ``words_per_minute / 175`` times its
            own pace.

    Returns:
        A :class:`~aligner.speech.synthesis.Synthesis`: mono int16 samples (22050 Hz
        espeak-ng, 24000 Hz hibari), one :class:`~aligner.speech.synthesis.SpokenWord` per
        whitespace token of ``text`` (``text[w.char_start:w.char_end]``, ``w.start``-``w.end``
        seconds, in order, inside the audio), and the phones in the synthesiser's own alphabet.

    Raises:
        ValueError: an unknown voice.
        MissingBackendError: the voice's synthesiser is not installed (extra ``speech``).
    """
    name, _, variant = check(voice).partition(":")
    if name == "hibari":
        from .hibari_synthesis import synthesize as hibari

        return hibari(text, speed=words_per_minute / DEFAULT_RATE)
    from .synthesis import synthesize as espeak

    return espeak(text, voice=variant or _ESPEAK_DEFAULT, rate=words_per_minute)


def load(voice: str) -> None:
    """Load a voice's synthesiser now (a server does this at start-up, so that a missing one
    fails at once and the first line is not kept waiting).

    Raises:
        ValueError: an unknown voice.
        MissingBackendError: the voice's synthesiser is not installed (extra ``speech``).
    """
    synthesize("Hello.", voice)
