"""Bounded reading of ``.npz`` files, the one reader of every ``.npz`` compaudit opens.

``.npz`` files come from pull requests and are hostile (issue 11): a 200-byte
file whose ``.npy`` header claims 10**12 elements makes ``numpy.load``
allocate terabytes, a zip bomb inflates without bound, an object array
unpickles. :func:`read_npz` decides from the zip headers and each member's
``.npy`` header, before anything is allocated, that the file is what it
claims to be:

* the arrays' declared uncompressed sizes sum to at most a limit, and there
  are at most :data:`MAX_NPZ_MEMBERS` of them;
* no member claims a compression ratio deflate cannot reach, is encrypted,
  or uses a method other than stored or deflate;
* every ``.npy`` header is format 1.0 or 2.0, names no object dtype (nothing
  is ever unpickled) and claims no more bytes (shape x itemsize) than its
  member holds.

Each kind of file has its own limit on the uncompressed size (``what``, the
name used in messages)::

    what                   default   overridden by
    "predictions file"     2 GiB     $COMPAUDIT_MAX_NPZ_BYTES
    "dataset"              8 GiB     $COMPAUDIT_MAX_DATASET_BYTES
    "cache entry"          2 GiB     $COMPAUDIT_MAX_NPZ_BYTES
    "influence runs file"  2 GiB     $COMPAUDIT_MAX_NPZ_BYTES
    "scores file"          2 GiB     $COMPAUDIT_MAX_NPZ_BYTES

A dataset holds the model inputs, so it may legitimately be larger than the
predictions made from it. An explicit ``limit`` argument beats both. Every
refusal is an :class:`~compaudit.errors.InputError` naming the file and what
it is.
"""

from __future__ import annotations

import math
import os
import struct
import zipfile
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from compaudit.errors import InputError

__all__ = [
    "ENV_MAX_DATASET_BYTES",
    "ENV_MAX_NPZ_BYTES",
    "MAX_DATASET_BYTES",
    "MAX_NPZ_BYTES",
    "MAX_NPZ_MEMBERS",
    "NpzKind",
    "npz_limit",
    "read_npz",
    "show",
]

NpzKind = Literal[
    "predictions file", "dataset", "cache entry", "influence runs file", "scores file"
]
"""What an ``.npz`` is, as its messages name it; decides its size limit."""

MAX_NPZ_BYTES = 2 * 1024**3
"""Default limit on the uncompressed size of an ``.npz`` other than a dataset."""
ENV_MAX_NPZ_BYTES = "COMPAUDIT_MAX_NPZ_BYTES"
"""Environment variable that overrides :data:`MAX_NPZ_BYTES` (a positive number of bytes)."""
MAX_DATASET_BYTES = 8 * 1024**3
"""Default limit on the uncompressed size of a dataset ``.npz``."""
ENV_MAX_DATASET_BYTES = "COMPAUDIT_MAX_DATASET_BYTES"
"""Environment variable that overrides :data:`MAX_DATASET_BYTES` (a positive number of bytes)."""
MAX_NPZ_MEMBERS = 10_000
"""Most arrays an ``.npz`` may hold."""
_MAX_DEFLATE_RATIO = 1100  # deflate never exceeds about 1032:1; a member claiming more lies
_SHOW_CHARS = 80


@dataclass(frozen=True)
class _Kind:
    default: int
    env: str
    fix: str | None  # the end of ERR_NPZ_UNREADABLE: how to write a good one


_KINDS: dict[str, _Kind] = {
    "predictions file": _Kind(
        MAX_NPZ_BYTES, ENV_MAX_NPZ_BYTES, "write it with numpy.savez or `compaudit predict`"
    ),
    "dataset": _Kind(MAX_DATASET_BYTES, ENV_MAX_DATASET_BYTES, "write it with numpy.savez"),
    # No fix: the cache, its one reader, says what it does (deletes and recomputes it).
    "cache entry": _Kind(MAX_NPZ_BYTES, ENV_MAX_NPZ_BYTES, None),
    "influence runs file": _Kind(
        MAX_NPZ_BYTES, ENV_MAX_NPZ_BYTES, "write it with compaudit.analysis.influence.save_runs"
    ),
    "scores file": _Kind(
        MAX_NPZ_BYTES, ENV_MAX_NPZ_BYTES, "write 'ids' and 'scores' with numpy.savez (no pickles)"
    ),
}

# Error messages live here so tests can assert them exactly (fairlearn style).
ERR_NPZ_UNREADABLE_BARE = "{src}: not a readable .npz {what} ({reason})"
ERR_NPZ_UNREADABLE = ERR_NPZ_UNREADABLE_BARE + "; {fix}"
ERR_NPZ_TOO_LARGE = (
    "{src}: the {what}'s arrays hold {size:,} bytes uncompressed, more than the limit of "
    "{limit:,}; if the file is genuine, raise the limit with {env}=BYTES"
)
ERR_NPZ_MEMBERS = "{src}: the {what} has {n:,} arrays, more than the limit of {limit:,}"
ERR_NPZ_MEMBER = (
    "{src}: array {member} {problem}; the {what} is corrupt or was not written by numpy.savez"
)
ERR_ENV_LIMIT = "{env}={value!r} is not a positive whole number of bytes; fix it or unset it"
# The {problem} of ERR_NPZ_MEMBER.
PROBLEM_ENCRYPTED = "is encrypted"
PROBLEM_METHOD = (
    "uses zip compression method {method}; only stored and deflate members "
    "(numpy.savez, numpy.savez_compressed) are read"
)
PROBLEM_RATIO = "claims a compression ratio of {ratio}:1, more than deflate can reach (a zip bomb?)"
PROBLEM_NOT_NPY = "is not a .npy array ({reason})"
PROBLEM_VERSION = "uses .npy format version {version}; only 1.0 and 2.0 are read"
PROBLEM_OBJECT = (
    "holds Python objects (dtype {dtype}); compaudit never unpickles, store numbers or strings"
)
PROBLEM_ZERO_ITEMSIZE = "has the zero-size dtype {dtype}"
PROBLEM_SIZE = "claims shape {shape} of {dtype} ({claimed:,} bytes) but holds {held:,} bytes"

# What a corrupt zip raises, from zipfile, zlib and numpy alike.
_CORRUPT = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    OverflowError,
    struct.error,
    zlib.error,
)


def show(text: str) -> str:
    """A string from a file, safe to print: control characters escaped, length bounded."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: _SHOW_CHARS + 1])
    return repr(shown[:_SHOW_CHARS] + ("..." if len(shown) > _SHOW_CHARS else ""))


def npz_limit(what: NpzKind, max_bytes: int | None = None) -> int:
    """The size limit of a ``what``: ``max_bytes``, else its variable, else its default."""
    if max_bytes is not None:
        return max_bytes
    kind = _KINDS[what]
    raw = os.environ.get(kind.env, "").strip()
    if not raw:
        return kind.default
    value = int(raw) if raw.isdigit() else 0
    if value <= 0:
        raise InputError(ERR_ENV_LIMIT.format(env=kind.env, value=raw))
    return value


def _check_members(infos: list[zipfile.ZipInfo], src: str, what: str, limit: int) -> None:
    """Refuse, from the zip headers alone, members that would decompress beyond ``limit``.

    zipfile never inflates a member past its declared size (the CRC check
    fails instead), so bounding the declared sizes bounds what we read.
    """
    total = sum(info.file_size for info in infos)
    if total > limit:
        env = _KINDS[what].env
        raise InputError(
            ERR_NPZ_TOO_LARGE.format(src=src, what=what, size=total, limit=limit, env=env)
        )
    for info in infos:
        problem = None
        if info.flag_bits & 0x1:
            problem = PROBLEM_ENCRYPTED
        elif info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            problem = PROBLEM_METHOD.format(method=info.compress_type)
        elif (
            info.compress_type == zipfile.ZIP_DEFLATED
            and info.file_size > max(info.compress_size, 1) * _MAX_DEFLATE_RATIO
        ):
            ratio = f"{info.file_size // max(info.compress_size, 1):,}"
            problem = PROBLEM_RATIO.format(ratio=ratio)
        if problem is not None:
            member = show(info.filename)
            raise InputError(
                ERR_NPZ_MEMBER.format(src=src, what=what, member=member, problem=problem)
            )


def _check_npy_header(fh: Any, info: zipfile.ZipInfo) -> str | None:
    """What is wrong with one member's ``.npy`` header (None: it fits its member).

    The shape and dtype in the header decide what numpy allocates, so they
    are checked against the bytes the member really holds before reading.
    """
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            return PROBLEM_VERSION.format(version=".".join(map(str, version)))
    except (ValueError, TypeError, SyntaxError) as exc:
        return PROBLEM_NOT_NPY.format(reason=show(str(exc)))
    if dtype.hasobject:
        return PROBLEM_OBJECT.format(dtype=dtype)
    count = math.prod(shape)
    if dtype.itemsize == 0 and count:
        return PROBLEM_ZERO_ITEMSIZE.format(dtype=dtype)
    held = info.file_size - fh.tell()
    if min(shape, default=0) < 0 or count * dtype.itemsize > held:
        claimed = max(count, 0) * dtype.itemsize
        return PROBLEM_SIZE.format(shape=shape, dtype=dtype, claimed=claimed, held=held)
    return None


def read_npz(
    path: str | os.PathLike[str],
    *,
    what: NpzKind,
    limit: int | None = None,
    allowed: Collection[str] | None = None,
) -> dict[str, np.ndarray]:
    """Read the arrays of an ``.npz``, each size-checked before it is allocated.

    Parameters
    ----------
    path : str or PathLike
        The file; messages name it as ``str(path)``.
    what : NpzKind
        What the file is: named in messages, decides the default limit.
    limit : int, optional
        Limit on the read arrays' total uncompressed size in bytes; default
        :func:`npz_limit` of ``what`` (see the module docstring).
    allowed : collection of str, optional
        The arrays to read; any other member is neither inflated nor
        checked, as if absent. Default: every member.

    Returns
    -------
    dict of str to ndarray
        Arrays by name (the member name without ``.npy``), in file order.

    Raises
    ------
    InputError
        Not a zip, a corrupt member, too many or too large arrays, an
        impossible compression ratio, encryption, an unknown compression
        method, a bad or lying ``.npy`` header, an object dtype.
    """
    src = str(path)
    cap = npz_limit(what, limit)
    data: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise InputError(
                    ERR_NPZ_MEMBERS.format(src=src, what=what, n=len(infos), limit=MAX_NPZ_MEMBERS)
                )
            if allowed is not None:
                infos = [i for i in infos if i.filename.removesuffix(".npy") in allowed]
            _check_members(infos, src, what, cap)
            for info in infos:
                with zf.open(info) as fh:
                    problem = _check_npy_header(fh, info)
                if problem is not None:
                    member = show(info.filename)
                    raise InputError(
                        ERR_NPZ_MEMBER.format(src=src, what=what, member=member, problem=problem)
                    )
                with zf.open(info) as fh:
                    arr = np.lib.format.read_array(fh, allow_pickle=False)
                data[info.filename.removesuffix(".npy")] = arr
    except InputError:
        raise
    except _CORRUPT as exc:
        reason = show(str(exc) or type(exc).__name__)
        fix = _KINDS[what].fix
        template = ERR_NPZ_UNREADABLE if fix is not None else ERR_NPZ_UNREADABLE_BARE
        raise InputError(template.format(src=src, what=what, reason=reason, fix=fix)) from None
    return data
