"""Every relative link in README.md and docs/*.md resolves, files and #anchors alike."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest
from docs_helpers import DOCS, REPO, anchors, headings, links, markdown_files, slug, split_blocks

EXTERNAL = ("http://", "https://", "mailto:")


def _broken_links(page: Path, root: Path = REPO) -> list[str]:
    """Problems with the relative links of ``page``; links must stay inside ``root``."""
    text = page.read_text(encoding="utf-8")
    broken = []
    for line, target in links(text):
        if target.startswith(EXTERNAL):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / unquote(path_part)).resolve() if path_part else page
        where = f"{page.relative_to(root)}:{line}: ({target})"
        if not dest.exists():
            broken.append(f"{where} {dest.relative_to(root) if dest.is_relative_to(root) else dest} does not exist")
            continue
        if not dest.is_relative_to(root):
            broken.append(f"{where} points outside the repository")
            continue
        if anchor:
            if dest.suffix != ".md":
                broken.append(f"{where} an #anchor into a non-markdown file")
            elif anchor not in anchors(dest.read_text(encoding="utf-8")):
                broken.append(f"{where} no heading with anchor #{anchor} in {dest.name}")
    return broken


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    assert page.exists()
    assert _broken_links(page) == []


def test_the_link_checker_sees_broken_links(tmp_path):
    # a checker that never fails would pass the test above forever
    (tmp_path / "index.md").write_text("# Index\n\n## Some part\n")
    page = tmp_path / "probe.md"
    page.write_text(
        "# Title\n\n[a](index.md) [b](missing.md) [c](index.md#no-such-heading) [d](#title)\n"
        "[g](index.md#some-part) `[e](not-a-link.md)`\n\n```\n[f](in-code.md)\n```\n"
    )
    broken = _broken_links(page, root=tmp_path)
    assert len(broken) == 2
    assert "missing.md does not exist" in broken[0]
    assert "#no-such-heading" in broken[1]


def test_github_anchor_rules():
    assert slug("state.json and resume") == "statejson-and-resume"
    assert slug("DP3 refuses to start: OPENBLAS_NUM_THREADS") == "dp3-refuses-to-start-openblas_num_threads"
    assert slug("`cluster.slurm`") == "clusterslurm"
    assert anchors("# A\n## A\n### A\n") == {"a", "a-1", "a-2"}


def test_index_links_every_page():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    targets = {t.partition("#")[0] for _, t in links(index)}
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    expected = pages | {"cluster.md", "reliability.md"}
    assert expected - targets == set(), "docs/index.md must link every page"


def test_readme_links_the_docs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/index.md" in {t.partition("#")[0] for _, t in links(readme)}
    assert headings(readme)[-1][1] == "Documentation", "the Documentation section closes the README"


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_code_fences_are_closed(page):
    split_blocks(page.read_text(encoding="utf-8"))  # raises on an unclosed fence
