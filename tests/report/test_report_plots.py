"""The report's plot functions on small real inputs, checked for what they draw: RA/Dec axes, one
outline per facet, the beam, symmetric residual scale, phases without wrap-around jumps, the error
against the truth, one Gantt bar per chunk."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.patches import Ellipse
from reportkit import write_sky_fits

from ddpipe.imaging.coords import lm_to_radec
from ddpipe.report.cluster import ChunkRecord, dask_performance_report, plot_gantt, read_chunk_records, worker_overlaps
from ddpipe.report.convergence import convergence_rows, convergence_table, plot_convergence
from ddpipe.report.images import SkyImage, brightest_per_direction, image_facets, plot_cutouts, plot_sky
from ddpipe.report.solutions import continuous_phase, plot_solutions, station_groups
from ddpipe.solutions.types import SolTab, Solutions

CELL = math.radians(20 / 3600)
CENTRE = (math.radians(110.0), math.radians(50.0))
#: three sources (pixel offsets from the centre, peak Jy) and the directions at them
SOURCES = [(-30, 20, 5.0), (35, 25, 3.0), (5, -35, 2.0)]


def _directions() -> list[tuple[str, float, float]]:
    out = []
    for k, (dx, dy, _) in enumerate(SOURCES):
        ra, dec = lm_to_radec(-dx * CELL, dy * CELL, *CENTRE)
        out.append((f"P{k + 1}", float(ra), float(dec)))
    return out


def _descendants(artist):
    for child in artist.get_children():
        yield child
        yield from _descendants(child)


@pytest.fixture
def sky_pair(tmp_path: Path) -> tuple[SkyImage, SkyImage]:
    restored = write_sky_fits(tmp_path / "r-image.fits", SOURCES)
    residual = write_sky_fits(tmp_path / "r-residual.fits", [], seed=2)
    return SkyImage.read(restored), SkyImage.read(residual)


def test_sky_plot_has_radec_axes_one_outline_per_facet_the_beam_and_a_symmetric_residual(sky_pair):
    restored, residual = sky_pair
    polygons = image_facets(restored, _directions())
    fig = plot_sky(restored, residual, "cycle 1", polygons)
    image_axes = [ax for ax in fig.axes if hasattr(ax, "coords")]
    assert len(image_axes) == 2
    for ax in image_axes:
        assert "RA" in ax.coords[0].get_axislabel() and "Dec" in ax.coords[1].get_axislabel()
        assert sum(p.get_gid() == "facet" for p in ax.patches) == 3
        names = {t.get_text() for t in ax.texts}
        assert {"P1", "P2", "P3"} <= names
    left, right = image_axes
    assert "asinh" in left.get_title()
    beams = [e for e in _descendants(left) if isinstance(e, Ellipse)]
    assert len(beams) == 1, "no restoring beam drawn"
    # BMAJ 60", BMIN 40" on 20" pixels, BPA 30° east of north
    assert sorted((beams[0].width, beams[0].height)) == pytest.approx([2.0, 3.0])
    vmin, vmax = right.images[0].get_clim()
    assert vmin == pytest.approx(-vmax) and vmax > 0
    # the facets tile the image: every direction's centre lies inside its own outline only
    for ax in image_axes[:1]:
        outlines = [p for p in ax.patches if p.get_gid() == "facet"]
        for (name, ra, dec), outline in zip(_directions(), outlines):
            x, y = restored.wcs.world_to_pixel_values(math.degrees(ra), math.degrees(dec))
            inside = [o.contains_point(ax.transData.transform((x, y))) for o in outlines]
            assert inside.count(True) == 1, name


def test_cutouts_find_the_brightest_source_of_each_direction(sky_pair):
    restored, _ = sky_pair
    targets = brightest_per_direction(restored, _directions())
    for (name, ra, dec), (dx, dy, _) in zip(targets, SOURCES):
        x, y = restored.wcs.world_to_pixel_values(ra, dec)
        assert (x - 64 - dx) ** 2 + (y - 64 - dy) ** 2 <= 2, name
    fig = plot_cutouts([("before", restored), ("cycle 1", restored)], targets)
    assert len(fig.axes) == 6 and all(len(ax.images) == 1 for ax in fig.axes)


def _solutions(phase: np.ndarray, names: tuple[str, ...], positions: np.ndarray) -> Solutions:
    """``phase`` (time, ant, dir) radians as a one-soltab solution set on a 10 s grid."""
    nt, na, nd = phase.shape
    dirs = tuple(f"[P{k + 1}]" for k in range(nd))
    tab = SolTab(
        "phase",
        ("time", "freq", "ant", "dir"),
        phase[:, None, :, :],
        np.ones((nt, 1, na, nd), np.float32),
        5e9 + 10.0 * np.arange(nt),
        np.array([150e6]),
        names,
        dirs,
    )
    radec = np.array([[d[1], d[2]] for d in _directions()[:nd]])
    return Solutions(names, positions, dirs, radec, {"phase000": tab})


def test_phases_are_drawn_without_wraparound_jumps_and_minus_the_truth():
    rng = np.random.default_rng(3)
    nt, na, nd = 60, 4, 2
    # phases that wind through ±π several times (wrapped as DP3 stores them)
    winds = np.arange(na)[None, :, None] * np.linspace(0, 4 * np.pi, nt)[:, None, None]  # station k: 2k turns
    true = np.cumsum(rng.normal(0, 0.1, (nt, na, nd)), axis=0) + winds
    names = ("CS001", "CS002", "RS106", "RS205")
    pos = np.array([[0, 0, 0], [100, 0, 0], [20e3, 0, 0], [30e3, 0, 0]], float)
    offset = np.array([0.0, 0.1, -0.2, 0.3])  # the solutions: the truth plus a constant per station
    sol = _solutions(np.angle(np.exp(1j * (true + offset[None, :, None]))), names, pos)
    truth = _solutions(np.angle(np.exp(1j * true)), names, pos)
    fig = plot_solutions(sol, "cycle 1", truth)
    axes = np.array(fig.axes).reshape(nd, -1)
    assert axes.shape == (nd, 2)  # phase, phase − truth (no amplitude solved)
    for d in range(nd):
        phase_lines = axes[d, 0].get_lines()
        assert len(phase_lines) == na
        solved = true + offset[None, :, None]
        for s, line in enumerate(phase_lines):  # continuous: the steps of the unwrapped truth, no 360° jumps
            relative = solved[:, s, d] - solved[:, 0, d]
            assert np.diff(line.get_ydata()) == pytest.approx(np.degrees(np.diff(relative)), abs=1e-6)
            assert -180 < np.mean(line.get_ydata()) <= 180
        errors = sorted(float(np.median(line.get_ydata())) for line in axes[d, 1].get_lines())
        assert errors == pytest.approx(sorted(np.degrees(offset - offset[0])), abs=1e-6)
        assert {line.get_color() for line in phase_lines} == {"tab:blue", "tab:orange"}  # core, remote
    assert "CS001" in axes[0, 0].get_title()


def test_continuous_phase_keeps_each_track_near_zero_mean():
    t = np.linspace(0, 1, 50)
    p = np.angle(np.exp(1j * (np.pi + 0.3 * np.sin(6 * t))))[:, None]  # hovering about ±180°
    out = continuous_phase(p)
    assert np.max(np.abs(np.diff(out[:, 0]))) < 20
    assert -180 < out[:, 0].mean() <= 180


def test_station_groups_by_name_or_distance():
    assert station_groups(("CS001", "RS106", "CS002"), np.zeros((3, 3))) == {
        "core (CS)": [0, 2],
        "remote (RS)": [1],
    }
    pos = np.array([[0, 0, 0], [10, 0, 0], [-10, 0, 0], [5e3, 0, 0], [0, 6e3, 0]], float)
    groups = station_groups(("A", "B", "C", "D", "E"), pos)
    inner, outer = groups.values()
    assert inner == [0, 1, 2] and outer == [3, 4]


def test_gantt_draws_one_bar_per_chunk_on_its_workers_lane():
    recs = [
        ChunkRecord(1, "chunk_000", "tcp://127.0.0.1:1", 100.0, 101.0),
        ChunkRecord(1, "chunk_001", "tcp://127.0.0.1:2", 100.0, 101.5),
        ChunkRecord(1, "chunk_002", "tcp://127.0.0.1:1", 101.1, 102.0),
        ChunkRecord(2, "chunk_000", "tcp://127.0.0.1:2", 105.0, 106.0),
        ChunkRecord(2, "chunk_001", "tcp://127.0.0.1:1", 40.0, 41.0, reused=True),
    ]
    fig = plot_gantt(recs, origin=99.0)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_gid() == "chunk"]
    assert len(bars) == len(recs)
    lanes = [t.get_text() for t in ax.get_yticklabels()]
    assert lanes == ["127.0.0.1:1", "127.0.0.1:2", "reused (earlier run)"]
    assert sorted(round(b.get_x(), 3) for b in bars if b.get_hatch() is None) == [1.0, 1.0, 2.1, 6.0]
    assert [b.get_hatch() for b in bars].count("///") == 1
    assert worker_overlaps(recs) == 0
    assert worker_overlaps(recs + [ChunkRecord(1, "chunk_003", "tcp://127.0.0.1:1", 100.5, 100.8)]) == 1


def test_chunk_records_from_the_workdir_mark_what_an_earlier_run_solved(tmp_path):
    for cycle, stem, started in ((1, "chunk_000", 10.0), (1, "chunk_001", 50.0), (2, "chunk_000", 60.0)):
        d = tmp_path / f"cycle_{cycle:02d}" / "chunks"
        d.mkdir(parents=True, exist_ok=True)
        rec = {"stem": stem, "started": started, "finished": started + 2, "worker": "tcp://h:1"}
        (d / f"{stem}.done.json").write_text(json.dumps(rec))
    (tmp_path / "cycle_02" / "chunks" / "chunk_001.done.json").write_text("{torn")
    recs = read_chunk_records(tmp_path, run_started=40.0)
    assert [(r.cycle, r.stem, r.reused) for r in recs] == [
        (1, "chunk_000", True),
        (1, "chunk_001", False),
        (2, "chunk_000", False),
    ]


def test_convergence_plot_and_table_hold_the_summary_figures():
    summary = {
        "before": {"dynamic_range": 12.0, "rms": 0.2},
        "before_quality": {"image": {"rms_far_jy": 0.19}},
        "reference_dynamic_range": 250.0,
        "cycles": [
            {
                "cycle": 1,
                "image": {"dynamic_range": 200.0, "rms": 0.04},
                "quality": {"solutions": {"phase_rms_rad": 0.08}},
            },
            {"cycle": 2, "image": {"dynamic_range": 280.0, "rms": 0.03}, "quality": {}},
        ],
    }
    rows = convergence_rows(summary)
    assert [r["dynamic_range"] for r in rows] == [12.0, 200.0, 280.0]
    fig = plot_convergence(rows, 250.0)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == [
        "dynamic range",
        "image rms (mJy/beam)",
        "noise far from sources (mJy/beam)",
        "phase error vs truth (rad)",
    ]
    assert list(visible[0].get_lines()[0].get_ydata()) == [12.0, 200.0, 280.0]
    table = convergence_table(rows)
    assert table.count("<tr>") == 4 and "<td>280</td>" in table and "<td>0.080</td>" in table


def test_a_performance_report_that_cannot_be_made_does_not_stop_the_work(tmp_path, caplog):
    # no Dask client at all: the report is skipped with a warning, the work inside runs, its error propagates
    ran = []
    with dask_performance_report(tmp_path / "report" / "dask.html"):
        ran.append(True)
    assert ran and not (tmp_path / "report" / "dask.html").exists()
    assert "no Dask performance report" in caplog.text
    with pytest.raises(ZeroDivisionError):
        with dask_performance_report(tmp_path / "report" / "dask.html"):
            1 / 0
