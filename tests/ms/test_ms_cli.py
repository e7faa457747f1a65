"""`ddpipe inspect` and `ddpipe plan`: report, JSON with stable keys, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddpipe.cli import main
from ddpipe.ms.chunks import plan_chunks
from ddpipe.ms.inspect import inspect_ms

#: The JSON keys of one MS; a change here is a change of the public output format.
INSPECT_KEYS = {
    "path",
    "name",
    "n_rows",
    "telescope",
    "antenna_names",
    "antenna_positions",
    "n_antennas",
    "n_baselines",
    "has_autocorrelations",
    "time_first",
    "time_last",
    "time_first_utc",
    "time_last_utc",
    "interval",
    "n_times",
    "n_slots",
    "gaps",
    "duration",
    "chan_freqs",
    "chan_widths",
    "n_chan",
    "freq_range",
    "ref_frequency",
    "correlations",
    "n_corr",
    "phase_centre",
    "phase_centre_deg",
    "phase_centre_frame",
    "phase_centre_sexagesimal",
    "field_name",
    "data_column",
    "data_columns",
    "has_weight_spectrum",
    "flagged_fraction",
    "flag_row_fraction",
    "all_flagged",
}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_json(real_ms_readonly: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(real_ms_readonly[k]) for k in ("tDDECal", "tOSKAR", "tDish")]
    code, out, _ = _run(capsys, "inspect", "--json", *paths)
    assert code == 0
    data = json.loads(out)
    assert [d["path"] for d in data] == [str(Path(p).resolve()) for p in paths]
    for d, p in zip(data, paths):
        assert set(d) == INSPECT_KEYS
        info = inspect_ms(p)
        assert d["n_rows"] == info.n_rows and d["n_slots"] == info.n_slots
        assert d["antenna_positions"] == [list(x) for x in info.antenna_positions]
        assert d["chan_freqs"] == list(info.chan_freqs)
    lofar, oskar, dish = data
    assert lofar["data_columns"] == ["DATA", "foursources_DATA"]
    assert lofar["correlations"] == ["XX", "XY", "YX", "YY"]
    assert oskar["gaps"] == [] and oskar["n_antennas"] == 10
    assert dish["all_flagged"] is True and dish["has_autocorrelations"] is True
    assert lofar["all_flagged"] is False


def test_inspect_json_without_flags(real_ms_readonly: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "inspect", "--json", "--no-flags", str(real_ms_readonly["tDish"]))
    assert code == 0
    (d,) = json.loads(out)
    assert d["flagged_fraction"] is None and d["all_flagged"] is None


def test_inspect_report(real_ms_readonly: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "inspect", "--data-column", "foursources_DATA", str(real_ms_readonly["tDDECal"]))
    assert code == 0
    lofar = out
    assert "telescope      LOFAR" in lofar
    assert "8: CS001HBA0, CS002HBA0" in lofar
    assert "28 cross-correlation (no autocorrelations)" in lofar
    assert "2013-03-29T13:59:53.007 .. 2013-03-29T14:00:43.076 UTC" in lofar
    assert "6 time(s), 6 slot(s)" in lofar
    assert "8 x 24.4141 kHz" in lofar
    assert "01:37:41.2994 +33:09:35.132 J2000" in lofar
    assert "DATA, foursources_DATA (using foursources_DATA)" in lofar
    assert "30.95% of visibilities" in lofar
    code, out, _ = _run(capsys, "inspect", str(real_ms_readonly["tOSKAR"]), str(real_ms_readonly["tDish"]))
    assert code == 0
    oskar, dish = out.split("\n\n")
    assert "OSKAR" in oskar and "MeerKAT" in dish
    assert "+ autocorrelations" in dish
    assert "EVERYTHING FLAGGED: nothing to calibrate or image" in dish


def test_inspect_report_shows_gaps(gapped_ms, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "inspect", str(gapped_ms("tOSKAR", 100, 20)))
    assert code == 0
    assert "580 time(s), 600 slot(s) (20 missing in 1 gap(s))" in out


def test_plan_table(real_ms_readonly: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "plan", str(real_ms_readonly["tOSKAR"]), "--n-chunks", "4", "--solint", "7")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith(
        "600 slots of 0.3 s, solint 7, 4 chunk(s); DP3 reads 2 solution interval(s) before each chunk, then drops them"
    )
    assert lines[1].split() == ["index", "start", "(UTC)", "first", "slot", "slots", "seconds", "DP3", "from", "slot"]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["0", "1", "2", "3"]
    assert [int(r[3]) for r in rows] == [154, 154, 147, 145]
    assert [int(r[5]) for r in rows] == [0, 154 - 14, 308 - 14, 455 - 14]  # two intervals of 7 slots
    assert rows[0][1] == "2000-01-02T10:46:05.220"
    assert float(rows[3][4]) == pytest.approx(145 * 0.3)


def test_plan_json(real_ms_readonly: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    ms = real_ms_readonly["tOSKAR"]
    code, out, _ = _run(capsys, "plan", str(ms), "--chunk-duration", "50", "--solint", "10", "--json")
    assert code == 0
    (plan,) = json.loads(out)
    assert set(plan) == {"ms", "n_slots", "interval", "solint", "lead_in", "chunks"}
    chunks = plan_chunks(inspect_ms(ms, flag_stats=False), duration=50.0, solint=10)
    assert [c["n_slots"] for c in plan["chunks"]] == [c.n_slots for c in chunks] == [170, 170, 170, 90]
    first, second = plan["chunks"][:2]
    assert set(first) == {
        "index",
        "start_slot",
        "n_slots",
        "start_time",
        "start_utc",
        "duration",
        "time_range",
        "lead_slots",
        "dp3_msin",
    }
    assert first["dp3_msin"] == chunks[0].dp3_msin() and first["lead_slots"] == 0
    assert second["lead_slots"] == 20 and second["dp3_msin"] == chunks[1].with_lead_in(20).dp3_msin()
    code, out, _ = _run(capsys, "plan", str(ms), "--chunk-duration", "50", "--solint", "10", "--json", "--lead-in", "0")
    assert json.loads(out)[0]["chunks"][1]["dp3_msin"] == chunks[1].dp3_msin()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--chunk-duration", "0"], "give exactly one of duration"),
        (["--n-chunks", "0"], "give exactly one of duration"),
        (["--n-chunks", "-3"], "must not be negative"),
        (["--n-chunks", "2", "--solint", "0"], "solint: 0 is not a whole number >= 1"),
        (["--n-chunks", "2", "--lead-in", "-1"], "--lead-in -1: must be >= 0"),
    ],
)
def test_plan_bad_values(
    argv: list[str], message: str, real_ms_readonly: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "plan", str(real_ms_readonly["tOSKAR"]), *argv)
    assert code == 2 and out == ""
    assert err.startswith("ddpipe plan: error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("argv", [[], ["--chunk-duration", "10", "--n-chunks", "2"], ["--n-chunks", "two"]])
def test_plan_bad_arguments(argv: list[str], real_ms_readonly: dict[str, Path], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", str(real_ms_readonly["tOSKAR"]), *argv])
    assert exc.value.code == 2
    assert "ddpipe plan: error:" in capsys.readouterr().err
