"""Sky images for the report: RA/Dec axes from the FITS WCS, an asinh stretch that shows the
sources and the noise, facet boundaries with their direction names, the restoring beam, the
residual beside each restored image, and cutouts of the brightest source per direction."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from astropy.io.fits import Header
from astropy.visualization import AsinhStretch, ImageNormalize
from astropy.visualization.wcsaxes import add_beam
from astropy.wcs import WCS
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from ddpipe.errors import UserError
from ddpipe.imaging.facets import facet_labels, make_facets
from ddpipe.imaging.fitsio import read_image
from ddpipe.imaging.regions import FacetPolygon, facet_polygons
from ddpipe.imaging.stats import mad_rms

#: colours of the facet outlines and names: visible on the inferno map's black and yellow
FACET_COLOUR = "#39d0ff"


@dataclass(frozen=True)
class SkyImage:
    """A 2-D image and its FITS header.

    Attributes
    ----------
    data
        ``(ny, nx)`` float64, Jy/beam.
    header
        The FITS header (celestial WCS, BMAJ/BMIN/BPA in degrees).
    """

    data: np.ndarray
    header: Header

    @classmethod
    def read(cls, path: str | Path) -> "SkyImage":
        data, header = read_image(path)
        return cls(data, header)

    @property
    def wcs(self) -> WCS:
        return WCS(self.header).celestial

    @property
    def cell(self) -> float:
        """Pixel size, radians."""
        return math.radians(abs(float(self.header["CDELT2"])))

    @property
    def centre(self) -> tuple[float, float]:
        """Phase centre (the reference pixel), radians."""
        return math.radians(float(self.header["CRVAL1"])), math.radians(float(self.header["CRVAL2"]))

    @property
    def has_beam(self) -> bool:
        return all(k in self.header for k in ("BMAJ", "BMIN", "BPA"))


def image_facets(image: SkyImage, directions: Sequence[tuple[str, float, float]]) -> tuple[FacetPolygon, ...]:
    """The facets (:func:`ddpipe.imaging.regions.facet_polygons`) of ``(name, ra, dec)`` directions
    (radians) on ``image``: the cells ``ddpipe image`` corrects with each direction's solutions."""
    return facet_polygons(make_facets(directions, image.centre), image.data.shape, image.cell, image.centre)


def asinh_norm(data: np.ndarray, sigma: float) -> tuple[ImageNormalize, str]:
    """An asinh stretch from −3σ to the peak, linear up to about 5σ (the noise stays visible),
    logarithmic above; and the sentence that says so on the plot."""
    finite = data[np.isfinite(data)]
    peak = float(finite.max()) if finite.size else 1.0
    sigma = sigma if sigma > 0 else max(abs(peak), 1.0) * 1e-3
    vmin, vmax = -3.0 * sigma, max(peak, 10.0 * sigma)
    a = min(max(5.0 * sigma / (vmax - vmin), 1e-4), 1.0)
    norm = ImageNormalize(vmin=vmin, vmax=vmax, stretch=AsinhStretch(a=a))
    return norm, f"asinh stretch, −3σ … peak {peak:.3g} Jy/beam (σ = {sigma * 1e3:.3g} mJy/beam)"


def draw_facets(ax, polygons: Sequence[FacetPolygon], colour: str = FACET_COLOUR) -> None:
    """Facet outlines and direction names on a WCSAxes (RA/Dec in degrees); one patch per facet,
    each with ``gid="facet"``."""
    world = ax.get_transform("world")
    for p in polygons:
        verts = np.degrees(p.vertices)
        ra0 = math.degrees(p.ra)
        verts[:, 0] = (verts[:, 0] - ra0 + 180.0) % 360.0 + ra0 - 180.0  # no jump across RA 0
        ax.add_patch(Polygon(verts, closed=True, fill=False, ec=colour, lw=0.9, ls="--", transform=world, gid="facet"))
        ax.annotate(
            p.name,
            (ra0, math.degrees(p.dec)),
            xycoords=world,
            xytext=(0, 9),
            textcoords="offset points",
            color=colour,
            fontsize=8,
            ha="center",
            va="bottom",
            fontweight="bold",
        )


def _radec_axes(ax) -> None:
    ax.coords[0].set_axislabel("RA (J2000)")
    ax.coords[1].set_axislabel("Dec (J2000)")
    ax.coords[0].set_major_formatter("hh:mm")
    ax.coords[1].set_major_formatter("dd:mm")
    ax.coords.grid(color="white", alpha=0.15, ls=":")


def plot_sky(
    restored: SkyImage, residual: SkyImage | None, title: str, polygons: Sequence[FacetPolygon] = ()
) -> Figure:
    """The restored image (asinh stretch, facets, beam) and beside it the residual on a symmetric
    linear scale of ±5σ; σ is the residual's MAD noise (the restored image's without a residual)."""
    sigma = mad_rms(residual.data if residual is not None else restored.data)
    ncol = 2 if residual is not None else 1
    fig = Figure(figsize=(5.6 * ncol, 5.2))  # fixed panels: constrained layout with WCSAxes costs seconds
    ax = fig.add_axes((0.17 / ncol, 0.1, 0.64 / ncol, 0.78), projection=restored.wcs)
    norm, stretch = asinh_norm(restored.data, sigma)
    im = ax.imshow(restored.data, origin="lower", cmap="inferno", norm=norm, interpolation="nearest")
    _radec_axes(ax)
    draw_facets(ax, polygons)
    if restored.has_beam:
        add_beam(ax, header=restored.header, frame=True, facecolor="white", edgecolor="black", alpha=0.9)
    ax.set_title(f"{title}: restored\n{stretch}", fontsize=8)
    fig.colorbar(im, cax=fig.add_axes((0.83 / ncol, 0.14, 0.018 / ncol, 0.7)), label="Jy/beam")
    if residual is not None:
        ax2 = fig.add_axes((0.585, 0.1, 0.32, 0.78), projection=residual.wcs)
        lim = 5.0 * sigma if sigma > 0 else 1.0
        im2 = ax2.imshow(residual.data, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        _radec_axes(ax2)
        draw_facets(ax2, polygons, colour="#1a7f37")
        ax2.set_title(f"{title}: residual\nlinear, symmetric ±5σ = ±{lim * 1e3:.3g} mJy/beam", fontsize=8)
        fig.colorbar(im2, cax=fig.add_axes((0.915, 0.14, 0.009, 0.7)), label="Jy/beam")
    return fig


def brightest_per_direction(
    image: SkyImage, directions: Sequence[tuple[str, float, float]]
) -> list[tuple[str, float, float]]:
    """``(name, ra_deg, dec_deg)`` of the brightest pixel in each direction's facet of ``image``."""
    facets = make_facets(directions, image.centre)
    labels = facet_labels(facets, image.data.shape, image.cell)
    data = np.where(np.isfinite(image.data), image.data, -np.inf)
    out = []
    for i, f in enumerate(facets):
        masked = np.where(labels == i, data, -np.inf)
        y, x = np.unravel_index(int(np.argmax(masked)), data.shape)
        ra, dec = image.wcs.pixel_to_world_values(float(x), float(y))
        out.append((f.name, float(ra), float(dec)))
    return out


def plot_cutouts(
    images: Sequence[tuple[str, SkyImage]], targets: Sequence[tuple[str, float, float]], half_width: int = 24
) -> Figure:
    """One row per target ``(name, ra_deg, dec_deg)``, one column per image ``(label, image)``: a
    ``2·half_width`` pixel box about the target, each row on one asinh stretch (−3σ of the last image
    … the row's peak) so that calibration sharpening the source shows."""
    nrow, ncol = max(len(targets), 1), max(len(images), 1)
    width, height = 1.9 * ncol + 0.8, 1.9 * nrow + 0.4
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.05 / width, bottom=0.05 / height, top=1 - 0.3 / height)
    fig.subplots_adjust(wspace=0.04, hspace=0.04)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for r, (name, ra, dec) in enumerate(targets):
        boxes = []
        for _, img in images:
            x, y = (int(round(float(v))) for v in img.wcs.world_to_pixel_values(ra, dec))
            ny, nx = img.data.shape
            boxes.append(
                img.data[max(y - half_width, 0) : min(y + half_width, ny), max(x - half_width, 0) : x + half_width]
            )
        sigma = mad_rms(images[-1][1].data)
        peak = max(float(np.nanmax(b)) for b in boxes if b.size) if any(b.size for b in boxes) else 1.0
        norm, _ = asinh_norm(np.array([peak]), sigma)
        for c, ((label, _), box) in enumerate(zip(images, boxes)):
            ax = axes[r, c]
            if box.size:
                ax.imshow(box, origin="lower", cmap="inferno", norm=norm, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{name}\nRA {ra:.3f}°\nDec {dec:.3f}°", fontsize=7)
    return fig


def safe_facets(image: SkyImage, directions: Sequence[tuple[str, float, float]]) -> tuple[FacetPolygon, ...]:
    """:func:`image_facets`, or none when the directions do not fit the image (a centre outside it)."""
    try:
        return image_facets(image, directions)
    except UserError:
        return ()
