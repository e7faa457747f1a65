"""Flux-driven grouping of sources into calibration directions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ddpipe.errors import UserError
from ddpipe.sky.directions import (
    angular_separation,
    check_directions,
    directions_with_no_sources,
    group_into_directions,
    patch_directions,
    require_directions,
)
from ddpipe.sky.model import Patch, SkyModel, Source
from ddpipe.sky.skymodel import format_skymodel, parse_skymodel, read_skymodel

D = math.radians


def unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def test_angular_separation_known_values() -> None:
    assert angular_separation(0.0, 0.0, D(90), 0.0) == pytest.approx(D(90), abs=1e-15)
    assert angular_separation(D(10), D(90), D(200), D(90)) == pytest.approx(0.0, abs=1e-15)
    assert angular_separation(D(10), D(-30), D(190), D(30)) == pytest.approx(D(180), abs=1e-12)
    # 1 arcsec along a parallel at dec 60 is 0.5 arcsec on the sky; float accuracy stays
    assert angular_separation(D(5), D(60), D(5 + 1 / 3600), D(60)) == pytest.approx(D(0.5 / 3600), rel=1e-8)
    rng = np.random.default_rng(3)
    ra1, ra2 = rng.uniform(0, 2 * np.pi, (2, 500))
    dec1, dec2 = np.arcsin(rng.uniform(-1, 1, (2, 500)))
    dot = np.sum(unit(ra1, dec1) * unit(ra2, dec2), axis=-1)
    np.testing.assert_allclose(angular_separation(ra1, dec1, ra2, dec2), np.arccos(np.clip(dot, -1, 1)), atol=1e-7)


def test_foursources_one_direction_each_brightest_first(foursources: Path) -> None:
    m = read_skymodel(foursources)
    g = group_into_directions(m, 4)
    # 20 Jy sources first (file order breaks the tie), then the 10 Jy ones
    assert [(s.name, s.patch) for s in g.sources] == [
        ("CygA-0", "P2"),
        ("source1-0", "P0"),
        ("source2-0", "P1"),
        ("source3-0", "P3"),
    ]
    for p in g.patches:
        (s,) = g.sources_in(p.name)
        assert (p.ra, p.dec) == pytest.approx((s.ra, s.dec), abs=1e-12)
    # other fields untouched
    assert [s.i for s in g.sources] == [s.i for s in m.sources]
    assert [(s.ra, s.dec) for s in g.sources] == [(s.ra, s.dec) for s in m.sources]


def test_fewer_directions_than_asked_when_sources_run_out(foursources: Path) -> None:
    m = read_skymodel(foursources)
    g = group_into_directions(m, 10)
    assert g.patch_names() == ["P0", "P1", "P2", "P3"]
    # the four sources are 1.4-2 deg apart: a 3 deg separation leaves one anchor
    one = group_into_directions(m, 4, min_separation_deg=3.0)
    assert one.patch_names() == ["P0"] and len(one.sources_in("P0")) == 4


def test_separation_keeps_a_bright_neighbour_from_anchoring() -> None:
    a = Source("A", D(10.0), D(40.0), 10.0)
    b = Source("B", D(10.1), D(40.0), 5.0)  # 0.077 deg from A
    c = Source("C", D(12.0), D(40.0), 3.0)  # 1.5 deg from A
    m = SkyModel((a, b, c))
    g = group_into_directions(m, 2, min_separation_deg=0.2)
    assert [s.patch for s in g.sources] == ["P0", "P0", "P1"]
    # B and A in one patch: the patch row is the flux-weighted centroid
    p0 = g.patches[0]
    v = 10 * unit(a.ra, a.dec) + 5 * unit(b.ra, b.dec)
    assert (p0.ra, p0.dec) == pytest.approx((math.atan2(v[1], v[0]), math.asin(v[2] / np.linalg.norm(v))), abs=1e-13)
    assert p0.ra == pytest.approx(D(10 + 0.1 / 3), abs=D(1e-4))
    # without the separation B anchors the second direction and C joins the nearer, B
    g2 = group_into_directions(m, 2, min_separation_deg=0.0)
    assert [s.patch for s in g2.sources] == ["P0", "P1", "P1"]


def test_every_source_joins_its_nearest_anchor() -> None:
    rng = np.random.default_rng(11)
    n = 300
    ra = D(150) + rng.normal(0, D(2), n)
    dec = D(30) + rng.normal(0, D(2), n)
    flux = rng.pareto(1.5, n) + 0.01
    m = SkyModel(tuple(Source(f"s{k}", float(ra[k]), float(dec[k]), float(flux[k])) for k in range(n)))
    g = group_into_directions(m, 6, min_separation_deg=1.0)
    assert len(g.patches) == 6
    # naive greedy reference: brightest first, skip any within 1 deg of a chosen anchor
    anchors: list[Source] = []
    for s in sorted(m.sources, key=lambda s: -s.i):
        if len(anchors) < 6 and all(angular_separation(s.ra, s.dec, a.ra, a.dec) >= D(1.0) for a in anchors):
            anchors.append(s)
    assert anchors[0].i == flux.max()
    by_name = {s.name: s for s in g.sources}
    assert [by_name[a.name].patch for a in anchors] == [f"P{k}" for k in range(6)]
    # each source is in the patch of its nearest anchor
    for s in g.sources:
        d = [angular_separation(s.ra, s.dec, a.ra, a.dec) for a in anchors]
        assert s.patch == f"P{int(np.argmin(d))}"
    # patch rows at the flux-weighted centroids
    for p in g.patches:
        srcs = g.sources_in(p.name)
        v = sum(s.i * unit(s.ra, s.dec) for s in srcs)
        assert angular_separation(p.ra, p.dec, math.atan2(v[1], v[0]), math.asin(v[2] / np.linalg.norm(v))) < 1e-12


def test_centroid_across_ra_zero() -> None:
    m = SkyModel((Source("w", D(359.9), D(10), 1.0), Source("e", D(0.1), D(10), 1.0)))
    (p,) = group_into_directions(m, 3, min_separation_deg=1.0).patches
    assert angular_separation(p.ra, p.dec, 0.0, D(10)) < D(1e-3)


def test_existing_patches_are_replaced_and_output_round_trips(foursources: Path) -> None:
    m = read_skymodel(foursources)
    g = group_into_directions(m, 2, min_separation_deg=0.1, prefix="Dir")
    assert g.patch_names() == ["Dir0", "Dir1"]
    assert parse_skymodel(format_skymodel(g)) == g


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_bad_direction_count(n: object) -> None:
    m = SkyModel((Source("a", 0.0, 0.0, 1.0),))
    with pytest.raises(UserError, match="n_directions"):
        group_into_directions(m, n)  # type: ignore[arg-type]


def test_bad_separation_and_empty_model() -> None:
    with pytest.raises(UserError, match="min_separation_deg"):
        group_into_directions(SkyModel((Source("a", 0.0, 0.0, 1.0),)), 2, min_separation_deg=-1)
    with pytest.raises(UserError, match="no sources"):
        group_into_directions(SkyModel(()), 2)


def test_patch_directions_follow_dp3() -> None:
    m = SkyModel(
        (
            Source("a", D(10), D(20), 1.0, patch="A"),
            Source("lone", D(30), D(40), 2.0),
            Source("b", D(11), D(21), 1.0, patch="B"),
        ),
        patches=(Patch("A", D(10.5), D(20.5)),),
    )
    dirs = patch_directions(m)
    # the patch row's position wins; B has none: centroid; a source without patch is its own
    assert dirs == [("A", D(10.5), D(20.5)), ("B", *m.patch_centre("B")), ("lone", D(30), D(40))]


def test_checking_direction_names(foursources: Path) -> None:
    m = read_skymodel(foursources)
    assert check_directions(m, ["CygA", "source2"]) == ("CygA", "source2")
    assert directions_with_no_sources(m, ["CygA", "Cyg", "source9"]) == ["Cyg", "source9"]
    with pytest.raises(UserError) as info:
        check_directions(m, ["CygA", "Cyg"], where="calibration.directions")
    msg = str(info.value)
    assert msg.startswith("calibration.directions: 'Cyg' not a patch")
    assert "available: CygA, source1, source2, source3" in msg
    with pytest.raises(UserError, match="more than once"):
        check_directions(m, ["CygA", "CygA"])


def test_require_directions_keeps_patches_and_writes_for_dp3(foursources: Path, tmp_path: Path) -> None:
    path, names = require_directions(foursources, 2, tmp_path)
    assert names == ("CygA", "source1", "source2", "source3")  # n_directions unused: the file has patches
    out = Path(path)
    assert out.parent == tmp_path.resolve() and out.name.startswith("directions-") and out.suffix == ".skymodel"
    assert read_skymodel(out) == read_skymodel(foursources)
    mtime = out.stat().st_mtime_ns
    assert require_directions(foursources, 2, tmp_path) == (path, names)
    assert out.stat().st_mtime_ns == mtime  # same contents: not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_require_directions_groups_a_model_without_patches(tmp_path: Path) -> None:
    src = tmp_path / "flat.skymodel"
    src.write_text(
        "FORMAT = Name, Type, Ra, Dec, I\n"
        "a, POINT, 10deg, 40deg, 5\n"
        "b, POINT, 10.05deg, 40deg, 1\n"
        "c, POINT, 14.5deg, 39.5deg, 2\n"
        "d, POINT, 16deg, 39deg, 3\n"
    )
    path, names = require_directions(src, 2, tmp_path)
    assert names == ("P0", "P1")
    m = read_skymodel(path)
    assert [s.patch for s in m.sources] == ["P0", "P0", "P1", "P1"]  # a, then d; b joins a, c the nearer d
    # a different model gets a different file: a path-keyed cache cannot mix them up
    path3, names3 = require_directions(src, 3, tmp_path)
    assert names3 == ("P0", "P1", "P2") and path3 != path


def test_require_directions_refuses_mixed_and_unusable_patches(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.skymodel"
    mixed.write_text("FORMAT = Name, Patch, Ra, Dec, I\n, A, 0deg, 0deg\na, A, 0deg, 0deg, 1\nb, , 1deg, 0deg, 1\n")
    with pytest.raises(UserError, match=r"mixed.skymodel: 1 source\(s\) without a patch \(e.g. 'b'\)"):
        require_directions(mixed, 2, tmp_path)
    spaced = tmp_path / "spaced.skymodel"
    spaced.write_text("FORMAT = Name, Patch, Ra, Dec, I\n, 3C 196, 0deg, 0deg\na, 3C 196, 0deg, 0deg, 1\n")
    with pytest.raises(UserError, match="patch '3C 196' cannot be a DP3 direction"):
        require_directions(spaced, 2, tmp_path)
    with pytest.raises(UserError, match="not found"):
        require_directions(tmp_path / "missing.skymodel", 2, tmp_path)
