"""``ddpipe sky convert IN OUT``: any model DP3 reads → one ddpipe and DP3 both read, one line per dropped column.

Bad input ends in one line naming file:line and exit 2, with the input untouched
and nothing written. The DP3 check predicts the input and the output: the same
visibilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skysamples import dp3_predict

from ddpipe.cli import main
from ddpipe.sky.skymodel import parse_skymodel, read_skymodel

#: Every kind of column the output cannot carry as it is, around tDDECal's phase centre.
LOSSY = """\
# made by hand: split positions, a rotation measure with Q and U at a wavelength, columns DP3 skips or ignores
FORMAT = Name, Type, Patch, rah, ram, ras, decd, decm, decs, I, Q, U, RotationMeasure, ReferenceWavelength, ReferenceFrequency='1.4e8', OrientationIsAbsolute, RefType, dummy, Foo, IShapelet
, , A, 1, 37, 0.0, 33, 0, 0.0
a1, POINT, A, 1, 37, 0.0, 33, 0, 0.0, 2.0, 0.1, 0.2, 30, 2.0, , false, J2000, x, 3.5, a.coef
a2, POINT, A, 1, 36, 12.5, 33, 20, 30.0, 1.0, , , , , , , , , 1,
a3, POINT, A, 1, 37, 30.0, 33, 5, 0.0, 0.5, 0.05, , , , , , , , ,
"""

DROPPED = [
    "column 'rah': positions are written as Ra and Dec in degrees, to the same value",
    "column 'ram': positions are written as Ra and Dec in degrees, to the same value",
    "column 'ras': positions are written as Ra and Dec in degrees, to the same value",
    "column 'decd': positions are written as Ra and Dec in degrees, to the same value",
    "column 'decm': positions are written as Ra and Dec in degrees, to the same value",
    "column 'decs': positions are written as Ra and Dec in degrees, to the same value",
    "column 'ReferenceWavelength': rotation measures given with Q and U at that wavelength are written as the "
    "PolarizedFraction and PolarizationAngle DP3 derives from them",
    "column 'OrientationIsAbsolute': false for every source, which is DP3's default",
    "column 'RefType': every source is J2000, which DP3 assumes without it",
    "column 'dummy': a skipped column, which DP3 skips too",
    "column 'Foo': DP3 does not know it (it reads its numbers and uses none)",
    "column 'IShapelet': only SHAPELET sources use it, and DP3 ignores it on the model's POINT and GAUSSIAN rows",
]


def test_convert_says_what_it_dropped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "in.skymodel"
    src.write_text(LOSSY)
    out = tmp_path / "out.skymodel"
    assert main(["sky", "convert", str(src), str(out), "--drop-unknown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == [f"{src}: dropped {d}" for d in DROPPED]
    assert lines[-1] == f"{out}: 3 source(s) in 1 patch(es), as ddpipe and DP3 read it"
    assert src.read_text() == LOSSY  # the input untouched
    model = read_skymodel(out)
    (a1, a2, a3) = model.sources
    assert a1.rotation_measure == 30.0 and a1.polarized_fraction == pytest.approx(np.hypot(0.1, 0.2) / 2.0)
    assert a2.rotation_measure is None and a2.reference_frequency == 1.4e8 and a3.q == 0.05


def test_convert_keeps_what_it_can_and_says_nothing_then(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = "FORMAT = Name, Type, Ra, Dec, I, MajorAxis, MinorAxis, Orientation, OrientationIsAbsolute, Category\n"
    text += "g, GAUSSIAN, 24deg, 33deg, 1, 20, 10, 30, true, 1\n"
    src = tmp_path / "in.txt"
    src.write_text(text)
    assert main(["sky", "convert", str(src), str(tmp_path / "out.txt")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'out.txt'}: 1 source(s) in 0 patch(es), as ddpipe and DP3 read it"
    ]
    assert read_skymodel(tmp_path / "out.txt") == parse_skymodel(text)


HEAD = "FORMAT = Name, Type, Patch, Ra, Dec, I, ReferenceFrequency, SpectralIndex\n"


@pytest.mark.parametrize(
    "text, line, message",
    [
        # a column DP3 does not know (here a misspelling of Orientation)
        (
            "FORMAT = Name, Type, Ra, Dec, I, Orientaton\ns, POINT, 1deg, 2deg, 1, 30\n",
            1,
            "unknown column 'Orientaton'",
        ),
        # a SHAPELET row
        (HEAD + "s, SHAPELET, , 1deg, 2deg, 1\n", 2, "'s' is a SHAPELET source"),
        # mismatched brackets in SpectralIndex
        (HEAD + "s, POINT, , 1deg, 2deg, 1, 1e8, [-0.7, 0.1\n", 2, "unclosed '['"),
        (HEAD + "s, POINT, , 1deg, 2deg, 1, 1e8, -0.7]\n", 2, "unbalanced ']'"),
        # a patch row after its sources, with another position than theirs
        (HEAD + "s, POINT, P, 1deg, 2deg, 1\n, , P, 10deg, 20deg\n", 2, "put the patch row ', , P, ra, dec' before"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture, text: str, line: int, message: str
) -> None:
    src = tmp_path / "bad.skymodel"
    src.write_text(text)
    out = tmp_path / "out.skymodel"
    assert main(["sky", "convert", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"ddpipe sky: error: {src}:{line}: ") and message in err, err
    assert src.read_text() == text and not out.exists()


def test_output_is_not_the_input_nor_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "m.skymodel"
    src.write_text("FORMAT = Name, Ra, Dec, I\ns, 1deg, 2deg, 1\n")
    assert main(["sky", "convert", str(src), str(src), "--overwrite"]) == 2
    assert "that is the input sky model" in capsys.readouterr().err
    (tmp_path / "o.skymodel").write_text("keep\n")
    assert main(["sky", "convert", str(src), str(tmp_path / "o.skymodel")]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "o.skymodel").read_text() == "keep\n"
    assert main(["sky", "convert", str(tmp_path / "missing.txt"), str(tmp_path / "x.txt")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.dp3
def test_dp3_predicts_the_converted_model_as_the_input(real_ms, tmp_path: Path) -> None:
    ms = real_ms("tDDECal")
    src = tmp_path / "in.skymodel"
    src.write_text(LOSSY)
    out = tmp_path / "out.skymodel"
    assert main(["sky", "convert", str(src), str(out), "--drop-unknown", "-q"]) == 0
    vis = {}
    for name, path in (("IN", src), ("OUT", out)):
        vis[name] = dp3_predict(ms, path, f"MODEL_{name}", tmp_path)
    scale = np.abs(vis["IN"]).max()
    # a1's rotation measure gives XY (a3's Q alone gives none; it makes DP3 predict all of Stokes, see
    # test_dp3_columns.py)
    assert scale > 1.0 and np.abs(vis["IN"][..., 1]).max() > 0.05
    assert np.abs(vis["OUT"] - vis["IN"]).max() <= 1e-6 * scale
