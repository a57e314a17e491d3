"""File writes that fail loudly and leave nothing torn, and whether progress bars may show.

* :func:`atomic_path` and the ``atomic_write_*`` helpers: a file appears
  complete or not at all (a temporary beside it, fsynced, then renamed);
  an interrupt or a full disk leaves the old file and no temporary. Their
  :class:`OSError` names the file asked for, never the temporary.
* :func:`file_set`: several files (the report formats of one run) committed
  into a directory as one set, replacing the previous run's set
  (:data:`SET_MARKER` records which files are compaudit's).
* :func:`output_error`: the one-line message of a failed write (path, cause,
  errno name, fix), as an :class:`OutputError` the CLI shows with exit 2.
* :func:`progress_enabled`: the one rule every progress bar follows.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any

from compaudit.errors import CompauditError

LOGGER = "compaudit"
"""The logger library code writes to; the CLI sets its level from ``-q``/``-v``."""

ERR_WRITE = "{path}: {cause} ({code}); {fix}"
"""A write that failed: the file, ``strerror`` in lower case, the errno name, the fix."""
FIX_SPACE = "free space or choose another {option}"
FIX_WRITABLE = "choose a writable {option}"
FIX_FILE_SIZE = "raise the file size limit (ulimit -f) or choose another {option}"
FIX_NAME = "choose a shorter {option}"
FIX_OTHER = "choose another {option}"
_FIXES = {
    errno.ENOSPC: FIX_SPACE,
    errno.EDQUOT: FIX_SPACE,
    errno.EROFS: FIX_WRITABLE,
    errno.EACCES: FIX_WRITABLE,
    errno.EPERM: FIX_WRITABLE,
    errno.EFBIG: FIX_FILE_SIZE,
    errno.ENAMETOOLONG: FIX_NAME,
}
WRITE_FAULTS = frozenset(_FIXES)
"""errnos that mean "this place cannot take the file" (never a bug in compaudit)."""

SET_MARKER = ".compaudit-set.json"
"""In a directory :func:`file_set` wrote: the files of the last complete set and their sha256."""
SET_FORMAT = "compaudit.file-set/v1"
_STAGING = ".compaudit-staging-"
_MARKER_MAX_BYTES = 1 << 20  # the marker lies in a directory others may have filled: bounded
_SNIFF_BYTES = 1 << 16
_NAME_MAX = 255


class OutputError(CompauditError, OSError):
    """A file compaudit was asked to write could not be written (see :func:`output_error`).

    An :class:`OSError` too, with the original ``errno``, so that code which
    tolerates unwritable files (the prediction cache) keeps doing so.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (the trainer's pool) with its message and errno.
        return (type(self), (str(self), self.errno))


def output_error(
    exc: OSError, path: str | os.PathLike[str] | None = None, *, option: str = "--out"
) -> OutputError:
    """The one-line error of a failed write: ``PATH: CAUSE (ENAME); FIX``.

    Parameters
    ----------
    exc : OSError
        What the write raised (an :class:`OutputError` is returned as it is).
    path : path-like, optional
        The file to name; default ``exc.filename``.
    option : str
        Where the user chose the place, for the fix (``--out``).

    Returns
    -------
    OutputError
        E.g. ``report/report.html: no space left on device (ENOSPC); free
        space or choose another --out``.
    """
    if isinstance(exc, OutputError):
        return exc
    code = exc.errno
    shown = path if path is not None else exc.filename
    cause = os.strerror(code) if code else (exc.strerror or str(exc) or type(exc).__name__)
    fix = _FIXES.get(code or 0, FIX_OTHER).format(option=option)
    message = ERR_WRITE.format(
        path=os.fspath(shown) if shown is not None else "?",
        cause=cause[:1].lower() + cause[1:],
        code=errno.errorcode.get(code or 0, "no errno"),
        fix=fix,
    )
    return OutputError(message, code)


# -- signals ---------------------------------------------------------------------------


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block is done, then deliver them.

    For the few renames that must all happen or none (a file set's commit, a
    temporary's removal): an interrupt then arrives just after them. Only the
    main thread can install handlers; elsewhere the block runs as it is
    (Python delivers signals to the main thread anyway).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    saved: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        if previous is None:  # installed outside Python: cannot be put back
            continue
        saved[sig] = previous
        signal.signal(sig, hold)
    try:
        yield
    finally:
        for held, handler in saved.items():
            signal.signal(held, handler)
        if caught:
            signal.raise_signal(caught[0])  # now, to the handler that was there


# -- single files ------------------------------------------------------------------------


def _tmp_prefix(name: str, suffix: str) -> str:
    # A temporary's name must fit where the target's does (NAME_MAX bytes): cut the stem.
    room = _NAME_MAX - len(os.fsencode(suffix)) - len(".tmp") - 2 - 8  # dots, random part
    stem = os.fsencode(name)[: max(room, 1)].decode(errors="ignore")
    return f".{stem}."


def _name_too_long(target: Path) -> bool:
    try:
        limit = os.pathconf(target.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = _NAME_MAX
    return len(os.fsencode(target.name)) > limit


def _disk_full(directory: Path) -> bool:
    """Whether the file system of ``directory`` has no block left for an ordinary user."""
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):
        return False
    return st.f_blocks > 0 and st.f_bavail == 0


def _named(exc: OSError, target: Path, tmp: Path | None = None) -> OSError:
    """``exc`` naming ``target`` where it named the temporary (or nothing)."""
    if exc.filename not in (None, str(tmp), os.fspath(target)) or exc.errno is None:
        return exc
    named = OSError(exc.errno, os.strerror(exc.errno), os.fspath(target))
    named.__cause__ = exc
    return named


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the platform can: not on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], suffix: str = "", *, fsync: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    The temporary lives in the same directory so that the final
    ``os.replace`` is atomic on POSIX. On any exception, an interrupt
    included, it is removed and ``path`` is left untouched.

    Parameters
    ----------
    path : path-like
        The file to write (its directory is created).
    suffix : str
        The temporary's suffix before ``.tmp`` (some writers pick the format from it).
    fsync : bool
        Flush the temporary to disk before the rename; False when the body did.

    Raises
    ------
    OSError
        With ``filename`` the target, never the temporary. A body that fails
        (or a path-based writer that succeeds: a C++ writer may not check its
        ``write`` calls) while the file system has no space left is reported
        as ENOSPC: the file it wrote cannot be trusted.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if _name_too_long(target):
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), os.fspath(target))
        fd, tmp = tempfile.mkstemp(
            prefix=_tmp_prefix(target.name, suffix), suffix=suffix + ".tmp", dir=target.parent
        )
        os.close(fd)
    except OSError as exc:
        raise _named(exc, target) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if fsync:
            if _disk_full(target.parent):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(target))
            _fsync_file(tmp_path)
        # mkstemp creates 0600; give the file the mode a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        # A second Ctrl-C must not leave the temporary behind.
        with deferred_signals(), contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, CompauditError):
            raise _named(exc, target, tmp_path) from exc
        full = isinstance(exc, Exception) and _disk_full(target.parent)
        if full and not isinstance(exc, CompauditError):  # a writer broke on its own torn file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(target)) from exc
        raise


def _write_all(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through one descriptor, checking every call, then fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]  # a short write is continued, never dropped
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, fsync=False) as tmp:
        _write_all(tmp, data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(
    path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None], suffix: str = ""
) -> None:
    """Call ``writer`` on a binary file handle, then move the file over ``path``."""
    # close() raises what a buffered write deferred.
    with atomic_path(path, suffix=suffix, fsync=False) as tmp, open(tmp, "wb") as fh:
        writer(fh)
        fh.flush()
        os.fsync(fh.fileno())


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's content, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# -- a set of files, committed as one ------------------------------------------------------


def _plain_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and os.sep not in name
        and "\x00" not in name
        and not name.startswith(".compaudit")
    )


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)  # a link is never followed, nor removed
    except OSError:
        return False


def _recorded_set(out: Path) -> dict[str, str]:
    """The files :data:`SET_MARKER` lists, by name: sha256 (an unreadable marker lists none).

    The marker lies in a directory a pull request may have filled: it is read
    bounded, and only plain names with a sha256 are taken from it.
    """
    marker = out / SET_MARKER
    if not _regular(marker):
        return {}
    try:
        with open(marker, "rb") as fh:
            doc = json.loads(fh.read(_MARKER_MAX_BYTES + 1)[:_MARKER_MAX_BYTES])
    except (OSError, ValueError):
        return {}
    files = doc.get("files") if isinstance(doc, dict) else None
    if doc.get("format") != SET_FORMAT or not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if _plain_name(k) and isinstance(v, str)}


def _says_compaudit(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return b"compaudit" in fh.read(_SNIFF_BYTES).lower()
    except OSError:
        return False


def _previous_set(out: Path, owned: Iterable[str]) -> set[str]:
    """The files of ``out`` an earlier run wrote, and only those.

    A file the marker lists whose content is still what was recorded, and
    (for directories written before the marker existed) a file named like
    one of ``owned`` that says it is compaudit's. Anything else is the user's.
    """
    found = {
        name
        for name, digest in _recorded_set(out).items()
        if _regular(out / name) and sha256_file(out / name) == digest
    }
    found |= {n for n in owned if _plain_name(n) and _regular(out / n) and _says_compaudit(out / n)}
    return found


def _keep(target: Path, backup: Path, *, replaced_by: Path) -> None:
    """Keep the old ``target`` in ``backup`` so that a failed commit can put it back."""
    if _regular(target) and not replaced_by.is_dir():
        try:
            os.link(target, backup)  # the old file stays in place until the rename
            return
        except OSError:
            pass  # no hard links here (FAT, some network file systems): move it aside
    os.rename(target, backup)  # a directory cannot be replaced whole either


def _remove_dead_staging(out: Path) -> None:
    """Staging directories of runs that were killed (SIGKILL, power loss) before cleaning up."""
    for path in out.glob(f"{_STAGING}*"):
        pid = path.name[len(_STAGING) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue  # alive, someone else's


class FileSet:
    """Files written into a staging directory, then committed into ``out`` as one set.

    Made by :func:`file_set`; see there.
    """

    def __init__(self, out: Path, staging: Path, owned: Iterable[str], option: str) -> None:
        self.out = out
        self.staging = staging
        """Where the files are written first (inside ``out``: a rename moves them)."""
        self.owned = tuple(owned)
        self.option = option
        self.committed: list[Path] = []

    def stage(self, name: str | None, write: Callable[[Path], Path | None]) -> Path | None:
        """Call ``write(staging)``, which writes ``name`` there; return where it will be.

        An :class:`OSError` becomes an :class:`OutputError` naming ``out/name``,
        the file the user will look for, never the staging directory.
        """
        try:
            written = write(self.staging)
        except OSError as exc:
            shown = self.out / name if name else self.out
            raise output_error(exc, shown, option=self.option) from exc
        if written is None:
            return None
        try:
            return self.out / Path(written).relative_to(self.staging)
        except ValueError:
            return Path(written)  # a writer that wrote elsewhere

    def commit(self) -> list[Path]:
        """Put the staged files into ``out``, in place of the previous set; return them.

        The marker goes first and comes back last: a reader who finds
        :data:`SET_MARKER` finds the set it lists, each file with the recorded
        sha256. Every file is replaced by a rename (never seen half-written);
        files of the previous set that this one lacks are removed; if a
        rename fails, what was done is undone, and SIGINT/SIGTERM wait until
        it is over: ``out`` holds the old set or the new one, never a mix.
        """
        names = sorted(p.name for p in self.staging.iterdir())
        digests = {n: sha256_file(self.staging / n) for n in names if _regular(self.staging / n)}
        doc = {"format": SET_FORMAT, "files": digests}
        try:
            atomic_write_text(self.staging / SET_MARKER, json.dumps(doc, indent=1, sort_keys=True))
            backup = Path(tempfile.mkdtemp(prefix=f"{self.staging.name}-old-", dir=self.out))
        except OSError as exc:
            raise output_error(exc, self.out / SET_MARKER, option=self.option) from exc
        stale = sorted(_previous_set(self.out, self.owned) - set(names))
        taken: list[str] = []  # moved into the backup
        kept: list[tuple[str, bool]] = []  # (name, whether an old one was kept in the backup)
        current = self.out / SET_MARKER  # the file an error names
        with deferred_signals():
            try:
                for name in (SET_MARKER, *stale):
                    current = self.out / name
                    if current.exists() or current.is_symlink():
                        os.rename(current, backup / name)
                        taken.append(name)
                for name in names:
                    target = current = self.out / name
                    had = target.exists() or target.is_symlink()
                    if had:
                        _keep(target, backup / name, replaced_by=self.staging / name)
                    kept.append((name, had))
                    os.replace(self.staging / name, target)
                current = self.out / SET_MARKER
                os.replace(self.staging / SET_MARKER, current)
                _fsync_dir(self.out)
            except OSError as exc:
                self._undo(backup, taken, kept)
                raise output_error(exc, current, option=self.option) from exc
            finally:
                shutil.rmtree(backup, ignore_errors=True)
        self.committed = [self.out / n for n in names]
        return self.committed

    def _undo(self, backup: Path, taken: list[str], kept: list[tuple[str, bool]]) -> None:
        with contextlib.suppress(OSError):  # a new marker must not list the old files
            (self.out / SET_MARKER).unlink()
        for name, had in reversed(kept):
            target = self.out / name
            with contextlib.suppress(OSError):
                if had and (backup / name).exists():
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target)
                    os.replace(backup / name, target)
                elif not had:
                    (shutil.rmtree if target.is_dir() else os.unlink)(target)
        for name in taken:
            with contextlib.suppress(OSError):
                os.rename(backup / name, self.out / name)


@contextlib.contextmanager
def file_set(
    out: str | os.PathLike[str], *, owned: Iterable[str] = (), option: str = "--out"
) -> Iterator[FileSet]:
    """Write several files into ``out`` as one set: all of them, or none.

    Files are staged (:meth:`FileSet.stage`) in a temporary directory inside
    ``out``; :meth:`FileSet.commit` moves them in and removes the previous
    set's files that this set lacks (the files :data:`SET_MARKER` recorded,
    and files named like ``owned`` that say they are compaudit's; a user's
    own files are never touched). Leaving the block without a commit (an
    error, an interrupt) removes the staging directory and leaves ``out`` as
    it was.

    Parameters
    ----------
    out : path-like
        The directory (created).
    owned : iterable of str
        File names compaudit writes there (the reporters' ``filename``).
    option : str
        The option that chose ``out``, for error messages.

    Raises
    ------
    OutputError
        ``out`` cannot take the files (see :func:`output_error`).
    """
    root = Path(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_dead_staging(root)
        staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{os.getpid()}-", dir=root))
    except OSError as exc:  # named as the user wrote it, not the staging directory
        raise output_error(exc, root, option=option) from exc
    try:
        yield FileSet(root, staging, owned, option)
    finally:
        with deferred_signals():
            shutil.rmtree(staging, ignore_errors=True)


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
