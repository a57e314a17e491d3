"""Atomic file writes (nothing a user made is left torn by an interrupt), and
whether progress bars may show (:func:`progress_enabled`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

LOGGER = "compaudit"
"""The logger library code writes to; the CLI sets its level from ``-q``/``-v``."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    The temporary file lives in the same directory so that the final
    ``os.replace`` is atomic on POSIX. On any exception it is removed and
    ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(
    path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None], suffix: str = ""
) -> None:
    """Call ``writer`` on a binary file handle, then move the file over ``path``."""
    with atomic_path(path, suffix=suffix) as tmp, open(tmp, "wb") as fh:
        writer(fh)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's content, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def progress_enabled(*, terminal: bool = True) -> bool:
    """Whether a progress bar may show: the one rule every bar in compaudit follows.

    True unless the ``compaudit`` logger's own level is set above INFO (the
    CLI sets ERROR under ``-q``; a library user silences bars the same way,
    ``logging.getLogger("compaudit").setLevel(logging.WARNING)``; left unset,
    bars show, as a notebook user expects) and, unless ``terminal=False``,
    stderr is a terminal.
    """
    level = logging.getLogger(LOGGER).level
    if level > logging.INFO:
        return False
    if not terminal:
        return True
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False
