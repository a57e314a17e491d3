"""Where built-in datasets are found, and the checked download into the user cache.

Lookup order for a dataset ``NAME`` (first place holding every needed file wins):

1. an explicit folder (``NAME?path=DIR`` or a folder given as the spec); when
   given, nothing else is searched and nothing is downloaded;
2. ``$COMPAUDIT_DATA_DIR/NAME/``;
3. the user cache, ``$XDG_CACHE_HOME/compaudit/data/NAME/`` (default
   ``~/.cache/compaudit/data/NAME/``);
4. the system copy, ``/usr/share/datasets/NAME/`` (Debian's ``dataset-*``
   packages), for datasets that have one.

Only when no copy is found are the files downloaded into the user cache,
each checked against a known sha256 and written atomically. Set
``COMPAUDIT_NO_DOWNLOAD=1`` to forbid downloads (CI, air-gapped machines).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from compaudit._io import atomic_path, progress_enabled
from compaudit.errors import PROBLEM_SEP, DataNotFoundError

__all__ = [
    "ENV_DATA_DIR",
    "ENV_NO_DOWNLOAD",
    "Remote",
    "locate",
    "search_places",
    "user_cache_dir",
]

ENV_DATA_DIR = "COMPAUDIT_DATA_DIR"
ENV_NO_DOWNLOAD = "COMPAUDIT_NO_DOWNLOAD"
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20

ERR_NOT_FOUND = "dataset '{name}' not found; looked for {files} in: {places}. {download} Fix: {fix}"
PLACE_LINE = "{path} ({label})"
ENV_UNSET = "$" + ENV_DATA_DIR + "/{name}"
ENV_UNSET_LABEL = "$" + ENV_DATA_DIR + " is not set"
DL_EXPLICIT = "Not downloaded: an explicit folder was given."
DL_DISABLED = f"Not downloaded: downloads are disabled by ${ENV_NO_DOWNLOAD}=1."
DL_NONE = "No download source is known for this dataset."
DL_FAILED = "Download from {url} into {dest} failed: {reason}."
ERR_SHA = "sha256 mismatch for {name}: expected {expected}, got {got} (corrupt or wrong file)"


@dataclass(frozen=True)
class Remote:
    """A file that can be downloaded and checked.

    Attributes
    ----------
    filename : str
        Name in the dataset folder.
    url : str
    sha256 : str
        Expected hex digest.
    gunzip : bool
        Check the digest of the decompressed content rather than of the file;
        mirrors re-compress ``.gz`` files with different headers, the content
        is what matters.
    """

    filename: str
    url: str
    sha256: str
    gunzip: bool = False


@dataclass(frozen=True)
class Place:
    """One folder searched, and why it was searched (for error messages).

    ``path`` is ``None`` for a place that could not be searched (an unset
    environment variable); it is still listed so the user sees the option.
    """

    path: Path | None
    label: str
    shown: str


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/compaudit/data`` (``~/.cache/compaudit/data`` by default)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "compaudit" / "data"


def search_places(name: str, *, system: str | None = None) -> list[Place]:
    """Folders to search for dataset ``name``, in order.

    Parameters
    ----------
    name : str
        Folder name of the dataset, e.g. ``"fashion-mnist"``.
    system : str or None
        The Debian package that installs the dataset under
        ``/usr/share/datasets/NAME``, or ``None`` when there is none.
    """
    env = os.environ.get(ENV_DATA_DIR, "")
    if env:
        places = [_place(Path(env) / name, f"${ENV_DATA_DIR}")]
    else:
        places = [Place(None, ENV_UNSET_LABEL, ENV_UNSET.format(name=name))]
    places.append(_place(user_cache_dir() / name, "user cache"))
    if system:
        places.append(_place(SYSTEM_DATA_DIR / name, f"system copy, Debian package {system}"))
    return places


def _place(path: Path, label: str) -> Place:
    # Absolute, so messages and recorded sources say where we really looked.
    path = Path(os.path.abspath(path))
    return Place(path, label, str(path))


def resolve(folder: Path, files: Sequence[Sequence[str]]) -> list[Path] | None:
    """The first existing alternative of each wanted file in ``folder``, or ``None``."""
    found: list[Path] = []
    for alternatives in files:
        hit = next((folder / f for f in alternatives if (folder / f).is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found


def _urlopen(url: str, timeout: float) -> IO[bytes]:
    """Open ``url`` (tests replace this so they never touch the network)."""
    return urllib.request.urlopen(url, timeout=timeout)  # type: ignore[no-any-return]


def _digest(path: Path, gunzip: bool) -> str:
    h = hashlib.sha256()
    opener = gzip.open if gunzip else open
    with opener(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def download(remote: Remote, dest: Path) -> Path:
    """Download ``remote`` to ``dest/filename`` atomically, checking its sha256.

    A transient progress bar shows on stderr when
    :func:`~compaudit._io.progress_enabled` (no ``-q``, stderr a terminal).

    Raises
    ------
    OSError
        Network or disk failure (``urllib.error.URLError`` is an ``OSError``).
    ValueError
        The digest does not match; nothing is left at the destination.
    """
    target = dest / remote.filename
    console = Console(file=sys.stderr)
    columns = (TextColumn(remote.filename), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with (
        _urlopen(remote.url, DOWNLOAD_TIMEOUT_S) as response,
        atomic_path(target) as tmp,
        Progress(*columns, console=console, transient=True, disable=not progress_enabled()) as bar,
    ):
        length = getattr(response, "headers", {}).get("Content-Length")
        task = bar.add_task("download", total=int(length) if length else None)
        with open(tmp, "wb") as out:
            while block := response.read(_CHUNK):
                out.write(block)
                bar.advance(task, len(block))
        got = _digest(tmp, remote.gunzip)
        if got != remote.sha256:
            raise ValueError(ERR_SHA.format(name=remote.filename, expected=remote.sha256, got=got))
    return target


def locate(
    name: str,
    files: Sequence[Sequence[str]],
    *,
    explicit: Path | None,
    remotes: Sequence[Remote],
    system: str | None,
    fix: str,
) -> list[Path]:
    """Find (or download) the files of a built-in dataset.

    Parameters
    ----------
    name : str
        Dataset folder name.
    files : sequence of sequences of str
        Each wanted file as a list of accepted names (e.g. ``x.gz`` or ``x``).
    explicit : Path or None
        A folder the user named; searched alone, never downloaded into.
    remotes : sequence of Remote
        Download sources for the first name of each wanted file, in order;
        empty when the dataset cannot be downloaded.
    system : str or None
        Debian package providing ``/usr/share/datasets/NAME``.
    fix : str
        How the user can provide the data (ends the error message).

    Returns
    -------
    list of Path
        One path per wanted file.

    Raises
    ------
    DataNotFoundError
        Listing every place searched, why nothing was downloaded, and ``fix``.
    """
    if explicit is not None:
        places = [_place(explicit, "given folder")]
    else:
        places = search_places(name, system=system)
    for place in places:
        hit = None if place.path is None else resolve(place.path, files)
        if hit is not None:
            return hit
    if explicit is not None:
        outcome = DL_EXPLICIT
    elif not remotes:
        outcome = DL_NONE
    elif os.environ.get(ENV_NO_DOWNLOAD, "").strip().lower() in {"1", "true", "yes", "on"}:
        outcome = DL_DISABLED
    else:
        cache = user_cache_dir() / name
        fetched: list[Path] = []
        for remote in remotes:
            try:
                fetched.append(download(remote, cache))
            except (OSError, ValueError, EOFError) as exc:
                outcome = DL_FAILED.format(url=remote.url, dest=cache, reason=exc)
                break
        else:
            return fetched
    listing = PROBLEM_SEP.join(PLACE_LINE.format(path=p.shown, label=p.label) for p in places)
    wanted = ", ".join(alt[0] for alt in files)
    raise DataNotFoundError(
        ERR_NOT_FOUND.format(name=name, files=wanted, places=listing, download=outcome, fix=fix)
    )
