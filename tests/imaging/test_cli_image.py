"""``ddpipe image`` from the command line: products, facets, and one-line errors with exit 2."""

from __future__ import annotations

import pytest

from ddpipe.cli import main
from ddpipe.commands.image import parse_angle_arcsec, parse_flux_jy
from ddpipe.errors import UserError


def test_angle_and_flux_units_as_wsclean_reads_them():
    assert parse_angle_arcsec("10asec") == 10.0
    assert parse_angle_arcsec("0.5amin") == 30.0
    assert parse_angle_arcsec("0.01deg") == pytest.approx(36.0)
    assert parse_angle_arcsec("0.01") == pytest.approx(36.0)  # bare number: degrees, like WSClean
    assert parse_flux_jy("10mJy") == pytest.approx(0.01) and parse_flux_jy("0.2") == 0.2
    with pytest.raises(UserError, match="--scale"):
        parse_angle_arcsec("10parsec")


def test_image_writes_the_five_products_and_the_sources(sim_points, tmp_path, capsys):
    prefix = tmp_path / "out" / "img"
    rc = main(
        [
            "image",
            "--ms",
            str(sim_points.ms),
            "--size",
            "256",
            "--scale",
            "30asec",
            "--weight",
            "briggs",
            "-0.5",
            "--niter",
            "300",
            "--mgain",
            "0.8",
            "--auto-threshold",
            "3",
            "--name",
            str(prefix),
            "-q",
        ]
    )
    assert rc == 0
    for part in ("dirty", "psf", "model", "residual", "image"):
        assert (tmp_path / "out" / f"img-{part}.fits").is_file()
    assert (tmp_path / "out" / "img-sources.txt").is_file()
    out = capsys.readouterr().out
    assert "dynamic range" in out and "img-image.fits" in out
    from astropy.io import fits

    h = fits.getheader(tmp_path / "out" / "img-image.fits")
    assert (h["NAXIS1"], h["NAXIS2"]) == (256, 256)
    assert h["CDELT2"] * 3600 == pytest.approx(30.0)
    assert h["DDPWEIGH"] == "briggs(-0.5)"


def test_image_with_solutions_and_sky_model_facets(sim_dd, tmp_path):
    corrupted, _ = sim_dd
    prefix = tmp_path / "f"
    rc = main(
        [
            "image",
            "--ms",
            str(corrupted.ms),
            "--h5parm",
            str(corrupted.truth),
            "--skymodel",
            str(corrupted.skymodel),
            "--size",
            "256",
            "--scale",
            "40asec",
            "--niter",
            "200",
            "--name",
            str(prefix),
            "-q",
        ]
    )
    assert rc == 0
    from ddpipe.sky.skymodel import read_skymodel

    patches = {s.patch for s in read_skymodel(f"{prefix}-sources.txt").sources}
    assert patches <= {"P1", "P2", "P3", "P4"} and len(patches) >= 3


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--weight", "briggs"], "needs the robustness"),
        (["--weight", "uniform", "2"], "only briggs takes a value"),
        (["--scale", "3furlong"], "--scale"),
        (["--size", "100", "33"], "must be even"),
        (["--niter", "-5"], "niter"),
        (["--threshold", "lots"], "--threshold"),
        (["--data-column", "CORRECTED_DATA"], "no data column 'CORRECTED_DATA'"),
        (["--facet-smearing", "0.5"], "imaging.facet_smearing = 0.5 is not allowed"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(sim_points, tmp_path, capsys, argv, message):
    rc = main(["image", "--ms", str(sim_points.ms), "--name", str(tmp_path / "x"), *argv])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_an_all_flagged_ms_ends_with_a_clear_message(real_ms_readonly, tmp_path, capsys):
    rc = main(
        [
            "image",
            "--ms",
            str(real_ms_readonly["tDish"]),
            "--size",
            "64",
            "--scale",
            "1amin",
            "--name",
            str(tmp_path / "d"),
        ]
    )
    assert rc == 2
    assert "every visibility is flagged" in capsys.readouterr().err
    assert not list(tmp_path.glob("d-*.fits"))


def test_wsclean_spelling_of_the_options_is_accepted():
    from ddpipe.cli import build_parser
    from ddpipe.commands.image import imaging_overrides

    args = build_parser().parse_args(
        [
            "image",
            "--ms",
            "x.ms",
            "-size",
            "512",
            "256",
            "-scale",
            "10asec",
            "-weight",
            "briggs",
            "-0.5",
            "-niter",
            "100",
            "-mgain",
            "0.8",
            "-threshold",
            "5mJy",
            "-multiscale-scales",
            "0,4,16",
            "-name",
            "p",
            "--facet-smearing",
            "0.02",
            "--cache-mb",
            "512",
        ]
    )
    o = imaging_overrides(args)
    assert o["facet_smearing"] == 0.02 and o["cache_mb"] == 512
    assert o["size"] == [512, 256] and o["scale"] == 10.0 and o["weight"] == "briggs" and o["robust"] == -0.5
    assert o["niter"] == 100 and o["mgain"] == 0.8 and o["multiscale"] and o["multiscale_scales"] == [0, 4, 16]
    # a fixed threshold alone switches the auto-threshold off, as in WSClean
    assert o["threshold"] == pytest.approx(0.005) and o["auto_threshold"] == 0.0
    both = imaging_overrides(
        build_parser().parse_args(["image", "--ms", "x", "--threshold", "1", "--auto-threshold", "4"])
    )
    assert both["auto_threshold"] == 4.0


def test_an_image_too_small_for_its_facets_is_one_line_and_writes_nothing(sim_dd, tmp_path, capsys):
    """A 32x32 image of 1" pixels at the phase centre: the nearest direction takes every pixel,
    the others have none to be gridded onto (issue 10, bad input)."""
    corrupted, _ = sim_dd
    rc = main(
        [
            "image",
            "--ms",
            str(corrupted.ms),
            "--h5parm",
            str(corrupted.truth),
            "--skymodel",
            str(corrupted.skymodel),
            "--size",
            "32",
            "32",
            "--scale",
            "1asec",
            "--name",
            str(tmp_path / "t"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "has no pixel in the 32x32 image" in err and "larger field" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_command_line_paths_are_the_current_folders_whatever_folder_the_config_is_in(sim_points, tmp_path, monkeypatch):
    """--ms is read from where the command runs; --config's folder only anchors the paths inside it."""
    import os
    import shutil

    work = tmp_path / "here"
    work.mkdir()
    shutil.copytree(sim_points.ms, work / "obs.ms")
    conf = tmp_path / "elsewhere" / "c.yaml"
    conf.parent.mkdir()
    conf.write_text("imaging: {size: [64, 64], scale: 60.0, niter: 0}\n")
    monkeypatch.chdir(work)
    assert main(["image", "--config", str(conf), "--ms", "obs.ms", "--name", str(tmp_path / "img")]) == 0
    assert (tmp_path / "img-dirty.fits").is_file() and os.getcwd() == str(work)
