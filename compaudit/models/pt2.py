"""Load a ``torch.export`` archive (``.pt2``) as data: no pickle, no native code.

``torch.export.load`` unpickles several parts of the archive without
restriction (``torch.load(weights_only=False)`` for "pickled" weights and
constants, ``pickle.loads`` for opaque objects, a fall-back for sample inputs
that the restricted unpickler refuses) and loads AOTInductor shared
libraries. A ``.pt2`` from a pull request is hostile, so before torch sees it
:func:`load_exported_program` checks, on the very bytes torch will read:

* every record is one a plain exported program has (an allowlist: graph
  JSON, payload configs, raw tensor payloads, sample inputs, extra files);
* every weight and constant is a raw tensor, never a pickle;
* the sample inputs unpickle with ``weights_only=True`` (so torch's own
  first, restricted attempt succeeds and its unrestricted fall-back never
  runs);

and after loading, that every operator of every graph is a tensor operator
without side effects outside the process (``aten::from_file`` and
``aten::save`` touch files).
"""

from __future__ import annotations

import io
import json
import math
import operator
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from compaudit.errors import ModelError

__all__ = [
    "ERR_PT2_OPERATOR",
    "ERR_PT2_PICKLE",
    "ERR_PT2_RECORD",
    "ERR_PT2_TOO_LARGE",
    "ERR_PT2_UNREADABLE",
    "MAX_PT2_BYTES",
    "MAX_PT2_CONFIG_BYTES",
    "MAX_PT2_RECORDS",
    "load_exported_program",
]

MAX_PT2_BYTES = 8 * 1024**3
"""A ``.pt2`` larger than this is refused unread (it is read into memory whole)."""
MAX_PT2_RECORDS = 100_000
MAX_PT2_CONFIG_BYTES = 64 * 1024**2
"""Largest JSON record parsed (graph and payload configs)."""

_FIX = (
    "compaudit loads .pt2 files as data; save a plain program with "
    "torch.export.save(torch.export.export(model, args), path), or export the model to ONNX"
)
ERR_PT2_UNREADABLE = (
    "{path}: not a readable torch.export program ({reason}); save it again with "
    "torch.export.save(torch.export.export(model, args), path)"
)
ERR_PT2_TOO_LARGE = "{path}: {what} ({size}) exceeds compaudit's limit of {limit}; " + _FIX
ERR_PT2_RECORD = (
    "{path}: refusing the archive: record {record!r} is not part of a plain exported "
    "program (compiled code, custom objects or a legacy format can run code when loaded); " + _FIX
)
ERR_PT2_PICKLE = (
    "{path}: refusing the archive: {what} is a pickle that could run code when loaded "
    "({reason}); " + _FIX
)
ERR_PT2_OPERATOR = (
    "{path}: refusing the program: it calls {op}, which is not a side-effect-free tensor "
    "operator (it could read or write files); " + _FIX
)

# Records of a plain program, relative to the archive's root folder.
_ALLOWED_RECORDS = (
    re.compile(r"archive_format|archive_version|byteorder|\.data/[\w.]+"),
    re.compile(r"models/(?P<model>\w+)\.json"),
    re.compile(r"data/weights/\w+_weights_config\.json"),
    re.compile(r"data/constants/\w+_constants_config\.json"),
    re.compile(r"data/weights/weight_\d+"),
    re.compile(r"data/constants/tensor_\d+"),
    re.compile(r"data/sample_inputs/\w+\.pt"),
    re.compile(r"extra/[^\x00]+"),
)
_SAFE_NAMESPACES = frozenset(
    {"aten", "prims", "quantized", "_quantized", "quantized_decomposed", "higher_order"}
)
# Tensor ops in safe namespaces that reach outside the process.
_UNSAFE_OPS = frozenset({"aten::from_file", "aten::save", "aten::_print", "aten::warn"})
_SAFE_HOPS = frozenset(
    {
        "cond",
        "while_loop",
        "map_impl",
        "scan",
        "auto_functionalized",
        "auto_functionalized_v2",
        "wrap_with_set_grad_enabled",
        "wrap_with_autocast",
        "invoke_subgraph",
        "with_effects",
    }
)


def _mib(n: int) -> str:
    return f"{n / 1024**2:.0f} MiB"


def _records(path: Path, data: bytes) -> list[str]:
    """The archive's record names, read by torch's own reader (what it will load).

    The zip's own directory must agree: one root folder, no name twice. Two
    readers that disagree on a duplicate, or torch's legacy loader (which
    looks for a top-level ``version`` and unpickles freely), cannot then see
    records these checks did not.
    """
    import torch

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.namelist()
        names = list(torch._C.PyTorchFileReader(io.BytesIO(data)).get_all_records())
    except Exception as exc:
        raise ModelError(ERR_PT2_UNREADABLE.format(path=path, reason=_short(exc))) from exc
    roots = {e.split("/", 1)[0] for e in entries}
    if len(set(entries)) != len(entries) or len(roots) != 1 or any("/" not in e for e in entries):
        reason = "not one root folder of uniquely named records"
        raise ModelError(ERR_PT2_UNREADABLE.format(path=path, reason=reason))
    if len(names) > MAX_PT2_RECORDS:
        raise ModelError(
            ERR_PT2_TOO_LARGE.format(
                path=path, what="record count", size=len(names), limit=MAX_PT2_RECORDS
            )
        )
    return [str(n) for n in names]


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__


def _read(path: Path, data: bytes, record: str) -> bytes:
    import torch

    return bytes(torch._C.PyTorchFileReader(io.BytesIO(data)).get_record(record))


def _json(path: Path, data: bytes, record: str) -> Any:
    raw = _read(path, data, record)
    if len(raw) > MAX_PT2_CONFIG_BYTES:
        raise ModelError(
            ERR_PT2_TOO_LARGE.format(
                path=path, what=record, size=_mib(len(raw)), limit=_mib(MAX_PT2_CONFIG_BYTES)
            )
        )
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = f"{record} is not valid JSON: {_short(exc)}"
        raise ModelError(ERR_PT2_UNREADABLE.format(path=path, reason=reason)) from exc


def _check_payload_config(path: Path, data: bytes, record: str) -> None:
    config = _json(path, data, record)
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        reason = f"{record} is not a payload config"
        raise ModelError(ERR_PT2_UNREADABLE.format(path=path, reason=reason))
    for fqn, meta in entries.items():
        # Raw tensors only: torch unpickles use_pickle payloads without restriction,
        # and custom/opaque objects (path names other than weight_N/tensor_N) too.
        name = meta.get("path_name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"(weight|tensor)_\d+", name):
            raise ModelError(ERR_PT2_RECORD.format(path=path, record=f"{record}: {fqn}"))
        if meta.get("use_pickle") is not False:
            raise ModelError(
                ERR_PT2_PICKLE.format(
                    path=path, what=f"{fqn!r} in {record}", reason="use_pickle is set"
                )
            )


def _check_sample_inputs(path: Path, data: bytes, record: str) -> None:
    import torch

    try:
        torch.load(io.BytesIO(_read(path, data, record)), weights_only=True)
    except Exception as exc:
        raise ModelError(ERR_PT2_PICKLE.format(path=path, what=record, reason=_short(exc))) from exc


def _check_archive(path: Path, data: bytes) -> None:
    names = _records(path, data)
    for name in names:
        if not any(rx.fullmatch(name) for rx in _ALLOWED_RECORDS):
            raise ModelError(ERR_PT2_RECORD.format(path=path, record=name))
        if name.endswith("_config.json"):
            _check_payload_config(path, data, name)
        elif name.startswith("data/sample_inputs/"):
            _check_sample_inputs(path, data, name)


def _safe_target(target: Any) -> bool:
    import torch

    if isinstance(target, torch._ops.OpOverload | torch._ops.OpOverloadPacket):
        if isinstance(target, torch._ops.OpOverload):
            name = str(target._schema.name)
        else:
            name = str(target._qualified_op_name)
        return name.split("::", 1)[0] in _SAFE_NAMESPACES and name not in _UNSAFE_OPS
    if isinstance(target, torch._ops.HigherOrderOperator):
        return target.name() in _SAFE_HOPS  # type: ignore[no-untyped-call]
    # Python arithmetic on sizes (getitem, add, ceil, sym_max, ...).
    if getattr(target, "__module__", None) in ("_operator", "math"):
        return target is getattr(operator, getattr(target, "__name__", ""), None) or (
            target is getattr(math, getattr(target, "__name__", ""), None)
        )
    return getattr(target, "__name__", "").startswith("sym_") and target is getattr(
        torch, target.__name__, None
    )


def _describe(target: Any) -> str:
    import torch

    if isinstance(target, torch._ops.OpOverload):
        return str(target._schema.name)
    return repr(getattr(target, "__qualname__", None) or target)[:120]


def _inner_ops(value: Any) -> Iterator[Any]:
    """Operators passed as arguments (``auto_functionalized(aten.op, ...)``)."""
    import torch

    if isinstance(value, torch._ops.OpOverload | torch._ops.HigherOrderOperator):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _inner_ops(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _inner_ops(item)


def _check_graph(path: Path, program: Any) -> None:
    import torch

    for module in program.graph_module.modules():
        if not isinstance(module, torch.fx.GraphModule):
            continue
        for node in module.graph.nodes:
            if node.op in ("call_module", "call_method"):
                raise ModelError(ERR_PT2_OPERATOR.format(path=path, op=f"{node.op} {node.target}"))
            if node.op != "call_function":
                continue
            for target in (node.target, *_inner_ops((node.args, node.kwargs))):
                if not _safe_target(target):
                    raise ModelError(ERR_PT2_OPERATOR.format(path=path, op=_describe(target)))


@contextmanager
def _quiet_torch_export() -> Iterator[None]:
    # torch.export.load logs a full traceback at WARNING before it raises.
    import logging

    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_exported_program(path: Path) -> Any:
    """The unlifted module of the ``.pt2`` at ``path``, checked to hold data only.

    Parameters
    ----------
    path : Path
        A file written by ``torch.export.save``.

    Returns
    -------
    torch.nn.Module
        ``torch.export.load(...).module()``, on CPU.

    Raises
    ------
    ModelError
        The file is too large, unreadable, holds a record a plain program
        does not (compiled AOTInductor code, custom or pickled objects, a
        legacy layout), sample inputs that are not plain tensors, or an
        operator with side effects. Nothing in it was unpickled or run.
    """
    import torch

    size = path.stat().st_size
    if size > MAX_PT2_BYTES:
        raise ModelError(
            ERR_PT2_TOO_LARGE.format(
                path=path, what="the file", size=_mib(size), limit=_mib(MAX_PT2_BYTES)
            )
        )
    # One read: the checks and torch see the same bytes (no swap in between).
    data = path.read_bytes()
    _check_archive(path, data)
    with _quiet_torch_export():
        program = torch.export.load(io.BytesIO(data))
    _check_graph(path, program)
    return program.module()
