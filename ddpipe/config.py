"""YAML config → validated → frozen dataclasses.

Defaults come only from the packaged ``ddpipe/data/default.yaml``
(``configs/default.yaml`` links to it). The dataclasses below give each key its
type and allowed values; a test checks that they and the YAML name the same
keys. A user's file is merged over the defaults, then every value is checked:
unknown keys, wrong types and out-of-range values raise :class:`UserError`
naming the key path, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union

import yaml

from ddpipe.errors import UserError
from ddpipe.ms.subbands import expand_patterns

#: mappings whose keys are the user's own (passed through verbatim), not schema keys
FREE_MAPPINGS = ("dp3.extra",)

DEFAULT_CONFIG = Path(str(resources.files("ddpipe") / "data" / "default.yaml"))


def _c(**kw: Any) -> Any:
    """A dataclass field with constraints: choices, min, min_exclusive, max, path."""
    return field(metadata=kw)


@dataclass(frozen=True)
class InputsConfig:
    #: a glob (``obs/SB*.MS``), alone or as a list entry, stands for the MSs it matches in
    #: frequency order (expanded when the config is loaded, see ddpipe.ms.subbands)
    ms: tuple[str, ...] = _c(path=True, glob=True)
    skymodel: str | None = _c(path=True)
    data_column: str = _c()
    reference_ms: tuple[str, ...] = _c(path=True, glob=True)
    true_gains: str | None = _c(path=True)
    true_skymodel: str | None = _c(path=True)


@dataclass(frozen=True)
class SlurmConfig:
    queue: str | None = _c()
    account: str | None = _c()
    walltime: str = _c(pattern=r"^(\d+-)?\d{1,3}:\d{2}(:\d{2})?$", form="a duration like 01:00:00 or 1-00:00:00")
    cores: int = _c(min=1)
    memory: str = _c()
    jobs: int = _c(min=1)
    job_script_prologue: tuple[str, ...] = _c()
    local_directory: str | None = _c()
    log_directory: str | None = _c(path=True)
    lifetime: str | None = _c()
    retire_margin: float = _c(min=0)
    interface: str | None = _c()


@dataclass(frozen=True)
class SecurityConfig:
    tls: bool = _c()
    tls_ca_file: str | None = _c(path=True)
    tls_cert: str | None = _c(path=True)
    tls_key: str | None = _c(path=True)
    plain_tcp: str = _c(choices=("warn", "error"))


@dataclass(frozen=True)
class ClusterConfig:
    mode: str = _c(choices=("local", "address", "slurm"))
    n_workers: int = _c(min=1)
    threads_per_worker: int = _c(min=1)
    memory_limit: str = _c()
    address: str | None = _c()
    dashboard_address: str = _c()
    worker_wait: float = _c(min_exclusive=0)
    no_workers_timeout: float = _c(min_exclusive=0)
    retries: int = _c(min=0)
    imaging: bool = _c()
    security: SecurityConfig = _c()
    slurm: SlurmConfig = _c()


@dataclass(frozen=True)
class ChunkingConfig:
    duration: float = _c(min=0)
    n_chunks: int = _c(min=0)
    lead_in: int = _c(min=0)


@dataclass(frozen=True)
class DP3Config:
    executable: str | None = _c(path=True)
    timeout: float = _c(min_exclusive=0)
    extra: dict = _c()


@dataclass(frozen=True)
class CalibrationConfig:
    mode: str = _c(choices=("scalarphase", "scalaramplitude", "scalar", "diagonalphase", "diagonal", "fulljones"))
    solint: int = _c(min=1)
    nchan: int = _c(min=0)
    n_directions: int = _c(min=1)
    maxiter: int = _c(min=1)
    tolerance: float = _c(min_exclusive=0)
    stepsize: float = _c(min_exclusive=0, max=1)
    uvlambdamin: float = _c(min=0)
    smoothnessconstraint: float = _c(min=0)
    propagatesolutions: bool = _c()
    solveralgorithm: str = _c(choices=("directioniterative", "directionsolve", "hybrid", "lbfgs"))
    solutions_per_direction: tuple[int, ...] = _c(min=1)
    antenna_averaging_factors: tuple[str, ...] = _c(
        pattern=r"^[^\s:,\[\]]+:[1-9]\d*$", form="PATTERN:FACTOR, like 'CS*:4' or 'RS001HBA:2'"
    )
    #: a chain of solves, each a mapping of the keys above (those left out are taken from the
    #: calibration section itself); empty: the section itself is the one solve
    solves: tuple["CalibrationConfig", ...] = _c(chain=True)

    @property
    def chain(self) -> tuple["CalibrationConfig", ...]:
        """The solves of a cycle, in order (one DP3 run per chunk does them all)."""
        return self.solves or (self,)

    @property
    def modes(self) -> str:
        """``scalarphase`` or, for a chain, ``scalarphase+diagonal``."""
        return "+".join(s.mode for s in self.chain)

    @property
    def longest_solint(self) -> int:
        return max(s.solint for s in self.chain)


@dataclass(frozen=True)
class ImagingConfig:
    size: tuple[int, ...] = _c(min=32, even=True, length=2)
    scale: float = _c(min_exclusive=0)
    weight: str = _c(choices=("natural", "uniform", "briggs"))
    robust: float = _c(min=-5, max=5)
    niter: int = _c(min=0)
    gain: float = _c(min_exclusive=0, max=1)
    mgain: float = _c(min_exclusive=0, max=1)
    threshold: float = _c(min=0)
    auto_threshold: float = _c(min=0)
    multiscale: bool = _c()
    multiscale_scales: tuple[int, ...] = _c(min=0)
    facets: bool = _c()
    facet_smearing: float = _c(min=0, max=0.1)
    row_block: int = _c(min=1)
    cache_mb: float = _c(min=0)
    threads: int = _c(min=1)
    wgridder_accuracy: float = _c(min_exclusive=0, max=0.1)
    channels_out: int = _c(min=1)
    fit_spectral_pol: int = _c(min=0)
    fit_spectral_log_pol: int = _c(min=0)


@dataclass(frozen=True)
class CycleConfig:
    """One self-cal cycle: the calibration and imaging settings in force for it."""

    index: int
    calibration: CalibrationConfig
    imaging: ImagingConfig


@dataclass(frozen=True)
class Config:
    inputs: InputsConfig = _c()
    workdir: str = _c(path=True)
    cluster: ClusterConfig = _c()
    chunking: ChunkingConfig = _c()
    dp3: DP3Config = _c()
    calibration: CalibrationConfig = _c()
    imaging: ImagingConfig = _c()
    cycles: tuple[CycleConfig, ...] = _c(min_length=1)
    source: str = "<defaults>"  # file the config came from (not a YAML key)


# --------------------------------------------------------------------------- loading


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist: check the path") from None
    except IsADirectoryError:
        raise UserError(f"config path {path} is a directory, not a YAML file") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{where}: not valid YAML ({problem})") from None


def default_dict() -> dict[str, Any]:
    """The packaged defaults as plain YAML data."""
    return _read_yaml(DEFAULT_CONFIG)


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, *, expand_globs: bool = True
) -> Config:
    """Read, merge over the defaults, validate and freeze a config.

    Parameters
    ----------
    path
        A YAML file, or None for the defaults alone.
    overrides
        Nested values applied on top of the file (e.g. from CLI options), validated the same way.
    expand_globs
        Replace the glob patterns of ``inputs.ms`` / ``inputs.reference_ms`` by their matches (the
        MSs are read to sort them by frequency); False keeps the patterns (``validate --schema-only``
        of a template).
    """
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    source = "<defaults>"
    if path is not None:
        p = Path(path)
        loaded = _read_yaml(p)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UserError(
                f"{p}: the top level must be a mapping of keys (like 'inputs:'), got {type(loaded).__name__}"
            )
        data = loaded
        base_dir = p.resolve().parent
        source = str(p)
    if overrides:
        data = _merge(data, overrides)
    return build_config(data, base_dir=base_dir, source=source, expand_globs=expand_globs)


def check_field(cls: type, name: str, value: Any, key: str, source: str = "<code>") -> Any:
    """One schema field's rules on a value, for code that builds its settings itself (e.g. a library
    call of the imager with ``dataclasses.replace``d parameters): the same rule, the same message."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    raw = list(value) if isinstance(value, tuple) else value
    return _convert(raw, _hint(cls, name), f.metadata, key, _Ctx(source=source, base_dir=Path.cwd()))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "extra":  # dp3.extra is replaced whole
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def build_config(
    data: dict[str, Any], base_dir: Path, source: str = "<config>", *, expand_globs: bool = True
) -> Config:
    """Validate ``data`` (user keys only) over the defaults and build the frozen Config."""
    defaults = default_dict()
    ctx = _Ctx(source=source, base_dir=base_dir, expand_globs=expand_globs)
    _check_keys(data, defaults, "", ctx)
    merged = _merge(defaults, {k: v for k, v in data.items() if k != "cycles"})
    if "cycles" in data:
        merged["cycles"] = data["cycles"]
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        if f.name in ("cycles", "source"):
            continue
        values[f.name] = _convert(merged[f.name], _hint(Config, f.name), f.metadata, f.name, ctx)
    _check_imaging(values["imaging"], "imaging", ctx)  # named as the user wrote it, before any cycle
    values["cycles"] = _cycles(merged["cycles"], values["calibration"], values["imaging"], ctx)
    return Config(**values, source=source)


@dataclass
class _Ctx:
    source: str
    base_dir: Path
    expand_globs: bool = True

    def fail(self, key: str, value: Any, allowed: str) -> UserError:
        return UserError(f"{self.source}: {key} = {value!r} is not allowed: {allowed}")


def _check_keys(data: Any, defaults: Any, prefix: str, ctx: _Ctx) -> None:
    if not isinstance(defaults, dict) or prefix.rstrip(".") in FREE_MAPPINGS:
        return
    if not isinstance(data, dict):
        raise ctx.fail(prefix.rstrip("."), data, "expected a mapping of keys")
    for key, value in data.items():
        if key not in defaults:
            where = f"{prefix}{key}"
            hint = difflib.get_close_matches(str(key), [str(k) for k in defaults], n=1, cutoff=0.6)
            known = ", ".join(str(k) for k in defaults)
            did = f" (did you mean '{prefix}{hint[0]}'?)" if hint else f" (known keys here: {known})"
            raise UserError(f"{ctx.source}: unknown key '{where}'{did}")
        if key != "cycles":
            _check_keys(value, defaults[key], f"{prefix}{key}.", ctx)


def _hint(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, getattr(__import__("types"), "UnionType", Union)):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        dict: "a mapping",
        type(None): "null",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any, meta: Any, key: str, ctx: _Ctx) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union or (origin is not None and type(None) in args):
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _convert(value, inner, meta, key, ctx)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ctx.fail(key, value, "expected a mapping of keys")
        kw = {}
        for f in dataclasses.fields(tp):
            if not f.metadata.get("chain"):
                kw[f.name] = _convert(value.get(f.name), _hint(tp, f.name), f.metadata, f"{key}.{f.name}", ctx)
        for f in dataclasses.fields(tp):
            if f.metadata.get("chain"):
                kw[f.name] = ()
                kw[f.name] = _chain(value.get(f.name), tp(**kw), f"{key}.{f.name}", ctx)
        return _whole_section(tp(**kw), key, ctx)
    if origin is tuple:
        if value is None or isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
            if isinstance(value, str) and meta.get("path"):
                value = [value]  # a single path where a list is expected
            else:
                raise ctx.fail(key, value, f"expected {_type_name(tp)}")
        length = meta.get("length")
        if length is not None and len(value) != length:
            raise ctx.fail(key, value, f"expected a list of {length} values")
        items = tuple(_convert(v, args[0], meta, f"{key}[{i}]", ctx) for i, v in enumerate(value))
        return items
    if tp is bool:
        if not isinstance(value, bool):
            raise ctx.fail(key, value, "expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.fail(key, value, "expected an integer")
        return _range(value, meta, key, ctx)
    if tp is float:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads 2.0e6 as a string: it wants 2.0e+6; take either
            try:
                value = float(value) if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()) else value
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ctx.fail(key, value, "expected a number")
        return _range(float(value), meta, key, ctx)
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not meta.get("choices"):
            value = str(value)
        if not isinstance(value, str):
            raise ctx.fail(key, value, "expected a string")
        choices = meta.get("choices")
        if choices and value not in choices:
            hint = difflib.get_close_matches(value, choices, n=1)
            did = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ctx.fail(key, value, f"one of {' | '.join(choices)}{did}")
        pattern = meta.get("pattern")
        if pattern:
            if not re.match(pattern, value):
                raise ctx.fail(key, value, f"expected {meta.get('form', 'a value matching ' + pattern)}")
        if meta.get("path"):
            value = str((ctx.base_dir / Path(value).expanduser()).resolve())
        return value
    if tp is dict:
        if not isinstance(value, dict):
            raise ctx.fail(key, value, "expected a mapping")
        out = {}
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                raise ctx.fail(f"{key}.{k}", v, "expected a single value (string, number or boolean)")
            out[str(k)] = v
        return out
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a bug in the schema, not user error


def _whole_section(out: Any, key: str, ctx: _Ctx) -> Any:
    """A section once all its keys are converted: the rules between its keys, its globs expanded."""
    if isinstance(out, CalibrationConfig):
        _check_calibration(out, key, ctx)
    if isinstance(out, InputsConfig) and ctx.expand_globs:
        return _expand_globs(out, key, ctx)
    return out


def _expand_globs(ins: InputsConfig, key: str, ctx: _Ctx) -> InputsConfig:
    """``inputs.ms`` / ``inputs.reference_ms`` with each glob replaced by its matches (frequency order)."""
    changes = {}
    for f in dataclasses.fields(ins):
        if f.metadata.get("glob"):
            paths = getattr(ins, f.name)
            try:
                changes[f.name] = expand_patterns(paths, f"{key}.{f.name}", ins.data_column)
            except UserError as exc:
                raise UserError(f"{ctx.source}: {exc}") from None
    return dataclasses.replace(ins, **changes)


def _range(value: Any, meta: Any, key: str, ctx: _Ctx) -> Any:
    lo, lo_ex, hi = meta.get("min"), meta.get("min_exclusive"), meta.get("max")
    if lo is not None and value < lo:
        raise ctx.fail(key, value, f"must be >= {lo}")
    if lo_ex is not None and value <= lo_ex:
        raise ctx.fail(key, value, f"must be > {lo_ex}")
    if hi is not None and value > hi:
        raise ctx.fail(key, value, f"must be <= {hi}")
    if meta.get("even") and value % 2:
        raise ctx.fail(key, value, "must be even")
    return value


def _cycles(raw: Any, cal: CalibrationConfig, img: ImagingConfig, ctx: _Ctx) -> tuple[CycleConfig, ...]:
    if not isinstance(raw, list) or not raw:
        raise ctx.fail("cycles", raw, "expected a non-empty list of cycles (each may be {} to use the defaults)")
    defaults = default_dict()
    out = []
    for i, entry in enumerate(raw):
        key = f"cycles[{i}]"
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise ctx.fail(key, entry, "expected a mapping with 'calibration' and/or 'imaging'")
        allowed = {"calibration": defaults["calibration"], "imaging": defaults["imaging"]}
        _check_keys(entry, allowed, f"{key}.", ctx)
        c = _override(cal, entry.get("calibration") or {}, f"{key}.calibration", ctx)
        m = _override(img, entry.get("imaging") or {}, f"{key}.imaging", ctx)
        out.append(CycleConfig(index=i + 1, calibration=c, imaging=m))
    return tuple(out)


def _override(base: Any, changes: dict[str, Any], key: str, ctx: _Ctx) -> Any:
    kw = {}
    chained = {}
    for name, value in changes.items():
        f = next(f for f in dataclasses.fields(base) if f.name == name)
        if f.metadata.get("chain"):
            chained[name] = value
        else:
            kw[name] = _convert(value, _hint(type(base), name), f.metadata, f"{key}.{name}", ctx)
    solves = getattr(base, "solves", ())
    if solves and not chained:
        stale = [k for k in kw if k != "n_directions"]
        if stale:
            raise UserError(
                f"{ctx.source}: {key}.{stale[0]} would not reach the solves listed in calibration.solves; "
                f"give this cycle its own {key}.solves instead"
            )
    out = dataclasses.replace(base, **kw)
    for name, value in chained.items():  # a cycle's solves take the cycle's other keys as their defaults
        out = dataclasses.replace(
            out, **{name: _chain(value, dataclasses.replace(out, **{name: ()}), f"{key}.{name}", ctx)}
        )
    if isinstance(out, CalibrationConfig):
        _check_calibration(out, key, ctx)
    if isinstance(out, ImagingConfig):
        _check_imaging(out, key, ctx)
    return out


def _check_imaging(img: ImagingConfig, key: str, ctx: _Ctx) -> None:
    """Rules between imaging keys (multi-frequency deconvolution, as WSClean states them)."""
    if img.fit_spectral_pol and img.fit_spectral_log_pol:
        raise ctx.fail(
            f"{key}.fit_spectral_log_pol",
            img.fit_spectral_log_pol,
            "give fit_spectral_pol or fit_spectral_log_pol, not both",
        )
    terms = img.fit_spectral_pol or img.fit_spectral_log_pol
    if terms > img.channels_out:
        name = "fit_spectral_pol" if img.fit_spectral_pol else "fit_spectral_log_pol"
        raise ctx.fail(f"{key}.{name}", terms, f"at most channels_out ({img.channels_out}) terms: raise channels_out")
    if img.channels_out > 1 and img.multiscale:
        raise ctx.fail(
            f"{key}.multiscale",
            True,
            "multiscale CLEAN does not join channels yet: use channels_out 1 with multiscale, or Hogbom",
        )


def _check_calibration(cal: CalibrationConfig, key: str, ctx: _Ctx) -> None:
    """Rules between keys of one solve, as DP3 states them (DDECal.yml)."""
    for n in cal.solutions_per_direction:
        if cal.solint % n:
            raise ctx.fail(
                f"{key}.solutions_per_direction",
                list(cal.solutions_per_direction),
                f"each entry must divide solint ({cal.solint})",
            )
    most = max(cal.solutions_per_direction, default=1)
    if most > 1 and cal.solveralgorithm != "directioniterative":
        raise ctx.fail(
            f"{key}.solveralgorithm",
            cal.solveralgorithm,
            "solutions_per_direction above 1 needs directioniterative (DP3 supports it only there)",
        )
    for entry in cal.antenna_averaging_factors:
        if int(entry.rpartition(":")[2]) > most:
            raise ctx.fail(
                f"{key}.antenna_averaging_factors",
                entry,
                f"a factor may not exceed the most sub-solutions of a direction ({most}); "
                "raise solutions_per_direction",
            )


def _chain(raw: Any, base: "CalibrationConfig", key: str, ctx: _Ctx) -> tuple["CalibrationConfig", ...]:
    """``calibration.solves``: a list of mappings of calibration keys over ``base`` (its own keys).

    Each solve's solint must divide the longest: chunk edges (and lead-ins) fall on the
    longest solve's intervals, and so on every solve's.
    """
    if raw is None or raw == []:
        return ()
    if not isinstance(raw, list):
        raise ctx.fail(key, raw, "expected a list of solves, each a mapping like {mode: scalarphase, solint: 1}")
    allowed = [f.name for f in dataclasses.fields(base) if f.name not in ("solves", "n_directions")]
    out = []
    for i, entry in enumerate(raw):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict):
            raise ctx.fail(where, entry, "expected a mapping of calibration keys, like {mode: diagonal, solint: 10}")
        for k in entry:
            if k not in allowed:
                hint = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.6)
                did = f" (did you mean '{where}.{hint[0]}'?)" if hint else f" (a solve takes: {', '.join(allowed)})"
                raise UserError(f"{ctx.source}: unknown key '{where}.{k}'{did}")
        out.append(_override(base, entry, where, ctx))
    longest = max(s.solint for s in out)
    for i, s in enumerate(out):
        if longest % s.solint:
            raise ctx.fail(
                f"{key}[{i}].solint",
                s.solint,
                f"each solve's solint must divide the longest one ({longest}), so that chunk edges "
                "fall on every solve's intervals",
            )
    return tuple(out)
