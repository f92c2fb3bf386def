"""Viseme sets: documented mappings from ARPAbet phones to the mouth shapes of avatar engines.

Every set maps all 39 ARPAbet phones (stress stripped) plus ``"sil"``. A phone maps to one
shape, or to two for diphthongs (the mouth glides from the first shape to the second), so the
motion layer (:mod:`aligner.visemes`) can animate ``AY`` as open-then-spread.

Sets (``SETS[name]``):

``oculus``
    Meta/Oculus OVR LipSync, 15 visemes ``sil PP FF TH DD kk CH SS nn RR aa E ih oh ou``
    (Oculus "Viseme reference": PP = p b m, FF = f v, TH = th dh, DD = t d, kk = k g,
    CH = ch jh sh zh, SS = s z, nn = n l, RR = r, then five vowel shapes).
``talkinghead``
    the Oculus visemes as the TalkingHead web avatar (``met4citizen/TalkingHead``) names its
    ``viseme_*`` morph targets: ``sil PP FF TH DD kk CH SS nn RR aa E I O U`` (``ih oh ou``
    spelled ``I O U``); same phones as ``oculus``.
``azure``
    Microsoft Azure Speech viseme ids 0-21 (the SAPI ``SPVISEMES`` / Disney 13 grouping:
    1 = ae ax ah, 2 = aa, 3 = ao, 4 = ey eh uh, 5 = er, 6 = y iy ih, 7 = w uw, 8 = ow, 9 = aw,
    10 = oy, 11 = ay, 12 = h, 13 = r, 14 = l, 15 = s z, 16 = sh ch jh zh, 17 = th dh,
    18 = f v, 19 = d t n, 20 = k g ng, 21 = p b m, 0 = silence). Visemes are ints.
``polly``
    Amazon Polly's en-US speech-mark visemes ``sil p t S T f k i r s u @ a e E o O``
    (Polly's "Phoneme and Viseme Tables", English US).
``rhubarb``
    Preston Blair mouth shapes as Rhubarb Lip Sync names them: A closed (p b m), B slightly
    open / clenched teeth (most consonants, ee), C open (eh, ae), D wide open (aa), E slightly
    rounded (ao, er), F puckered (uw, ow, w), and the extended G (f v: teeth on lip),
    H (long l: tongue up), X (idle / rest).

ARKit blend-shape weights are derived from the OVR viseme of each phone (``ARKIT_WEIGHTS``).

>>> SETS["oculus"].shapes("M"), SETS["azure"].shapes("M"), SETS["rhubarb"].shapes("AY")
(('PP',), (21,), ('D', 'B'))
>>> espeak_to_arpabet("'aI")
('AY',)
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..speech.pronounce import espeak_to_arpabet as _espeak_to_arpabet
from ..timeline import Phone

__all__ = [
    "ARKIT_SHAPES",
    "ARKIT_WEIGHTS",
    "ARPABET",
    "BILABIALS",
    "SETS",
    "TALKINGHEAD_NAMES",
    "VisemeSet",
    "espeak_to_arpabet",
    "espeak_phones",
    "get_set",
]

#: The 39 ARPAbet phones of the CMU dictionary, stress stripped.
ARPABET = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH",
    "UH", "UW", "V", "W", "Y", "Z", "ZH",
)
#: Phones that close the lips completely; every set honours them.
BILABIALS = frozenset({"P", "B", "M"})


@dataclass(frozen=True, slots=True)
class VisemeSet:
    """A named viseme inventory with its phone mapping.

    Attributes:
        name: the set's name (``"oculus"``...).
        visemes: every viseme of the set, in its documented order.
        mapping: ARPAbet phone (and ``"sil"``) -> one shape or a (start, end) glide.
        rest: the relaxed-mouth viseme used in pauses and after a ``clear``.
        closed: the lips-closed viseme of ``P B M``.
        description: one line for ``--help`` and the docs.
    """

    name: str
    visemes: tuple[Any, ...]
    mapping: MappingProxyType
    rest: Any
    closed: Any
    description: str

    def shapes(self, phone: str) -> tuple[Any, ...]:
        """The shape(s) of ``phone`` (stress digits ignored; unknown phones -> ``rest``)."""
        p = phone.rstrip("012").upper() if phone != "sil" else phone
        if p == "SIL" or p == "SP" or not p:
            p = "sil"
        v = self.mapping.get(p, self.rest)
        return v if isinstance(v, tuple) else (v,)


def _set(name: str, visemes: tuple, groups: dict, rest: Any, closed: Any, description: str,
         glides: dict | None = None) -> VisemeSet:
    mapping: dict[str, Any] = {"sil": rest}
    for viseme, phones in groups.items():
        for p in phones.split():
            mapping[p] = viseme
    mapping.update(glides or {})
    missing = set(ARPABET) - set(mapping)
    if missing:  # a table bug, caught at import of this module's constants
        raise ValueError(f"viseme set {name} misses phones {sorted(missing)}")
    return VisemeSet(name, visemes, MappingProxyType(mapping), rest, closed, description)


_OCULUS = _set(
    "oculus",
    ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou"),
    {"PP": "P B M", "FF": "F V", "TH": "TH DH", "DD": "T D", "kk": "K G HH", "CH": "CH JH SH ZH",
     "SS": "S Z", "nn": "N NG L", "RR": "R ER", "aa": "AA AE AH", "E": "EH", "ih": "IH IY Y",
     "oh": "AO", "ou": "UH UW W"},
    "sil", "PP", "Meta/Oculus OVR LipSync, 15 visemes",
    glides={"AW": ("aa", "ou"), "AY": ("aa", "ih"), "EY": ("E", "ih"), "OW": ("oh", "ou"),
            "OY": ("oh", "ih")},
)
#: TalkingHead's spelling of the three OVR vowels it names differently (``visemeNames``).
TALKINGHEAD_NAMES = MappingProxyType({"ih": "I", "oh": "O", "ou": "U"})


def _renamed(base: VisemeSet, name: str, names: MappingProxyType, description: str) -> VisemeSet:
    def rn(v: Any) -> Any:
        return tuple(names.get(x, x) for x in v) if isinstance(v, tuple) else names.get(v, v)

    return VisemeSet(name, tuple(rn(v) for v in base.visemes),
                     MappingProxyType({p: rn(v) for p, v in base.mapping.items()}),
                     rn(base.rest), rn(base.closed), description)


_TALKINGHEAD = _renamed(_OCULUS, "talkinghead", TALKINGHEAD_NAMES,
                        "Oculus visemes as TalkingHead names them (I O U for ih oh ou)")
_AZURE = _set(
    "azure", tuple(range(22)),
    {1: "AE AH", 2: "AA", 3: "AO", 4: "EY EH UH", 5: "ER", 6: "Y IY IH", 7: "W UW", 8: "OW",
     9: "AW", 10: "OY", 11: "AY", 12: "HH", 13: "R", 14: "L", 15: "S Z", 16: "SH CH JH ZH",
     17: "TH DH", 18: "F V", 19: "D T N", 20: "K G NG", 21: "P B M"},
    0, 21, "Microsoft Azure Speech viseme ids 0-21",
)
_POLLY = _set(
    "polly", ("sil", "p", "t", "S", "T", "f", "k", "i", "r", "s", "u", "@", "a", "e", "E", "o",
              "O"),
    {"p": "P B M", "t": "T D N L", "S": "CH JH SH ZH", "T": "TH DH", "f": "F V",
     "k": "K G NG HH", "i": "IY IH Y", "r": "R", "s": "S Z", "u": "UW UH W", "@": "AH",
     "a": "AA AE", "e": "EY", "E": "EH ER", "o": "OW", "O": "AO"},
    "sil", "p", "Amazon Polly en-US speech-mark visemes",
    glides={"AW": ("a", "u"), "AY": ("a", "i"), "OY": ("O", "i")},
)
_RHUBARB = _set(
    "rhubarb", ("A", "B", "C", "D", "E", "F", "G", "H", "X"),
    {"A": "P B M", "B": "CH D DH G HH IH IY JH K N NG R S SH T TH Y Z ZH", "C": "AE AH EH",
     "D": "AA", "E": "AO ER", "F": "UH UW W", "G": "F V", "H": "L"},
    "X", "A", "Preston Blair / Rhubarb Lip Sync mouth shapes A-F, G H X",
    glides={"AW": ("D", "F"), "AY": ("D", "B"), "EY": ("C", "B"), "OW": ("E", "F"),
            "OY": ("E", "B")},
)

#: name -> :class:`VisemeSet` (constant table).
SETS: MappingProxyType = MappingProxyType(
    {s.name: s for s in (_OCULUS, _TALKINGHEAD, _AZURE, _POLLY, _RHUBARB)})


def get_set(name: str) -> VisemeSet:
    """The viseme set called ``name``.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return SETS[name]
    except KeyError:
        raise ValueError(f"unknown viseme set {name!r}; known: {', '.join(SETS)}") from None


#: ARKit blend shapes we drive (Apple ``ARFaceAnchor.BlendShapeLocation`` names).
ARKIT_SHAPES = (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "mouthSmileLeft", "mouthSmileRight", "tongueOut",
)


def _w(**kw: float) -> tuple[float, ...]:
    both = {}
    for k, v in kw.items():
        if k in ("stretch", "press", "lowerDown", "upperUp", "smile"):
            cap = k[0].upper() + k[1:]
            both[f"mouth{cap}Left"] = both[f"mouth{cap}Right"] = v
        else:
            both[k] = v
    return tuple(float(both.get(s, 0.0)) for s in ARKIT_SHAPES)


#: OVR viseme -> weights in ``ARKIT_SHAPES`` order (0..1). ``PP`` closes and presses the lips.
ARKIT_WEIGHTS: MappingProxyType = MappingProxyType({
    "sil": _w(),
    "PP": _w(mouthClose=0.6, press=0.7, mouthRollLower=0.2, mouthRollUpper=0.2),
    "FF": _w(jawOpen=0.1, mouthRollLower=0.7, upperUp=0.3),
    "TH": _w(jawOpen=0.2, tongueOut=0.4, stretch=0.2),
    "DD": _w(jawOpen=0.25, stretch=0.3, lowerDown=0.2),
    "kk": _w(jawOpen=0.3, stretch=0.3, lowerDown=0.2),
    "CH": _w(jawOpen=0.2, mouthFunnel=0.5, mouthPucker=0.2, upperUp=0.2),
    "SS": _w(jawOpen=0.1, stretch=0.5, smile=0.2, lowerDown=0.2),
    "nn": _w(jawOpen=0.2, stretch=0.2, lowerDown=0.1),
    "RR": _w(jawOpen=0.2, mouthFunnel=0.3, mouthPucker=0.4),
    "aa": _w(jawOpen=0.7, lowerDown=0.4, upperUp=0.2),
    "E": _w(jawOpen=0.45, stretch=0.4, lowerDown=0.3),
    "ih": _w(jawOpen=0.25, stretch=0.6, smile=0.3),
    "oh": _w(jawOpen=0.5, mouthFunnel=0.6, mouthPucker=0.2),
    "ou": _w(jawOpen=0.15, mouthFunnel=0.3, mouthPucker=0.8),
})

def espeak_to_arpabet(phone: str) -> tuple[str, ...]:
    """ARPAbet phone(s) for one espeak-ng English phoneme mnemonic, ``("sil",)`` for pauses.

    The table is :func:`aligner.speech.pronounce.espeak_to_arpabet`'s. Marks that are no sound of their
    own (``;`` palatalisation) give ``()``: their time belongs to the phone before. Unknown
    mnemonics give ``AH`` (a neutral vowel), so every sound keeps a mouth shape.

    >>> espeak_to_arpabet("_:"), espeak_to_arpabet("tS"), espeak_to_arpabet(",aI@")
    (('sil',), ('CH',), ('AY', 'ER'))
    """
    if not phone or phone.startswith("_"):
        return ("sil",)
    p = phone.lstrip("',%=")
    if p in ("", ";"):
        return ()
    return _espeak_to_arpabet(p) or ("AH",)


def espeak_phones(events) -> tuple[Phone, ...]:
    """espeak-ng's phone events (:attr:`aligner.speech.synthesis.Synthesis.phones`) as ARPAbet phones.

    A mnemonic of several ARPAbet phones is split evenly over its time; a mark with no sound of
    its own gives its time to the phone before; pauses become ``sil``. ``word_index`` is kept.
    This is the ground truth of the viseme tests, benchmark and model training.
    """
    out: list[Phone] = []
    for p in events:
        arpa = espeak_to_arpabet(p.phone)
        if not arpa:
            if out:
                out[-1] = Phone(out[-1].phone, out[-1].start, p.end, out[-1].word_index)
            continue
        step = (p.end - p.start) / len(arpa)
        out += [Phone(a, p.start + i * step, p.start + (i + 1) * step, p.word_index)
                for i, a in enumerate(arpa)]
    return tuple(out)
