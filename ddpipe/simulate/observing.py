"""Where the phase centre is in the sky of the site: sidereal time and elevation.

Uses the IAU 1982 GMST polynomial (UT1 ≈ UTC), good to about a second of time:
enough to choose a default phase centre and to warn about a low field, not for UVW
(that comes from casacore measures, see :mod:`ddpipe.simulate.uvw`).
"""

from __future__ import annotations

import numpy as np


def local_sidereal_angle(mjd_seconds: np.ndarray | float, lon_deg: float) -> np.ndarray:
    """Local mean sidereal time as an angle in [0, 2π), radians; shape of ``mjd_seconds``."""
    jd = np.asarray(mjd_seconds, dtype=float) / 86400.0 + 2400000.5
    gmst_deg = 280.46061837 + 360.98564736629 * (jd - 2451545.0)
    return np.radians(np.mod(gmst_deg + lon_deg, 360.0))


def elevation(mjd_seconds: np.ndarray | float, lon_deg: float, lat_deg: float, ra: float, dec: float) -> np.ndarray:
    """Elevation (radians) of (ra, dec) seen from the site at each epoch; shape of ``mjd_seconds``."""
    hour_angle = local_sidereal_angle(mjd_seconds, lon_deg) - ra
    lat = np.radians(lat_deg)
    s = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(hour_angle)
    return np.arcsin(np.clip(s, -1.0, 1.0))
