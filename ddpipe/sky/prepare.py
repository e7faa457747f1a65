"""Turn a user's sky model into the one DP3 is run with: patches as directions.

The model is always rewritten into the workdir under a ``.skymodel`` name: DP3
6.6 reads a text sky model only when its name ends in ``.skymodel`` or ``.txt``,
and the run never depends on the user's file staying unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ddpipe.errors import UserError
from ddpipe.sky.directions import group_into_directions, patch_directions
from ddpipe.sky.model import SkyModel
from ddpipe.sky.skymodel import read_skymodel, write_skymodel

log = logging.getLogger(__name__)


def directions_of(model: SkyModel, n_directions: int) -> SkyModel:
    """``model`` itself when every source is in a patch; else regrouped into ``n_directions``."""
    if not model.sources:
        raise UserError("the sky model has no sources: nothing to calibrate against")
    if all(s.patch is not None for s in model.sources):
        return model
    log.info("sky model has sources without a patch: grouping all into %d direction(s) by flux", n_directions)
    return group_into_directions(model, n_directions)


def prepare_skymodel(path: str | Path, n_directions: int, out_path: str | Path) -> tuple[Path, tuple[str, ...], SkyModel]:
    """Read ``path``, make sure it has directions, write it to ``out_path``.

    Returns
    -------
    (path written, direction (patch) names in order, the model)
    """
    model = directions_of(read_skymodel(path), n_directions)
    out = Path(out_path)
    if out.suffix not in (".skymodel", ".txt"):
        out = out.with_suffix(".skymodel")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_skymodel(model, out)
    names = tuple(name for name, _, _ in patch_directions(model))
    return out, names, model
