"""The self-calibration driver: per cycle calibrate → image with facets → new sky model.

Stages and their outputs (``workdir/``)::

    cycle_00/image-*.fits          the data imaged before any calibration
    reference/<h>/image-*.fits     uncorrupted reference data (simulations), same imaging
    cycle_NN/chunks/...            one DP3 ddecal per chunk (see ddpipe.calibrate)
    cycle_NN/solutions.h5          merged solutions
    cycle_NN/image-*.fits          facet image with this cycle's solutions applied
    cycle_NN/skymodel.txt          CLEAN components grouped into directions → next cycle

Every stage is recorded in ``state.json`` with a hash of its inputs and
parameters and the SHA-256 of its outputs; a rerun skips what is recorded and
intact, and reruns what a changed parameter touches (hashes chain from stage to
stage). ``ddpipe.lock`` keeps a second run out of the same workdir.
"""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ddpipe.calibrate import calibrate
from ddpipe.cluster import open_cluster
from ddpipe.config import Config, CycleConfig, ImagingConfig
from ddpipe.errors import UserError
from ddpipe.imaging.imager import PRODUCTS, make_image, products_prefix
from ddpipe.quality import image_figures
from ddpipe.report import dask_performance_report, write_failed_report, write_report, write_summary
from ddpipe.sky.directions import group_into_directions, patch_directions, require_directions
from ddpipe.sky.skymodel import read_skymodel, write_skymodel
from ddpipe.solutions.compare import gain_errors
from ddpipe.solutions.h5parm import read_h5parm
from ddpipe.state import State, WorkdirLock, digest, sha256_file
from ddpipe.validation import validate

log = logging.getLogger(__name__)

STAGES = ("calibrate", "image", "skymodel")


@dataclass(frozen=True)
class ImageStats:
    rms: float
    peak: float
    dynamic_range: float
    n_components: int
    beam_arcsec: tuple[float, float, float]
    restored: str


@dataclass(frozen=True)
class StageRecord:
    """A stage's record in ``state.json`` (:meth:`Pipeline.run_once`): ``fresh`` when this run made it."""

    name: str
    fresh: bool
    data: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


@dataclass(frozen=True)
class CycleSummary:
    cycle: int
    mode: str
    n_directions: int
    image: ImageStats
    reference_dynamic_range: float | None
    solutions: dict[str, Any]
    timings: dict[str, float]
    chunks: int = 0
    chunks_reused: int = 0
    #: more than the dynamic range (ddpipe.quality): noise far from sources, flux recovered per true
    #: source, solutions against the true gains
    quality: dict[str, Any] = field(default_factory=dict)
    #: DDECal iterations per solution interval, per solve (ddpipe.calibrate.iteration_summary)
    iterations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunSummary:
    workdir: str
    before: ImageStats | None = None
    before_quality: dict[str, Any] = field(default_factory=dict)
    reference_dynamic_range: float | None = None
    #: the quality figures of the (first) reference image: what imaging alone gives, for comparison
    reference_quality: dict[str, Any] = field(default_factory=dict)
    cycles: list[CycleSummary] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    report: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for c in out["cycles"]:
            c["dynamic_range"] = c["image"]["dynamic_range"]
        return out


# ----------------------------------------------------------------------------- helpers


def _image_stats(res: Any) -> ImageStats:
    bmaj, bmin, bpa = res.beam
    return ImageStats(
        float(res.rms),
        float(res.peak),
        float(res.dynamic_range),
        int(res.n_components),
        (bmaj * 3600.0, bmin * 3600.0, float(bpa)),
        str(res.image),
    )


def _stats_from_record(rec: dict[str, Any]) -> ImageStats:
    s = rec["stats"]
    return ImageStats(
        s["rms"], s["peak"], s["dynamic_range"], s["n_components"], tuple(s["beam_arcsec"]), s["restored"]
    )


def _ms_fingerprint(paths: Sequence[str]) -> list[Any]:
    """What identifies the input data without reading it all: path, size and mtime of each table file."""
    out = []
    for p in paths:
        files = sorted(Path(p).glob("table.*"))
        out.append([p, [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in files]])
    return out


def solution_stats(h5: Path) -> dict[str, Any]:
    """Per-direction statistics of a solutions H5parm: phase scatter (referenced to the
    first antenna), amplitude mean/scatter, fraction of flagged (zero-weight or NaN) solutions.

    A chain's later soltabs of a kind get their name as prefix (``phase001_rms_rad``,
    ``amplitude001_mean``); the first of a kind keeps the plain keys."""
    sol = read_h5parm(h5)
    out: dict[str, Any] = {"directions": {}}
    for name, tab in sol.soltabs.items():
        axes = list(tab.axes)
        d_ax = axes.index("dir")
        a_ax = axes.index("ant")
        vals = np.asarray(tab.values, dtype=float)
        w = np.asarray(tab.weights, dtype=float)
        bad = (w == 0) | ~np.isfinite(vals)
        for k, dname in enumerate(tab.dir):
            v = np.take(vals, k, axis=d_ax)
            b = np.take(bad, k, axis=d_ax)
            a_axis = a_ax if a_ax < d_ax else a_ax - 1
            entry = out["directions"].setdefault(dname.strip("[]"), {})
            pre = tab.kind if name.endswith("000") else name
            if tab.kind == "phase":
                ref = np.take(v, [0], axis=a_axis)
                dv = np.angle(np.exp(1j * (v - ref)))
                good = dv[~b & np.isfinite(dv)]
                entry[f"{pre}_rms_rad"] = float(np.sqrt(np.mean(good**2))) if good.size else None
            else:
                good = v[~b]
                entry[f"{pre}_mean"] = float(good.mean()) if good.size else None
                entry[f"{pre}_std"] = float(good.std()) if good.size else None
            entry.setdefault("flagged_fraction", float(b.mean()))
    out["n_times"] = int(next(iter(sol.soltabs.values())).time.size)
    return out


# ----------------------------------------------------------------------------- the driver


class Pipeline:
    """One run over a workdir. ``run()`` does every cycle; stages skip when already done."""

    def __init__(
        self,
        cfg: Config,
        *,
        restart_from: str | None = None,
        force: bool = False,
        timings: dict[str, float] | None = None,
    ):
        self.cfg = cfg
        self.workdir = Path(cfg.workdir).resolve()
        self.force = force
        self.restart_from = parse_restart(restart_from, len(cfg.cycles)) if restart_from else None
        self.state: State | None = None
        self.summary = RunSummary(str(self.workdir), timings=dict(timings or {}))

    # -- inputs --
    def check_inputs(self) -> None:
        """Everything ``ddpipe validate`` checks too (:func:`ddpipe.validation.validate`)."""
        validate(self.cfg, "run")

    def run(self) -> RunSummary:
        self._t0 = time.monotonic()
        self.check_inputs()
        self.workdir.mkdir(parents=True, exist_ok=True)
        with WorkdirLock(self.workdir):
            handler = _file_log(self.workdir)
            try:
                self.state = State(self.workdir)
                if self.restart_from:
                    self._forget_from(*self.restart_from)
                self._run_locked()
            finally:
                logging.getLogger().removeHandler(handler)
                handler.close()
        return self.summary

    def _run_locked(self) -> None:
        cfg = self.cfg
        first = cfg.cycles[0]
        t = time.monotonic()
        self.summary.before = self.image_stage(
            "cycle_00/image", self.workdir / "cycle_00" / "image", cfg.inputs.ms, first.imaging, None, None
        )
        self.summary.timings["image_before"] = time.monotonic() - t
        self.summary.before_quality = self._quality(self.workdir / "cycle_00" / "image", first.imaging, None)
        reference = {}
        sky = None
        client = None
        with ExitStack() as stack:  # the cluster, once a cycle needs one, closes with the loop
            for cyc in cfg.cycles:
                ref_dr = None
                if cfg.inputs.reference_ms:
                    key = digest(asdict(cyc.imaging))[:10]
                    if key not in reference:
                        t = time.monotonic()
                        reference[key] = self.image_stage(
                            f"reference/{key}",
                            self.workdir / "reference" / key / "image",
                            cfg.inputs.reference_ms,
                            cyc.imaging,
                            None,
                            None,
                        ).dynamic_range
                        timings = self.summary.timings
                        timings["reference"] = timings.get("reference", 0) + time.monotonic() - t
                    ref_dr = reference[key]
                    if self.summary.reference_dynamic_range is None:
                        self.summary.reference_dynamic_range = ref_dr
                        self.summary.reference_quality = self._quality(
                            self.workdir / "reference" / key / "image", cyc.imaging, None
                        )
                if client is None and not self._cycle_done(cyc, sky):
                    client = stack.enter_context(open_cluster(cfg.cluster, self.workdir)).client
                try:
                    sky = self.cycle(cyc, sky, client, ref_dr)
                except Exception as exc:  # the report shows what finished and why this cycle did not
                    write_failed_report(self.workdir, self.summary, cyc.index, exc, **self._report_args())
                    raise
        t = time.monotonic()
        self.summary.report = str(write_report(self.workdir, self.summary, **self._report_args()))
        self.summary.timings["report"] = time.monotonic() - t
        self.summary.timings["total"] = time.monotonic() - self._t0
        write_summary(self.workdir, self.summary)

    def _report_args(self) -> dict[str, Any]:
        """The report's inputs beyond the summary: the true gains, when the run started (epoch s)."""
        return {"true_gains": self.cfg.inputs.true_gains, "started": time.time() - (time.monotonic() - self._t0)}

    # -- one cycle --
    def _cycle_dir(self, cyc: CycleConfig) -> Path:
        return self.workdir / f"cycle_{cyc.index:02d}"

    def _sky_for(self, cyc: CycleConfig, prev_sky: Path | None) -> tuple[Path, tuple[str, ...]]:
        if prev_sky is None:
            path, names = require_directions(
                self.cfg.inputs.skymodel, cyc.calibration.n_directions, self._cycle_dir(cyc)
            )
            return Path(path), tuple(names)
        names = tuple(n for n, _, _ in patch_directions(read_skymodel(prev_sky)))
        return prev_sky, names

    def _cal_key(self, cyc: CycleConfig, sky: Path) -> str:
        cfg = self.cfg
        return digest(
            {
                "ms": _ms_fingerprint(cfg.inputs.ms),
                "sky": sha256_file(sky),
                "cal": asdict(cyc.calibration),
                "chunking": asdict(cfg.chunking),
                "dp3_extra": cfg.dp3.extra,
                "column": cfg.inputs.data_column,
            }
        )

    def _image_key(self, ms: Sequence[str], params: ImagingConfig, extra_key: str | None, facets: Any) -> str:
        return digest(
            {
                "ms": _ms_fingerprint(ms),
                "params": asdict(params),
                "solutions": extra_key,
                "facets": facets,
                "column": self.cfg.inputs.data_column,
            }
        )

    def _cycle_done(self, cyc: CycleConfig, prev_sky: Path | None) -> bool:
        """True when this cycle needs no cluster: its calibration is done and intact and, when images
        are made on the cluster (``cluster.imaging``), so is its image."""
        if self.force:
            return False
        try:
            sky, _ = self._sky_for(cyc, prev_sky)
        except UserError:
            return False
        name = f"cycle_{cyc.index:02d}"
        if self.state.done(f"{name}/calibrate", self._cal_key(cyc, sky)) is None:
            return False
        if not self.cfg.cluster.imaging:
            return True
        h5 = self._cycle_dir(cyc) / "solutions.h5"
        if not h5.is_file():
            return False
        key = self._image_key(self.cfg.inputs.ms, cyc.imaging, sha256_file(h5), patch_directions(read_skymodel(sky)))
        return self.state.done(f"{name}/image", key) is not None

    def cycle(self, cyc: CycleConfig, prev_sky: Path | None, client: Any, ref_dr: float | None) -> Path:
        """One self-calibration cycle: calibrate → image with facets → next sky model; returns that model."""
        cdir = self._cycle_dir(cyc)
        cdir.mkdir(parents=True, exist_ok=True)
        name = f"cycle_{cyc.index:02d}"
        timings: dict[str, float] = {}
        sky, directions = self._sky_for(cyc, prev_sky)
        log.info("=== cycle %d: %s, %d direction(s) ===", cyc.index, cyc.calibration.modes, len(directions))

        t = time.monotonic()
        rec = self._calibrate_stage(cyc, sky, directions, client)
        n_chunks = rec.get("chunks", 0)
        reused = rec.get("reused", 0) if rec.fresh else n_chunks  # a stage done earlier reuses every chunk
        h5 = cdir / "solutions.h5"
        timings["calibrate"] = time.monotonic() - t

        t = time.monotonic()
        facets = patch_directions(read_skymodel(sky))
        stats = self.image_stage(
            f"{name}/image", cdir / "image", self.cfg.inputs.ms, cyc.imaging, h5, facets, sha256_file(h5), client
        )
        timings["image"] = time.monotonic() - t

        t = time.monotonic()
        cycles = self.cfg.cycles
        out = self._skymodel_stage(cyc, cycles[cyc.index] if cyc.index < len(cycles) else cyc)
        timings["skymodel"] = time.monotonic() - t

        self.summary.cycles.append(
            CycleSummary(
                cyc.index,
                cyc.calibration.modes,
                len(directions),
                stats,
                ref_dr,
                rec.get("stats", {}),
                timings,
                n_chunks,
                reused,
                self._quality(cdir / "image", cyc.imaging, h5),
                rec.get("iterations", []),
            )
        )
        ref = f" (uncorrupted reference {ref_dr:.0f})" if ref_dr else ""
        log.info(
            "cycle %d: dynamic range %.0f%s, rms %.3g Jy/beam, %d components",
            cyc.index,
            stats.dynamic_range,
            ref,
            stats.rms,
            stats.n_components,
        )
        return out

    def _calibrate_stage(self, cyc: CycleConfig, sky: Path, directions: Sequence[str], client: Any) -> StageRecord:
        """DP3 over every chunk (:func:`ddpipe.calibrate.calibrate`), Dask's performance report of it saved."""
        name, cdir, state = f"cycle_{cyc.index:02d}", self._cycle_dir(cyc), self.state

        def solve() -> tuple[list[Path], dict[str, Any]]:
            with dask_performance_report(self.workdir / "report" / f"dask-calibrate-{name}.html"):
                res = calibrate(
                    replace(self.cfg, calibration=cyc.calibration),
                    str(sky),
                    directions,
                    cdir,
                    client,
                    force=self.force,
                    on_chunk=lambda o: state.record_chunk(f"{name}/{o.stem}", asdict(o)),
                )
            return [res.solutions], dict(
                chunks=len(res.chunks),
                reused=res.reused,
                iterations=res.iterations,
                stats=solution_stats(res.solutions),
            )

        return self.run_once(f"{name}/calibrate", self._cal_key(cyc, sky), solve)

    def _skymodel_stage(self, cyc: CycleConfig, nxt: CycleConfig) -> Path:
        """The next cycle's sky model: this cycle's CLEAN components grouped into ``nxt``'s directions."""
        cdir = self._cycle_dir(cyc)
        comps = cdir / "image-components.skymodel"
        out = cdir / "skymodel.txt"
        key = digest({"components": sha256_file(comps) if comps.exists() else None, "n": nxt.calibration.n_directions})

        def regroup() -> tuple[list[Path], dict[str, Any]]:
            if not comps.exists():
                raise UserError(
                    f"cycle {cyc.index}: CLEAN found no components above the threshold, so there is "
                    "no new sky model; lower imaging.auto_threshold/threshold or raise niter"
                )
            grouped = group_into_directions(read_skymodel(comps), nxt.calibration.n_directions)
            write_skymodel(grouped, out)
            return [out], dict(n_sources=len(grouped.sources), n_directions=len(grouped.patches))

        self.run_once(f"cycle_{cyc.index:02d}/skymodel", key, regroup)
        return out

    # -- quality figures (ddpipe.quality) --
    def _quality(self, prefix: Path, imaging: ImagingConfig, h5: Path | None) -> dict[str, Any]:
        """The figures of one image (and its solutions): see :mod:`ddpipe.quality`."""
        ins = self.cfg.inputs
        products = products_prefix(prefix, imaging)  # the MFS images with several output channels
        restored, residual = Path(f"{products}-image.fits"), Path(f"{products}-residual.fits")
        out: dict[str, Any] = {}
        if restored.is_file() and residual.is_file():
            comps = Path(f"{prefix}-components.skymodel")
            out["image"] = image_figures(
                restored,
                residual,
                true_skymodel=ins.true_skymodel,
                start_skymodel=ins.skymodel,
                components=comps if comps.is_file() else None,
            )
        if h5 is not None and ins.true_gains:
            out["solutions"] = gain_errors(h5, ins.true_gains)
        return out

    # -- imaging stage (shared by cycle 0, the reference and each cycle) --
    def image_stage(
        self,
        name: str,
        prefix: Path,
        ms: Sequence[str],
        params: ImagingConfig,
        h5: Path | None,
        facets: Any,
        extra_key: str | None = None,
        client: Any = None,
    ) -> ImageStats:
        def image() -> tuple[list[Path], dict[str, Any]]:
            res = self._make_image(prefix, ms, params, h5, facets, client)
            outputs = [res.paths[p] for p in PRODUCTS]
            if res.skymodel is not None:
                comps = Path(f"{prefix}-components.skymodel")
                if Path(res.skymodel) != comps:
                    shutil.copyfile(res.skymodel, comps)
                outputs.append(comps)
            return outputs, dict(stats=asdict(_image_stats(res)), timings=dict(res.timings))

        return _stats_from_record(self.run_once(name, self._image_key(ms, params, extra_key, facets), image).data)

    def _make_image(
        self, prefix: Path, ms: Sequence[str], params: ImagingConfig, h5: Path | None, facets: Any, client: Any
    ) -> Any:
        prefix.parent.mkdir(parents=True, exist_ok=True)
        sol = read_h5parm(h5) if h5 is not None else None
        on_cluster = client is not None and self.cfg.cluster.imaging
        # one row range per configured worker: the split (which moves the image by the gridder's rounding,
        # ~1e-5 of the peak) does not depend on how many workers happen to be connected
        c = self.cfg.cluster
        ranges = {"local": c.n_workers, "slurm": c.slurm.jobs}.get(c.mode)
        return make_image(
            list(ms),
            params,
            prefix,
            data_column=self.cfg.inputs.data_column,
            solutions=sol,
            facet_directions=facets,
            client=client if on_cluster else None,
            no_workers_timeout=self.cfg.cluster.no_workers_timeout,
            n_ranges=ranges,
        )

    # -- the one way a stage runs at most once --
    def run_once(self, name: str, key: str, fn: Any) -> StageRecord:
        """The record of stage ``name`` for inputs hashed as ``key``: the earlier run's when it is in
        ``state.json`` with that hash and intact outputs (and not ``--force``), else ``fn()``'s.

        ``fn`` returns ``(outputs, extra)``: the files it wrote (hashed into the record) and what else
        the record keeps.
        """
        rec = None if self.force else self.state.done(name, key)
        if rec is not None:
            log.info("%s: done in an earlier run", name)
            return StageRecord(name, False, rec)
        outputs, extra = fn()
        return StageRecord(name, True, self.state.record(name, key, outputs, **extra))

    # -- restart --
    def _forget_from(self, cycle: int, stage: str) -> None:
        names = []
        for c in range(cycle, len(self.cfg.cycles) + 1):
            for s in STAGES:
                if c == cycle and STAGES.index(s) < STAGES.index(stage):
                    continue
                names.append(f"cycle_{c:02d}/{s}")
        log.info("restarting from cycle %d %s: forgetting %s", cycle, stage, ", ".join(names))
        self.state.forget(names)
        if stage == "calibrate":  # the chunks of that cycle are recomputed too
            for f in (self.workdir / f"cycle_{cycle:02d}" / "chunks").glob("*.done.json"):
                f.unlink()


def parse_restart(text: str, n_cycles: int) -> tuple[int, str]:
    """``image`` → (1, image); ``2:calibrate`` or ``cycle_02/calibrate`` → (2, calibrate)."""
    raw = text.replace("cycle_", "").replace("/", ":")
    cyc_s, _, stage = raw.rpartition(":")
    try:
        cyc = int(cyc_s) if cyc_s else 1
    except ValueError:
        cyc = -1
    if stage not in STAGES or not 1 <= cyc <= n_cycles:
        raise UserError(
            f"--restart-from {text!r}: expected STAGE or CYCLE:STAGE with STAGE one of "
            f"{' | '.join(STAGES)} and CYCLE 1..{n_cycles} (e.g. 2:image)"
        )
    return cyc, stage


def _file_log(workdir: Path) -> logging.Handler:
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    h = logging.FileHandler(workdir / "logs" / "ddpipe.log")
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    h.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(h)
    return h


def run_pipeline(
    cfg: Config, *, restart_from: str | None = None, force: bool = False, timings: dict[str, float] | None = None
) -> RunSummary:
    """Run (or resume) the self-calibration described by ``cfg``.

    ``timings`` seeds the summary's stage timings (e.g. the demo's simulation).
    """
    return Pipeline(cfg, restart_from=restart_from, force=force, timings=timings).run()
