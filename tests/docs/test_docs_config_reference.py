"""docs/configuration.md is what tools/gen_config_docs.py generates from ddpipe/data/default.yaml now."""

from __future__ import annotations

import pytest
from docs_helpers import DOCS, load_generator

from ddpipe.config import DEFAULT_CONFIG, default_dict

gen = load_generator()


def _leaf_paths(d: dict, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out = set()
    for k, v in d.items():
        if isinstance(v, dict) and v and k != "extra":
            out |= _leaf_paths(v, prefix + (k,))
        else:
            out.add(prefix + (k,))
    return out


def test_committed_reference_matches_the_generator():
    committed = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert committed == gen.generate(), (
        "docs/configuration.md is out of date with ddpipe/data/default.yaml or ddpipe/config.py; "
        "run: python tools/gen_config_docs.py"
    )


def test_generator_reads_every_key_of_the_default_file():
    entries, _, cycles = gen.parse_default_file(DEFAULT_CONFIG.read_text())
    leaves = {e.path for e in entries if not e.section}
    assert leaves | {("cycles",)} == _leaf_paths(default_dict())
    assert len(cycles) == len(default_dict()["cycles"])
    page = gen.generate()
    for path in leaves:
        assert f"| `{'.'.join(path)}` |" in page


def test_every_key_has_its_comment_and_default_in_the_page():
    entries, _, _ = gen.parse_default_file(DEFAULT_CONFIG.read_text())
    page = gen.generate()
    rows = {line.split("|")[1].strip(): line for line in page.splitlines() if line.startswith("| `")}
    for e in entries:
        if e.section:
            continue
        row = rows[f"`{e.dotted}`"]
        assert e.comment and gen._cell(e.comment) in row, e.dotted
        assert gen._cell(gen._code(e.raw)) in row, e.dotted


def test_allowed_values_come_from_the_schema():
    page = gen.generate()
    assert "| `calibration.mode` | `scalarphase` | one of `scalarphase`, `scalaramplitude`," in page
    assert "| `cluster.n_workers` | `2` | integer, >= 1 |" in page
    assert "| `imaging.size` | `[1024, 1024]` | list of 2 integers, each >= 32 and even |" in page
    assert "| `inputs.skymodel` | `null` | path, or `null` |" in page


def test_comment_split_keeps_hashes_inside_quotes():
    assert gen.split_comment(' "a # b"  # the comment') == ('"a # b"', "the comment")
    assert gen.split_comment(" 3   # n # m") == ("3", "n # m")
    assert gen.split_comment("   # section") == ("", "section")


def test_a_default_the_generator_cannot_read_is_refused(tmp_path):
    # one 'key: value  # comment' per line is what the generator reads; anything else must stop
    # it rather than put a wrong default into the docs
    text = DEFAULT_CONFIG.read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("multiscale_scales:"))
    block = "  multiscale_scales:         # scales (pixels)\n    - 0\n    - 4\n"
    bad = tmp_path / "default.yaml"
    bad.write_text(text.replace(line + "\n", block))
    with pytest.raises(ValueError, match="cannot read"):
        gen.generate(bad)


def test_cycles_rules_are_documented():
    page = gen.generate()
    assert "replaces** the default list" in page
    assert "cycles:\n  - {}\n  - {}\n  - {}" in page
