"""The one atomic writer (ddpipe.fileio): whole file or nothing, usual permissions, no leftovers."""

from __future__ import annotations

import os

import pytest

from ddpipe.fileio import atomic_write, usual_mode


def test_text_bytes_and_a_writer_function_land_whole_with_the_usual_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        assert atomic_write(tmp_path / "a.txt", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
        assert (tmp_path / "b.bin").exists() is False
        atomic_write(tmp_path / "b.bin", b"\x00\x01")
        atomic_write(tmp_path / "c.bin", lambda fh: fh.write(b"abc"))
        assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01" and (tmp_path / "c.bin").read_bytes() == b"abc"
        assert all((tmp_path / n).stat().st_mode & 0o777 == 0o644 for n in ("a.txt", "b.bin", "c.bin"))
        f = tmp_path / "d"
        f.write_text("x")
        os.chmod(f, 0o600)
        usual_mode(f)
        assert f.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(mask)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    with pytest.raises(OSError):
        atomic_write(tmp_path / "missing" / "x.txt", "x")
