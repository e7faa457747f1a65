"""Writing files so that a reader never sees half of one: the one helper every writer uses.

A file is written under a temporary name in its own folder, flushed to disk, given
the permissions a plain ``open`` would give it (``mkstemp`` makes 0600), and only
then renamed over the target; on any failure the temporary file is removed and
the target is untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

Content = Union[str, bytes, Callable[[BinaryIO], None]]


def usual_mode(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the mode a plain ``open`` would (0666 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def atomic_write(path: str | os.PathLike[str], content: Content, *, encoding: str = "utf-8") -> Path:
    """Write ``content`` (text, bytes, or a function writing to a binary file) to ``path`` atomically.

    Raises
    ------
    OSError
        The folder is missing or not writable, or the write failed (the target is then unchanged
        and no temporary file is left behind).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode(encoding) if isinstance(content, str) else content)
            fh.flush()
            os.fsync(fh.fileno())
        usual_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
