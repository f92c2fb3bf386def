"""The aligner's backends: each times a clip's tokens (``align(..., backend=...)``).

- :mod:`.reference`: espeak-ng speech of the text warped onto the clip (DTW over MFCCs), which
  carries espeak-ng's word and phone times over (``"reference"``; the ``speech`` extra);
- :mod:`.sphinx`: pocketsphinx forced alignment (``"pocketsphinx"``);
- :mod:`.hmm`: the phone-class HMM of the permissive ``"fallback"``.

:func:`aligner.speech.alignment.time_tokens` chooses between them.
"""
