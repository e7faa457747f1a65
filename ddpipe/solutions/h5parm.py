"""Read and write H5parm solution files the way DP3 writes and reads them.

Layout of one solset (``/sol000``, attribute ``h5parm_version``)::

    antenna   compound (name S16, position f4[3])     ITRF metres
    source    compound (name S128, dir f8[2])         RA, Dec radians, names '[P1]'
    phase000/ (attr TITLE='phase')
        val     f8, attr AXES='time,freq,ant,dir[,pol]'
        weight  f4, attr AXES as val
        time freq (f8)   ant dir pol (fixed-length bytes)

Fixed-length strings are written at least one byte longer than the longest name
(DP3 drops the last character otherwise). The merge and evaluation functions are
re-exported here so that callers need one import.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

import h5py
import numpy as np

from ddpipe.errors import UserError
from ddpipe.solutions.gains import evaluate_gains
from ddpipe.solutions.merge import merge_along_freq, merge_along_time
from ddpipe.solutions.types import KNOWN_AXES, SolTab, Solutions, direction_name

__all__ = [
    "SolTab",
    "Solutions",
    "read_h5parm",
    "write_h5parm",
    "merge_along_time",
    "merge_along_freq",
    "evaluate_gains",
    "direction_name",
]

log = logging.getLogger(__name__)

H5PARM_VERSION = b"1.0"
#: minimum fixed string widths DP3 itself uses
_MIN_WIDTH = {"ant": 16, "dir": 128, "pol": 2, "antenna": 16, "source": 128}


def _decode(arr: np.ndarray) -> tuple[str, ...]:
    return tuple(x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(arr).ravel())


def _attr_str(obj: h5py.HLObject, key: str) -> str | None:
    if key not in obj.attrs:
        return None
    val = obj.attrs[key]
    if isinstance(val, np.ndarray):
        val = val.ravel()[0] if val.size else b""
    return val.decode() if isinstance(val, bytes) else str(val)


# --------------------------------------------------------------------------- read


def read_h5parm(path: str | os.PathLike[str], solset: str = "sol000") -> Solutions:
    """Read one solset of an H5parm file.

    Parameters
    ----------
    path
        The H5parm file.
    solset
        The solset group name.

    Returns
    -------
    Solutions
        Antennas, directions and every soltab of the solset.

    Raises
    ------
    UserError
        The file is missing or not HDF5, the solset or its soltabs are missing,
        an ``AXES`` attribute disagrees with the ``val`` shape, or an axis
        dataset is missing.
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: H5parm file does not exist; check the path")
    try:
        fh = h5py.File(p, "r")
    except OSError as exc:
        raise UserError(f"{p}: not an HDF5/H5parm file ({exc}); pass an H5parm written by DP3 or ddpipe") from None
    with fh:
        if solset not in fh or not isinstance(fh[solset], h5py.Group):
            have = ", ".join(k for k in fh if isinstance(fh[k], h5py.Group)) or "none"
            raise UserError(f"{p}: no solset '{solset}' (solsets in the file: {have}); pass one of those")
        grp = fh[solset]
        antennas, positions = _read_antennas(p, grp)
        directions, radec = _read_sources(p, grp)
        soltabs: dict[str, SolTab] = {}
        for name in sorted(grp):
            obj = grp[name]
            if isinstance(obj, h5py.Group):
                soltabs[name] = _read_soltab(p, f"{solset}/{name}", obj)
        if not soltabs:
            raise UserError(
                f"{p}: solset '{solset}' has no soltab (no group with a 'val' dataset); "
                "was the file written completely?"
            )
    if not antennas:
        antennas = soltabs[next(iter(soltabs))].ant
        positions = np.full((len(antennas), 3), np.nan)
    return Solutions(
        antennas=antennas,
        antenna_positions=positions,
        directions=directions,
        direction_radec=radec,
        soltabs=soltabs,
    )


def _read_antennas(p: Path, grp: h5py.Group) -> tuple[tuple[str, ...], np.ndarray]:
    if "antenna" not in grp:
        return (), np.zeros((0, 3))
    tab = grp["antenna"][()]
    if tab.dtype.names is None or "name" not in tab.dtype.names or "position" not in tab.dtype.names:
        raise UserError(f"{p}: {grp.name}/antenna is not a (name, position) table")
    return _decode(tab["name"]), np.asarray(tab["position"], dtype=np.float64).reshape(-1, 3)


def _read_sources(p: Path, grp: h5py.Group) -> tuple[tuple[str, ...], np.ndarray]:
    if "source" not in grp:
        return (), np.zeros((0, 2))
    tab = grp["source"][()]
    if tab.dtype.names is None or "name" not in tab.dtype.names or "dir" not in tab.dtype.names:
        raise UserError(f"{p}: {grp.name}/source is not a (name, dir) table")
    return _decode(tab["name"]), np.asarray(tab["dir"], dtype=np.float64).reshape(-1, 2)


def _read_soltab(p: Path, where: str, grp: h5py.Group) -> SolTab:
    if "val" not in grp:
        raise UserError(f"{p}: soltab {where} has no 'val' dataset")
    val = grp["val"]
    axes_attr = _attr_str(val, "AXES")
    if axes_attr is None:
        raise UserError(f"{p}: {where}/val has no AXES attribute (expected e.g. 'time,freq,ant,dir')")
    axes = tuple(a.strip() for a in axes_attr.split(",") if a.strip())
    unknown = [a for a in axes if a not in KNOWN_AXES]
    if unknown or len(set(axes)) != len(axes):
        raise UserError(
            f"{p}: {where}/val AXES='{axes_attr}' has unknown or repeated axes; allowed: {','.join(KNOWN_AXES)}"
        )
    if len(axes) != val.ndim:
        raise UserError(f"{p}: {where}/val AXES='{axes_attr}' names {len(axes)} axes but val has shape {val.shape}")
    coords: dict[str, object] = {}
    for i, axis in enumerate(axes):
        if axis not in grp:
            raise UserError(f"{p}: {where} is missing the axis dataset '{axis}' named in AXES='{axes_attr}'")
        raw = grp[axis][()]
        n = int(np.asarray(raw).size)
        if n != val.shape[i]:
            raise UserError(
                f"{p}: {where}/{axis} has {n} values but val has {val.shape[i]} along axis {i} "
                f"(AXES='{axes_attr}', shape {val.shape})"
            )
        coords[axis] = np.asarray(raw, dtype=np.float64).ravel() if axis in ("time", "freq") else _decode(raw)
    values = np.asarray(val[()], dtype=np.float64)
    if "weight" in grp:
        weights = np.asarray(grp["weight"][()], dtype=np.float32)
        if weights.shape != values.shape:
            raise UserError(f"{p}: {where}/weight has shape {weights.shape} but val has {values.shape}")
    else:
        weights = np.ones(values.shape, dtype=np.float32)
    kind = _attr_str(grp, "TITLE")
    if not kind:
        kind = grp.name.rsplit("/", 1)[-1].rstrip("0123456789")
    return SolTab(
        kind=kind,
        axes=axes,
        values=values,
        weights=weights,
        time=coords.get("time", np.zeros(0)),  # type: ignore[arg-type]
        freq=coords.get("freq", np.zeros(0)),  # type: ignore[arg-type]
        ant=coords.get("ant", ()),  # type: ignore[arg-type]
        dir=coords.get("dir", ()),  # type: ignore[arg-type]
        pol=coords.get("pol"),  # type: ignore[arg-type]
    )


# -------------------------------------------------------------------------- write


def check_solutions(sol: Solutions, what: str = "solutions") -> None:
    """Raise :class:`UserError` when a :class:`Solutions` is internally inconsistent.

    Checks antenna/position and direction/radec lengths and, per soltab, the
    axes names and that ``values``/``weights`` have the shape the axes imply.
    """
    if np.asarray(sol.antenna_positions).shape != (len(sol.antennas), 3):
        raise UserError(
            f"{what}: antenna_positions has shape {np.shape(sol.antenna_positions)}, expected ({len(sol.antennas)}, 3)"
        )
    if np.asarray(sol.direction_radec).shape != (len(sol.directions), 2):
        raise UserError(
            f"{what}: direction_radec has shape {np.shape(sol.direction_radec)}, expected ({len(sol.directions)}, 2)"
        )
    if not sol.soltabs:
        raise UserError(f"{what}: no soltab to write")
    for name, st in sol.soltabs.items():
        bad = [a for a in st.axes if a not in KNOWN_AXES]
        if bad or len(set(st.axes)) != len(st.axes):
            raise UserError(f"{what}: soltab {name} has bad axes {st.axes}; allowed {KNOWN_AXES}")
        if "pol" in st.axes and st.pol is None:
            raise UserError(f"{what}: soltab {name} has a pol axis but pol is None")
        exp = st.expected_shape()
        if np.shape(st.values) != exp or np.shape(st.weights) != exp:
            raise UserError(
                f"{what}: soltab {name} values {np.shape(st.values)} / weights "
                f"{np.shape(st.weights)} do not match axes {st.axes} of lengths {exp}"
            )


def _fixed(names: tuple[str, ...], key: str) -> np.ndarray:
    width = max([_MIN_WIDTH[key]] + [len(n.encode()) + 1 for n in names])
    return np.array([n.encode() for n in names], dtype=f"S{width}")


def write_h5parm(path: str | os.PathLike[str], sol: Solutions, solset: str = "sol000") -> None:
    """Write ``sol`` as solset ``solset`` of the H5parm ``path``, atomically.

    Other solsets already in an existing H5parm at ``path`` are kept; the
    named solset is replaced. The file is built under a temporary name in the
    same directory and moved into place with :func:`os.replace`.

    Parameters
    ----------
    path
        Output H5parm.
    sol
        Solutions to write (checked with :func:`check_solutions`).
    solset
        Solset group name.
    """
    p = Path(path)
    check_solutions(sol, what=str(p))
    if not p.parent.is_dir():
        raise UserError(f"{p}: directory {p.parent} does not exist; create it first")
    # not mkstemp: h5py creates the file itself, with the usual permissions (umask)
    tmp = p.parent / f".{p.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        keep = p.exists() and _readable_hdf5(p)
        if keep:
            shutil.copyfile(p, tmp)
        with h5py.File(tmp, "a" if keep else "w") as fh:
            if solset in fh:
                del fh[solset]
            _write_solset(fh.create_group(solset), sol)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    log.debug("wrote %s (%s: %s)", p, solset, ", ".join(sol.soltabs))


def _readable_hdf5(p: Path) -> bool:
    """True when ``p`` opens as HDF5; a torn file (e.g. from a killed run) is replaced, not kept."""
    try:
        with h5py.File(p, "r"):
            return True
    except OSError:
        log.warning("%s exists but is not a readable HDF5 file: replacing it", p)
        return False


def _write_solset(grp: h5py.Group, sol: Solutions) -> None:
    grp.attrs["h5parm_version"] = np.bytes_(H5PARM_VERSION)
    ant_names = _fixed(sol.antennas, "antenna")
    ant = np.zeros(len(sol.antennas), dtype=[("name", ant_names.dtype), ("position", "<f4", (3,))])
    ant["name"] = ant_names
    ant["position"] = np.asarray(sol.antenna_positions, dtype=np.float64)
    grp.create_dataset("antenna", data=ant)
    src_names = _fixed(sol.directions, "source")
    src = np.zeros(len(sol.directions), dtype=[("name", src_names.dtype), ("dir", "<f8", (2,))])
    src["name"] = src_names
    src["dir"] = np.asarray(sol.direction_radec, dtype=np.float64)
    grp.create_dataset("source", data=src)
    for name, st in sol.soltabs.items():
        _write_soltab(grp.create_group(name), st)


def _write_soltab(grp: h5py.Group, st: SolTab) -> None:
    grp.attrs["TITLE"] = np.bytes_(st.kind.encode())
    grp.attrs["h5parm_version"] = np.bytes_(H5PARM_VERSION)
    axes = np.bytes_(",".join(st.axes).encode())
    for axis in st.axes:
        if axis in ("time", "freq"):
            grp.create_dataset(axis, data=np.asarray(getattr(st, axis), dtype=np.float64))
        else:
            grp.create_dataset(axis, data=_fixed(tuple(getattr(st, axis)), axis))
    val = grp.create_dataset("val", data=np.asarray(st.values, dtype=np.float64))
    val.attrs["AXES"] = axes
    w = grp.create_dataset("weight", data=np.asarray(st.weights, dtype=np.float32))
    w.attrs["AXES"] = axes
