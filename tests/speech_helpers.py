"""Long espeak-ng clips with exact word times (aligner.speech.synthesize), and how far an
alignment's words are from them. Shared by the long-clip tests and ``benchmarks/long_clip.py``."""

from __future__ import annotations

import numpy as np

from aligner.speech.synthesis import Synthesis, synthesize
from aligner.speech.text import tokenize

#: Call-centre sentences (numbers, money, names, questions), spoken in turn for as long as asked.
SENTENCES = (
    "Hello there, how are you doing today?",
    "Your appointment is confirmed for Tuesday at 3:45pm.",
    "The total comes to $42.50, including tax.",
    "I can transfer you to the billing department right now.",
    "Could you spell your last name for me, please?",
    "My name is Samantha, and I'm calling from Riverside Dental.",
    "We have 3 openings next week: Monday, Wednesday, and Friday.",
    "Please hold while I look that up.",
    "The meeting moved from the 3rd floor to the 21st floor.",
    "I'm sorry, I didn't catch that. Could you repeat it?",
    "The package weighs 2.5 kilograms and ships tomorrow.",
    "Thank you for calling Acme Insurance, this is Jordan speaking.",
    "The wifi password is on the back of the router.",
    "Let me check whether Doctor Nguyen is available on Friday afternoon.",
    "The flight departs at 6:15 and lands at 9:40 local time.",
    "Would you like me to text you a confirmation?",
    "The temperature will drop to 5 degrees overnight.",
    "I understand your frustration, and I want to help fix this.",
    "We are open Monday through Friday, 9 to 5.",
    "Is there anything else I can help you with today?",
    "Please bring two forms of identification to your appointment.",
    "Our support team is available 24 hours a day, 7 days a week.",
)


def long_speech(seconds: float, rate: int = 175) -> Synthesis:
    """espeak-ng (``en-us``) reading :data:`SENTENCES` in turn, one synthesis at least
    ``seconds`` long (sentence by sentence: a little longer)."""
    text: list[str] = []
    total = 0.0
    k = 0
    while total < seconds:
        sentence = SENTENCES[k % len(SENTENCES)]
        total += synthesize(sentence, rate=rate).duration + 0.35  # the pause between sentences
        text.append(sentence)
        k += 1
    while (s := synthesize(" ".join(text), rate=rate)).duration < seconds:
        text.append(SENTENCES[k % len(SENTENCES)])
        k += 1
    return s


def truth(synth: Synthesis) -> list[tuple[float | None, float | None]]:
    """(start, end) per token of ``synth.text`` (:func:`aligner.text.tokenize`) from espeak's own
    word times; None where espeak gave none (a token it said under another's word event). A word
    ends at the latest where the next one starts (espeak gives a stop's closure to both)."""
    tokens = tokenize(synth.text)
    spoken = {w.char_start: w for w in synth.words}
    raw = [spoken.get(t.token_start) for t in tokens]
    out: list[tuple[float | None, float | None]] = []
    for k, w in enumerate(raw):
        if w is None:
            out.append((None, None))
            continue
        nxt = raw[k + 1] if k + 1 < len(raw) else None
        end = None if k + 1 < len(raw) and nxt is None else (
            min(w.end, nxt.start) if nxt is not None else w.end)
        out.append((w.start, end))
    return out


def word_errors(spans: list[tuple[float, float]], synth: Synthesis,
                last: int | None = None) -> np.ndarray:
    """Absolute errors (seconds) of every word start and end in ``spans`` (one per token, or
    one per token of the ``last`` tokens) against :func:`truth`."""
    gt = truth(synth)[-last:] if last else truth(synth)
    assert len(spans) == len(gt), (len(spans), len(gt))
    return np.array([abs(a - b) for s, g in zip(spans, gt, strict=True)
                     for a, b in zip(s, g, strict=True) if b is not None])
