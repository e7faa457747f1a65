"""Each column and value form DP3 6.6's sky-model reader accepts, one row each (issue 16).

Every accepted form is parsed to the value DP3 gives it and survives
``parse(format(m)) == m``; every refused one gets one ``file:line`` line.
``test_dp3_columns.py`` checks the same forms against the real DP3.
"""

from __future__ import annotations

import math

import pytest

from ddpipe.errors import UserError
from ddpipe.sky.angles import parse_angle
from ddpipe.sky.skymodel import format_skymodel, parse_skymodel

D = math.radians

#: (FORMAT line, one source row, {attribute: value DP3 gives it})
ACCEPTED = [
    # OrientationIsAbsolute: DP3's booleans; empty is false
    ("Name, Ra, Dec, I, OrientationIsAbsolute", "s, 1deg, 2deg, 1, true", {"orientation_is_absolute": True}),
    ("Name, Ra, Dec, I, OrientationIsAbsolute", "s, 1deg, 2deg, 1, T", {"orientation_is_absolute": True}),
    ("Name, Ra, Dec, I, OrientationIsAbsolute", "s, 1deg, 2deg, 1, 1", {"orientation_is_absolute": True}),
    ("Name, Ra, Dec, I, OrientationIsAbsolute", "s, 1deg, 2deg, 1, False", {"orientation_is_absolute": False}),
    ("Name, Ra, Dec, I, OrientationIsAbsolute", "s, 1deg, 2deg, 1, ", {"orientation_is_absolute": False}),
    (
        "Name, Type, Ra, Dec, I, MajorAxis, MinorAxis, Orientation, OrientationIsAbsolute='true'",
        "g, GAUSSIAN, 1deg, 2deg, 1, 30, 10, 45",
        {"orientation_is_absolute": True, "major_axis": 30.0, "orientation": 45.0},
    ),
    # Category: a whole number, kept
    ("Name, Ra, Dec, I, Category", "s, 1deg, 2deg, 1, 1", {"category": 1}),
    ("Name, Ra, Dec, I, Category='2'", "s, 1deg, 2deg, 1", {"category": 2}),
    ("Name, Ra, Dec, I, Category", "s, 1deg, 2deg, 1, ", {"category": None}),
    # RotationMeasure with PolarizedFraction and PolarizationAngle (radians); ReferenceWavelength 0 allowed
    (
        "Name, Ra, Dec, I, RotationMeasure, PolarizedFraction, PolarizationAngle",
        "s, 1deg, 2deg, 1, 12.5, 0.2, 0.7",
        {"rotation_measure": 12.5, "polarized_fraction": 0.2, "polarization_angle": 0.7, "q": 0.0, "u": 0.0},
    ),
    (
        "Name, Ra, Dec, I, RotationMeasure, PolarizedFraction, PolarizationAngle, ReferenceWavelength",
        "s, 1deg, 2deg, 1, -3, 0.1, 0, 0",
        {"rotation_measure": -3.0, "polarized_fraction": 0.1, "polarization_angle": 0.0},
    ),
    # RotationMeasure with Q and U at a reference wavelength, or at c / ReferenceFrequency: DP3's fraction, angle
    (
        "Name, Ra, Dec, I, Q, U, RotationMeasure, ReferenceWavelength",
        "s, 1deg, 2deg, 2, 0.3, -0.4, 40, 2.0",
        {"rotation_measure": 40.0, "q": 0.0, "u": 0.0, "polarized_fraction": 0.25},
    ),
    (
        "Name, Ra, Dec, I, Q, U, RotationMeasure, ReferenceFrequency='1.5e8'",
        "s, 1deg, 2deg, 1, 0.1, 0, 5",
        {
            "polarized_fraction": 0.1,
            "polarization_angle": math.fmod(-5 * (299792458.0 / 1.5e8) ** 2, math.pi) + math.pi,
        },
    ),
    # defaults in the FORMAT line
    (
        "Name, Ra, Dec, I, ReferenceFrequency='1.5e8', SpectralIndex='[]'",
        "s, 1deg, 2deg, 1",
        {"reference_frequency": 1.5e8, "spectral_index": ()},
    ),
    (
        "Name, Ra, Dec, I, ReferenceFrequency=\"150e6\", SpectralIndex='[-0.7, 0.1]', LogarithmicSI='false'",
        "s, 1deg, 2deg, 1, , , ",
        {"spectral_index": (-0.7, 0.1), "log_si": False},
    ),
    ("Name, Ra, Dec, I, ReferenceFrequency, SpectralIndex", "s, 1deg, 2deg, 1, 1e8, -0.8", {"spectral_index": (-0.8,)}),
    (
        "Name, Ra, Dec, I, ReferenceFrequency, SpectralIndex",
        "s, 1deg, 2deg, 1, 1e8, '[1, 2]'",
        {"spectral_index": (1, 2)},
    ),
    ("Name, Ra, Dec, I, LogarithmicSI", "s, 1deg, 2deg, 1, no", {"log_si": False}),
    ("Name, Ra, Dec, I, LogarithmicSI", "s, 1deg, 2deg, 1, F", {"log_si": False}),
    ("Name, Ra, Dec, I, LogarithmicSI", "s, 1deg, 2deg, 1, Y", {"log_si": True}),
    (
        "Name, Type=fixed'GAUSSIAN', Ra, Dec, I, MajorAxis, MinorAxis, Orientation",
        "g, 1deg, 2deg, 1, 5, 4, 3",
        {"type": "GAUSSIAN"},
    ),
    # angle forms
    ("Name, Ra, Dec, I", "s, 01:30:00, +10.30.00, 1", {"ra": D(22.5), "dec": D(10.5)}),
    ("Name, Ra, Dec, I", "s, 01h30m00s, 10d30m00s, 1", {"ra": D(22.5), "dec": D(10.5)}),
    ("Name, Ra, Dec, I", "s, 22.5deg, -10.5deg, 1", {"ra": D(22.5), "dec": D(-10.5)}),
    ("Name, Ra, Dec, I", "s, 0.25rad, -0.125rad, 1", {"ra": 0.25, "dec": -0.125}),
    ("Name, Ra, Dec, I", "s, 0.25, -0.125, 1", {"ra": 0.25, "dec": -0.125}),
    ("Name, Ra, Dec, I", "s, 1.5h, 630arcmin, 1", {"ra": D(22.5), "dec": D(10.5)}),
    ("Name, Ra, Dec, I", "s, 81000arcsec, -00.30.00, 1", {"ra": D(22.5), "dec": D(-0.5)}),
    # split positions: hours or degrees, minutes, seconds; the sign of the whole part applies to all
    ("Name, rah, ram, ras, decd, decm, decs, I", "s, 1, 30, 0, -10, 30, 0, 1", {"ra": D(22.5), "dec": D(-10.5)}),
    ("Name, rad, ram, Dec, I", "s, 22, 30, 10.5deg, 1", {"ra": D(22.5), "dec": D(10.5)}),
    ("Name, Ra, dech, decm, I", "s, 22.5deg, 0, 42, 1", {"ra": D(22.5), "dec": D(10.5)}),
    ("Name, Ra, decd, decm, I", "s, 22.5deg, -0, 30, 1", {"dec": D(0.5)}),  # DP3's reading of -0 30'
    ("Name, ram, Dec, I", "s, 200, 2deg, 1", {"ra": parse_angle("200arcmin")}),  # minutes alone: of a degree
    # columns DP3 knows that carry nothing here: skipped, J2000, empty shapelet files
    ("Name, Ra, dummy, Dec, I", "s, 1deg, whatever, 2deg, 1", {"ra": D(1), "dec": D(2)}),
    ("Name, Ra, , Dec, I", "s, 1deg, skipped, 2deg, 1", {"dec": D(2)}),
    ("Name, Ra, Dec, I, RefType", "s, 1deg, 2deg, 1, j2000", {"i": 1.0}),
    ("Name, Ra, Dec, I, IShapelet, QShapelet, UShapelet, VShapelet", "s, 1deg, 2deg, 1, , , , ", {"i": 1.0}),
    ("Name, Ra, Dec, I, IShapelet", "s, 1deg, 2deg, 1, s.coef", {"i": 1.0}),  # DP3 reads it for SHAPELET rows only
    ("Name, Ra, Dec, I", "'quoted', 1deg, 2deg, 1", {"name": "quoted"}),
    ("Name, Type, Ra, Dec, I", 's, "point", 1deg, 2deg, 1', {"type": "POINT"}),
    # other separators than commas, as DP3 reads them: blanks (any run of them), semicolons
    (
        "Name Type Ra Dec I ReferenceFrequency SpectralIndex",
        "s POINT  1deg\t2deg 3 1e8 [-0.7, 0.1]",
        {"i": 3.0, "spectral_index": (-0.7, 0.1)},
    ),
    ("Name; Type; Patch; Ra; Dec; I", "s; POINT; ; 1deg; 2deg; 1", {"type": "POINT", "patch": None, "i": 1.0}),
]


@pytest.mark.parametrize("fmt, row, want", ACCEPTED, ids=[f"{k}:{r}" for k, (_, r, _) in enumerate(ACCEPTED)])
@pytest.mark.parametrize("style", ["comment", "line"])
def test_accepted_form(fmt: str, row: str, want: dict, style: str) -> None:
    header = f"# ({fmt}) = format" if style == "comment" else f"FORMAT = {fmt}"
    model = parse_skymodel(f"{header}\n\n{row}\n")
    (src,) = model.sources
    for attr, value in want.items():
        got = getattr(src, attr)
        if attr in ("ra", "dec"):
            assert got == pytest.approx(value, abs=1e-14), attr
        else:
            assert got == value, attr
    assert parse_skymodel(format_skymodel(model)) == model


def test_every_extra_column_is_written_only_when_used() -> None:
    plain = parse_skymodel("FORMAT = Name, Ra, Dec, I, OrientationIsAbsolute, Category\ns, 1deg, 2deg, 1, false,\n")
    assert "OrientationIsAbsolute" not in format_skymodel(plain) and "Category" not in format_skymodel(plain)
    fmt = "Name, Ra, Dec, I, Q, U, RotationMeasure, PolarizedFraction, PolarizationAngle, ReferenceWavelength"
    text = (
        f"FORMAT = {fmt}\na, 1deg, 2deg, 1, , , 5, 0.1, 0.2\nb, 1deg, 2deg, 1, 0.1, 0.2, 5, , , 2.5\nc, 1deg, 2deg, 1\n"
    )
    m = parse_skymodel(text)
    out = format_skymodel(m)
    assert "Orientation, RotationMeasure, PolarizedFraction, PolarizationAngle) = format" in out
    # a, b: Q and U left empty beside a fraction and angle (DP3 refuses both); c: no polarisation
    rows = {line[0]: line.split(", ") for line in out.splitlines() if line[:2] in ("a,", "b,", "c,")}
    assert rows["a"][6:8] == ["", ""] and rows["a"][-3:] == ["5.0", "0.1", "0.2"]
    assert rows["b"][6:8] == ["", ""] and rows["b"][-3] == "5.0"
    assert rows["c"][6:8] == ["0.0", "0.0"] and rows["c"][-3:] == ["", "", ""]
    assert parse_skymodel(out) == m


def test_rm_with_q_and_u_gives_dp3s_fraction_and_angle() -> None:
    # DP3: p = |Q + iU| / I(c/λr) with the log spectral shape, χ0 = atan2(U, Q)/2 − RM λr² (mod π)
    text = "FORMAT = Name, Ra, Dec, I, Q, U, RotationMeasure, ReferenceWavelength, ReferenceFrequency, SpectralIndex, "
    text += "LogarithmicSI\ns, 1deg, 2deg, 2, 0.3, 0.4, 10, 2.0, 1e8, [-0.7], false\n"
    (s,) = parse_skymodel(text).sources
    i_ref = 2 * (299792458.0 / 2.0 / 1e8) ** -0.7  # the log shape although LogarithmicSI is false
    assert s.polarized_fraction == pytest.approx(0.5 / i_ref, rel=1e-12)
    assert s.polarization_angle == pytest.approx(math.fmod(0.5 * math.atan2(0.4, 0.3) - 40.0, math.pi) + math.pi)
    # at the reference wavelength Q / U come back in the given ratio
    _, q, u, _ = s.stokes_at(299792458.0 / 2.0)
    assert float(u) / float(q) == pytest.approx(0.4 / 0.3, rel=1e-9)


RM = "FORMAT = Name, Ra, Dec, I, Q, U, RotationMeasure, PolarizedFraction, PolarizationAngle, ReferenceWavelength\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (RM + "s, 1deg, 2deg, 1, , , , 0.1, 0.2\n", "need a RotationMeasure"),
        (RM + "s, 1deg, 2deg, 1, , , , , , 2\n", "need a RotationMeasure"),
        (RM + "s, 1deg, 2deg, 1, , , 5\n", "needs Q and U, or PolarizedFraction and PolarizationAngle"),
        (RM + "s, 1deg, 2deg, 1, , , 5, 0.1\n", "needs Q and U, or PolarizedFraction and PolarizationAngle"),
        (RM + "s, 1deg, 2deg, 1, 0.1, , 5, , , 2\n", "give both Q and U"),
        (RM + "s, 1deg, 2deg, 1, 0.1, 0.1, 5, 0.1, 0.2\n", "not a mix"),
        (RM + "s, 1deg, 2deg, 1, 0.1, 0.1, 5\n", "needs a ReferenceWavelength or Frequency"),
        (RM + "s, 1deg, 2deg, 1, , , 5, 0.1, 0.2, 2\n", "ReferenceWavelength 0 only"),
        (RM + "s, 1deg, 2deg, 1, , , 5x, 0.1, 0.2\n", "RotationMeasure '5x' is not a number"),
        ("FORMAT = Name, Ra, Dec, I, OrientationIsAbsolute\ns, 1deg, 2deg, 1, absolutely\n", "not true or false"),
        ("FORMAT = Name, Ra, Dec, I, Category\ns, 1deg, 2deg, 1, first\n", "Category 'first' is not a whole number"),
        ("FORMAT = Name, Type, Ra, Dec, I\ns, shapelet, 1deg, 2deg, 1\n", "SHAPELET source, which neither ddpipe"),
        (
            "FORMAT = Name, Ra, Dec, I, SpectralIndex, ReferenceFrequency\ns, 1deg, 2deg, 1, [-0.7, 1e8\n",
            "unclosed '['",
        ),
        (
            "FORMAT = Name, Ra, Dec, I, SpectralIndex, ReferenceFrequency\ns, 1deg, 2deg, 1, -0.7], 1e8\n",
            "unbalanced ']'",
        ),
        (
            "FORMAT = Name, Ra, Dec, I, SpectralIndex, ReferenceFrequency\ns, 1deg, 2deg, 1, '[-0.7', 1e8\n",
            "mismatched brackets",
        ),
        ("FORMAT = Name, rah, ram, Dec, I\ns, 1, x, 2deg, 1\n", "ram 'x' is not a number"),
        ("FORMAT = Name, rah, ram, Dec, I\ns, , , 2deg, 1\n", "missing Ra or Dec"),
    ],
)
def test_refused_form(text: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        parse_skymodel(text, filename="m.skymodel")
    msg = str(info.value)
    assert msg.startswith("m.skymodel:2: ") and message in msg and "\n" not in msg, msg
