"""Facets: Voronoi cells, gain correction/corruption, and DD imaging with the simulator's true gains."""

from __future__ import annotations

import math

import numpy as np
import pytest
from imaging_helpers import imaging_params

from ddpipe.imaging import coords, make_image
from ddpipe.imaging.facets import GainTable, correct, corrupt, facet_labels, make_facets
from ddpipe.imaging.fitsio import read_image


def test_labels_are_the_nearest_direction_on_the_sphere():
    centre = (math.radians(30.0), math.radians(60.0))
    rng = np.random.default_rng(1)
    dirs = [(f"D{i}", centre[0] + rng.uniform(-0.05, 0.05), centre[1] + rng.uniform(-0.03, 0.03)) for i in range(5)]
    facets = make_facets(dirs, centre)
    shape, cell = (40, 48), math.radians(300 / 3600)
    lab = facet_labels(facets, shape, cell)
    for y in range(0, 40, 3):
        for x in range(0, 48, 5):
            ra, dec = coords.lm_to_radec(*coords.pixel_to_lm(x, y, shape, cell), *centre)
            sep = [
                math.acos(min(1.0, math.sin(dec) * math.sin(d) + math.cos(dec) * math.cos(d) * math.cos(ra - r)))
                for _, r, d in dirs
            ]
            assert lab[y, x] == int(np.argmin(sep))
    assert set(np.unique(lab)) == set(range(5))


def test_correct_inverts_corrupt_and_scales_weights():
    rng = np.random.default_rng(2)
    shape = (50, 3, 2)
    gp = rng.uniform(0.5, 2, shape) * np.exp(1j * rng.uniform(-3, 3, shape))
    gq = rng.uniform(0.5, 2, shape) * np.exp(1j * rng.uniform(-3, 3, shape))
    model = (rng.normal(size=shape[:2]) + 1j * rng.normal(size=shape[:2])).astype(np.complex64)
    vis = corrupt(model, gp, gq)
    np.testing.assert_allclose(vis[..., 0], gp[..., 0] * model * np.conj(gq[..., 0]), rtol=1e-5)
    w = rng.uniform(1, 2, shape).astype(np.float32)
    vc, wc = correct(vis, w, gp, gq)
    np.testing.assert_allclose(vc, np.repeat(model[..., None], 2, -1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(wc, w * np.abs(gp * gq) ** 2, rtol=1e-5)
    gp[0, 0, 0] = np.nan
    gq[1, 1, 1] = 0
    vc, wc = correct(vis, w, gp, gq)
    assert wc[0, 0, 0] == 0 and wc[1, 1, 1] == 0 and np.isfinite(vc).all()


def test_gain_table_picks_each_rows_antennas_and_time(sim_dd):
    from casacore import tables as pt

    from ddpipe.imaging.msdata import describe_ms, iter_blocks
    from ddpipe.solutions.gains import evaluate_gains
    from ddpipe.solutions.h5parm import read_h5parm

    corrupted, _ = sim_dd
    sol = read_h5parm(corrupted.truth)
    desc = describe_ms(corrupted.ms)
    names = [d.strip("[]") for d in sol.directions]
    gt = GainTable(sol, names, desc.antenna_names, desc.freq)
    blk = next(iter_blocks(desc, 500, with_vis=False))
    g, index = gt.for_block(blk.time, blk.ant1, blk.ant2)
    full = evaluate_gains(sol, np.unique(blk.time), desc.freq, names)
    with pt.table(str(corrupted.ms / "ANTENNA"), ack=False) as t:
        ms_names = list(t.getcol("NAME"))
    for r in (0, 17, 499):
        t_i = int(np.searchsorted(np.unique(blk.time), blk.time[r]))
        a1 = sol.antennas.index(ms_names[blk.ant1[r]])
        for d in range(len(names)):
            gp, gq = GainTable.pick(g, index, d)
            np.testing.assert_allclose(gp[r], full[t_i, :, a1, d, :], rtol=1e-6)


def test_facet_imaging_with_the_true_gains_removes_the_dd_errors(sim_dd, tmp_path):
    """Report numbers: residual rms of uncorrupted / facet-corrected / plain images of one sky."""
    from ddpipe.sky.directions import patch_directions
    from ddpipe.sky.skymodel import read_skymodel
    from ddpipe.solutions.h5parm import read_h5parm

    corrupted, clean = sim_dd
    p = imaging_params(
        size=(512, 512),
        scale=20.0,
        weight="briggs",
        robust=0.0,
        niter=2000,
        mgain=0.8,
        auto_threshold=3.0,
        threshold=0.0,
    )
    dirs = patch_directions(read_skymodel(corrupted.skymodel))
    truth = read_h5parm(corrupted.truth)
    ref = make_image([clean.ms], p, tmp_path / "clean")
    fac = make_image([corrupted.ms], p, tmp_path / "facet", solutions=truth, facet_directions=dirs)
    plain = make_image([corrupted.ms], p, tmp_path / "plain")
    print(
        f"\nresidual rms: uncorrupted {ref.rms:.4g}  facets+true gains {fac.rms:.4g}  "
        f"no facets {plain.rms:.4g} Jy/beam; DR {ref.dynamic_range:.0f} / {fac.dynamic_range:.0f} / "
        f"{plain.dynamic_range:.0f}"
    )
    assert fac.rms <= 1.2 * ref.rms
    assert plain.rms > 2.0 * fac.rms
    # the facet image is the uncorrupted one, pixel by pixel, down to the noise
    a, _ = read_image(ref.image)
    b, _ = read_image(fac.image)
    assert np.abs(a - b).max() < 0.05 * a.max()
    assert [pt.name for pt in fac.components.patches] == [n for n, _, _ in dirs]


def test_solutions_ignored_when_facets_are_off(sim_dd, tmp_path):
    from ddpipe.solutions.h5parm import read_h5parm

    corrupted, _ = sim_dd
    p = imaging_params(size=(256, 256), scale=40.0, niter=0, facets=False)
    off = make_image([corrupted.ms], p, tmp_path / "off", solutions=read_h5parm(corrupted.truth))
    plain = make_image([corrupted.ms], p, tmp_path / "plain")
    a, b = read_image(off.dirty)[0], read_image(plain.dirty)[0]
    np.testing.assert_allclose(a, b, atol=1e-6 * np.abs(b).max())  # threaded gridding: not bit-exact


def test_unknown_direction_is_a_user_error(sim_dd, tmp_path):
    from ddpipe.errors import UserError
    from ddpipe.solutions.h5parm import read_h5parm

    corrupted, _ = sim_dd
    sol = read_h5parm(corrupted.truth)
    p = imaging_params(size=(64, 64), scale=120.0, niter=0)
    with pytest.raises(UserError, match="no direction"):
        make_image([corrupted.ms], p, tmp_path / "x", solutions=sol, facet_directions=[("Nope", 0.1, 0.9)])


def test_facet_dirty_image_matches_a_dft_of_each_facets_corrected_data(sim_dd, tmp_path):
    """Issue 10: each facet is gridded onto its own box (ducc0 centre offset); at pixels inside
    each facet the dirty image equals an exact DFT of that facet's gain-corrected Stokes I
    (natural weights) to 1e-3 of the peak."""
    from ddpipe.imaging import weighting
    from ddpipe.imaging.gridder import dft_image
    from ddpipe.imaging.msdata import describe_ms, iter_blocks
    from ddpipe.sky.directions import patch_directions
    from ddpipe.sky.skymodel import read_skymodel
    from ddpipe.solutions.h5parm import read_h5parm

    corrupted, _ = sim_dd
    shape, cell = (256, 256), math.radians(40 / 3600)
    dirs = patch_directions(read_skymodel(corrupted.skymodel))
    sol = read_h5parm(corrupted.truth)
    res = make_image(
        [corrupted.ms],
        imaging_params(size=shape, scale=40.0, weight="natural", niter=0),
        tmp_path / "d",
        solutions=sol,
        facet_directions=dirs,
    )
    dirty, _ = read_image(res.dirty)
    desc = describe_ms(corrupted.ms)
    facets = make_facets(dirs, desc.phase_centre)
    labels = facet_labels(facets, shape, cell)
    blk = next(iter_blocks(desc, desc.nrow))
    table = GainTable(sol, [f.name for f in facets], desc.antenna_names, desc.freq)
    g, index = table.for_block(blk.time, blk.ant1, blk.ant2)
    # samples beyond the padded uv grid drop out in every weighting mode (as WSClean)
    on_grid = weighting.density_cells(blk.uvw, desc.freq, weighting.grid_shape(shape), cell) >= 0
    rng = np.random.default_rng(5)
    peak = np.abs(dirty).max()
    for f in range(len(facets)):
        vc, wc = correct(blk.vis, blk.weight, *GainTable.pick(g, index, f))
        w = np.where(on_grid, np.minimum(wc[..., 0], wc[..., 1]), 0)
        v = np.where(w > 0, 0.5 * (vc[..., 0] + vc[..., 1]), 0)
        ys, xs = np.nonzero(labels == f)
        pick = rng.choice(len(ys), size=4, replace=False)
        l, m = coords.pixel_to_lm(xs[pick], ys[pick], shape, cell)
        want = dft_image(blk.uvw, desc.freq, v, w, l, m) / w.sum()
        np.testing.assert_allclose(dirty[ys[pick], xs[pick]], want, atol=1e-3 * peak)


def test_coupling_is_one_and_scatter_zero_for_alike_gains_and_drops_for_unrelated_ones(sim_dd):
    """The dirty pass's facet coupling and scattered response (issue 10: what limits the
    major-cycle gain with facets): directions with the same gains couple fully and scatter
    nothing; directions with unrelated random phases keep little coherence and scatter."""
    from ddpipe.imaging.msdata import describe_ms
    from ddpipe.imaging.passes import (
        PassPartial,
        PassSpec,
        RowGains,
        coupling_matrix,
        facet_coupling,
        facet_response,
        scatter_level,
    )
    from ddpipe.imaging.prepared import RowRange, read_rows

    corrupted, _ = sim_dd
    desc = describe_ms(corrupted.ms)
    prep = read_rows(desc, RowRange(0, 0, desc.nrow), 1, desc.nrow)
    ws = prep.weight[..., 0]
    utimes, tidx = np.unique(prep.time, return_inverse=True)
    nant = len(desc.antenna_names)
    rng = np.random.default_rng(3)
    nchan = len(desc.freq)
    common = np.exp(1j * rng.uniform(-np.pi, np.pi, (len(utimes), 1, nant, 1, 1)))
    alike = np.repeat(np.repeat(common, 2, axis=3), nchan, axis=1).astype(np.complex64)
    # one random phase per antenna and direction for the whole observation: few independent
    # gain ratios (one per baseline), so the scattered part does not average away
    unrelated = np.exp(1j * rng.uniform(-np.pi, np.pi, (1, 1, nant, 2, 1)))
    unrelated = np.broadcast_to(unrelated, (len(utimes), nchan, nant, 2, 1)).astype(np.complex64)
    index = np.stack([tidx, prep.ant1, prep.ant2])
    spec = PassSpec(
        (128, 128), math.radians(40 / 3600), (), True, 1e-5, 1, neighbours=((0, 1), (1, 0)), response_size=64
    )
    levels = {}
    for name, table in (("alike", alike), ("unrelated", unrelated)):
        gains = RowGains(table, index)
        total = PassPartial([], np.full(2, float(ws.sum())), psf_wsum=float(ws.sum()))
        total.responses, total.response_wsum = facet_response(prep, spec, gains, ws)
        c = coupling_matrix(facet_coupling(gains, ws, 2))
        levels[name] = (float(c[0, 1]), scatter_level(total))
        # the pair the other way round is the same response mirrored through the centre
        np.testing.assert_allclose(
            total.responses[(1, 0)][1:, 1:],
            total.responses[(0, 1)][:0:-1, :0:-1],
            atol=1e-6 * np.abs(total.responses[(0, 1)]).max(),
        )
    assert levels["alike"][0] == pytest.approx(1.0, abs=1e-4) and levels["alike"][1] < 1e-3
    assert abs(levels["unrelated"][0]) < 0.3 and levels["unrelated"][1] > 0.05, levels
