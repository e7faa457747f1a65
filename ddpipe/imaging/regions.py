"""The facet layout as polygons on the sky, and as a ds9 region file WSClean reads.

A facet is the set of pixels nearer (in angle) to its direction centre than to
any other (:func:`ddpipe.imaging.facets.facet_labels`). Its boundary with a
neighbour is where the two angles are equal: the great circle
``p · (c_i − c_j) = 0`` for unit vectors ``p`` and centres ``c``. In the
image's SIN projection that circle is a (slightly) curved line, so a polygon
with straight edges between the vertices where three facets meet would be off
by a few pixels on wide fields. :func:`facet_polygons` computes each cell
exactly instead:

1. start from the image's bounding square (one pixel beyond the outermost pixel
   centres, x ∈ [−1, nx], y ∈ [−1, ny]) in the (l, m) plane of the phase centre;
2. clip it by the half-space ``p · (c_i − c_j) ≥ 0`` of every other facet j
   (Sutherland–Hodgman). A crossing on a side of the square, straight in
   (l, m), is found by bisection; on a facet boundary, a great-circle arc, it is
   exact (``p`` interpolated linearly in 3-D and normalised stays on the arc);
3. put extra vertices on each great-circle edge until the straight chord between
   neighbours (what a reader draws) is within ``tolerance`` pixels of the arc;
4. convert (l, m) to (RA, Dec) with the SIN projection's inverse.

:func:`format_ds9` writes the polygons in the ds9 (version 4.1) form that
WSClean's ``-facet-regions`` and ds9 both read: ``fk5`` degrees, one
``polygon(...) # text={NAME}`` per direction followed by ``point(RA,Dec)`` at
its centre. WSClean 3.1 gives each polygon the solutions of the H5parm
direction nearest its ``point`` (measured: swapping two points swaps the
corrections; reordering whole polygons changes nothing); older WSClean
versions took the n-th direction for the n-th polygon, so the command writes
them in the H5parm's order too.

WSClean 3.1 rounds the vertices to whole pixels and rasterises pixel ``c`` as
``[c, c + 1)``, so its facets sit up to about a pixel off these exact cells;
with the sides exactly on the image's edge it left pixels of the top row out of
every facet, hence the one-pixel margin.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ddpipe.errors import UserError
from ddpipe.fileio import atomic_write
from ddpipe.imaging.coords import lm_to_pixel, lm_to_radec, pixel_to_lm
from ddpipe.imaging.facets import Facet

#: Bisection steps for a crossing on a side of the image square (2⁻⁶⁰ of a side).
_BISECT_STEPS = 60
#: Deepest subdivision of one great-circle edge (2¹⁴ pieces at most).
_MAX_DEPTH = 14


@dataclass(frozen=True)
class FacetPolygon:
    """One facet's cell clipped to the image.

    Attributes
    ----------
    name
        Direction (patch) name.
    ra, dec
        Direction centre, radians.
    vertices
        ``(nvert, 2)`` float64 (RA, Dec) radians, RA in [0, 2π), in order around
        the cell (counter-clockwise in pixel coordinates); the first is not repeated.
    """

    name: str
    ra: float
    dec: float
    vertices: np.ndarray


def _unit(l: float, m: float) -> np.ndarray:
    """(l, m, n) of a direction in the front hemisphere."""
    return np.array([l, m, math.sqrt(max(0.0, 1.0 - l * l - m * m))])


def _g(l: float, m: float, d: np.ndarray) -> float:
    return l * d[0] + m * d[1] + math.sqrt(max(0.0, 1.0 - l * l - m * m)) * d[2]


def _crossing(
    a: tuple[float, float], b: tuple[float, float], kind: int, d: np.ndarray, ga: float, gb: float
) -> tuple[float, float]:
    """Where the edge a→b (``kind`` < 0: straight in (l, m); ≥ 0: great-circle arc) meets p·d = 0."""
    if kind >= 0:  # on the arc's great circle: exact
        t = ga / (ga - gb)
        p = (1.0 - t) * _unit(*a) + t * _unit(*b)
        p /= np.linalg.norm(p)
        return float(p[0]), float(p[1])
    lo, hi = 0.0, 1.0  # g(lo) has ga's sign, g(hi) gb's
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        gm = _g(a[0] + mid * (b[0] - a[0]), a[1] + mid * (b[1] - a[1]), d)
        if (gm >= 0) == (ga >= 0):
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-17:
            break
    t = 0.5 * (lo + hi)
    return a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])


def _clip(
    verts: list[tuple[float, float]], kinds: list[int], d: np.ndarray, j: int
) -> tuple[list[tuple[float, float]], list[int]]:
    """Keep the part of the polygon where p·d ≥ 0; ``kinds[k]`` is the kind of edge k → k+1."""
    g = [_g(l, m, d) for l, m in verts]
    out_v: list[tuple[float, float]] = []
    out_k: list[int] = []
    n = len(verts)
    for a in range(n):
        b = (a + 1) % n
        if g[a] >= 0:
            out_v.append(verts[a])
            out_k.append(kinds[a])
            if g[b] < 0:  # leaving: the new edge runs along facet j's boundary
                out_v.append(_crossing(verts[a], verts[b], kinds[a], d, g[a], g[b]))
                out_k.append(j)
        elif g[b] >= 0:  # entering: the rest of edge a→b stays
            out_v.append(_crossing(verts[a], verts[b], kinds[a], d, g[a], g[b]))
            out_k.append(kinds[a])
    return out_v, out_k


def _square(shape: tuple[int, int], cell: float, margin: float) -> tuple[list[tuple[float, float]], list[int]]:
    """The image's bounding square in (l, m), counter-clockwise in pixels, sides cut into ≤ 64-pixel pieces.

    The sides lie ``margin`` pixels beyond the outermost pixel centres. Edge
    kinds −1..−4 name the side; short pieces keep every crossing of a (curved)
    facet boundary with a side single.
    """
    ny, nx = shape
    x0, x1, y0, y1 = -margin, nx - 1 + margin, -margin, ny - 1 + margin
    corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    verts: list[tuple[float, float]] = []
    kinds: list[int] = []
    for side in range(4):
        (xa, ya), (xb, yb) = corners[side], corners[(side + 1) % 4]
        pieces = max(1, math.ceil(max(abs(xb - xa), abs(yb - ya)) / 64))
        for k in range(pieces):
            t = k / pieces
            l, m = pixel_to_lm(xa + t * (xb - xa), ya + t * (yb - ya), shape, cell)
            verts.append((float(l), float(m)))
            kinds.append(-1 - side)
    return verts, kinds


def _tidy(
    verts: list[tuple[float, float]], kinds: list[int], cell: float
) -> tuple[list[tuple[float, float]], list[int]]:
    """Drop repeated vertices and the extra ones in the middle of a straight side."""
    eps = 1e-9 * cell
    v, k = list(verts), list(kinds)
    i = 0
    while i < len(v) and len(v) > 2:
        prev = i - 1  # -1: the last vertex, the polygon is closed
        same = abs(v[i][0] - v[prev][0]) < eps and abs(v[i][1] - v[prev][1]) < eps
        if same or k[prev] == k[i] < 0:
            k[prev] = k[i]  # the edge from v[prev] now ends where v[i]'s edge ended
            del v[i], k[i]
            i = max(0, i - 1)
        else:
            i += 1
    return v, k


def _densify(
    verts: list[tuple[float, float]], kinds: list[int], cell: float, tolerance: float
) -> list[tuple[float, float]]:
    """Vertices with extra points on every great-circle edge (chord within ``tolerance`` pixels of the arc)."""
    out: list[tuple[float, float]] = []

    def split(a: np.ndarray, b: np.ndarray, depth: int) -> None:
        mid = a + b
        mid /= np.linalg.norm(mid)
        chord = 0.5 * (a[:2] + b[:2])
        if depth >= _MAX_DEPTH or float(np.hypot(*(mid[:2] - chord))) <= tolerance * cell:
            return
        split(a, mid, depth + 1)
        out.append((float(mid[0]), float(mid[1])))
        split(mid, b, depth + 1)

    n = len(verts)
    for i in range(n):
        out.append(verts[i])
        if kinds[i] >= 0:
            split(_unit(*verts[i]), _unit(*verts[(i + 1) % n]), 0)
    return out


def check_facets_in_image(facets: Sequence[Facet], shape: tuple[int, int], cell: float) -> None:
    """Raise :class:`UserError` for a direction centre outside the image or two at one position.

    ``shape`` is ``(ny, nx)``, ``cell`` the pixel size in radians.
    """
    ny, nx = shape
    scale = math.degrees(cell) * 3600.0
    for f in facets:
        x, y = (float(v) for v in lm_to_pixel(f.l, f.m, shape, cell))
        if not (-0.5 <= x <= nx - 0.5 and -0.5 <= y <= ny - 0.5):
            need = 2 * math.ceil(max(abs(x - nx // 2), abs(y - ny // 2)) + 1)
            raise UserError(
                f"direction {f.name} (RA {math.degrees(f.ra):.4f} deg, Dec {math.degrees(f.dec):.4f} deg) lies "
                f"outside the {nx}x{ny} image of {scale:g} arcsec pixels (at pixel x={x:.0f}, y={y:.0f}); make the "
                f"image at least {need} pixels wide (--size) or the pixels larger (--scale)"
            )
    units = [(f.name, _unit(f.l, f.m)) for f in facets]
    for i, (a, ua) in enumerate(units):
        for b, ub in units[i + 1 :]:
            if np.linalg.norm(ua - ub) < 1e-3 * cell:
                raise UserError(
                    f"directions {a} and {b} have the same centre, so their facets cannot be told "
                    "apart; merge the two patches or drop one"
                )


def facet_polygons(
    facets: Sequence[Facet],
    shape: tuple[int, int],
    cell: float,
    phase_centre: tuple[float, float],
    *,
    tolerance: float = 0.05,
    margin: float = 1.0,
) -> tuple[FacetPolygon, ...]:
    """Each facet's Voronoi cell (nearest centre in angle) clipped to the image, exactly.

    Parameters
    ----------
    facets
        From :func:`ddpipe.imaging.facets.make_facets` about ``phase_centre``.
    shape
        ``(ny, nx)`` pixels.
    cell
        Pixel size, radians.
    phase_centre
        ``(ra, dec)`` radians, the image centre.
    tolerance
        Largest distance, in pixels, between a curved facet boundary and the
        straight chords between the polygon's vertices.
    margin
        How far, in pixels, the outer sides lie beyond the outermost pixel
        centres. The default 1 puts them half a pixel outside the image's edge,
        so that a reader counting pixels from their corner (WSClean 3.1 leaves
        the top row out of a facet whose side lies exactly on the edge) or from
        their centre finds every pixel in a facet.

    Returns
    -------
    tuple of FacetPolygon
        In the order of ``facets``; together they tile the image.

    Raises
    ------
    UserError
        A centre outside the image, or two directions at the same position.
    """
    check_facets_in_image(facets, shape, cell)
    centres = [_unit(f.l, f.m) for f in facets]
    out = []
    for i, f in enumerate(facets):
        verts, kinds = _square(shape, cell, margin)
        for j, c in enumerate(centres):
            if j != i:
                verts, kinds = _clip(verts, kinds, centres[i] - c, j)
                if not verts:
                    break
        verts, kinds = _tidy(verts, kinds, cell)
        if len(verts) < 3:
            raise UserError(
                f"direction {f.name}'s facet covers no part of the image: its centre is too close to "
                "another direction's; merge the two patches or drop one"
            )
        lm = np.array(_densify(verts, kinds, cell, tolerance))
        ra, dec = lm_to_radec(lm[:, 0], lm[:, 1], *phase_centre)
        out.append(FacetPolygon(f.name, f.ra % (2 * math.pi), f.dec, np.stack([ra, dec], axis=1)))
    return tuple(out)


def _deg(x: float) -> str:
    return f"{x:.10f}".rstrip("0").rstrip(".")


def format_ds9(polygons: Sequence[FacetPolygon], comments: Sequence[str] = ()) -> str:
    """A ds9 region file (fk5, degrees) with one labelled ``polygon`` and its centre ``point`` per facet.

    ``comments`` become ``#`` lines after the format line. Names with characters
    ds9 or WSClean would split on (space, comma, braces, #) are refused.
    """
    lines = ["# Region file format: DS9 version 4.1"]
    lines += [f"# {c}" for c in comments]
    lines += [
        'global color=green dashlist=8 3 width=1 font="helvetica 10 normal roman" select=1 highlite=1 '
        "dash=0 fixed=0 edit=1 move=1 delete=1 include=1 source=1",
        "fk5",
    ]
    for p in polygons:
        if not p.name or re.search(r"[\s,{}#()]", p.name):
            raise UserError(
                f"direction name {p.name!r} cannot label a ds9 region (no spaces, commas, braces, "
                "# or parentheses); rename the patch"
            )
        coords = ",".join(f"{_deg(math.degrees(ra))},{_deg(math.degrees(dec))}" for ra, dec in p.vertices)
        lines.append(f"polygon({coords}) # text={{{p.name}}}")
        lines.append(f"point({_deg(math.degrees(p.ra))},{_deg(math.degrees(p.dec))}) # point=cross")
    return "\n".join(lines) + "\n"


_POLYGON = re.compile(r"^\s*polygon\(([^)]*)\)\s*(?:#.*?text=\{([^}]*)\})?")


def parse_ds9_polygons(text: str) -> list[tuple[str, np.ndarray]]:
    """``(name, (nvert, 2) RA/Dec radians)`` of every ``polygon`` line of an fk5 ds9 region file.

    Reads what :func:`format_ds9` writes (and other degree-valued polygon files);
    a polygon without a ``text={...}`` label gets the name ``''``.
    """
    out = []
    for line in text.splitlines():
        m = _POLYGON.match(line)
        if m:
            values = np.array([float(v) for v in m.group(1).split(",")]).reshape(-1, 2)
            out.append((m.group(2) or "", np.radians(values)))
    return out


def write_ds9(path: str | Path, polygons: Sequence[FacetPolygon], comments: Sequence[str] = ()) -> Path:
    """Write :func:`format_ds9` to ``path`` atomically (its folder is created); returns the path."""
    text = format_ds9(polygons, comments)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)
    return path
