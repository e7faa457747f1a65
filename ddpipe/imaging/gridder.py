"""Thin, pure wrappers around ducc0's w-gridder in the ``(ny, nx)`` image layout.

ducc0 uses the opposite sign convention to casacore/DP3 (FIELD-NOTES). We pass
the baseline coordinates as ``(v, u, w)`` so that ducc0's first image axis is
``m`` (north, FITS axis 2) and its second is ``l``; flipping the sign of the
first (``v``) column and keeping ``u`` makes pixel indices follow
``y ↔ +m`` and ``x ↔ -l`` (RA to the left). The result then matches an exact
DFT with DP3's convention, V = Σ I exp(+2πi (u l + v m + w (n − 1))).

Images are *not* divided by n: a point source of S Jy gives S at its pixel in
the (normalised) dirty image, and degridding a model with S in one pixel gives
visibilities of amplitude S, as DP3 predicts a point source.

The transforms share their arguments: ``uvw`` ``(row, 3)`` float64 baseline
coordinates in metres (MS convention; ``swapped=True`` when it is already
:func:`swap_uvw`'s output), ``freq`` ``(chan,)`` float64 channel frequencies in
Hz, a :class:`Sampling`, and ``offset`` ``(dy, dx)`` pixels: the image is centred
``dy, dx`` pixels away from the phase centre (a facet's box), its pixels on the
same grid as the full image's (pixel ``[i, j]`` is pixel
``[i + dy + (NY − ny)/2, j + dx + (NX − nx)/2]`` of a full ``(NY, NX)`` image);
exact, w-term included.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import ducc0.wgridder.experimental as _wg
import numpy as np


@dataclass(frozen=True)
class Sampling:
    """How the sky is sampled and transformed: pixel size ``cell`` (radians, direction cosines), the
    w-gridder's accuracy ``epsilon`` and threads, and whether the w-term is applied (``wterm``; a PSF
    and the facet responses are 2-D). Every transform below takes one."""

    cell: float
    epsilon: float = 1e-4
    nthreads: int = 2
    wterm: bool = True


def swap_uvw(uvw: np.ndarray) -> np.ndarray:
    """(u, v, w) → (v, u, w), contiguous float64: the layout the calls below hand to ducc0.

    Pass the result with ``swapped=True`` to grid or degrid the same rows many times
    without converting them each time.
    """
    return np.ascontiguousarray(uvw[:, (1, 0, 2)], dtype=np.float64)


def grid(
    uvw: np.ndarray,
    freq: np.ndarray,
    vis: np.ndarray,
    weight: np.ndarray,
    shape: tuple[int, int],
    sampling: Sampling,
    *,
    offset: tuple[int, int] = (0, 0),
    swapped: bool = False,
) -> np.ndarray:
    """Weighted adjoint transform (gridding + FFT + w-correction) of ``(row, chan)`` complex64 or
    complex128 visibilities ``vis`` with real ``weight`` of the same precision (zero excludes a
    sample): the ``shape`` ``(ny, nx)`` (both even, at least 32) real image
    Σ w Re(V e^{-2πi(ul+vm+w(n-1))}), not normalised. Shared arguments: see the module docstring.
    """
    ny, nx = shape
    real = np.float32 if vis.dtype == np.complex64 else np.float64
    w = np.ascontiguousarray(weight, dtype=real)
    mask = (w != 0).astype(np.uint8)
    if not mask.any():
        return np.zeros(shape, dtype=real)
    return _wg.vis2dirty(
        uvw=uvw if swapped else swap_uvw(uvw),
        freq=np.ascontiguousarray(freq, dtype=np.float64),
        vis=np.ascontiguousarray(vis),
        wgt=w,
        mask=mask,
        npix_x=ny,
        npix_y=nx,
        **_conventions(sampling, offset),
    )


def _conventions(sampling: Sampling, offset: tuple[float, float]) -> dict[str, object]:
    """ducc0 wgridder arguments that :func:`grid` and :func:`degrid` share: pixel size, accuracy,
    the sign conventions under which ddpipe's images match WSClean's, and the image centre
    ``offset`` pixels ``(dy, dx)`` from the phase centre."""
    cell = sampling.cell
    return dict(
        pixsize_x=cell,
        pixsize_y=cell,
        epsilon=sampling.epsilon,
        do_wgridding=sampling.wterm,
        nthreads=sampling.nthreads,
        flip_u=True,
        flip_v=False,
        flip_w=False,
        divide_by_n=False,
        center_x=-offset[0] * cell,
        center_y=offset[1] * cell,
    )


def psf_image(
    uvw: np.ndarray, freq: np.ndarray, weight: np.ndarray, shape: tuple[int, int], sampling: Sampling
) -> np.ndarray:
    """The (unnormalised, 2-D) PSF Σ w cos(2π(ul + vm)), float32, of ``shape`` ``(py, px)``, both even.

    A PSF is symmetric through its centre (pixel ``(py/2, px/2)``), so only its upper
    half and centre row are gridded, as two quadrants (:func:`grid` with an offset;
    the right one two columns wider, for the mirror of column 0): the gridder's
    buffers are a quadrant's, a quarter of the whole PSF's; the rest is mirrored.
    """
    flat = replace(sampling, wterm=False)
    py, px = shape
    hy, hx = py // 2 + 2, px // 2
    upper = np.empty((hy, px + 2), dtype=np.float32)  # rows [0, hy), columns [0, px + 2)
    ones = np.ones(weight.shape, dtype=np.complex64 if weight.dtype == np.float32 else np.complex128)
    for x0, width in ((0, hx), (hx, hx + 2)):
        upper[:, x0 : x0 + width] = grid(
            uvw,
            freq,
            ones,
            weight,
            (hy, width),
            flat,
            offset=(hy // 2 - py // 2, x0 + width // 2 - px // 2),
        )
    out = np.empty(shape, dtype=np.float32)
    out[:hy] = upper[:, :px]
    out[hy:] = upper[py - hy : 0 : -1, px:0:-1]  # pixel (y, x) is pixel (py - y, px - x)
    return out


def degrid(
    uvw: np.ndarray,
    freq: np.ndarray,
    image: np.ndarray,
    sampling: Sampling,
    *,
    mask: np.ndarray | None = None,
    offset: tuple[int, int] = (0, 0),
    swapped: bool = False,
) -> np.ndarray:
    """Predict visibilities of a ``(ny, nx)`` float32 or float64 model ``image`` (Jy per pixel;
    forward transform, DP3 sign convention): ``(row, chan)`` complex of the image's precision,
    Σ I exp(+2πi(ul+vm+w(n−1))). ``mask``: optional ``(row, chan)`` bool; False samples are
    returned as 0 and cost nothing. Shared arguments: see the module docstring.
    """
    kw = {}
    if mask is not None:
        kw["mask"] = np.ascontiguousarray(mask, dtype=np.uint8)
    return _wg.dirty2vis(
        uvw=uvw if swapped else swap_uvw(uvw),
        freq=np.ascontiguousarray(freq, dtype=np.float64),
        dirty=np.ascontiguousarray(image),
        **_conventions(sampling, offset),
        **kw,
    )


def dft_image(
    uvw: np.ndarray, freq: np.ndarray, vis: np.ndarray, weight: np.ndarray, l: np.ndarray, m: np.ndarray
) -> np.ndarray:
    """Exact (slow) adjoint DFT at given directions, for tests and spot checks.

    ``uvw`` is ``(row, 3)`` in metres, ``freq`` ``(chan,)`` in Hz, ``vis`` and ``weight``
    ``(row, chan)``, ``l`` and ``m`` ``(npoint,)`` direction cosines. Returns ``(npoint,)``
    float64: Σ w Re(V e^{-2πi(ul+vm+w(n−1))}).
    """
    c = 299792458.0
    n = np.sqrt(1.0 - l**2 - m**2) - 1.0
    out = np.zeros(len(l))
    for ch, f in enumerate(freq):
        uvw_l = uvw * (f / c)
        phase = -2j * np.pi * (np.outer(uvw_l[:, 0], l) + np.outer(uvw_l[:, 1], m) + np.outer(uvw_l[:, 2], n))
        out += np.real((weight[:, ch] * vis[:, ch]) @ np.exp(phase))
    return out
