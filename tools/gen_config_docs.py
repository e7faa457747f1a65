#!/usr/bin/env python
"""Generate ``docs/configuration.md`` from ``ddpipe/data/default.yaml``.

Every key path, its default (as written in the YAML) and its comment come from
the packaged default file, the single source of defaults; the type and allowed
values of each key come from the config schema (the dataclasses of
``ddpipe/config.py``). ``tests/docs`` fails when the committed page differs from
what this script generates now.

Usage::

    python tools/gen_config_docs.py            # rewrite docs/configuration.md
    python tools/gen_config_docs.py --check    # exit 1 if it is out of date
    python tools/gen_config_docs.py --stdout   # print the page
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import yaml

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "docs" / "configuration.md"

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")


@dataclass(frozen=True)
class Entry:
    """One key of the default file.

    Attributes
    ----------
    path : tuple of str
        Key path, e.g. ``("cluster", "slurm", "queue")``.
    raw : str
        The default as written in the YAML ("" for a section).
    comment : str
        The comment on the key's line.
    section : bool
        True for a mapping of further keys.
    line : int
        1-based line number in the default file.
    """

    path: tuple[str, ...]
    raw: str
    comment: str
    section: bool
    line: int

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def split_comment(text: str) -> tuple[str, str]:
    """``'value  # comment'`` → ``('value', 'comment')``; a ``#`` inside quotes is kept.

    Parameters
    ----------
    text : str
        What follows ``key:`` on a line.
    """
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def parse_default_file(text: str) -> tuple[list[Entry], list[str], list[str]]:
    """Key entries, header comment lines and the raw lines of the ``cycles`` list.

    Parameters
    ----------
    text : str
        Contents of ``default.yaml`` (two-space indentation, one key per line,
        the ``cycles`` list last at the top level).

    Returns
    -------
    (list of Entry, list of str, list of str)
    """
    entries: list[Entry] = []
    header: list[str] = []
    cycles: list[str] = []
    stack: list[tuple[int, str]] = []
    in_header = True
    in_cycles = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if in_header:
            if stripped.startswith("#"):
                header.append(stripped.lstrip("#").strip())
                continue
            if not stripped:
                continue
            in_header = False
        if not stripped or stripped.startswith("#"):
            continue
        if in_cycles and line.startswith(" "):
            cycles.append(line.rstrip())
            continue
        m = _KEY_LINE.match(line)
        if m is None:
            raise ValueError(f"default.yaml:{lineno}: cannot read {line!r} (one 'key: value  # comment' per line)")
        indent = len(m.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        value, comment = split_comment(m.group("rest"))
        path = tuple(k for _, k in stack) + (m.group("key"),)
        in_cycles = path == ("cycles",)
        entries.append(Entry(path, value, comment, section=value == "", line=lineno))
        if value == "":
            stack.append((indent, m.group("key")))
    return entries, header, cycles


# --------------------------------------------------------------------------- schema


def _schema(path: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """(type hint, field metadata) of a key path in :class:`ddpipe.config.Config`."""
    from ddpipe.config import Config

    cls: Any = Config
    hint: Any = None
    meta: dict[str, Any] = {}
    for name in path:
        if not dataclasses.is_dataclass(cls):
            raise KeyError(".".join(path))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if name not in fields:
            raise KeyError(".".join(path))
        hint = typing.get_type_hints(cls)[name]
        meta = dict(fields[name].metadata)
        cls = hint
    return hint, meta


def _is_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if (origin is Union or origin is getattr(__import__("types"), "UnionType", None)) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return tp, False


_NAMES = {int: "integer", float: "number", str: "string", bool: "true / false", dict: "mapping"}


def describe_type(tp: Any, meta: dict[str, Any]) -> str:
    """What a key accepts, from its type hint and schema metadata (markdown text).

    Parameters
    ----------
    tp
        Type hint of the dataclass field.
    meta
        The field's metadata: ``choices``, ``min``, ``min_exclusive``, ``max``,
        ``length``, ``min_length``, ``pattern``, ``path``.
    """
    inner, optional = _is_optional(tp)
    if typing.get_origin(inner) is tuple:
        item = typing.get_args(inner)[0]
        noun = "path" if meta.get("path") else _NAMES.get(item, getattr(item, "__name__", str(item)))
        length = meta.get("length")
        text = f"list of {length} {noun}s" if length else f"list of {noun}s"
    elif meta.get("choices"):
        text = "one of " + ", ".join(f"`{c}`" for c in meta["choices"])
    elif meta.get("path"):
        text = "path"
    elif inner is dict:
        text = "mapping of DP3 keys to single values"
    else:
        text = _NAMES.get(inner, getattr(inner, "__name__", str(inner)))
    bounds = []
    if meta.get("min") is not None:
        bounds.append(f">= {meta['min']}")
    if meta.get("min_exclusive") is not None:
        bounds.append(f"> {meta['min_exclusive']}")
    if meta.get("max") is not None:
        bounds.append(f"<= {meta['max']}")
    if meta.get("even"):
        bounds.append("even")
    if bounds:
        text += (", each " if typing.get_origin(inner) is tuple else ", ") + " and ".join(bounds)
    if meta.get("pattern"):
        text += f" ({meta.get('form', 'matching ' + meta['pattern'])})"
    if optional:
        text += ", or `null`"
    return text


# --------------------------------------------------------------------------- markdown


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (``|`` escaped, one line)."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    if not text:
        return ""
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


INTRO = """\
# Configuration reference

<!-- GENERATED by tools/gen_config_docs.py from ddpipe/data/default.yaml and the
schema in ddpipe/config.py. Do not edit by hand: change the YAML comments (or
the schema) and run `python tools/gen_config_docs.py`; tests/docs fails when
this page is out of date. -->

A run is described by one YAML file. The packaged
[`ddpipe/data/default.yaml`](../ddpipe/data/default.yaml) (the same file as
[`configs/default.yaml`](../configs/default.yaml)) holds every key with its
default and is the single source of defaults; this page is generated from it.

- **Your file holds only what it changes.** It is merged over the defaults key
  by key (a section you give keeps the default for every key you leave out),
  except `cycles`, which replaces the default list as a whole, and `dp3.extra`,
  which replaces the default mapping as a whole.
- **Mistakes stop the run before any work.** Unknown keys (with a "did you
  mean" hint), wrong types and out-of-range values end with one line naming the
  file, the key path, the value and what is allowed, and exit code 2.
  `ddpipe validate FILE` checks a file without running anything: everything
  `ddpipe run` checks before it starts, the Measurement Sets, sky model, DP3
  and truth files it names included (`--schema-only`: the keys and values alone,
  e.g. for a template).
- **Relative paths** (type *path* below) are taken from the folder of the
  config file, not from the current directory; this holds for the paths given
  on the command line of `ddpipe run` (`--workdir`) too.
- **Command-line options override the file** and are validated like it:
  `ddpipe run --workdir DIR` sets `workdir`, `--workers N` sets
  `cluster.n_workers`, `--scheduler ADDR` sets `cluster.mode: address` and
  `cluster.address`; `ddpipe calibrate` also maps `--chunk-duration`,
  `--n-chunks`, `--mode`, `--solint`, `--nchan`, `--data-column` and
  `--threads-per-worker` onto the keys of the same names.

A minimal config names the data and leaves everything else at its default:

```yaml
inputs:
  ms: [obs.ms]
  skymodel: field.skymodel
workdir: obs-work
```
"""

CYCLES = """\
## `cycles`

Self-calibration cycles.

`cycles` is a list with one entry per self-calibration cycle; the run does as
many cycles as the list has entries. Each cycle calibrates (DP3 `ddecal` per
time chunk), images with that cycle's solutions applied facet by facet, and
turns the CLEAN components into the next cycle's sky model.

How the settings of cycle *k* are made:

1. Start from the top-level `calibration` and `imaging` sections: the defaults
   with your file's top-level values merged over them.
2. Apply the `calibration` and `imaging` keys of the entry `cycles[k-1]` over
   them. Only these two sections can change per cycle; `chunking`, `cluster`,
   `dp3` and `inputs` hold for every cycle. An empty entry (`{}` or `-` with
   nothing after it) uses the top-level settings unchanged. A key that is not a
   `calibration` / `imaging` key is an error naming `cycles[i]`.
3. A `cycles` list in your file **replaces** the default list as a whole: it is
   not merged entry by entry, and its length sets the number of cycles.

The default cycles are three empty entries, so a top-level `calibration` or
`imaging` key in your file applies to every cycle; give your own `cycles` list
to change settings from one cycle to the next (the usual strategy: phase-only
cycles first, then amplitude and phase).

Directions per cycle: in the first cycle, a starting sky model whose sources
all have patches keeps its patches as the directions (`n_directions` is not
used); one without patches is grouped into `calibration.n_directions`
directions by flux. After each cycle, the CLEAN components are grouped into
the `n_directions` of the *next* cycle (the last cycle uses its own).

The default list:

```yaml
{default_cycles}
```

An example: two phase-only cycles with a longer solution interval, then one
diagonal (amplitude + phase) cycle that cleans deeper:

```yaml
calibration:
  solint: 2
cycles:
  - {}
  - {}
  - calibration: {mode: diagonal, solint: 4}
    imaging: {niter: 5000, auto_threshold: 2.0}
```
"""


def generate(default_yaml: Path | None = None) -> str:
    """The whole ``docs/configuration.md`` text for the given default file.

    Parameters
    ----------
    default_yaml
        The default config; default the packaged ``ddpipe/data/default.yaml``.

    Returns
    -------
    str
        Markdown, ending in one newline.
    """
    from ddpipe.config import DEFAULT_CONFIG

    path = Path(default_yaml) if default_yaml is not None else DEFAULT_CONFIG
    text = path.read_text()
    entries, _header, cycles = parse_default_file(text)
    loaded = yaml.safe_load(text)
    out = [INTRO]
    tops = [e for e in entries if len(e.path) == 1]
    out.append("Top-level keys: " + ", ".join(f"[`{e.path[0]}`](#{_anchor(e)})" for e in tops) + ".\n")

    def table(rows: list[Entry]) -> list[str]:
        lines = ["| key | default | type / allowed | what it does |", "|---|---|---|---|"]
        for e in rows:
            tp, meta = _schema(e.path)
            value = loaded
            for k in e.path:
                value = value[k]
            raw_value = yaml.safe_load(e.raw) if e.raw else None
            if raw_value != value:  # a line the parser misread: never publish a wrong default
                raise ValueError(f"{path}:{e.line}: read default {e.raw!r} but YAML gives {value!r}")
            lines.append(
                f"| `{e.dotted}` | {_cell(_code(e.raw))} | {_cell(describe_type(tp, meta))} | {_cell(e.comment)} |"
            )
        return lines

    for top in tops:
        if top.path == ("cycles",):
            continue
        out.append(f"## `{top.path[0]}`\n")
        if top.section:
            out.append(f"{top.comment[:1].upper()}{top.comment[1:]}.\n" if top.comment else "")
            groups: list[tuple[Entry | None, list[Entry]]] = [(None, [])]
            for e in entries:
                if e.path[0] != top.path[0] or len(e.path) == 1:
                    continue
                if e.section:
                    groups.append((e, []))
                elif len(e.path) == 2:
                    groups[0][1].append(e)
                else:
                    groups[-1][1].append(e)
            out.append("\n".join(table(groups[0][1])) + "\n")
            for sub, rows in groups[1:]:
                if sub is None:
                    continue
                out.append(f"### `{sub.dotted}`\n")
                if sub.comment:
                    out.append(f"{sub.comment[:1].upper()}{sub.comment[1:]}.\n")
                out.append("\n".join(table(rows)) + "\n")
        else:
            out.append("\n".join(table([top])) + "\n")
    out.append(CYCLES.replace("{default_cycles}", "cycles:\n" + "\n".join(cycles)))
    page = "\n".join(out)
    page = re.sub(r"\n{3,}", "\n\n", page)
    return page.rstrip("\n") + "\n"


def _anchor(e: Entry) -> str:
    return e.path[0].lower()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/configuration.md from ddpipe/data/default.yaml.")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--check", action="store_true", help="exit 1 when docs/configuration.md is out of date")
    how.add_argument("--stdout", action="store_true", help="print the page instead of writing it")
    args = parser.parse_args(argv)
    page = generate()
    if args.stdout:
        sys.stdout.write(page)
        return 0
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != page:
            print(f"{OUTPUT} is out of date; run: python tools/gen_config_docs.py", file=sys.stderr)
            return 1
        print(f"{OUTPUT}: up to date")
        return 0
    write_atomic(OUTPUT, page)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
