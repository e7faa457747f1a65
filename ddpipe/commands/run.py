"""Run (or resume) direction-dependent self-calibration as a YAML config describes it.

Per cycle: DP3 ddecal per time chunk on Dask → facet imaging with the
solutions → CLEAN components grouped into directions → the next cycle's sky
model. Rerunning the same command resumes: finished chunks and stages are not
recomputed, a changed parameter reruns only what depends on it. A second run
on the same workdir is refused while one is active.

Examples:
  ddpipe run my.yaml
  ddpipe run my.yaml --restart-from 2:image
  ddpipe run my.yaml --scheduler scheduler.json      (workers started elsewhere)
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run or resume the self-calibration pipeline from a YAML config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config (see configs/default.yaml)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an earlier run in this workdir, and refuse to start afresh when there is "
        "none (without it, finished work is reused all the same)",
    )
    parser.add_argument(
        "--restart-from",
        metavar="[CYCLE:]STAGE",
        help="recompute from this stage on (calibrate | image | skymodel), e.g. 2:image",
    )
    parser.add_argument("--force", action="store_true", help="recompute everything")
    parser.add_argument("--workdir", help="override the config's workdir")
    parser.add_argument("--scheduler", help="use a running Dask scheduler: tcp://host:port or a scheduler file")
    parser.add_argument("--workers", type=int, help="local cluster: number of workers")


def overrides(args: argparse.Namespace) -> dict:
    o: dict = {}
    if args.workdir:  # relative to where the user is, not to the config file
        o["workdir"] = str(Path(args.workdir).resolve())
    if args.scheduler:
        o.setdefault("cluster", {}).update({"mode": "address", "address": args.scheduler})
    if args.workers is not None:
        o.setdefault("cluster", {})["n_workers"] = args.workers
    return o


def print_table(summary) -> None:
    """The short table the run ends with (quality figures where the truth is known: ddpipe.quality)."""

    def extra(q: dict) -> str:
        img, sol = q.get("image", {}), q.get("solutions", {})
        far = img.get("rms_far_jy")
        flux = next(
            (img[f"{k}_median_ratio"] for k in ("unmodelled", "modelled", "all") if img.get(f"{k}_count")), None
        )
        phase = sol.get("phase_rms_rad")
        return (
            f"{'-' if far is None else f'{1e3 * far:.3g}':>10}{'-' if flux is None else f'{flux:.2f}':>9}"
            f"{'-' if phase is None else f'{phase:.3f}':>10}"
        )

    print(
        f"{'cycle':<8}{'mode':<22}{'dirs':>5}{'rms (Jy/b)':>12}{'peak':>9}{'DR':>8}{'ref DR':>8}{'chunks':>8}"
        f"{'far mJy':>10}{'flux':>9}{'phase err':>10}"
    )
    if summary.before is not None:
        b = summary.before
        ref = f"{summary.reference_dynamic_range:.0f}" if summary.reference_dynamic_range else "-"
        print(
            f"{'before':<8}{'-':<22}{'-':>5}{b.rms:>12.3g}{b.peak:>9.3g}{b.dynamic_range:>8.0f}{ref:>8}{'-':>8}"
            f"{extra(summary.before_quality)}"
        )
    for c in summary.cycles:
        ref = f"{c.reference_dynamic_range:.0f}" if c.reference_dynamic_range else "-"
        print(
            f"{c.cycle:<8}{c.mode:<22}{c.n_directions:>5}{c.image.rms:>12.3g}{c.image.peak:>9.3g}"
            f"{c.image.dynamic_range:>8.0f}{ref:>8}{c.chunks:>8}{extra(c.quality)}"
        )
    if summary.reference_quality:
        print(
            f"{'ref':<8}{'(uncorrupted data)':<22}{'':>5}{'':>12}{'':>9}{'':>8}{'':>8}{'':>8}"
            f"{extra(summary.reference_quality)}"
        )
    if any(c.quality.get("solutions") or "sources" in c.quality.get("image", {}) for c in summary.cycles):
        print(
            "far mJy: noise more than 5 beams from known sources; flux: restored / perfect image at the true "
            "positions, median over the true sources the starting model lacked (if any, else over all); phase "
            "err: solutions vs true gains (rad RMS)"
        )
    print(f"report: {summary.report}")


def run(args: argparse.Namespace) -> int:
    from ddpipe.config import load_config
    from ddpipe.pipeline import run_pipeline

    cfg = load_config(args.config, overrides(args))
    if args.resume:
        from pathlib import Path

        from ddpipe.errors import UserError

        if args.force:
            raise UserError(
                "--resume and --force contradict each other: --force recomputes everything; give one of them"
            )
        state = Path(cfg.workdir) / "state.json"
        if not state.is_file():
            raise UserError(
                f"--resume: no earlier run to resume in {cfg.workdir} (no state.json); check the "
                "workdir, or drop --resume to start a run"
            )
    summary = run_pipeline(cfg, restart_from=args.restart_from, force=args.force)
    print_table(summary)
    return 0
