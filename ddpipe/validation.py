"""Every rule a command checks before it starts work, in one place.

``ddpipe validate``, ``ddpipe run``, ``ddpipe calibrate`` and ``ddpipe image`` all
call :func:`validate` on their loaded config, so what ``run`` would refuse before
doing anything, ``validate`` refuses too, with the same one line. Rules on one key
and between keys of one section live in the schema (:mod:`ddpipe.config`); the
rules here need the files the config names (Measurement Sets, sky models, H5parms,
DP3, a scheduler file). None of them writes anything. Several MSs must form one
sub-band set (:func:`ddpipe.ms.subbands.check_subband_set`: evenly spaced channels,
one phase centre, no overlapping frequencies and, to be calibrated, the same antennas and
time slots).
"""

from __future__ import annotations

from pathlib import Path

from ddpipe.cluster import check_cluster
from ddpipe.config import Config
from ddpipe.dp3.runner import find_dp3
from ddpipe.errors import UserError
from ddpipe.ms.inspect import inspect_ms, require_unflagged
from ddpipe.ms.subbands import check_subband_set
from ddpipe.sky.directions import plan_directions
from ddpipe.sky.skymodel import read_skymodel
from ddpipe.solutions.h5parm import read_h5parm

#: what each command needs: "run" everything; "calibrate" the data, sky model, DP3 and cluster;
#: "image" the data alone
STAGES = ("run", "calibrate", "image")


def validate(cfg: Config, stage: str = "run") -> None:
    """Raise :class:`UserError` (one line naming the key and the fix) at the first broken rule.

    Parameters
    ----------
    cfg
        A loaded (schema-checked) config.
    stage
        The command about to run: ``run`` (default), ``calibrate`` or ``image``.
    """
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: one of {STAGES}")  # a caller's bug
    ins = cfg.inputs
    if stage == "run":
        workdir = Path(cfg.workdir)
        if workdir.exists() and not workdir.is_dir():
            raise UserError(
                f"workdir: {workdir} exists and is not a folder; remove it or choose another "
                "workdir (config key workdir or --workdir)"
            )
    if not ins.ms:
        raise UserError(f"{cfg.source}: inputs.ms is empty; list the Measurement Set(s) to process")
    if stage == "image":  # the imager counts what is flagged as it reads the rows: no scan of FLAG first
        infos = [inspect_ms(ms, data_column=ins.data_column, flag_stats=False) for ms in ins.ms]
        check_subband_set(infos, "inputs.ms", calibrate=False)
        return
    sets = {"inputs.ms": ins.ms, "inputs.reference_ms": ins.reference_ms if stage == "run" else ()}
    for key, paths in sets.items():
        infos = [inspect_ms(ms, data_column=ins.data_column) for ms in paths]
        check_subband_set(infos, key)
        for info in infos:
            require_unflagged(info)
    if not ins.skymodel:
        raise UserError(
            f"{cfg.source}: inputs.skymodel is not set; give a starting sky model (makesourcedb text format)"
        )
    if not Path(ins.skymodel).is_file():
        raise UserError(f"inputs.skymodel: {ins.skymodel} does not exist; check the path")
    _check_directions(ins.skymodel, cfg.cycles[0].calibration.n_directions)
    find_dp3(cfg.dp3.executable)  # DP3 missing: say so now, not after imaging cycle 0
    check_cluster(cfg.cluster)
    if stage == "run":
        _check_truth(cfg)


def _check_directions(skymodel: str, n_directions: int) -> None:
    """The directions DP3 will get: a bad sky model fails now (its own one line)."""
    plan_directions(skymodel, n_directions)


def _check_truth(cfg: Config) -> None:
    ins = cfg.inputs
    for key, path, read in (
        ("inputs.true_gains", ins.true_gains, read_h5parm),
        ("inputs.true_skymodel", ins.true_skymodel, read_skymodel),
    ):
        if path is None:
            continue
        if not Path(path).is_file():
            raise UserError(f"{key}: {path} does not exist; give the file ddpipe simulate wrote, or leave it out")
        read(path)  # a malformed file says so now, in one line, not after the first cycle
