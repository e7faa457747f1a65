"""The quickstart works end to end as written (real DP3), and docs/outputs.md describes what it
leaves: every path of the workdir layout exists, every summary.json key is there."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
from docs_helpers import DOCS, QUICKSTART, ddpipe_commands, named_yaml_blocks, section, split_blocks

from ddpipe.cli import main

pytestmark = [pytest.mark.dp3, pytest.mark.slow]

#: not run here: the demo is the benchmark's job, --force only repeats the run
SKIP = (["demo"], ["--force"])


def layout_paths() -> list[str]:
    """The paths listed in the first code block under 'Workdir layout' in docs/outputs.md."""
    blocks, _ = split_blocks(section((DOCS / "outputs.md").read_text(encoding="utf-8"), "Workdir layout"))
    return [line.split()[0] for line in blocks[0].lines if line.strip()]


def as_glob(path: str) -> str:
    return path.replace("<hash>", "*").replace("NNN", "[0-9][0-9][0-9]").replace("NN", "[0-9][0-9]").rstrip("/")


def summary_keys() -> list[str]:
    """Key paths of the summary.json table in docs/outputs.md (``cycles[].image.rms``...)."""
    table = section((DOCS / "outputs.md").read_text(encoding="utf-8"), "summary.json")
    return re.findall(r"^\| `([\w.\[\]]+)` \|", table, flags=re.M)


def lookup(data: Any, path: str) -> list[Any]:
    """Values at a documented key path; ``[]`` walks every list item. KeyError when missing."""
    values = [data]
    for part in path.split("."):
        name, many = (part[:-2], True) if part.endswith("[]") else (part, False)
        values = [v[name] for v in values]
        if many:
            values = [item for v in values for item in v]
    return values


def test_quickstart_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name, text in named_yaml_blocks(QUICKSTART).items():
        (tmp_path / name).write_text(text)
    for argv in ddpipe_commands(QUICKSTART):
        if any(s in (argv[:1], argv[-1:]) for s in SKIP) or "--help" in argv:
            continue
        code = main(argv)
        out = capsys.readouterr()
        assert code == 0, f"'ddpipe {shlex.join(argv)}' exit {code}: {out.err[-3000:]}"

    work = tmp_path / "qs-work"
    missing = [p for p in layout_paths() if not list(work.glob(as_glob(p)))]
    assert missing == [], f"docs/outputs.md lists paths the run did not make: {missing}"

    summary = json.loads((work / "summary.json").read_text())
    keys = summary_keys()
    assert len(keys) > 15
    for key in keys:
        assert lookup(summary, key), key
    assert [c["mode"] for c in summary["cycles"]] == ["scalarphase", "diagonal"]
    assert summary["cycles"][1]["dynamic_range"] > summary["before"]["dynamic_range"]

    # the quickstart's other commands made what it says
    for p in ("qs-cal/solutions.h5", "qs-cal/facet-image.fits", "qs-cal/chunks/chunk_000.log"):
        assert (tmp_path / p).exists(), p
