"""H5parm read/write, merges and evaluate_gains (unit tests; DP3 interop is in test_h5parm_dp3.py)."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest

from ddpipe.errors import UserError
from ddpipe.solutions import (
    SolTab,
    Solutions,
    evaluate_gains,
    merge_along_freq,
    merge_along_time,
    read_h5parm,
    write_h5parm,
)

T0 = 4.87e9


def make_solutions(
    seed: int = 0,
    ntime: int = 5,
    nfreq: int = 3,
    nant: int = 4,
    ndir: int = 2,
    pol: tuple[str, ...] | None = None,
    amplitude: bool = True,
    t0: float = T0,
    f0: float = 140e6,
) -> Solutions:
    rng = np.random.default_rng(seed)
    ants = tuple(f"CS{i:03d}HBA0" for i in range(nant))
    dirs = tuple(f"[P{i + 1}]" for i in range(ndir))
    axes = ("time", "freq", "ant", "dir") + (("pol",) if pol else ())
    shape = (ntime, nfreq, nant, ndir) + ((len(pol),) if pol else ())
    time = t0 + 10.0 * np.arange(ntime)
    freq = f0 + 1e6 * np.arange(nfreq)

    def tab(kind: str, values: np.ndarray) -> SolTab:
        return SolTab(
            kind=kind,
            axes=axes,
            values=values,
            weights=rng.uniform(0.5, 1, shape).astype(np.float32),
            time=time,
            freq=freq,
            ant=ants,
            dir=dirs,
            pol=pol,
        )

    soltabs = {"phase000": tab("phase", rng.uniform(-np.pi, np.pi, shape))}
    if amplitude:
        soltabs["amplitude000"] = tab("amplitude", rng.uniform(0.5, 1.5, shape))
    return Solutions(
        antennas=ants,
        antenna_positions=rng.normal(3.8e6, 1e3, (nant, 3)),
        directions=dirs,
        direction_radec=rng.uniform(0, 1, (ndir, 2)),
        soltabs=soltabs,
    )


def assert_same(a: Solutions, b: Solutions) -> None:
    assert a.antennas == b.antennas and a.directions == b.directions
    np.testing.assert_allclose(a.antenna_positions, b.antenna_positions, rtol=1e-7)  # stored as float32 like DP3
    np.testing.assert_array_equal(a.direction_radec, b.direction_radec)
    assert set(a.soltabs) == set(b.soltabs)
    for k in a.soltabs:
        x, y = a.soltabs[k], b.soltabs[k]
        assert (x.kind, x.axes, x.ant, x.dir, x.pol) == (y.kind, y.axes, y.ant, y.dir, y.pol)
        np.testing.assert_array_equal(x.values, y.values)
        np.testing.assert_array_equal(x.weights, y.weights)
        np.testing.assert_array_equal(x.time, y.time)
        np.testing.assert_array_equal(x.freq, y.freq)


# ----------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("pol", [None, ("XX", "YY")])
def test_round_trip(tmp_path, pol):
    sol = make_solutions(pol=pol)
    path = tmp_path / "sol.h5"
    write_h5parm(path, sol)
    assert_same(sol, read_h5parm(path))
    assert not [p for p in tmp_path.iterdir() if p.name != "sol.h5"], "temporary file left behind"


def test_layout_as_dp3_writes_it(tmp_path):
    """Group/attribute layout and string widths that DP3 needs (FIELD-NOTES)."""
    sol = make_solutions(pol=("XX", "YY"))
    write_h5parm(tmp_path / "s.h5", sol)
    with h5py.File(tmp_path / "s.h5") as fh:
        ss = fh["sol000"]
        assert ss.attrs["h5parm_version"] == b"1.0"
        assert ss["antenna"].dtype["name"].itemsize >= 16
        assert ss["source"].dtype["name"].itemsize >= 128
        st = ss["phase000"]
        assert st.attrs["TITLE"] == b"phase"
        assert st["val"].attrs["AXES"] == b"time,freq,ant,dir,pol"
        assert st["weight"].attrs["AXES"] == b"time,freq,ant,dir,pol"
        assert st["val"].dtype == np.float64 and st["weight"].dtype == np.float32
        assert st["ant"].dtype.itemsize >= 16 and st["dir"].dtype.itemsize >= 128
        assert st["pol"].dtype.itemsize > 2


def test_long_names_get_one_spare_byte(tmp_path):
    """DP3 drops the last character of a name that fills its fixed-width field."""
    sol = make_solutions(nant=2, ndir=1, amplitude=False)
    long_ant = ("A" * 20, "B" * 16)
    long_dir = ("[" + "x" * 140 + "]",)
    tab = replace(sol.soltabs["phase000"], ant=long_ant, dir=long_dir)
    sol = replace(sol, antennas=long_ant, directions=long_dir, soltabs={"phase000": tab})
    write_h5parm(tmp_path / "s.h5", sol)
    with h5py.File(tmp_path / "s.h5") as fh:
        assert fh["sol000/phase000/ant"].dtype.itemsize == 21
        assert fh["sol000/antenna"].dtype["name"].itemsize == 21
        assert fh["sol000/phase000/dir"].dtype.itemsize == 143
    back = read_h5parm(tmp_path / "s.h5")
    assert back.antennas == long_ant and back.soltabs["phase000"].dir == long_dir


def test_write_keeps_other_solsets(tmp_path):
    path = tmp_path / "s.h5"
    a, b = make_solutions(seed=1), make_solutions(seed=2, nant=3)
    write_h5parm(path, a, solset="sol000")
    write_h5parm(path, b, solset="sol001")
    assert_same(a, read_h5parm(path, "sol000"))
    assert_same(b, read_h5parm(path, "sol001"))
    write_h5parm(path, b, solset="sol000")  # replaced, not merged
    assert_same(b, read_h5parm(path, "sol000"))


def test_write_refuses_inconsistent_solutions(tmp_path):
    sol = make_solutions()
    bad = replace(sol.soltabs["phase000"], values=sol.soltabs["phase000"].values[:, :1])
    with pytest.raises(UserError, match="phase000.*do not match"):
        write_h5parm(tmp_path / "s.h5", replace(sol, soltabs={"phase000": bad}))
    with pytest.raises(UserError, match="antenna_positions"):
        write_h5parm(tmp_path / "s.h5", replace(sol, antenna_positions=np.zeros((1, 3))))
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- malformed files


def _corrupt(path, edit) -> None:
    with h5py.File(path, "a") as fh:
        edit(fh)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda fh: fh.move("sol000", "other"), "no solset 'sol000'.*other"),
        (lambda fh: [fh["sol000"].__delitem__(k) for k in ("phase000", "amplitude000")], "no soltab"),
        (lambda fh: fh["sol000/phase000/val"].attrs.__setitem__("AXES", b"time,freq,ant"), "names 3 axes"),
        (lambda fh: fh["sol000/phase000/val"].attrs.__setitem__("AXES", b"time,freq,ant,bogus"), "unknown"),
        (lambda fh: fh["sol000/phase000/val"].attrs.__delitem__("AXES"), "no AXES"),
        (lambda fh: fh["sol000/phase000"].__delitem__("dir"), "missing the axis dataset 'dir'"),
        (lambda fh: fh["sol000/phase000"].__delitem__("val"), "no 'val'"),
        (
            lambda fh: (
                fh["sol000/phase000"].__delitem__("time"),
                fh["sol000/phase000"].create_dataset("time", data=np.zeros(2)),
            ),
            "time has 2 values",
        ),
    ],
)
def test_malformed_files_name_file_and_problem(tmp_path, edit, message):
    path = tmp_path / "bad.h5"
    write_h5parm(path, make_solutions())
    _corrupt(path, edit)
    with pytest.raises(UserError, match=message) as exc:
        read_h5parm(path)
    assert str(path) in str(exc.value)


def test_not_hdf5_and_missing(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("this is not HDF5\n")
    with pytest.raises(UserError, match="not an HDF5"):
        read_h5parm(text)
    with pytest.raises(UserError, match="does not exist"):
        read_h5parm(tmp_path / "missing.h5")


# ----------------------------------------------------------------------------- merges


def _split(sol: Solutions, axis: str, cut: int) -> tuple[Solutions, Solutions]:
    def part(sl: slice) -> Solutions:
        tabs = {}
        for k, t in sol.soltabs.items():
            i = t.axes.index(axis)
            idx = [slice(None)] * t.values.ndim
            idx[i] = sl
            tabs[k] = replace(
                t, values=t.values[tuple(idx)], weights=t.weights[tuple(idx)], **{axis: getattr(t, axis)[sl]}
            )
        return replace(sol, soltabs=tabs)

    return part(slice(0, cut)), part(slice(cut, None))


@pytest.mark.parametrize(("axis", "merge"), [("time", merge_along_time), ("freq", merge_along_freq)])
def test_merge_restores_the_whole(axis, merge):
    whole = make_solutions(ntime=7, nfreq=5, pol=("XX", "YY"))
    a, b = _split(whole, axis, 3)
    assert_same(whole, merge([b, a]))  # any order
    assert_same(whole, merge([a, b]))


def test_dropping_a_lead_in_keeps_the_later_times_of_every_soltab():
    from ddpipe.solutions.merge import drop_times_before

    whole = make_solutions(ntime=7, nfreq=5, pol=("XX", "YY"))
    lead, own = _split(whole, "time", 2)
    t = whole.soltabs["phase000"].time
    assert_same(own, drop_times_before(whole, (t[1] + t[2]) / 2))
    assert_same(whole, drop_times_before(whole, t[0]))
    with pytest.raises(UserError, match="no solution at or after"):
        drop_times_before(whole, t[-1] + 1)


def test_merge_refuses_disagreeing_parts():
    whole = make_solutions(ntime=6)
    a, b = _split(whole, "time", 3)
    with pytest.raises(UserError, match="overlap"):
        merge_along_time([a, a])
    other_ants = replace(b, antennas=("X",) * len(b.antennas))
    with pytest.raises(UserError, match="antennas"):
        merge_along_time([a, other_ants])
    shifted = replace(b, soltabs={k: replace(t, freq=t.freq + 1.0) for k, t in b.soltabs.items()})
    with pytest.raises(UserError, match="different freq axis"):
        merge_along_time([a, shifted])
    with pytest.raises(UserError, match="soltabs"):
        merge_along_time([a, replace(b, soltabs={"phase000": b.soltabs["phase000"]})])
    with pytest.raises(UserError, match="no solutions"):
        merge_along_freq([])


# ----------------------------------------------------------------------------- evaluate_gains


def test_evaluate_gains_nearest_neighbour_and_layout():
    sol = make_solutions(ntime=4, nfreq=3, nant=3, ndir=2)
    ph, am = sol.soltabs["phase000"], sol.soltabs["amplitude000"]
    times = np.array([T0 - 100, T0 + 4.9, T0 + 5.1, T0 + 29.0, T0 + 1000])
    freqs = np.array([139e6, 140.4e6, 140.6e6, 150e6])
    g = evaluate_gains(sol, times, freqs)
    assert g.shape == (5, 4, 3, 2, 2) and g.dtype == np.complex128
    ti, fi = [0, 0, 1, 3, 3], [0, 0, 1, 2]
    for a, i in enumerate(ti):
        for b, j in enumerate(fi):
            want = am.values[i, j] * np.exp(1j * ph.values[i, j])  # (ant, dir)
            np.testing.assert_allclose(g[a, b, :, :, 0], want, rtol=1e-12)
            np.testing.assert_allclose(g[a, b, :, :, 1], want, rtol=1e-12)  # scalar → both pols


def test_evaluate_gains_missing_kinds_and_direction_selection():
    sol = make_solutions(amplitude=False)
    g = evaluate_gains(sol, sol.soltabs["phase000"].time, sol.soltabs["phase000"].freq, directions=["P2", "[P1]"])
    np.testing.assert_allclose(np.abs(g), 1.0)  # no amplitude soltab → 1
    np.testing.assert_allclose(np.angle(g[..., 0, 0]), np.angle(np.exp(1j * sol.soltabs["phase000"].values[..., 1])))
    amp_only = replace(
        sol,
        soltabs={"amplitude000": replace(sol.soltabs["phase000"], kind="amplitude", values=np.full((5, 3, 4, 2), 2.0))},
    )
    np.testing.assert_allclose(evaluate_gains(amp_only, [T0], [140e6]), 2.0)  # no phase → 0
    with pytest.raises(UserError, match="no direction \\[P9\\]"):
        evaluate_gains(sol, [T0], [140e6], directions=["P9"])


def test_evaluate_gains_diagonal_pols_and_antenna_order():
    sol = make_solutions(pol=("YY", "XX"), amplitude=False, nant=3)
    tab = sol.soltabs["phase000"]
    reordered = replace(
        sol,
        soltabs={
            "phase000": replace(tab, ant=tab.ant[::-1], values=tab.values[:, :, ::-1], weights=tab.weights[:, :, ::-1])
        },
    )
    g = evaluate_gains(reordered, tab.time, tab.freq)
    np.testing.assert_allclose(np.angle(g[..., 0]), np.angle(np.exp(1j * tab.values[..., 1])))  # XX
    np.testing.assert_allclose(np.angle(g[..., 1]), np.angle(np.exp(1j * tab.values[..., 0])))  # YY
    full = make_solutions(pol=("XX", "XY", "YX", "YY"))
    with pytest.raises(UserError, match="full-Jones"):
        evaluate_gains(full, [T0], [140e6])
    tec = replace(sol, soltabs={"tec000": replace(tab, kind="tec")})
    with pytest.raises(UserError, match="kind 'tec'"):
        evaluate_gains(tec, [T0], [140e6])


def test_write_replaces_a_torn_h5parm(tmp_path):
    """A truncated file at the target (a run killed mid-write) is replaced, not a crash."""
    good = tmp_path / "good.h5"
    sol = make_solutions()
    write_h5parm(good, sol)
    torn = tmp_path / "torn.h5"
    torn.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    assert h5py.is_hdf5(torn)
    write_h5parm(torn, sol)
    np.testing.assert_array_equal(read_h5parm(torn).soltabs["phase000"].values, sol.soltabs["phase000"].values)
