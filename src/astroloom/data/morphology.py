"""Morphological types as labels: a catalogue's Hubble types (``E3``, ``SA0^-``, ``SAB(rs)bc``,
``IBm``, or numerical stages such as HyperLEDA's ``-2.1``) read as numbers a probe can use.

Two labels come from one column of types:

* the de Vaucouleurs / RC3 **stage** T: E −5, E⁺ −4, S0⁻ −3, S0 −2, S0⁺ −1, S0/a 0, Sa 1,
  Sab 2, Sb 3, Sbc 4, Sc 5, Scd 6, Sd 7, Sdm 8, Sm 9, Im and Irr 10 (de Vaucouleurs et al.
  1991); NaN where the stage is not given (a bare ``S``) or the text is no type;
* **early**: 1 for ellipticals and lenticulars (T < 0.5: E, cD, dE, dSph, S0, S0/a), 0 for
  spirals and irregulars, NaN where unknown — the split of galaxy-zoo style early/late probes.

Ring, bar and variety marks (``(R')``, ``SAB``, ``(rs)``), uncertainty (``:``, ``?``),
``pec``, ``sp`` and activity tags after a comma (``Sy2``, ``LINER``) do not change the stage.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache

# Spiral stages after the family (S, SA, SB, SAB) and variety ((r), (s), (rs)).
_SPIRAL_STAGES = {"a": 1, "ab": 2, "b": 3, "bc": 4, "c": 5, "cd": 6, "d": 7, "dm": 8, "m": 9}
_FAMILY = r"S(?:AB|A|B)?"
_VARIETY = r"(?:\([^)]*\))?"
_ELLIPTICAL = re.compile(r"^(?:cD|cE|dE|D|E)(?P<plus>\+)?(?:\d|[-:?.(ps]|$)")
_SPHEROIDAL = re.compile(r"^dSph")
_LENTICULAR = re.compile(rf"^{_FAMILY}{_VARIETY}0(?P<sign>[-+°^]*-|[-+°^]*\+|[°^]*)(?P<a>/?a)?")
_SPIRAL = re.compile(rf"^{_FAMILY}{_VARIETY}(?P<stage>ab|a|bc|b|cd|c|dm|d|m)(?=[^a-z]|[rsp]|$)")
_SPIRAL_NO_STAGE = re.compile(rf"^{_FAMILY}{_VARIETY}(?:[prs:?.]|$)")
_IRREGULAR = re.compile(
    r"^(?:d?Irr|d?Ir|d?Im|dI|I(?:AB|A|B)?" + _VARIETY + r"m?)(?:I{1,2}|[:?.(p]|$)"
)
# Numerical stages run from −6 (compact ellipticals) to 11 (compact irregulars) in RC3.
_NUMERIC_RANGE = (-7.0, 11.0)
EARLY_BELOW = 0.5  # S0/a (T = 0) counts as early, Sa (T = 1) as late


def _clean(text: str) -> str:
    text = str(text).strip().split(",")[0].strip()
    text = re.sub(r"0\s*/\s*a", "0a", text)  # S0/a, SB0/a
    text = text.replace("E/S0", "S0-").replace("E-S0", "S0-")
    text = text.split("/")[0].strip()  # "dSph/dE3": the first of two readings
    text = re.sub(r"^\(R'?[_\d']*\)\s*", "", text)  # outer ring
    return text.replace(" ", "")


@lru_cache(maxsize=4096)  # a catalogue repeats a few thousand distinct types at most
def read_type(text: str) -> tuple[float, float]:
    """(RC3 stage T, early) of a morphological type, read once: :func:`hubble_stage` and
    :func:`is_early` are its two halves."""
    s = _clean(text)
    stage = _stage(s)
    if math.isfinite(stage):
        return stage, float(stage < EARLY_BELOW)
    return stage, 0.0 if s and _SPIRAL_NO_STAGE.match(s) else math.nan


def _stage(s: str) -> float:
    if not s:
        return math.nan
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        low, high = _NUMERIC_RANGE
        return value if math.isfinite(value) and low <= value <= high else math.nan
    if m := _ELLIPTICAL.match(s):
        return -4.0 if m.group("plus") else -5.0
    if _SPHEROIDAL.match(s):
        return -5.0
    if m := _LENTICULAR.match(s):
        if m.group("a"):
            return 0.0
        sign = m.group("sign")
        return -3.0 if sign.endswith("-") else -1.0 if sign.endswith("+") else -2.0
    if m := _SPIRAL.match(s):
        return float(_SPIRAL_STAGES[m.group("stage")])
    if _IRREGULAR.match(s):
        return 10.0
    return math.nan


def hubble_stage(text: str) -> float:
    """The RC3 stage T of a morphological type (``E3`` → −5, ``SAB(rs)bc`` → 4, ``-2`` → −2);
    NaN when the text names no type or a spiral without its stage."""
    return read_type(str(text))[0]


def is_early(text: str) -> float:
    """1.0 for an elliptical or lenticular type, 0.0 for a spiral or irregular, NaN unknown."""
    return read_type(str(text))[1]


def looks_like_types(values: Sequence[str], share: float = 0.8) -> bool:
    """True when at least ``share`` of the non-empty values read as morphological types.
    Numbers alone do not count: a numeric column is a label as it stands."""
    texts = [str(v).strip() for v in values if str(v).strip() not in ("", "--", "nan")]
    if not texts or all(_is_number(t) for t in texts):
        return False
    known = sum(math.isfinite(is_early(t)) for t in texts)
    return known >= share * len(texts)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
