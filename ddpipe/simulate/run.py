"""The simulator: layout → UVW → sky → DD gains → predict + corrupt + noise → MS, sky model, truth H5parm.

``simulate("sim.ms", SimulationSpec())`` writes ``sim.ms``, ``sim.skymodel`` (the
true sky with patches) and ``sim.truth.h5`` (the true gains, soltab
``phase000`` with axes time,freq,ant,dir on the MS grid, plus ``amplitude000``
when amplitudes vary). With ``subbands=K`` > 1 it writes ``sim_SB000.ms`` …
``sim_SB{K-1}.ms`` instead of ``sim.ms`` (see :func:`subband_paths`): the sub-bands
of one wide observation, contiguous in frequency, with one sky model and one truth
H5parm over the whole band. Every random stream derives from ``spec.seed`` and is
independent of the others, so ``corrupt=False`` with the same seed gives the
same sky and the same noise. Noise is drawn per time slot over the whole band, so
it does not depend on how the rows are blocked, and K sub-bands hold exactly the
channels of one K-times-wider MS (sky, gains and noise alike).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import casacore.tables as pt
import numpy as np

from ddpipe.errors import UserError
from ddpipe.fileio import usual_mode
from ddpipe.simulate.corruption import TrueGains, dd_gains
from ddpipe.simulate.layout import StationLayout, make_layout
from ddpipe.simulate.mswriter import MSLayout, RowBlock, create_ms, write_rows
from ddpipe.simulate.observing import elevation, local_sidereal_angle
from ddpipe.simulate.predict import Components, components_from_skymodel, predict_stations
from ddpipe.simulate.skygen import random_sky
from ddpipe.simulate.spec import DEFAULT_DEC_DEG, SimulationResult, SimulationSpec, check_spec, start_mjd_seconds
from ddpipe.simulate.uvw import baselines, station_uvw
from ddpipe.sky.model import SkyModel
from ddpipe.sky.skymodel import read_skymodel, write_skymodel
from ddpipe.solutions.h5parm import write_h5parm
from ddpipe.solutions.types import SolTab, Solutions, direction_name

log = logging.getLogger(__name__)

#: Bytes of work arrays per time block (sets how many time slots are predicted at once).
BLOCK_BYTES = 192 * 1024 * 1024

#: (the MSs, one per sub-band; the sky model; the truth H5parm)
Outputs = tuple[tuple[Path, ...], Path, Path]


def output_paths(out_ms: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """``sim.ms`` → (``sim.ms``, ``sim.skymodel``, ``sim.truth.h5``) beside it."""
    ms = Path(out_ms)
    stem = ms.name[:-3] if ms.name.lower().endswith(".ms") and len(ms.name) > 3 else ms.name
    return ms, ms.with_name(stem + ".skymodel"), ms.with_name(stem + ".truth.h5")


def subband_paths(out_ms: str | os.PathLike[str], subbands: int) -> tuple[Path, ...]:
    """The MSs :func:`simulate` writes: ``(sim.ms,)`` for one sub-band, else ``sim_SB000.ms`` … beside it.

    LOFAR's naming (``L123456_SB000_uv.MS``): ``_SB`` and the sub-band number in three
    digits before OUT's suffix (``.ms`` or ``.MS``, kept as given), so that
    ``sim_SB*.ms`` matches them in frequency order.
    """
    ms = Path(out_ms)
    if subbands == 1:
        return (ms,)
    name = ms.name
    suffix = name[-3:] if name.lower().endswith(".ms") and len(name) > 3 else ""
    stem = name[: len(name) - len(suffix)]
    return tuple(ms.with_name(f"{stem}_SB{k:03d}{suffix}") for k in range(subbands))


def simulate(out_ms: str | os.PathLike[str], spec: SimulationSpec) -> SimulationResult:
    """Simulate a direction-dependently corrupted observation.

    Parameters
    ----------
    out_ms
        The MS to create (with ``spec.subbands`` > 1 the name the sub-band MSs derive
        from, see :func:`subband_paths`); the sky model and truth H5parm go beside it.
    spec
        What to simulate.

    Returns
    -------
    SimulationResult
        Paths, sizes and timings.

    Raises
    ------
    UserError
        Bad options, an output that exists without ``overwrite``, an unreadable
        ``skymodel`` or one whose sources lack patches.
    """
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    check_spec(spec)
    ms, sky_path, truth_path = output_paths(out_ms)
    ms_paths = subband_paths(ms, spec.subbands)
    _check_outputs((*ms_paths, sky_path, truth_path), spec.overwrite)
    ms.parent.mkdir(parents=True, exist_ok=True)

    tick = time.perf_counter()
    times = start_mjd_seconds(spec.start) + (np.arange(spec.times) + 0.5) * spec.interval
    freqs = spec.freq_start + np.arange(spec.subbands * spec.channels) * spec.chan_width
    layout = make_layout(spec.layout, spec.stations, spec.seed)
    given = _read_given_sky(spec)
    centre = _phase_centre(spec, layout, times, given)
    ant1, ant2 = baselines(spec.stations)
    uvw_st = station_uvw(times, layout.itrf, *centre, telescope=layout.site.telescope)
    timings["uvw"] = time.perf_counter() - tick

    tmp = Path(tempfile.mkdtemp(prefix=f".{ms.name}.", suffix=".tmp", dir=ms.parent))
    try:
        return _simulate_into(
            tmp,
            spec,
            given,
            (ms_paths, sky_path, truth_path),
            times,
            freqs,
            layout,
            centre,
            ant1,
            ant2,
            uvw_st,
            timings,
            t_all,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _simulate_into(
    tmp: Path,
    spec: SimulationSpec,
    given: SkyModel | None,
    paths: Outputs,
    times: np.ndarray,
    freqs: np.ndarray,
    layout: StationLayout,
    centre: tuple[float, float],
    ant1: np.ndarray,
    ant2: np.ndarray,
    uvw_st: np.ndarray,
    timings: dict[str, float],
    t_all: float,
) -> SimulationResult:
    """Build every output in ``tmp`` (same folder as the MS), then move them into place, MSs last."""
    ms_paths, sky_path, truth_path = paths
    tick = time.perf_counter()
    sky, patches, comps, gains = _sky_and_gains(spec, given, centre, times, freqs, tmp / sky_path.name)
    timings["sky+gains"] = time.perf_counter() - tick

    _write_ms(
        tuple(tmp / ms.name for ms in ms_paths),
        spec,
        layout,
        times,
        freqs,
        centre,
        uvw_st,
        ant1,
        ant2,
        comps,
        gains if spec.corrupt else None,
        timings,
    )
    tick = time.perf_counter()
    _write_truth(tmp / truth_path.name, layout, sky, patches, times, freqs, gains)
    timings["truth"] = time.perf_counter() - tick
    _move_into_place(tmp, paths)
    return _result(spec, paths, len(ant1), sky, patches, timings, t_all)


def _sky_and_gains(
    spec: SimulationSpec,
    given: SkyModel | None,
    centre: tuple[float, float],
    times: np.ndarray,
    freqs: np.ndarray,
    sky_path: Path,
) -> tuple[SkyModel, tuple[str, ...], Components, TrueGains]:
    """The true sky (written to ``sky_path``), its patch names and components, and the true gains
    (zero phases without ``corrupt``)."""
    sky = _sky(spec, given, centre, float(freqs.mean()), sky_path)
    patches = tuple(sky.patch_names())
    comps = components_from_skymodel(sky, freqs, centre, directions=patches)
    if spec.corrupt and np.any(comps.direction < 0):
        bad = next(s.name for s, d in zip(sky.sources, comps.direction) if d < 0)
        raise UserError(
            f"{spec.skymodel}: source {bad} has no patch; give every source a patch (a direction) or use --no-corrupt"
        )
    gains = (
        dd_gains(spec.seed, times, freqs, spec.stations, len(patches), spec.phase_scale, spec.amplitude_scale)
        if spec.corrupt
        else TrueGains(np.zeros((spec.times, len(freqs), spec.stations, len(patches))), None)
    )
    return sky, patches, comps, gains


def _move_into_place(tmp: Path, paths: Outputs) -> None:
    """Move the finished sky model and truth H5parm from ``tmp`` to their places, then the MSs."""
    ms_paths, sky_path, truth_path = paths
    for name, dst in ((sky_path.name, sky_path), (truth_path.name, truth_path)):
        usual_mode(tmp / name)
        os.replace(tmp / name, dst)
    for ms in ms_paths:
        _replace_dir(tmp / ms.name, ms)


def _result(
    spec: SimulationSpec,
    paths: Outputs,
    nbl: int,
    sky: SkyModel,
    patches: tuple[str, ...],
    timings: dict[str, float],
    t_all: float,
) -> SimulationResult:
    """The :class:`SimulationResult` of a finished simulation (logged)."""
    ms_paths, sky_path, truth_path = paths
    nchan = spec.subbands * spec.channels
    result = SimulationResult(
        ms=ms_paths[0],
        skymodel=sky_path,
        truth=truth_path,
        nstations=spec.stations,
        nbaselines=nbl,
        ntimes=spec.times,
        nchannels=nchan,
        ndirections=len(patches),
        nsources=len(sky.sources),
        nrows=nbl * spec.times,
        nvis=nbl * spec.times * nchan,
        seconds=time.perf_counter() - t_all,
        timings=timings,
        ms_paths=ms_paths,
    )
    log.info(
        "simulated %s: %d stations, %d times x %d channels, %d directions, %d sources in %.1f s",
        ms_paths[0] if len(ms_paths) == 1 else f"{len(ms_paths)} sub-bands {ms_paths[0].name}..{ms_paths[-1].name}",
        result.nstations,
        result.ntimes,
        result.nchannels,
        result.ndirections,
        result.nsources,
        result.seconds,
    )
    return result


def _check_outputs(paths: tuple[Path, ...], overwrite: bool) -> None:
    if overwrite:
        return
    for p in paths:
        if p.exists() or p.is_symlink():
            raise UserError(f"{p} already exists; pass --overwrite to replace it (or choose another output name)")


def _read_given_sky(spec: SimulationSpec) -> SkyModel | None:
    """The ``--skymodel`` file's model, or None for a random sky."""
    if not spec.skymodel:
        return None
    sky = read_skymodel(spec.skymodel)
    if not sky.sources:
        raise UserError(f"{spec.skymodel}: the sky model has no sources; add some or leave out --skymodel")
    return sky


def sky_centre(sky: SkyModel) -> tuple[float, float]:
    """Flux-weighted centroid (ra, dec) of all sources, radians (averaged on the unit sphere)."""
    w = np.array([abs(s.i) for s in sky.sources]) + 1e-30
    ra = np.array([s.ra for s in sky.sources])
    dec = np.array([s.dec for s in sky.sources])
    x, y, z = (np.sum(w * c) for c in (np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)))
    return float(np.arctan2(y, x) % (2 * np.pi)), float(np.arctan2(z, np.hypot(x, y)))


def _phase_centre(
    spec: SimulationSpec, layout: StationLayout, times: np.ndarray, given: SkyModel | None
) -> tuple[float, float]:
    """The requested centre; else the given sky's centroid; else transit at mid-observation, high dec."""
    site = layout.site
    mid = float(times[len(times) // 2])
    default_ra, default_dec = (
        sky_centre(given)
        if given is not None
        else (float(local_sidereal_angle(mid, site.lon_deg)), float(np.radians(DEFAULT_DEC_DEG[spec.layout])))
    )
    ra = spec.ra if spec.ra is not None else default_ra
    dec = spec.dec if spec.dec is not None else default_dec
    low = float(np.degrees(elevation(times, site.lon_deg, site.lat_deg, ra, dec).min()))
    if low < 10.0:
        log.warning(
            "the phase centre goes down to %.1f deg elevation at %s during the observation", low, site.telescope
        )
    return float(ra) % (2 * np.pi), float(dec)


def _sky(
    spec: SimulationSpec, given: SkyModel | None, centre: tuple[float, float], ref_freq: float, sky_path: Path
) -> SkyModel:
    """The true sky, written to ``sky_path`` and read back (what DP3 reads is what is predicted)."""
    sky = (
        given
        if given is not None
        else random_sky(
            spec.seed,
            spec.directions,
            spec.sources_per_direction,
            centre,
            ref_freq,
            faint_sources=spec.faint_sources,
            faint_flux=spec.faint_flux,
        )
    )
    write_skymodel(sky, sky_path)
    return read_skymodel(sky_path)


def _block_slots(nchan: int, nst: int, nsrc: int) -> int:
    per_slot = nchan * nst * (2 * nst + 3 * max(nsrc, 1)) * 16
    return max(1, BLOCK_BYTES // per_slot)


def _write_ms(
    paths: tuple[Path, ...],
    spec: SimulationSpec,
    layout: StationLayout,
    times: np.ndarray,
    freqs: np.ndarray,
    centre: tuple[float, float],
    uvw_st: np.ndarray,
    ant1: np.ndarray,
    ant2: np.ndarray,
    comps,
    gains: TrueGains | None,
    timings: dict[str, float],
) -> None:
    """Create the MSs ``paths`` (sub-band ``k`` holds ``spec.channels`` channels of ``freqs`` from
    ``k * spec.channels`` on) and fill them block by block: each block of time slots is predicted and
    its noise drawn over the whole band, then split into the sub-bands."""
    nbl, nchan = len(ant1), len(freqs)
    bands = [slice(k * spec.channels, (k + 1) * spec.channels) for k in range(len(paths))]
    tick = time.perf_counter()
    for k, (path, band) in enumerate(zip(paths, bands)):
        create_ms(path, _ms_layout(spec, layout, times, freqs[band], centre, k), nrow=nbl * len(times))
    timings["create"] = time.perf_counter() - tick
    step = _block_slots(nchan, spec.stations, comps.ra.size)
    t_pred = t_noise = t_write = 0.0
    with ExitStack() as stack:
        tables = [stack.enter_context(pt.table(str(p), readonly=False, ack=False)) for p in paths]
        for t0 in range(0, len(times), step):
            sl = slice(t0, min(len(times), t0 + step))
            nt = sl.stop - sl.start
            tick = time.perf_counter()
            g = gains.complex_gains(sl) if gains is not None else None
            data = predict_stations(uvw_st[sl], ant1, ant2, freqs, comps, gains=g, dtype=np.complex64)
            t_pred += time.perf_counter() - tick
            tick = time.perf_counter()
            if spec.noise > 0:
                data += thermal_noise(spec.seed, range(sl.start, sl.stop), nbl, nchan, spec.noise)
            t_noise += time.perf_counter() - tick
            tick = time.perf_counter()
            uvw_rows = (uvw_st[sl][:, ant2, :] - uvw_st[sl][:, ant1, :]).reshape(nt * nbl, 3)
            for table, band in zip(tables, bands):
                block = RowBlock(
                    start=sl.start * nbl,
                    time=np.repeat(times[sl], nbl),
                    ant1=np.tile(ant1, nt),
                    ant2=np.tile(ant2, nt),
                    uvw=uvw_rows,
                    data=np.ascontiguousarray(data[:, band]),
                    sigma=spec.noise,
                )
                write_rows(table, block, spec.interval)
            t_write += time.perf_counter() - tick
    timings.update(predict=t_pred, noise=t_noise, write=t_write)


def _ms_layout(
    spec: SimulationSpec,
    layout: StationLayout,
    times: np.ndarray,
    freqs: np.ndarray,
    centre: tuple[float, float],
    subband: int,
) -> MSLayout:
    """What sub-band ``subband``'s MS describes: its channels ``freqs``, the rest shared."""
    return MSLayout(
        station_names=layout.names,
        station_itrf=layout.itrf,
        station_diameter=layout.site.station_diameter,
        telescope=layout.site.telescope,
        freqs=freqs,
        chan_width=spec.chan_width,
        times=times,
        interval=spec.interval,
        phase_centre=centre,
        spw_name=f"SB-{subband:03d}",
    )


def thermal_noise(seed: int, slots: range, nbl: int, nchan: int, sigma: float) -> np.ndarray:
    """Complex Gaussian noise, σ per real and imaginary part, drawn per time slot.

    Returns
    -------
    np.ndarray
        (len(slots) * nbl, nchan, 4) complex64; slot ``k`` always gets the same
        numbers for a given seed, however the slots are blocked.
    """
    out = np.empty((len(slots), nbl, nchan, 4), dtype=np.complex64)
    parts = out.view(np.float32)  # real and imaginary parts interleaved
    for i, k in enumerate(slots):
        np.random.default_rng([seed, 3, k]).standard_normal(dtype=np.float32, out=parts[i])
    parts *= np.float32(sigma)
    return out.reshape(len(slots) * nbl, nchan, 4)


def _write_truth(
    path: Path,
    layout: StationLayout,
    sky: SkyModel,
    patches: tuple[str, ...],
    times: np.ndarray,
    freqs: np.ndarray,
    gains: TrueGains,
) -> None:
    dirs = tuple(direction_name(p) for p in patches)
    radec = np.array([sky.patch_centre(p) for p in patches], dtype=float).reshape(-1, 2)
    axes = ("time", "freq", "ant", "dir")

    def tab(kind: str, values: np.ndarray) -> SolTab:
        return SolTab(
            kind=kind,
            axes=axes,
            values=values,
            weights=np.ones(values.shape, dtype=np.float32),
            time=times,
            freq=freqs,
            ant=layout.names,
            dir=dirs,
        )

    soltabs = {"phase000": tab("phase", gains.phase)}
    if gains.amplitude is not None:
        soltabs["amplitude000"] = tab("amplitude", gains.amplitude)
    write_h5parm(
        path,
        Solutions(
            antennas=layout.names,
            antenna_positions=layout.itrf,
            directions=dirs,
            direction_radec=radec,
            soltabs=soltabs,
        ),
    )


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished MS into place; an existing one (overwrite) is removed only afterwards."""
    old = None
    if dst.exists() or dst.is_symlink():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
