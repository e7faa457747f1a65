"""Station layouts on the Earth and UVW from casacore measures (against TaQL mscal.uvwj2000)."""

from __future__ import annotations

import casacore.tables as pt
import numpy as np
import pytest
from casacore.measures import measures
from casacore.quanta import quantity

from ddpipe.errors import UserError
from ddpipe.simulate.layout import SITES, enu_to_itrf, geodetic_to_itrf, make_layout
from ddpipe.simulate.uvw import baselines, station_uvw


def test_geodetic_to_itrf_matches_casacore():
    dm = measures()
    for site in SITES.values():
        wgs = dm.position(
            "wgs84", quantity(site.lon_deg, "deg"), quantity(site.lat_deg, "deg"), quantity(site.height, "m")
        )
        itrf = dm.measure(wgs, "itrf")
        lon, lat, r = itrf["m0"]["value"], itrf["m1"]["value"], itrf["m2"]["value"]
        want = r * np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
        np.testing.assert_allclose(geodetic_to_itrf(site.lon_deg, site.lat_deg, site.height), want, atol=1e-3)


def test_enu_axes_point_east_north_up():
    site = SITES["lofar"]
    centre = geodetic_to_itrf(site.lon_deg, site.lat_deg, site.height)
    east, north, up = enu_to_itrf(np.eye(3) * 1000.0, site.lon_deg, site.lat_deg, site.height) - centre
    lat, lon = np.radians(site.lat_deg), np.radians(site.lon_deg)
    np.testing.assert_allclose(
        up / 1000, [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], atol=1e-12
    )
    assert north[2] > 0 and abs(east[2]) < 1e-9  # north climbs towards the pole; east stays at constant z
    np.testing.assert_allclose(np.cross(east, north) / 1e6, up / 1000, atol=1e-12)


@pytest.mark.parametrize("kind", ["lofar", "ska-low"])
def test_layout(kind):
    lay = make_layout(kind, 40, seed=3)
    assert len(lay.names) == len(set(lay.names)) == 40 and lay.itrf.shape == (40, 3)
    radius = np.linalg.norm(lay.itrf, axis=1)
    assert np.all((radius > 6.35e6) & (radius < 6.40e6))  # on the Earth's surface
    sep = np.linalg.norm(lay.enu[:, None, :2] - lay.enu[None, :, :2], axis=-1) + np.eye(40) * 1e9
    assert sep.min() >= 1.5 * lay.site.station_diameter
    dist = np.linalg.norm(lay.enu[:, :2], axis=1)
    core = np.array([n.startswith("C") for n in lay.names])
    assert core.sum() >= 20 and dist[core].max() <= 1500 and dist[~core].min() >= 500 and dist.max() <= 8000
    np.testing.assert_array_equal(make_layout(kind, 40, seed=3).itrf, lay.itrf)
    assert not np.array_equal(make_layout(kind, 40, seed=4).itrf, lay.itrf)


def test_layout_refuses_bad_input():
    with pytest.raises(UserError, match="unknown"):
        make_layout("vla", 10, 1)
    with pytest.raises(UserError, match="at least 2"):
        make_layout("lofar", 1, 1)


def _uvw_against_mscal(ms, telescope: str | None = None) -> float:
    with pt.table(str(ms), ack=False) as t:
        time, a1, a2 = t.getcol("TIME"), t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
        mscal = pt.taql("select mscal.uvwj2000() as U from $t").getcol("U")
    with pt.table(str(ms / "ANTENNA"), ack=False) as t:
        itrf = t.getcol("POSITION")
    with pt.table(str(ms / "FIELD"), ack=False) as t:
        ra, dec = t.getcol("PHASE_DIR")[0, 0]
    with pt.table(str(ms / "OBSERVATION"), ack=False) as t:
        telescope = t.getcol("TELESCOPE_NAME")[0]
    times = np.unique(time)
    st = station_uvw(times, itrf, ra, dec, telescope=telescope)
    k = np.searchsorted(times, time)
    ours = st[k, a2] - st[k, a1]
    return float(np.abs(ours - mscal).max())


def test_uvw_matches_mscal_on_a_real_lofar_ms(real_ms_readonly):
    assert _uvw_against_mscal(real_ms_readonly["tDDECal"]) < 1e-3


def test_uvw_matches_mscal_on_a_real_oskar_ms(real_ms_readonly):
    assert _uvw_against_mscal(real_ms_readonly["tOSKAR"]) < 1e-3


def test_simulated_uvw_column_matches_mscal(tmp_path):
    from ddpipe.simulate import SimulationSpec, simulate

    for kind in ("lofar", "ska-low"):
        r = simulate(
            tmp_path / f"{kind}.ms",
            SimulationSpec(stations=10, layout=kind, channels=2, times=20, interval=60.0, noise=0.0),
        )
        with pt.table(str(r.ms), ack=False) as t:
            uvw = t.getcol("UVW")
            mscal = pt.taql("select mscal.uvwj2000() as U from $t").getcol("U")
        assert np.abs(uvw - mscal).max() < 1e-3
        assert np.abs(uvw).max() > 1000  # real baselines, not zeros
        assert _uvw_against_mscal(r.ms) < 1e-3


def test_baselines_are_cross_correlations_in_order():
    a1, a2 = baselines(4)
    assert list(zip(a1, a2)) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


@pytest.mark.parametrize("kind", ["lofar", "ska-low"])
def test_large_arrays_fit(kind):
    """Cores grow with the station count instead of failing to pack (SKA-Low has 512 stations)."""
    lay = make_layout(kind, 512, seed=1)
    sep = np.linalg.norm(lay.enu[:, None, :2] - lay.enu[None, :, :2], axis=-1) + np.eye(512) * 1e9
    assert sep.min() >= 1.5 * lay.site.station_diameter and len(set(lay.names)) == 512
