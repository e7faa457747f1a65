"""Sky model data types shared by the reader/writer, the simulator, calibration and imaging.

Angles are radians internally; fluxes Jy at ``reference_frequency`` (Hz).
Gaussian axes are FWHM in arcsec and the orientation in degrees (east of north),
as in the makesourcedb format. The orientation is measured from the declination
axis at the phase centre unless ``orientation_is_absolute`` (then from the local
north at the source, as DP3 ≥ 5.3 does for ``OrientationIsAbsolute=true``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: m/s, as casacore's ``C::c``
SPEED_OF_LIGHT = 299792458.0


@dataclass(frozen=True)
class Source:
    """One component of a sky model.

    ``spectral_index`` holds the polynomial terms; with ``log_si`` (the default)
    I(ν) = I0 · (ν/ν0)^(c0 + c1·log10(ν/ν0) + ...), otherwise
    I(ν) = I0 + c0·(ν/ν0 − 1) + c1·(ν/ν0 − 1)² + ... (makesourcedb's
    ``LogarithmicSI=false``).

    Linear polarisation by Faraday rotation (makesourcedb's ``RotationMeasure``)
    is ``rotation_measure`` (rad/m²) with ``polarized_fraction`` p and
    ``polarization_angle`` χ0 (rad, at λ = 0); ``q`` and ``u`` are then 0 and
    Q(ν) = p·I(ν)·cos 2χ, U(ν) = p·I(ν)·sin 2χ with χ = χ0 + RM·λ², as in DP3.
    (A file's other form, RM with Q and U at a reference wavelength, is turned
    into this one on reading, as DP3 does.) ``category`` is makesourcedb's
    source category, kept but unused.
    """

    name: str
    ra: float
    dec: float
    i: float
    type: str = "POINT"  # POINT | GAUSSIAN
    patch: str | None = None
    q: float = 0.0
    u: float = 0.0
    v: float = 0.0
    major_axis: float = 0.0  # FWHM, arcsec
    minor_axis: float = 0.0  # FWHM, arcsec
    orientation: float = 0.0  # degrees
    reference_frequency: float = 0.0  # Hz; 0 means "not given"
    spectral_index: tuple[float, ...] = ()
    log_si: bool = True
    orientation_is_absolute: bool = False
    rotation_measure: float | None = None  # rad/m²; None: no Faraday rotation
    polarized_fraction: float | None = None  # with a rotation measure
    polarization_angle: float | None = None  # rad, at wavelength 0; with a rotation measure
    category: int | None = None

    def stokes_i_at(self, freq: np.ndarray | float) -> np.ndarray:
        """Stokes I at ``freq`` (Hz); shape of ``freq``."""
        return self._scale(self.i, freq)

    def _scale(self, s0: float, freq: np.ndarray | float) -> np.ndarray:
        f = np.asarray(freq, dtype=float)
        if not self.spectral_index or self.reference_frequency <= 0:
            return np.full(f.shape, s0, dtype=float)
        x = f / self.reference_frequency
        if self.log_si:
            lx = np.log10(x)
            expo = np.zeros_like(f)
            for k, c in enumerate(self.spectral_index):
                expo = expo + c * lx**k
            return s0 * x**expo
        out = np.full(f.shape, s0, dtype=float)
        for k, c in enumerate(self.spectral_index):
            out = out + c * (x - 1.0) ** (k + 1)
        return out

    def stokes_at(self, freq: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(I, Q, U, V) at ``freq``. As in DP3 6.6, the spectral index applies to I only;
        Q, U and V are constant (measured: DP3 predict differs from a scaled Q/U/V by 0.085 Jy),
        unless a rotation measure gives Q and U (see the class docstring)."""
        i = self.stokes_i_at(freq)
        const = np.ones_like(i)
        if self.rotation_measure is None:
            return i, self.q * const, self.u * const, self.v * const
        frac, angle = self.polarized_fraction or 0.0, self.polarization_angle or 0.0
        lam2 = (SPEED_OF_LIGHT / np.asarray(freq, dtype=float)) ** 2
        chi = 2.0 * (angle + self.rotation_measure * lam2)
        return i, frac * i * np.cos(chi), frac * i * np.sin(chi), self.v * const


@dataclass(frozen=True)
class Patch:
    """A named group of sources (a calibration direction) with its centre (radians)."""

    name: str
    ra: float
    dec: float


@dataclass(frozen=True)
class SkyModel:
    """Sources and patches, in file order."""

    sources: tuple[Source, ...]
    patches: tuple[Patch, ...] = ()
    format_fields: tuple[str, ...] = field(default=(), compare=False)

    def patch_names(self) -> list[str]:
        """Patch names in file order (patch rows first, then any only named by sources)."""
        names = [p.name for p in self.patches]
        for s in self.sources:
            if s.patch is not None and s.patch not in names:
                names.append(s.patch)
        return names

    def sources_in(self, patch: str) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.patch == patch)

    def patch_centre(self, patch: str) -> tuple[float, float]:
        """The patch row's position, else the flux-weighted centroid of its sources."""
        for p in self.patches:
            if p.name == patch:
                return p.ra, p.dec
        srcs = self.sources_in(patch)
        if not srcs:
            raise KeyError(patch)
        w = np.array([abs(s.i) for s in srcs]) + 1e-30
        ra = np.array([s.ra for s in srcs])
        dec = np.array([s.dec for s in srcs])
        # average on the unit sphere so RA wrap-around is harmless
        x = np.sum(w * np.cos(dec) * np.cos(ra))
        y = np.sum(w * np.cos(dec) * np.sin(ra))
        z = np.sum(w * np.sin(dec))
        return float(np.arctan2(y, x) % (2 * np.pi)), float(np.arctan2(z, np.hypot(x, y)))
