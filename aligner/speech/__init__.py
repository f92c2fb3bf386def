"""Speech: text, pronunciation, the aligner and its backends, recognition and synthesis.

- :mod:`.text`: tokens and what a speaker says for each (numbers, money, dates, acronyms);
- :mod:`.dictionary`: the CMU dictionary and letter names; :mod:`.pronounce`: ARPAbet phones of
  any word (dictionary, then letter-to-sound);
- :mod:`.alignment`: ``align(pcm, rate, text)``, the word, character and phone times of a clip;
  :mod:`.stream`: the same, chunk by chunk; :mod:`.refine`: boundary refinement;
- :mod:`.signal`: frame energy and speech detection; :mod:`.durations`: the phone-duration model;
- :mod:`.backends`: how tokens get their times (espeak-ng reference, pocketsphinx, phone HMM);
- :mod:`.recognize`: voice activity and pocketsphinx recognition of user speech;
- :mod:`.synthesis`: espeak-ng speech with word and phone times; :mod:`.hibari_synthesis`: the
  same from hibari, a small neural voice; :mod:`.voices`: both by name, one call for audio and
  word times (the optional ``speech`` extra).

Nothing is imported here: each module loads on first use.
"""
