"""The facet layout as a ds9 region file: exact Voronoi polygons that tile the image as
``facet_labels`` does, ``ddpipe facets`` on a simulated MS, and WSClean 3.1 reading the file."""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from ddpipe.cli import main
from ddpipe.errors import UserError
from ddpipe.imaging.coords import lm_to_pixel, lm_to_radec, pixel_grid_lmn, radec_to_lmn
from ddpipe.imaging.facets import facet_labels, make_facets
from ddpipe.imaging.regions import FacetPolygon, facet_polygons, format_ds9, parse_ds9_polygons, write_ds9

SIZE, SCALE = 256, 40.0  # the CLI tests' image: 2.8 deg, the simulator's patches lie within 1.2 deg
CELL = math.radians(SCALE / 3600)


# --------------------------------------------------------------------------- helpers


def _directions(centre, offsets_deg):
    """``(name, ra, dec)`` at (l, m) offsets in degrees about ``centre``."""
    out = []
    for i, (dl, dm) in enumerate(offsets_deg):
        ra, dec = lm_to_radec(math.radians(dl), math.radians(dm), *centre)
        out.append((f"D{i}", float(ra), float(dec)))
    return out


def _pixel_polygons(text, centre, shape, cell):
    """``(name, (nvert, 2) pixel x, y)`` of every polygon of a region file's text."""
    out = []
    for name, radec in parse_ds9_polygons(text):
        l, m, _ = radec_to_lmn(radec[:, 0], radec[:, 1], *centre)
        x, y = lm_to_pixel(l, m, shape, cell)
        out.append((name, np.stack([x, y], axis=1)))
    return out


def _inside(polys, shape):
    """``(npoly, ny, nx)`` bool: which polygons hold each pixel centre."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(float)
    return np.array([MplPath(xy).contains_points(pts).reshape(shape) for _, xy in polys])


def _area(xy):
    """Shoelace area of a ``(nvert, 2)`` polygon."""
    x, y = xy.T
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _boundary_distance(facets, shape, cell):
    """``(ny, nx)`` distance in pixels from each pixel centre to the nearest facet boundary."""
    ll, mm, nn = pixel_grid_lmn(shape, cell)
    p = np.stack([ll, mm, nn], axis=-1).reshape(-1, 3)
    c = np.array([[f.l, f.m, math.sqrt(1 - f.l**2 - f.m**2)] for f in facets])
    cos = p @ c.T
    if len(facets) == 1:
        return np.full(shape, np.inf)
    order = np.argsort(-cos, axis=1)
    i = np.arange(len(p))
    best, second = order[:, 0], order[:, 1]
    # angle from the bisecting great circle of the two nearest centres
    d = (cos[i, best] - cos[i, second]) / np.linalg.norm(c[best] - c[second], axis=1)
    return (d / cell).reshape(shape)


def _check_tiling(text, facets, centre, shape, cell, margin_px=1.0):
    """Every pixel centre lies in exactly the polygon of its facet_labels facet, except near boundaries."""
    polys = _pixel_polygons(text, centre, shape, cell)
    assert [n for n, _ in polys] == [f.name for f in facets]
    inside = _inside(polys, shape)
    labels = facet_labels(facets, shape, cell)
    far = _boundary_distance(facets, shape, cell) > margin_px
    assert far.mean() > 0.9
    count = inside.sum(axis=0)
    assert (count[far] == 1).all(), f"{int((count[far] != 1).sum())} pixels in none or several polygons"
    assert (inside.argmax(axis=0)[far] == labels[far]).all()
    return polys


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    "n,size,scale,seed", [(4, 256, 40.0, 1), (8, 256, 40.0, 2), (16, 256, 120.0, 3), (16, 200, 300.0, 4)]
)
def test_polygons_tile_the_image_as_facet_labels_does(n, size, scale, seed):
    centre = (math.radians(150.0), math.radians(55.0))
    half = size * scale / 3600 / 2 * 0.95
    rng = np.random.default_rng(seed)
    dirs = _directions(centre, rng.uniform(-half, half, (n, 2)))
    facets = make_facets(dirs, centre)
    shape, cell = (size, size), math.radians(scale / 3600)
    polys = _check_tiling(format_ds9(facet_polygons(facets, shape, cell, centre)), facets, centre, shape, cell)
    # the cells cover the square one pixel beyond the outer pixel centres, without overlap
    assert sum(_area(xy) for _, xy in polys) == pytest.approx((size + 1) ** 2, rel=1e-6)


def test_curved_boundaries_on_a_wide_field_follow_the_great_circles():
    # 21 deg field: straight chords between the triple points would miss the boundaries by pixels
    centre = (math.radians(10.0), math.radians(-30.0))
    dirs = _directions(centre, [(-9, -9), (9, 8), (0.5, 0.2), (-9, 7), (8, -9)])
    facets = make_facets(dirs, centre)
    shape, cell = (256, 256), math.radians(300 / 3600)
    fine = facet_polygons(facets, shape, cell, centre, tolerance=0.05)
    coarse = facet_polygons(facets, shape, cell, centre, tolerance=10.0)
    assert sum(len(p.vertices) for p in fine) > sum(len(p.vertices) for p in coarse)
    _check_tiling(format_ds9(fine), facets, centre, shape, cell, margin_px=0.1)
    # every vertex is on the image's outline or equally near its own and another centre, and no nearer to a third
    c = np.array([[f.l, f.m, math.sqrt(1 - f.l**2 - f.m**2)] for f in facets])
    for i, p in enumerate(fine):
        l, m, n = radec_to_lmn(p.vertices[:, 0], p.vertices[:, 1], *centre)
        cos = np.stack([l, m, n], axis=1) @ c.T
        assert (cos[:, i] >= cos.max(axis=1) - 1e-12).all()


def test_one_direction_is_the_whole_image_and_ra_wraps_at_zero():
    centre = (math.radians(0.05), math.radians(20.0))  # the image straddles RA 0
    facets = make_facets(_directions(centre, [(0.2, 0.1)]), centre)
    (p,) = facet_polygons(facets, (64, 64), math.radians(60 / 3600), centre)
    assert len(p.vertices) == 4
    ra = np.degrees(p.vertices[:, 0])
    assert ((ra >= 0) & (ra < 360)).all() and ra.max() > 359 and ra.min() < 1
    _check_tiling(format_ds9([p]), facets, centre, (64, 64), math.radians(60 / 3600))


def test_a_direction_outside_the_image_is_refused_naming_it():
    centre = (1.0, 0.5)
    facets = make_facets(_directions(centre, [(0.1, 0.1), (1.5, 0.0)]), centre)
    with pytest.raises(UserError, match=r"direction D1 .* outside the 128x128 image .* at least 27\d pixels wide"):
        facet_polygons(facets, (128, 128), math.radians(40 / 3600), centre)


def test_two_directions_at_one_position_are_refused():
    centre = (1.0, 0.5)
    dirs = _directions(centre, [(0.1, 0.1), (0.3, 0.3)])
    dirs.append(("twin", dirs[0][1], dirs[0][2]))
    with pytest.raises(UserError, match="D0 and twin have the same centre"):
        facet_polygons(make_facets(dirs, centre), (128, 128), math.radians(40 / 3600), centre)


def test_region_file_text_and_round_trip(tmp_path):
    centre = (math.radians(150.0), math.radians(55.0))
    facets = make_facets(_directions(centre, [(0.5, 0.2), (-0.4, -0.3), (0.1, 0.6)]), centre)
    polys = facet_polygons(facets, (128, 128), CELL, centre)
    path = write_ds9(tmp_path / "sub" / "f.reg", polys, ["made by a test"])
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "# Region file format: DS9 version 4.1"
    assert lines[1] == "# made by a test" and lines[2].startswith("global ") and lines[3] == "fk5"
    assert [ln.split("# text=")[1] for ln in lines if ln.startswith("polygon(")] == ["{D0}", "{D1}", "{D2}"]
    assert sum(ln.startswith("point(") for ln in lines) == 3
    for (name, radec), p in zip(parse_ds9_polygons(text), polys):
        assert name == p.name
        np.testing.assert_allclose(radec, p.vertices, atol=1e-11)  # 1e-10 deg written
    assert not [f for f in tmp_path.rglob("*") if f.name.startswith(".")]  # no temporary left behind
    bad = dataclasses.replace(polys[0], name="two words")
    with pytest.raises(UserError, match="cannot label a ds9 region"):
        format_ds9([bad])


def test_parse_reads_an_unlabelled_polygon():
    ((name, radec),) = parse_ds9_polygons("fk5\npolygon(10,20,11,20,11,21)\n")
    assert name == "" and radec.shape == (3, 2)
    assert isinstance(FacetPolygon("x", 0.0, 0.0, radec), FacetPolygon)


# --------------------------------------------------------------------------- ddpipe facets


def _cli(tmp_path, sim, *extra, out="facets.reg"):
    argv = [
        "facets",
        "--ms",
        str(sim.ms),
        "--size",
        str(SIZE),
        "--scale",
        f"{SCALE:g}asec",
        "--out",
        str(tmp_path / out),
        "-q",
        *extra,
    ]
    return main(argv)


def _sim_facets(sim):
    from ddpipe.imaging.msdata import describe_ms
    from ddpipe.sky.directions import patch_directions
    from ddpipe.sky.skymodel import read_skymodel

    centre = describe_ms(sim.ms).phase_centre
    return make_facets(patch_directions(read_skymodel(sim.skymodel)), centre), centre


def test_cli_writes_the_facets_ddpipe_image_uses(sim_dd, tmp_path, capsys):
    corrupted, _ = sim_dd
    assert _cli(tmp_path, corrupted, "--skymodel", str(corrupted.skymodel), "--h5parm", str(corrupted.truth)) == 0
    assert "4 facets (P1, P2, P3, P4)" in capsys.readouterr().out
    facets, centre = _sim_facets(corrupted)
    text = (tmp_path / "facets.reg").read_text()
    _check_tiling(text, facets, centre, (SIZE, SIZE), CELL)
    # the points are the H5parm's direction positions: what WSClean matches solutions by
    from ddpipe.solutions.h5parm import read_h5parm

    sol = read_h5parm(corrupted.truth)
    points = [
        [float(v) for v in ln[6 : ln.index(")")].split(",")] for ln in text.splitlines() if ln.startswith("point(")
    ]
    np.testing.assert_allclose(np.radians(points), sol.direction_radec, atol=1e-10)


def test_cli_with_the_h5parm_alone_gives_the_same_polygons(sim_dd, tmp_path):
    corrupted, _ = sim_dd
    assert _cli(tmp_path, corrupted, "--h5parm", str(corrupted.truth), out="h5.reg") == 0
    assert _cli(tmp_path, corrupted, "--skymodel", str(corrupted.skymodel), out="sky.reg") == 0
    a = parse_ds9_polygons((tmp_path / "h5.reg").read_text())
    b = parse_ds9_polygons((tmp_path / "sky.reg").read_text())
    assert [n for n, _ in a] == [n for n, _ in b] == ["P1", "P2", "P3", "P4"]
    for (_, va), (_, vb) in zip(a, b):
        np.testing.assert_allclose(va, vb, atol=1e-9)


def _subset_skymodel(sim, path, drop):
    from ddpipe.sky.skymodel import read_skymodel, write_skymodel

    sky = read_skymodel(sim.skymodel)
    sky = dataclasses.replace(
        sky,
        sources=tuple(s for s in sky.sources if s.patch != drop),
        patches=tuple(p for p in sky.patches if p.name != drop),
    )
    write_skymodel(sky, path)
    return path


@pytest.mark.parametrize(
    "case,message",
    [
        ("no-ms", "nope.ms: no such file or directory; check the Measurement Set path"),
        ("no-skymodel", "sky model not found"),
        ("no-h5parm", "H5parm file does not exist"),
        ("names", "do not match the sky model's patches (no solutions for"),
        ("extra", "P4 not a patch of"),
        ("small", "outside the 64x64 image"),
        ("no-directions", "give --skymodel SKY"),
        ("odd-size", "must be even"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(sim_dd, tmp_path, capsys, case, message):
    corrupted, _ = sim_dd
    sky, h5, ms = str(corrupted.skymodel), str(corrupted.truth), str(corrupted.ms)
    size = ["--size", str(SIZE)]
    args = {
        "no-ms": ["--ms", str(tmp_path / "nope.ms"), "--skymodel", sky],
        "no-skymodel": ["--skymodel", str(tmp_path / "nope.txt")],
        "no-h5parm": ["--skymodel", sky, "--h5parm", str(tmp_path / "nope.h5")],
        "names": ["--skymodel", sky, "--h5parm", h5],
        "extra": ["--skymodel", str(_subset_skymodel(corrupted, tmp_path / "three.txt", "P4")), "--h5parm", h5],
        "small": ["--skymodel", sky],
        "no-directions": [],
        "odd-size": ["--skymodel", sky],
    }[case]
    if case == "names":  # a sky model with a patch the H5parm lacks
        from ddpipe.sky.skymodel import read_skymodel, write_skymodel

        model = read_skymodel(sky)
        renamed = tuple(dataclasses.replace(s, patch="Q9" if s.patch == "P2" else s.patch) for s in model.sources)
        patches = tuple(dataclasses.replace(p, name="Q9" if p.name == "P2" else p.name) for p in model.patches)
        args[1] = str(
            write_skymodel(dataclasses.replace(model, sources=renamed, patches=patches), tmp_path / "renamed.txt")
        )
    if case == "small":
        size = ["--size", "64"]
    if case == "odd-size":
        size = ["--size", "255", "256"]
    argv = ["facets", "--ms", ms, "--scale", f"{SCALE:g}asec", "--out", str(tmp_path / "out.reg"), *size, *args]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.reg").exists()


def test_bad_input_through_the_command_line_process(sim_dd, tmp_path):
    corrupted, _ = sim_dd
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddpipe",
            "facets",
            "--ms",
            str(corrupted.ms),
            "--skymodel",
            str(corrupted.skymodel),
            "--size",
            "64",
            "--scale",
            "40asec",
            "--out",
            str(tmp_path / "x.reg"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("ddpipe facets: error: direction ") and r.stderr.count("\n") == 1
    assert not (tmp_path / "x.reg").exists()


# --------------------------------------------------------------------------- WSClean reads the file


@pytest.fixture(scope="module")
def ws_ms(sim_dd, tmp_path_factory):
    """A copy of the DD-corrupted MS for WSClean (it opens the MS for writing), its sky model and truth."""
    corrupted, _ = sim_dd
    root = tmp_path_factory.mktemp("ws_regions")
    ms = root / "dd.ms"
    shutil.copytree(corrupted.ms, ms)
    return ms, corrupted


def _run_wsclean(exe, ms, prefix, *args):
    cmd = [
        exe,
        "-j",
        "2",
        "-no-update-model-required",
        "-use-wgridder",
        "-data-column",
        "DATA",
        "-temp-dir",
        str(prefix.parent),
        "-size",
        str(SIZE),
        str(SIZE),
        "-scale",
        f"{SCALE:g}asec",
        "-name",
        str(prefix),
        *args,
        str(ms),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def imaging_table_facets(log: str) -> set[int]:
    """Facet indices (column FI) of WSClean's IMAGING TABLE."""
    rows = [
        ln.split("J-", 1)[1].split()
        for ln in log.split("=== IMAGING TABLE ===", 1)[1].splitlines()
        if re.match(r"^[\s|+-]*J-\s+\d", ln)
    ]
    return {int(r[6]) for r in rows}


def _dirty(prefix):
    from ddpipe.imaging.fitsio import read_image

    return read_image(f"{prefix}-dirty.fits")[0]


def _one_direction_h5(sol, d, path):
    from ddpipe.solutions.h5parm import write_h5parm

    tabs = {
        k: dataclasses.replace(t, values=t.values[..., d : d + 1], weights=t.weights[..., d : d + 1], dir=(t.dir[d],))
        for k, t in sol.soltabs.items()
    }
    write_h5parm(
        path,
        dataclasses.replace(
            sol, directions=(sol.directions[d],), direction_radec=sol.direction_radec[d : d + 1], soltabs=tabs
        ),
    )
    return path


@pytest.mark.wsclean
def test_wsclean_images_the_facets_ddpipe_uses(ws_ms, tmp_path, wsclean):
    """WSClean 3.1 reads the file as 4 facets, covers every pixel, and corrects each pixel with the
    solutions of the facet facet_labels gives it (except within ~1.5 pixels of a boundary: WSClean
    rounds vertices to whole pixels)."""
    from ddpipe.solutions.h5parm import read_h5parm

    ms, sim = ws_ms
    reg = tmp_path / "facets.reg"
    assert (
        main(
            [
                "facets",
                "--ms",
                str(ms),
                "--skymodel",
                str(sim.skymodel),
                "--h5parm",
                str(sim.truth),
                "--size",
                str(SIZE),
                "--scale",
                f"{SCALE:g}asec",
                "--out",
                str(reg),
                "-q",
            ]
        )
        == 0
    )
    log = _run_wsclean(
        wsclean,
        ms,
        tmp_path / "all",
        "-niter",
        "0",
        "-facet-regions",
        str(reg),
        "-apply-facet-solutions",
        str(sim.truth),
        "phase000",
    )
    assert imaging_table_facets(log) == {0, 1, 2, 3}
    whole = _dirty(tmp_path / "all")
    assert (whole != 0).all(), "pixels outside every facet"
    # the image each direction's solutions give over the whole image (one polygon covering it)
    sol = read_h5parm(sim.truth)
    facets, centre = _sim_facets(sim)
    assert [f"[{f.name}]" for f in facets] == list(sol.directions)
    singles = []
    for d, f in enumerate(facets):
        one_reg = write_ds9(tmp_path / f"one{d}.reg", facet_polygons([f], (SIZE, SIZE), CELL, centre))
        one_h5 = _one_direction_h5(sol, d, tmp_path / f"one{d}.h5")
        _run_wsclean(
            wsclean,
            ms,
            tmp_path / f"one{d}",
            "-niter",
            "0",
            "-facet-regions",
            str(one_reg),
            "-apply-facet-solutions",
            str(one_h5),
            "phase000",
        )
        singles.append(_dirty(tmp_path / f"one{d}"))
    err = np.abs(whole[None] - np.array(singles))
    ranked = np.sort(err, axis=0)
    telling = ranked[1] - ranked[0] > 1e-3 * np.abs(whole).max()  # the directions' images differ there
    labels = facet_labels(facets, (SIZE, SIZE), CELL)
    far = _boundary_distance(facets, (SIZE, SIZE), CELL) > 1.5
    assert (telling & far).mean() > 0.8
    assert (err.argmin(axis=0) == labels)[telling & far].all()
    assert ranked[0][far].max() < 1e-3 * np.abs(whole).max()


@pytest.mark.wsclean
def test_wsclean_cleans_with_the_truth_per_facet(ws_ms, tmp_path, wsclean):
    from ddpipe.imaging.fitsio import read_image

    ms, sim = ws_ms
    reg = tmp_path / "facets.reg"
    assert (
        main(
            [
                "facets",
                "--ms",
                str(ms),
                "--h5parm",
                str(sim.truth),
                "--size",
                str(SIZE),
                "--scale",
                f"{SCALE:g}asec",
                "--out",
                str(reg),
                "-q",
            ]
        )
        == 0
    )
    clean = ["-niter", "300", "-mgain", "0.8", "-auto-threshold", "3", "-weight", "briggs", "0"]
    log = _run_wsclean(
        wsclean,
        ms,
        tmp_path / "facet",
        *clean,
        "-facet-regions",
        str(reg),
        "-apply-facet-solutions",
        str(sim.truth),
        "phase000",
    )
    assert imaging_table_facets(log) == {0, 1, 2, 3}
    _run_wsclean(wsclean, ms, tmp_path / "plain", *clean)

    def rms(prefix):
        r = read_image(f"{prefix}-residual.fits")[0][64:192, 64:192]
        return 1.4826 * float(np.median(np.abs(r - np.median(r))))

    assert rms(tmp_path / "facet") < 0.5 * rms(tmp_path / "plain")
