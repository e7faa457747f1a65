"""A random sky of D patches: one bright compact calibrator plus fainter sources each.

Patch centres are spread around the phase centre (0.4–1.2 deg out, evenly in
position angle with jitter), each patch's sources within ``patch_radius`` of it,
so the whole field lies within ~1.4 deg of the centre. Calibrators are points of
4–10 Jy; the other sources 0.3–2 Jy (log-uniform), a third of them Gaussian of
20–80 arcsec FWHM. Spectral indices ~ N(−0.8, 0.2) at the band centre (LOFAR HBA sources: −0.8 typical).
"""

from __future__ import annotations

import numpy as np

from ddpipe.errors import UserError
from ddpipe.sky.model import Patch, SkyModel, Source

DEG = np.pi / 180.0


def offset_radec(ra0: float, dec0: float, rho: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position at angular distance ``rho`` and position angle ``theta`` (north through east) from (ra0, dec0).

    All angles radians; ``rho``/``theta`` broadcast; returns (ra in [0, 2π), dec).
    """
    rho, theta = np.asarray(rho, dtype=float), np.asarray(theta, dtype=float)
    sin_dec = np.sin(dec0) * np.cos(rho) + np.cos(dec0) * np.sin(rho) * np.cos(theta)
    dec = np.arcsin(np.clip(sin_dec, -1.0, 1.0))
    dra = np.arctan2(np.sin(theta) * np.sin(rho) * np.cos(dec0), np.cos(rho) - np.sin(dec0) * sin_dec)
    return np.mod(ra0 + dra, 2.0 * np.pi), dec


def random_sky(
    seed: int,
    ndir: int,
    sources_per_direction: int,
    phase_centre: tuple[float, float],
    ref_freq: float,
    patch_radius_deg: float = 0.15,
    faint_sources: int = 0,
    faint_flux: float = 0.0,
) -> SkyModel:
    """A seeded random sky model with ``ndir`` patches ``P1``..``PD``.

    Parameters
    ----------
    seed
        RNG seed (the sky uses its own stream, independent of gains and noise).
    ndir
        Number of patches (directions), ≥ 1.
    sources_per_direction
        Sources per patch, ≥ 1; the first is the point-like calibrator.
    phase_centre
        (ra, dec) radians.
    ref_freq
        Reference frequency of the spectra (Hz), normally the band centre.
    patch_radius_deg
        Radius around a patch centre within which its sources lie.
    faint_sources, faint_flux
        Point sources of ``faint_flux`` Jy (flat spectrum) added to the patches in turn,
        ``P{d}_f{k}``, 0.2°-0.6° from their patch centre: what a catalogue misses and
        calibration may suppress. From a stream of their own: the other sources do not
        change with them.

    Returns
    -------
    SkyModel
        With a :class:`Patch` row per patch at its calibrator's position.
    """
    if ndir < 1:
        raise UserError(f"directions={ndir}: need at least one direction")
    if sources_per_direction < 1:
        raise UserError(f"sources-per-direction={sources_per_direction}: need at least one source per direction")
    rng = np.random.default_rng([seed, 1])
    sources: list[Source] = []
    patches: list[Patch] = []
    base_angle = rng.uniform(0.0, 2.0 * np.pi)
    for d in range(ndir):
        patch = _random_patch(rng, d, ndir, base_angle, phase_centre)
        patches.append(patch)
        for k in range(sources_per_direction):
            sources.append(_random_source(rng, patch, k, patch_radius_deg, ref_freq))
    sources.extend(_faint_sources(seed, patches, faint_sources, faint_flux, ref_freq))
    return SkyModel(sources=tuple(sources), patches=tuple(patches))


def _random_patch(
    rng: np.random.Generator, d: int, ndir: int, base_angle: float, phase_centre: tuple[float, float]
) -> Patch:
    """Patch ``P{d+1}``: 0.4–1.2 deg from the centre (0–0.3 deg when alone), its share of the circle plus jitter."""
    rho = (rng.uniform(0.4, 1.2) if ndir > 1 else rng.uniform(0.0, 0.3)) * DEG
    theta = base_angle + 2.0 * np.pi * d / ndir + rng.uniform(-0.25, 0.25) * 2.0 * np.pi / ndir
    pra, pdec = offset_radec(phase_centre[0], phase_centre[1], rho, theta)
    return Patch(name=f"P{d + 1}", ra=float(pra), dec=float(pdec))


def _random_source(rng: np.random.Generator, patch: Patch, k: int, patch_radius_deg: float, ref_freq: float) -> Source:
    """Source ``k`` of ``patch``: k = 0 is the point calibrator at the patch centre, the others as the module says."""
    if k == 0:
        ra, dec = patch.ra, patch.dec
        flux = rng.uniform(4.0, 10.0)
        gaussian = False
    else:
        r = patch_radius_deg * DEG * np.sqrt(rng.uniform(0.05, 1.0))
        ra, dec = (float(x) for x in offset_radec(patch.ra, patch.dec, r, rng.uniform(0.0, 2.0 * np.pi)))
        flux = float(np.exp(rng.uniform(np.log(0.3), np.log(2.0))))
        gaussian = bool(rng.uniform() < 1.0 / 3.0)
    si = float(rng.normal(-0.8, 0.2))
    if gaussian:
        major = float(rng.uniform(20.0, 80.0))
        minor = float(major * rng.uniform(0.4, 1.0))
        orient = float(rng.uniform(0.0, 180.0))
    else:
        major = minor = orient = 0.0
    return Source(
        name=f"{patch.name}_s{k}",
        ra=ra,
        dec=dec,
        i=round(float(flux), 6),
        type="GAUSSIAN" if gaussian else "POINT",
        patch=patch.name,
        major_axis=round(major, 3),
        minor_axis=round(minor, 3),
        orientation=round(orient, 3),
        reference_frequency=float(ref_freq),
        spectral_index=(round(si, 4),),
    )


def _faint_sources(seed: int, patches: list[Patch], n: int, flux: float, ref_freq: float) -> list[Source]:
    """``n`` flat-spectrum points of ``flux`` Jy, 0.2–0.6 deg from the patches in turn, from their own stream."""
    frng = np.random.default_rng([seed, 3])
    out: list[Source] = []
    for k in range(n):
        patch = patches[k % len(patches)]
        r = frng.uniform(0.2, 0.6) * DEG
        ra, dec = (float(x) for x in offset_radec(patch.ra, patch.dec, r, frng.uniform(0.0, 2.0 * np.pi)))
        out.append(
            Source(
                name=f"{patch.name}_f{k}",
                ra=ra,
                dec=dec,
                i=round(float(flux), 6),
                patch=patch.name,
                reference_frequency=float(ref_freq),
                spectral_index=(0.0,),
            )
        )
    return out
