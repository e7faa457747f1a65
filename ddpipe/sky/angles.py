"""Angles in the makesourcedb / DP3 text forms, read and written exactly.

DP3 reads sky-model positions with casacore's ``MVAngle::read``. The forms
accepted here are the ones DP3 accepts with the same meaning (checked against
the ``dp3`` wheel, see ``tests/sky/test_dp3_acceptance.py``):

========================  =======================================  ===========
form                      example                                  unit
========================  =======================================  ===========
colons                    ``01:30:57.084``                         hours
letters                   ``01h30m57.084s``, ``31d13m40.136s``     hours, deg
dots (two or three)       ``+31.13.40.136``                        degrees
number + unit             ``22.73785deg``, ``0.3968rad``,
                          ``1364.3arcmin``, ``81856arcsec``,
                          ``1.5159h``
bare number               ``0.3968``                               radians
========================  =======================================  ===========

DP3 refuses colons in a declination; :func:`parse_angle` reads them as degrees
only when ``colon_unit="deg"`` is asked for (the caller warns).

Conversions go through 50-digit decimals, so a degree string is turned into the
float nearest to its exact value in radians, and :func:`format_degrees` finds
the shortest ``<x>deg`` string that reads back to the very same float.
"""

from __future__ import annotations

import math
import re
from decimal import Context, Decimal, InvalidOperation, localcontext

_CTX = Context(prec=50)
#: π to 60 digits: 50-digit arithmetic keeps degree → radian conversion exact to
#: well below half an ulp of a double.
_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494")
_DEG_PER_RAD = _CTX.divide(Decimal(180), _PI)
_RAD_PER_DEG = _CTX.divide(_PI, Decimal(180))

_NUM = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_RE_UNIT = re.compile(rf"^([+-]?{_NUM})(deg|rad|arcmin|arcsec|h)$")
_RE_BARE = re.compile(rf"^[+-]?{_NUM}$")
_RE_COLON = re.compile(r"^([+-]?)(\d+):(\d*)(?::(\d*\.?\d*))?$")
_RE_DOTS = re.compile(r"^([+-]?)(\d*)\.(\d*)\.(\d*\.?\d*)$")
_RE_LETTERS = re.compile(r"^([+-]?)(\d+)([hHdD])(\d+)(?:[mM](\d*\.?\d*)[sS]?)?$")

_UNIT_DEG = {
    "deg": Decimal(1),
    "arcmin": _CTX.divide(Decimal(1), Decimal(60)),
    "arcsec": _CTX.divide(Decimal(1), Decimal(3600)),
    "h": Decimal(15),
}


class AngleError(ValueError):
    """A string that is not an angle in a form DP3 reads the same way."""


def _dec(text: str) -> Decimal:
    try:
        return Decimal(text) if text else Decimal(0)
    except InvalidOperation as exc:  # pragma: no cover - the regexes admit only numbers
        raise AngleError(f"bad number {text!r}") from exc


def _sexagesimal(sign: str, whole: str, minutes: str, seconds: str | None, text: str) -> Decimal:
    m = _dec(minutes)
    s = _dec(seconds or "")
    if m >= 60 or s >= 60:
        raise AngleError(f"{text!r}: minutes and seconds must be below 60")
    with localcontext(_CTX):
        value = _dec(whole) + m / 60 + s / 3600
    return -value if sign == "-" else value


def _to_radians(degrees: Decimal) -> float:
    with localcontext(_CTX):
        return float(degrees * _RAD_PER_DEG)


def parse_angle(text: str, colon_unit: str = "h") -> float:
    """Read one angle in a makesourcedb form (see the module docstring).

    Parameters
    ----------
    text : str
        The field as written, surrounding blanks allowed.
    colon_unit : {"h", "deg"}
        What ``a:b:c`` means: hours (right ascension, as DP3 reads it) or
        degrees (a declination in ``dd:mm:ss``, which DP3 itself refuses).

    Returns
    -------
    float
        The angle in radians.

    Raises
    ------
    AngleError
        When the text is not one of the accepted forms.
    """
    t = text.strip()
    if not t:
        raise AngleError("empty angle")
    if _RE_BARE.match(t):
        return float(t)  # casacore's default unit is the radian
    m = _RE_UNIT.match(t)
    if m:
        if m.group(2) == "rad":
            return float(m.group(1))
        with localcontext(_CTX):
            return _to_radians(_dec(m.group(1)) * _UNIT_DEG[m.group(2)])
    m = _RE_COLON.match(t)
    if m:
        value = _sexagesimal(m.group(1), m.group(2), m.group(3), m.group(4), t)
        if colon_unit == "h":
            value = value * 15
        return _to_radians(value)
    m = _RE_DOTS.match(t)
    if m:
        return _to_radians(_sexagesimal(m.group(1), m.group(2), m.group(3), m.group(4), t))
    m = _RE_LETTERS.match(t)
    if m:
        value = _sexagesimal(m.group(1), m.group(2), m.group(4), m.group(5), t)
        if m.group(3) in "hH":
            value = value * 15
        return _to_radians(value)
    raise AngleError(
        f"{t!r} is not an angle; use e.g. 01:30:57.08 (hours), +31.13.40.13 (deg.min.sec), 12.5deg or 0.218rad"
    )


def format_degrees(radians: float) -> str:
    """A short ``<x>deg`` string that :func:`parse_angle` reads back as exactly ``radians``.

    Parameters
    ----------
    radians : float
        A finite angle in radians.

    Returns
    -------
    str
        For example ``"22.73785deg"`` or ``"30deg"``; DP3 reads it to within an ulp.
    """
    x = float(radians)
    if not math.isfinite(x):
        raise ValueError(f"angle {radians!r} is not finite")
    with localcontext(_CTX):
        deg = Decimal(x) * _DEG_PER_RAD
    # 15 significant digits give the short form of round values (30deg, not
    # 30.000000000000004deg); repr of the nearest double almost always reads back;
    # more digits settle the rare rest.
    nearest = float(deg)
    short = format(nearest, ".15g")
    if abs(float(short) - nearest) <= 4 * math.ulp(nearest):  # cheap test before the exact one
        text = _exact(short, x)
        if text:
            return text
    text = _exact(repr(nearest), x)
    if text:
        return text
    for digits in range(17, 30):
        text = _exact(format(deg, f".{digits}g"), x)
        if text:
            return text
    raise RuntimeError(f"no exact degree form for {x!r}")  # pragma: no cover - 29 digits always do


def _exact(number: str, x: float) -> str | None:
    """``number + "deg"`` if it reads back as exactly ``x`` (sign of zero included), else None."""
    text = number.lower() + "deg"
    back = parse_angle(text)
    if back == x and math.copysign(1.0, back) == math.copysign(1.0, x):
        return text
    return None
