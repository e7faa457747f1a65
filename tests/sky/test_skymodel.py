"""makesourcedb / DP3 text sky models: parsing, writing, exact round-trip, errors."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from ddpipe.errors import UserError
from ddpipe.sky.angles import parse_angle
from ddpipe.sky.model import Patch, SkyModel, Source
from ddpipe.sky.skymodel import format_skymodel, parse_skymodel, read_skymodel, write_skymodel


def deg(x: float) -> float:
    return math.radians(x)


# A model using most of the format: both-style defaults, every position form,
# Gaussians, Stokes QUV, spectral-index lists, LogarithmicSI per source.
RICH = """\
# a comment before the format line
# (Name, Type, Patch, Ra, Dec, I, Q, U, V, ReferenceFrequency='150e6', SpectralIndex='[]', LogarithmicSI='true', MajorAxis, MinorAxis, Orientation) = format

, , bright, 01:30:57.0840, +31.13.40.1360
, , faint, 22.70193deg, 33.14793466666667deg

# sources
b1, POINT, bright, 01:30:57.0840, +31.13.40.1360, 10.5, 0.5, -0.25, 0.125, , [-0.7, 0.1]
b2, GAUSSIAN, bright, 01h31m00.0s, 31d14m00s, 2.0, , , , 140e6, -0.8, false, 30.0, 20.0, 45.0
f1, point, faint, 0.3962234rad, 0.5785359, 1.25
f2, , faint, 22.70193deg, +33.08.52.5648, 0.75, , , , , [0.1, -0.2, 0.03], False
"""


def test_foursources_parses(foursources: Path) -> None:
    m = read_skymodel(foursources)
    assert m.patch_names() == ["CygA", "source1", "source2", "source3"]
    assert [s.name for s in m.sources] == ["CygA-0", "source1-0", "source2-0", "source3-0"]
    assert [s.patch for s in m.sources] == ["CygA", "source1", "source2", "source3"]
    assert [s.i for s in m.sources] == [10.0, 20.0, 20.0, 10.0]
    assert {s.type for s in m.sources} == {"POINT"}
    cyg = m.sources[0]
    assert cyg.ra == pytest.approx(deg(15 * (1 + 30 / 60 + 57.084 / 3600)), abs=1e-15)
    assert cyg.dec == pytest.approx(deg(31 + 13 / 60 + 40.136 / 3600), abs=1e-15)
    assert (cyg.q, cyg.u, cyg.v, cyg.spectral_index, cyg.reference_frequency) == (0, 0, 0, (), 0)
    assert m.patch_centre("source2") == (m.sources[2].ra, m.sources[2].dec)
    assert m.format_fields == ("Name", "Type", "Patch", "Ra", "Dec", "I", "Q", "U", "V")


def test_rich_model_values() -> None:
    m = parse_skymodel(RICH)
    b1, b2, f1, f2 = m.sources
    assert m.patches == (
        Patch("bright", parse_angle("01:30:57.0840"), parse_angle("+31.13.40.1360")),
        Patch("faint", deg(22.70193), parse_angle("33.14793466666667deg")),
    )
    # defaults from the format line fill empty fields
    assert (b1.i, b1.q, b1.u, b1.v) == (10.5, 0.5, -0.25, 0.125)
    assert b1.reference_frequency == 150e6 and b1.spectral_index == (-0.7, 0.1) and b1.log_si
    assert b1.type == "POINT" and b1.major_axis == 0.0
    # a Gaussian with its own frequency, a bare spectral index and linear SI
    assert b2.type == "GAUSSIAN"
    assert (b2.major_axis, b2.minor_axis, b2.orientation) == (30.0, 20.0, 45.0)
    assert b2.reference_frequency == 140e6 and b2.spectral_index == (-0.8,) and not b2.log_si
    assert b2.ra == pytest.approx(deg(15 * (1 + 31 / 60)), abs=1e-15)
    assert b2.dec == pytest.approx(deg(31 + 14 / 60), abs=1e-15)
    # lower-case type, radians with and without the unit
    assert f1.type == "POINT" and f1.ra == 0.3962234 and f1.dec == 0.5785359
    assert f1.spectral_index == () and f1.reference_frequency == 150e6
    # empty type is POINT; LogarithmicSI is case-insensitive
    assert f2.type == "POINT" and f2.spectral_index == (0.1, -0.2, 0.03) and not f2.log_si
    # physics: the log and linear spectral shapes makesourcedb defines
    x = 120e6 / 150e6
    assert b1.stokes_i_at(120e6) == pytest.approx(10.5 * x ** (-0.7 + 0.1 * math.log10(x)))
    assert f2.stokes_i_at(120e6) == pytest.approx(0.75 + 0.1 * (x - 1) - 0.2 * (x - 1) ** 2 + 0.03 * (x - 1) ** 3)


def test_format_line_style_and_fixed_values() -> None:
    text = """\
FORMAT = Name, Type=fixed'GAUSSIAN', Ra, Dec, I, dummy, MajorAxis, MinorAxis='10', Orientation="0"
g1, 00:00:00, +00.00.00, 1.0, ignored, 20, , 
"""
    (g,) = parse_skymodel(text).sources
    assert (g.type, g.major_axis, g.minor_axis, g.orientation, g.patch) == ("GAUSSIAN", 20.0, 10.0, 0.0, None)


def test_crlf_and_case_insensitive_header() -> None:
    text = "format = name, TYPE, ra, DEC, i\r\ns1, POINT, 10deg, -20deg, 3\r\n"
    (s,) = parse_skymodel(text).sources
    assert (s.name, s.ra, s.dec, s.i) == ("s1", parse_angle("10deg"), parse_angle("-20deg"), 3.0)


def test_dec_with_colons_is_degrees_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    text = "FORMAT = Name, Ra, Dec, I\ns1, 01:00:00, -12:30:00, 1\n"
    (s,) = parse_skymodel(text).sources
    assert s.dec == pytest.approx(deg(-12.5), abs=1e-15) and s.ra == pytest.approx(deg(15.0), abs=1e-15)
    assert "<text>:2: 1 declination(s) written dd:mm:ss, which DP3 refuses" in caplog.text


def test_round_trip_is_exact(foursources: Path, tmp_path: Path) -> None:
    for original in (read_skymodel(foursources), parse_skymodel(RICH)):
        out = write_skymodel(original, tmp_path / "model.skymodel")
        again = read_skymodel(out)
        assert again == original
        assert again.patches == original.patches  # patches are part of ==, checked explicitly
        assert format_skymodel(again) == out.read_text()  # a fixed point after one write


def test_round_trip_random_models_exact() -> None:
    rng = np.random.default_rng(7)
    for trial in range(20):
        n = int(rng.integers(1, 40))
        npatch = int(rng.integers(0, 4))
        patches = tuple(
            Patch(f"P{k}", float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(-np.pi / 2, np.pi / 2)))
            for k in range(npatch)
        )
        sources = []
        for k in range(n):
            gauss = bool(rng.integers(0, 2))
            si = tuple(float(c) for c in rng.normal(size=int(rng.integers(0, 4))))
            sources.append(
                Source(
                    name=f"s{trial}_{k}",
                    ra=float(rng.uniform(0, 2 * np.pi)),
                    dec=float(np.arcsin(rng.uniform(-1, 1))),
                    i=float(rng.lognormal()),
                    type="GAUSSIAN" if gauss else "POINT",
                    patch=f"P{rng.integers(0, npatch)}" if npatch else None,
                    q=float(rng.normal()),
                    u=float(rng.normal()),
                    v=float(rng.normal() * 1e-3),
                    major_axis=float(rng.uniform(0, 100)) if gauss else 0.0,
                    minor_axis=float(rng.uniform(0, 50)) if gauss else 0.0,
                    orientation=float(rng.uniform(-180, 180)) if gauss else 0.0,
                    reference_frequency=float(rng.uniform(50e6, 250e6)) if si or rng.integers(0, 2) else 0.0,
                    spectral_index=si,
                    log_si=bool(rng.integers(0, 2)),
                )
            )
        # every patch row needs a source
        used = {s.patch for s in sources}
        model = SkyModel(tuple(sources), tuple(p for p in patches if p.name in used))
        assert parse_skymodel(format_skymodel(model)) == model


def test_writer_adds_centroid_rows_for_patches_without_one() -> None:
    a = Source("a", deg(10), deg(40), 3.0, patch="X")
    b = Source("b", deg(11), deg(40), 1.0, patch="X")
    back = parse_skymodel(format_skymodel(SkyModel((a, b))))
    (p,) = back.patches
    assert p.name == "X" and (p.ra, p.dec) == pytest.approx(SkyModel((a, b)).patch_centre("X"), abs=1e-15)
    assert back.sources == (a, b)


def test_writer_keeps_source_order_across_patches() -> None:
    text = "FORMAT = Name, Patch, Ra, Dec, I\n, A, 1deg, 1deg\n, B, 2deg, 2deg\nb1, B, 2deg, 2deg, 1\na1, A, 1deg, 1deg, 1\nb2, B, 2deg, 2deg, 1\n"
    m = parse_skymodel(text)
    assert [s.name for s in parse_skymodel(format_skymodel(m)).sources] == ["b1", "a1", "b2"]


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path, foursources: Path) -> None:
    target = tmp_path / "out.skymodel"
    target.write_text("old contents\n")
    bad = SkyModel((Source("x", 0.1, 0.2, float("nan")),))
    with pytest.raises(UserError, match="finite"):
        write_skymodel(bad, target)
    assert target.read_text() == "old contents\n"
    write_skymodel(read_skymodel(foursources), target)
    assert read_skymodel(target).patch_names() == ["CygA", "source1", "source2", "source3"]
    assert sorted(os.listdir(tmp_path)) == ["out.skymodel"]


def test_write_to_missing_folder_is_a_user_error(tmp_path: Path, foursources: Path) -> None:
    with pytest.raises(UserError, match="nope"):
        write_skymodel(read_skymodel(foursources), tmp_path / "nope" / "m.skymodel")


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        read_skymodel(tmp_path / "missing.skymodel")


@pytest.mark.parametrize(
    "model, message",
    [
        (SkyModel(()), "no sources"),
        (SkyModel((Source("a,b", 0, 0, 1),)), "cannot be written"),
        (SkyModel((Source("a", 0, 0, 1), Source("a", 0, 0, 1))), "twice"),
        (SkyModel((Source("a", 0, 0, 1, type="DISK"),)), "POINT or GAUSSIAN"),
        (SkyModel((Source("a", 0, 0, 1, spectral_index=(-0.7,)),)), "reference frequency"),
        (SkyModel((Source("a", 0, 0, 1, patch="P"),), (Patch("P", 0, 0), Patch("Q", 0, 0))), "'Q' has no sources"),
        (SkyModel((Source("a", 0, 0, 1, patch=" P"),)), "cannot be written"),
    ],
)
def test_writer_refuses(model: SkyModel, message: str) -> None:
    with pytest.raises(UserError, match=message):
        format_skymodel(model)


HEAD = "# (Name, Type, Patch, Ra, Dec, I, MajorAxis, MinorAxis, Orientation) = format\n"


@pytest.mark.parametrize(
    "text, line, message",
    [
        # headers
        # no FORMAT line: DP3's default columns (Name, Type, Ra, Dec, I, ...) do not fit this row
        ("s1, POINT, , 0deg, 0deg, 1\n", 1, "missing Ra or Dec (no FORMAT line before line 1: read as DP3 does"),
        ("# Name, Type, Ra, Dec, I = format\ns1, POINT, 0deg, 0deg, 1\n", 1, "must read"),
        (
            "# (Name, Type, Ra, Dec, I) = fromat\ns1, POINT, 0deg, 0deg, 1\n",
            1,
            "looks like a FORMAT comment but ends in '= fromat'",
        ),
        ("FORMAT = Name, Type, Ra, Dec, I, Ishift\n", 1, "unknown column 'Ishift': DP3 does not know it"),
        ("FORMAT = Name, Type, Ra, Dec, I, SpectralIndexDegree\n", 1, "'SpectralIndexDegree' is refused by DP3"),
        ("FORMAT = Name, Type, Ra, rah, Dec, I\n", 1, "has 'Ra' and rah"),
        ("FORMAT = Name, Type, rah, rad, Dec, I\n", 1, "both 'rah' and 'rad'"),
        ("FORMAT = Name, Type; Ra, Dec, I\n", 1, "mixes separators (',' ';'); ddpipe reads one throughout"),
        ("FORMAT = Name, Type, Ra, Dec, I='1.0\n", 1, "bad FORMAT entry"),
        ("FORMAT = Name, Type, Ra, I\n", 1, "no 'Dec' column"),
        ("FORMAT = Name, Ra, Dec, I, I\n", 1, "appears twice"),
        ("FORMAT = Name, Ra, Dec, I=150e6\n", 1, "bad FORMAT entry"),
        ("FORMAT = Name, Ra, Dec, I\nFORMAT = Name, Ra, Dec, I\n", 2, "second FORMAT line"),
        # rows
        (HEAD + "\ns1, POINT, , 0deg\n", 3, "missing Ra or Dec"),
        (HEAD + "s1, POINT, , 0deg, 0deg\n", 2, "missing I"),
        (HEAD + "s1, POINT, , 0deg, 0deg, 1, , , , 7\n", 2, "10 fields but the FORMAT line names 9"),
        (HEAD + "s1, POINT, , 0deg, 12:00:00:00, 1\n", 2, "bad Dec"),
        (HEAD + "s1, POINT, , 1h30x, 0deg, 1\n", 2, "bad Ra"),
        (HEAD + "s1, POINT, , 25:00, 0deg, 1\n", 2, "'25:00' is 375 degrees, outside ±360"),
        (HEAD + "s1, POINT, , 400deg, 0deg, 1\n", 2, "outside ±360"),
        (HEAD + "s1, POINT, , 0deg, 91deg, 1\n", 2, "outside ±90"),
        (HEAD + "s1, POINT, , 0deg, 0deg, 1.0Jy\n", 2, "I '1.0Jy' is not a number"),
        (HEAD + "s1, POINT, , 0deg, 0deg, nan\n", 2, "not a number"),
        (HEAD + "s1, SHAPELET, , 0deg, 0deg, 1\n", 2, "'s1' is a SHAPELET source, which neither ddpipe nor DP3"),
        (HEAD + "s1, DISK, , 0deg, 0deg, 1\n", 2, "'s1' is a DISK source"),
        (HEAD + "s1, BLOB, , 0deg, 0deg, 1\n", 2, "unknown Type 'BLOB'"),
        (HEAD + "s1, GAUSSIAN, , 0deg, 0deg, 1\n", 2, "needs MajorAxis, MinorAxis"),
        (HEAD + "s1, GAUSSIAN, , 0deg, 0deg, 1, 10, 5\n", 2, "missing Orientation"),
        (HEAD + "s1, GAUSSIAN, , 0deg, 0deg, 1, -10, 5, 0\n", 2, "negative"),
        (HEAD + "s1, POINT, P1, 0deg, 0deg, 1\n", 2, "no patch row above defines"),
        # a patch row after its sources (DP3: "Patch name P1 not defined before source using it")
        (HEAD + "s1, POINT, P1, 1deg, 1deg, 1\n, , P1, 5deg, 5deg\n", 2, "put the patch row ', , P1, ra, dec' before"),
        (HEAD + ", , P1, 0deg, 0deg\n", 2, "'P1' has no sources"),
        (HEAD + ", , P1, 0deg, 0deg\n, , P1, 0deg, 0deg\n", 3, "already defined on line 2"),
        (HEAD + "s1, POINT, , 0deg, 0deg, 1\ns1, POINT, , 0deg, 0deg, 2\n", 3, "already defined on line 2"),
        (HEAD + ", , , 0deg, 0deg, 1\n", 2, "neither a Name"),
        (HEAD + "s1, POINT, , 0deg, 0deg, [1\n", 2, "unclosed"),
        (HEAD + "s1, POINT, , 0deg, 0deg, 1]\n", 2, "unbalanced"),
        (HEAD + "s1, 'POINT, , 0deg, 0deg, 1\n", 2, "unclosed quote"),
        (HEAD + "s1, POINT, , 0deg, 0deg, 1 # trailing comment\n", 2, "not a number"),
        ("FORMAT = Name, Ra, Dec, I, SpectralIndex\ns1, 0deg, 0deg, 1, [-0.7]\n", 2, "no positive ReferenceFrequency"),
        (
            "FORMAT = Name, Ra, Dec, I, SpectralIndex, ReferenceFrequency\ns1, 0deg, 0deg, 1, [-0.7, x], 1e8\n",
            2,
            "'x' is not a number",
        ),
        ("FORMAT = Name, Ra, Dec, I, LogarithmicSI\ns1, 0deg, 0deg, 1, maybe\n", 2, "not true or false"),
        ("FORMAT = Name, Ra, Dec, I, RefType\ns1, 0deg, 0deg, 1, B1950\n", 2, "only J2000"),
    ],
)
def test_malformed_input(text: str, line: int, message: str) -> None:
    with pytest.raises(UserError) as info:
        parse_skymodel(text, filename="m.skymodel")
    msg = str(info.value)
    assert msg.startswith(f"m.skymodel:{line}: "), msg
    assert message in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no FORMAT line"),
        ("# only a comment\n\n", "no FORMAT line"),
        (HEAD, "no sources"),
        (HEAD + "# nothing\n", "no sources"),
    ],
)
def test_files_without_rows(text: str, message: str) -> None:
    with pytest.raises(UserError, match=f"^m.skymodel: {message}"):
        parse_skymodel(text, filename="m.skymodel")


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.skymodel"
    path.write_text(HEAD + "s1, POINT, , 0deg, 0deg, one\n")
    with pytest.raises(UserError, match=rf"^{path}:2: source 's1'|^{path}:2: I 'one'"):
        read_skymodel(path)


def test_no_format_line_means_dp3s_default_columns(caplog: pytest.LogCaptureFixture) -> None:
    text = "# a comment\ns1, GAUSSIAN, 01:00:00, +10.00.00, 2.0, 0.5, , , 30, 20, 45\n"
    (s,) = parse_skymodel(text, filename="m.txt").sources
    assert (s.name, s.type, s.i, s.q, s.major_axis, s.minor_axis, s.orientation) == (
        "s1",
        "GAUSSIAN",
        2.0,
        0.5,
        30,
        20,
        45,
    )
    assert s.ra == pytest.approx(math.radians(15.0), abs=1e-15) and s.dec == pytest.approx(
        math.radians(10.0), abs=1e-15
    )
    assert "m.txt:2: no FORMAT line before the first row; read with DP3's default columns" in caplog.text


def test_category_is_kept_and_j2000_reftype_accepted_and_dropped() -> None:
    text = "FORMAT = Name, Ra, Dec, I, Category, RefType\ns1, 0deg, 0deg, 1, 2, J2000\n"
    m = parse_skymodel(text)
    assert m.sources == (Source("s1", 0.0, 0.0, 1.0, category=2),)
    written = format_skymodel(m)
    assert "Category) = format" in written and "RefType" not in written
    assert parse_skymodel(written) == m
