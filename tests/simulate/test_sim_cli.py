"""``ddpipe simulate``: options reach the simulator, bad options exit 2 with one line."""

from __future__ import annotations

import casacore.tables as pt
import numpy as np
import pytest

from ddpipe.cli import main

SMALL = ["--stations", "6", "--channels", "2", "--times", "5", "--directions", "2", "--sources-per-direction", "1"]


def test_options_reach_the_ms(tmp_path, capsys):
    out = tmp_path / "cli.ms"
    rc = main(
        [
            "simulate",
            str(out),
            *SMALL,
            "--layout",
            "ska-low",
            "--freq-start",
            "100e6",
            "--chan-width",
            "1e6",
            "--interval",
            "2",
            "--start",
            "2026-03-01T12:00:00",
            "--ra",
            "05:00:00",
            "--dec=-30:00:00",
            "--noise",
            "0",
            "--seed",
            "4",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "visibilities/s" in printed and "cli.truth.h5" in printed
    with pt.table(str(out / "SPECTRAL_WINDOW"), ack=False) as t:
        np.testing.assert_allclose(t.getcell("CHAN_FREQ", 0), [100e6, 101e6])
    with pt.table(str(out / "FIELD"), ack=False) as t:
        np.testing.assert_allclose(t.getcol("PHASE_DIR")[0, 0], np.radians([75.0, -30.0]), atol=1e-12)
    with pt.table(str(out / "OBSERVATION"), ack=False) as t:
        assert t.getcell("TELESCOPE_NAME", 0) == "SKA-Low"
    with pt.table(str(out), ack=False) as t:
        times = np.unique(t.getcol("TIME"))
        assert t.nrows() == 15 * 5 and np.allclose(np.diff(times), 2.0)
        assert np.abs(t.getcol("DATA")).max() > 0.1  # the sky was written
    assert (tmp_path / "cli.skymodel").exists()


def test_degrees_and_sexagesimal_agree(tmp_path):
    for name, ra, dec in (("a.ms", "75.0", "-30"), ("b.ms", "05:00:00", "-30:00:00"), ("c.ms", "75deg", "-30deg")):
        assert main(["simulate", str(tmp_path / name), *SMALL, "--ra", ra, f"--dec={dec}", "--layout", "ska-low"]) == 0
    data = []
    for name in ("a.ms", "b.ms", "c.ms"):
        with pt.table(str(tmp_path / name), ack=False) as t:
            data.append(t.getcol("DATA"))
    np.testing.assert_array_equal(data[0], data[1])
    np.testing.assert_array_equal(data[0], data[2])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stations", "1"], "stations=1"),
        (["--times", "0"], "times=0"),
        (["--noise", "-0.1"], "noise=-0.1"),
        (["--ra", "25:00:00"], "--ra"),
        (["--dec", "95"], "--dec '95'"),
        (["--dec", "91.00.00"], "within ±90"),
        (["--start", "2026-02-30T00:00:00"], "start="),
        (["--skymodel", "/nonexistent/sky.skymodel", "--directions", "3"], "--directions and --skymodel"),
        (["--skymodel", "/nonexistent/sky.skymodel"], "/nonexistent/sky.skymodel"),
        (["--amplitude-scale", "5"], "amplitude-scale=5"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, args, message):
    rc = main(["simulate", str(tmp_path / "bad.ms"), *SMALL[:2], *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("ddpipe simulate: error:") and message in err
    assert not (tmp_path / "bad.ms").exists()


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "sim.ms"
    assert main(["simulate", str(out), *SMALL]) == 0
    capsys.readouterr()
    assert main(["simulate", str(out), *SMALL]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["simulate", str(out), *SMALL, "--overwrite", "--seed", "9"]) == 0


def test_argparse_rejects_unknown_layout(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(tmp_path / "x.ms"), "--layout", "vla"])
    assert exc.value.code == 2
