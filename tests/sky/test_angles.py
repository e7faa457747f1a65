"""Angles in the makesourcedb forms: meaning of each form, exact degree round-trip."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddpipe.sky.angles import AngleError, format_degrees, parse_angle

# 01:30:57.0840 = 22.73785 deg;  +31.13.40.1360 = 31 + 13/60 + 40.136/3600 deg
RA_DEG = 22.73785
DEC_DEG = 31 + 13 / 60 + 40.136 / 3600


@pytest.mark.parametrize(
    "text, colon_unit, degrees",
    [
        ("01:30:57.0840", "h", RA_DEG),
        ("1:30:57.084", "h", RA_DEG),
        ("01h30m57.0840s", "h", RA_DEG),
        ("01H30M57.084", "h", RA_DEG),
        ("22.73785deg", "h", RA_DEG),
        ("1364.271arcmin", "h", RA_DEG),
        ("81856.26arcsec", "h", RA_DEG),
        ("1.5158566666666667h", "h", RA_DEG),
        ("22.44.16.26", "h", RA_DEG),  # dots are degrees even for RA
        ("+31.13.40.1360", "h", DEC_DEG),
        ("31d13m40.136s", "h", DEC_DEG),
        ("31D13M40.136", "h", DEC_DEG),
        ("31:13:40.136", "deg", DEC_DEG),
        ("-31.13.40.136", "h", -DEC_DEG),
        ("-00.30.00", "h", -0.5),
        ("-0:30:00", "deg", -0.5),
        ("+31..40.136", "h", 31 + 40.136 / 3600),  # empty minutes, as casacore reads it
        ("  3.1227815555555555e1deg ", "h", DEC_DEG),
    ],
)
def test_forms(text: str, colon_unit: str, degrees: float) -> None:
    assert parse_angle(text, colon_unit=colon_unit) == pytest.approx(math.radians(degrees), abs=1e-15)


def test_bare_number_and_rad_are_radians() -> None:
    # casacore's default unit is the radian: "0.5" is 0.5 rad, as DP3 reads it
    assert parse_angle("0.5") == 0.5
    assert parse_angle("-0.25rad") == -0.25


def test_degree_conversion_is_correctly_rounded() -> None:
    # 50-digit arithmetic: 30deg is the double nearest to pi/6
    assert parse_angle("30deg") == float("0.52359877559829887307710723054658381403286")
    assert parse_angle("02:00:00") == parse_angle("30deg")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "22.7deg5",
        "22.7DEG",  # casacore units are case-sensitive: DP3 refuses this
        "22.7d",  # casacore reads a float followed by d as days
        "01:61:00",
        "01:30:60.5",
        "1.2.3.4.5",
        "'22.7deg'",  # DP3 does not unquote positions
        "nan",
        "inf",
        "1_000",
    ],
)
def test_bad_angles(text: str) -> None:
    with pytest.raises(AngleError):
        parse_angle(text)


def test_format_degrees_reads_back_exactly() -> None:
    rng = np.random.default_rng(20240601)
    values = np.concatenate(
        [
            rng.uniform(0, 2 * np.pi, 3000),
            rng.uniform(-np.pi / 2, np.pi / 2, 3000),
            rng.uniform(-1, 1, 1000) * 10.0 ** rng.uniform(-12, 0, 1000),
            [0.0, -0.0, np.pi, 2 * np.pi, np.pi / 2, -np.pi / 2, 5e-324],
        ]
    )
    for x in values:
        text = format_degrees(float(x))
        assert text.endswith("deg")
        back = parse_angle(text)
        assert back == x and math.copysign(1, back) == math.copysign(1, x), (x, text)


def test_format_degrees_is_short_for_round_numbers() -> None:
    assert format_degrees(parse_angle("30deg")) == "30deg"
    assert format_degrees(parse_angle("22.73785deg")) == "22.73785deg"
    assert format_degrees(0.0) == "0deg"
    assert format_degrees(-0.0) == "-0deg"


def test_format_degrees_refuses_non_finite() -> None:
    with pytest.raises(ValueError):
        format_degrees(float("nan"))
