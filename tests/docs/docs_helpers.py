"""Markdown reading for the docs tests: fenced blocks, headings, GitHub anchors, links, sections."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
QUICKSTART = DOCS / "quickstart.md"

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string (``bash``, ``yaml``...), its lines and where it starts."""

    lang: str
    lines: tuple[str, ...]
    line: int  # 1-based line of the opening fence


def markdown_files() -> list[Path]:
    """README.md, slurm/README.md and every docs/*.md."""
    return [REPO / "README.md", REPO / "slurm" / "README.md", *sorted(DOCS.glob("*.md"))]


def split_blocks(text: str) -> tuple[list[Block], list[tuple[int, str]]]:
    """Fenced code blocks, and the (line number, text) of every line outside them."""
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    fence = None
    lang, start, body = "", 0, []
    for n, line in enumerate(text.splitlines(), start=1):
        m = _FENCE.match(line)
        if fence is None:
            if m:
                fence, lang, start, body = m.group(2), m.group(3).lower(), n, []
            else:
                prose.append((n, line))
        elif line.strip().startswith(fence[0] * len(fence)) and line.strip().strip(fence[0]) == "":
            blocks.append(Block(lang, tuple(body), start))
            fence = None
        else:
            body.append(line)
    if fence is not None:
        raise ValueError(f"unclosed code fence opened on line {start}")
    return blocks, prose


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lower case, punctuation dropped, spaces → '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def headings(text: str) -> list[tuple[int, str]]:
    """(level, text) of every heading outside code blocks."""
    _, prose = split_blocks(text)
    out = []
    for _, line in prose:
        m = _HEADING.match(line)
        if m:
            out.append((len(m.group(1)), m.group(2)))
    return out


def anchors(text: str) -> set[str]:
    """Every anchor GitHub makes for the headings of a page (duplicates get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for _, h in headings(text):
        s = slug(h)
        if s in seen:
            seen[s] += 1
            s = f"{s}-{seen[s]}"
        else:
            seen[s] = 0
        out.add(s)
    return out


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every markdown link outside code blocks and code spans."""
    _, prose = split_blocks(text)
    out = []
    for n, line in prose:
        bare = _CODE_SPAN.sub("", line)
        out.extend((n, m.group(1)) for m in _LINK.finditer(bare))
    return out


def section(text: str, title: str) -> str:
    """The text under the heading ``title`` up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    level, start = None, None
    in_fence = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence:
            continue
        m = _HEADING.match(line)
        if not m:
            continue
        if start is None and m.group(2) == title:
            level, start = len(m.group(1)), i + 1
        elif start is not None and len(m.group(1)) <= level:
            return "\n".join(lines[start:i])
    if start is None:
        raise KeyError(f"no heading {title!r}")
    return "\n".join(lines[start:])


def shell_lines(block: Block) -> list[str]:
    """Commands of a shell block, without prompts, comments and continuation backslashes."""
    out, buf = [], ""
    for line in block.lines:
        s = line.strip()
        if s.startswith("$ "):
            s = s[2:]
        if not s or s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        out.append(buf + s)
        buf = ""
    return out


SHELL = ("bash", "sh", "shell", "console")


def ddpipe_commands(page: Path) -> list[list[str]]:
    """argv (without 'ddpipe') of every ``ddpipe ...`` line in the shell blocks of ``page``, in order."""
    blocks, _ = split_blocks(page.read_text(encoding="utf-8"))
    out = []
    for b in blocks:
        if b.lang in SHELL:
            out += [shlex.split(c)[1:] for c in shell_lines(b) if c.split()[0] == "ddpipe"]
    return out


def named_yaml_blocks(page: Path) -> dict[str, str]:
    """``{file name: text}`` of the YAML blocks whose first line is a ``# NAME.yaml`` comment."""
    blocks, _ = split_blocks(page.read_text(encoding="utf-8"))
    out = {}
    for b in blocks:
        if b.lang == "yaml" and b.lines:
            m = re.fullmatch(r"#\s*([\w.-]+\.ya?ml)\s*", b.lines[0])
            if m:
                out[m.group(1)] = "\n".join(b.lines) + "\n"
    return out


def load_generator() -> ModuleType:
    """``tools/gen_config_docs.py`` imported as a module."""
    path = REPO / "tools" / "gen_config_docs.py"
    spec = importlib.util.spec_from_file_location("gen_config_docs", path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module
