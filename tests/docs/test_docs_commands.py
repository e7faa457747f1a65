"""The commands the docs show are real: they parse, the cheap ones run as written, every
subcommand is documented, every YAML example validates, every sky-model example reads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from docs_helpers import DOCS, QUICKSTART, REPO, SHELL, ddpipe_commands, named_yaml_blocks, shell_lines, split_blocks

from ddpipe.cli import COMMANDS, build_parser, main

#: subcommands cheap enough to run for real from the quickstart (seconds, no DP3)
CHEAP = ("simulate", "inspect", "plan", "validate")


def _doc_pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def test_quickstart_shows_the_whole_path():
    cmds = [a[0] for a in ddpipe_commands(QUICKSTART)]
    for needed in ("demo", "simulate", "inspect", "plan", "validate", "run"):
        assert needed in cmds, f"the quickstart shows no 'ddpipe {needed}'"
    assert cmds.index("validate") < cmds.index("run")
    assert "quickstart.yaml" in named_yaml_blocks(QUICKSTART)


@pytest.mark.parametrize("page", _doc_pages(), ids=lambda p: p.name)
def test_every_ddpipe_line_parses(page):
    parser = build_parser()
    for argv in ddpipe_commands(page):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse exits 2 on a bad line
            if "--help" in argv or "-h" in argv:
                assert exc.code == 0
                continue
            pytest.fail(f"{page.name}: 'ddpipe {shlex.join(argv)}' does not parse (exit {exc.code})")


@pytest.mark.parametrize("page", _doc_pages(), ids=lambda p: p.name)
def test_commands_write_only_to_relative_or_tmp_paths(page):
    for argv in ddpipe_commands(page):
        for arg in argv:
            if arg.startswith("/"):
                assert arg.startswith("/tmp/"), f"{page.name}: 'ddpipe {shlex.join(argv)}' uses {arg}"


def test_quickstart_cheap_commands_run_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name, text in named_yaml_blocks(QUICKSTART).items():
        (tmp_path / name).write_text(text)
    ran = []
    for argv in ddpipe_commands(QUICKSTART):
        if argv[0] in CHEAP:
            code = main(argv)
            out = capsys.readouterr()
            assert code == 0, f"'ddpipe {shlex.join(argv)}' exit {code}: {out.err[-2000:]}"
            ran.append(argv[0])
            if argv[0] == "validate":
                # the quickstart quotes this line: it must stay true
                line = f"{argv[1]}: OK (2 self-cal cycle(s), cluster mode local; keys, values and the files it names)"
                assert line in out.out and line in QUICKSTART.read_text(encoding="utf-8")
    assert sorted(set(ran)) == sorted(CHEAP)
    assert (tmp_path / "qs" / "sim.ms" / "table.dat").exists()
    assert (tmp_path / "qs" / "sim.skymodel").exists()


def test_make_targets_in_the_docs_exist():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([\w.-]+)\s*:", makefile, flags=re.M))
    for page in _doc_pages():
        blocks, _ = split_blocks(page.read_text(encoding="utf-8"))
        for b in blocks:
            if b.lang in SHELL:
                for c in shell_lines(b):
                    words = c.split()
                    if words[0] == "make":
                        assert set(words[1:]) <= targets, f"{page.name}: '{c}' names a target the Makefile lacks"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_subcommand_is_documented(name):
    text = "\n".join(p.read_text(encoding="utf-8") for p in _doc_pages())
    assert re.search(rf"\bddpipe {name}\b", text), f"no docs page mentions 'ddpipe {name}'"
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert f"`ddpipe {name}" in index, f"docs/index.md's command table lacks 'ddpipe {name}'"


@pytest.mark.parametrize("page", _doc_pages(), ids=lambda p: p.name)
def test_yaml_examples_validate(page, tmp_path):
    from ddpipe.config import load_config

    blocks, _ = split_blocks(page.read_text(encoding="utf-8"))
    for i, b in enumerate(b for b in blocks if b.lang == "yaml"):
        f = tmp_path / f"example{i}.yaml"
        f.write_text("\n".join(b.lines) + "\n")
        load_config(f)  # a UserError names the key that is wrong


def test_sky_model_examples_read():
    from ddpipe.sky.skymodel import parse_skymodel

    n = 0
    for page in _doc_pages():
        blocks, _ = split_blocks(page.read_text(encoding="utf-8"))
        for b in blocks:
            if b.lines and re.match(r"#\s*\(.*\)\s*=\s*format", b.lines[0], flags=re.I):
                model = parse_skymodel("\n".join(b.lines), filename=f"{page.name}:{b.line}")
                assert model.sources
                n += 1
    assert n >= 1


def test_outputs_names_every_image_product():
    from ddpipe.imaging.imager import PRODUCTS

    text = (DOCS / "outputs.md").read_text(encoding="utf-8")
    for p in PRODUCTS:
        assert f"-{p}.fits" in text, f"docs/outputs.md does not describe the {p} image"
