"""Station layouts on the Earth: a LOFAR-like core + remote array or an SKA-Low-like array.

Positions are drawn in the local east-north-up (ENU) tangent plane of the site
with a seeded RNG (a minimum station separation is kept) and converted to ITRF
(WGS84) metres, the frame of the MS ``ANTENNA::POSITION`` column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddpipe.errors import UserError

#: WGS84 ellipsoid
_A = 6378137.0
_F = 1.0 / 298.257223563
_E2 = _F * (2.0 - _F)


@dataclass(frozen=True)
class Site:
    """An array site: geodetic longitude/latitude (degrees), height (m), telescope name."""

    name: str
    telescope: str
    lon_deg: float
    lat_deg: float
    height: float
    station_diameter: float  # metres


@dataclass(frozen=True)
class StationLayout:
    """Station names and ITRF positions.

    Attributes
    ----------
    names
        Station names (``CS001``..., ``RS...``; ``C...``/``S...`` for SKA-Low).
    itrf
        (nstation, 3) float64 ITRF metres.
    enu
        (nstation, 3) float64 local east/north/up metres relative to the site.
    site
        The :class:`Site` they stand on.
    """

    names: tuple[str, ...]
    itrf: np.ndarray
    enu: np.ndarray
    site: Site


#: LOFAR's superterp (core) and SKA-Low's central area
SITES = {
    "lofar": Site("lofar", "LOFAR", lon_deg=6.869837, lat_deg=52.915122, height=50.0, station_diameter=30.75),
    "ska-low": Site("ska-low", "SKA-Low", lon_deg=116.764444, lat_deg=-26.824722, height=377.0, station_diameter=38.0),
}


def geodetic_to_itrf(lon_deg: float, lat_deg: float, height: float) -> np.ndarray:
    """WGS84 geodetic position → ITRF (ECEF) metres, shape (3,)."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    n = _A / np.sqrt(1.0 - _E2 * np.sin(lat) ** 2)
    return np.array(
        [
            (n + height) * np.cos(lat) * np.cos(lon),
            (n + height) * np.cos(lat) * np.sin(lon),
            (n * (1.0 - _E2) + height) * np.sin(lat),
        ]
    )


def enu_to_itrf(enu: np.ndarray, lon_deg: float, lat_deg: float, height: float) -> np.ndarray:
    """Local ENU offsets (n, 3) metres at a geodetic site → ITRF positions (n, 3) metres."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    north = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    rot = np.stack([east, north, up])  # (3, 3): rows are the local axes in ECEF
    return geodetic_to_itrf(lon_deg, lat_deg, height)[None, :] + np.asarray(enu, dtype=float) @ rot


def _place(rng: np.random.Generator, n: int, draw, taken: np.ndarray, min_sep: float, what: str) -> np.ndarray:
    """Draw ``n`` points with ``draw(rng) -> (2,)`` keeping ``min_sep`` from each other and ``taken``.

    Returns ``taken`` with the new points appended, shape (len(taken) + n, 2).
    """
    pts = np.asarray(taken, dtype=float).reshape(-1, 2)
    want = len(pts) + n
    for _ in range(500 * n + 1000):
        if len(pts) == want:
            return pts
        p = draw(rng)
        if len(pts) == 0 or np.min(np.hypot(*(pts - p).T)) >= min_sep:
            pts = np.vstack([pts, p])
    raise UserError(f"cannot place {n} {what} stations {min_sep:.0f} m apart; use fewer stations")


def _disc(rmin: float, rmax: float, log_radius: bool):
    """A candidate drawer: uniform in area (or log-uniform in radius) within an annulus."""

    def draw(rng: np.random.Generator) -> np.ndarray:
        u = rng.uniform()
        r = rmin * (rmax / rmin) ** u if log_radius else np.sqrt(rmin**2 + u * (rmax**2 - rmin**2))
        a = rng.uniform(0.0, 2.0 * np.pi)
        return np.array([r * np.sin(a), r * np.cos(a)])

    return draw


def _spiral_arms(rmin: float, rmax: float, narms: int = 3, twist: float = 0.6):
    """A candidate drawer: on one of ``narms`` logarithmic spiral arms, log-uniform in radius."""

    def draw(rng: np.random.Generator) -> np.ndarray:
        r = rmin * (rmax / rmin) ** rng.uniform()
        a = 2.0 * np.pi * rng.integers(narms) / narms + twist * np.log(r / rmin) + rng.normal(0.0, 0.04)
        return np.array([r * np.sin(a), r * np.cos(a)])

    return draw


def make_layout(kind: str, nstation: int, seed: int) -> StationLayout:
    """A random station layout.

    Parameters
    ----------
    kind
        ``'lofar'``: two thirds of the stations in a core of 1.5 km radius
        (``CS...``), the rest remote (``RS...``) out to 8 km with a log-uniform
        radius. ``'ska-low'``: half in a 500 m core (``C...``), the rest on three
        logarithmic spiral arms out to 7 km (``S...``). Cores grow when more
        stations are asked for than fit; stations stay 1.5 diameters apart.
    nstation
        Number of stations, at least 2.
    seed
        RNG seed.

    Returns
    -------
    StationLayout
    """
    if kind not in SITES:
        raise UserError(f"layout '{kind}' is unknown; use one of {', '.join(SITES)}")
    if nstation < 2:
        raise UserError(f"stations={nstation}: need at least 2 stations")
    site = SITES[kind]
    rng = np.random.default_rng([seed, 0])
    sep = 1.5 * site.station_diameter
    if kind == "lofar":
        ncore = int(round(nstation * 2 / 3)) if nstation > 2 else 1
        rcore = max(1500.0, 1.2 * sep * np.sqrt(ncore))
        pts = _place(rng, ncore, _disc(1.0, rcore, log_radius=False), np.zeros((0, 2)), sep, "core")
        pts = _place(
            rng, nstation - ncore, _disc(rcore + 500.0, max(8000.0, 4 * rcore), log_radius=True), pts, sep, "remote"
        )
        names = [f"CS{i + 1:03d}" for i in range(ncore)] + [f"RS{i + 101:03d}" for i in range(nstation - ncore)]
    else:
        ncore = max(1, nstation // 2)
        rcore = max(500.0, 1.2 * sep * np.sqrt(ncore))
        pts = _place(rng, ncore, _disc(1.0, rcore, log_radius=False), np.zeros((0, 2)), sep, "core")
        pts = _place(rng, nstation - ncore, _spiral_arms(rcore + 100.0, max(7000.0, 10 * rcore)), pts, sep, "arm")
        names = [f"C{i + 1:03d}" for i in range(ncore)] + [f"S{i + 1:03d}" for i in range(nstation - ncore)]
    enu = np.zeros((nstation, 3))
    enu[:, :2] = pts
    return StationLayout(
        names=tuple(names),
        itrf=enu_to_itrf(enu, site.lon_deg, site.lat_deg, site.height),
        enu=enu,
        site=site,
    )
