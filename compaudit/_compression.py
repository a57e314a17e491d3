"""Compression metadata of a population: where it sits on the compression curve.

Three sources, the first that knows a key wins: what the user gave
(``NAME=SPEC@sparsity=0.9,bits=8``), the trainer's run manifest (the recipe's
variant and its members' metrics), and what the model files show (file size;
for ONNX, parameter count, share of zero weights and weight precision, read
as data: ``onnx.load`` parses protobuf, never code).
"""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compaudit.errors import CompauditError, InputError
from compaudit.results import COMPRESSION_KEYS, AuditReport, Compression

if TYPE_CHECKING:
    from compaudit.train.manifest import RunInfo, VariantInfo

__all__ = [
    "ERR_COMPRESSION_KEY",
    "ERR_COMPRESSION_VALUE",
    "from_variant",
    "given_values",
    "measure_files",
    "merge",
    "run_compression",
    "spec_compression",
    "split_spec",
    "with_compression",
]

ERR_COMPRESSION_KEY = (
    "{text}: unknown compression key {key!r}; known keys: {known} "
    "(e.g. p90=models/p90/*.onnx@sparsity=0.9,bits=8)"
)
ERR_COMPRESSION_VALUE = "{text}: compression {key}={value!r} must be {kind}"

# A trailing ``@key=value[,key=value]``: word keys, plain number values.
_TAIL = re.compile(r"@((?:[A-Za-z_]+=[0-9.eE+-]+)(?:,[A-Za-z_]+=[0-9.eE+-]+)*)\Z")
_QUANT_BITS = {"onnx-dynamic": 8, "onnx-static": 8, "torch-dynamic": 8, "fp16": 16}
_FLOAT_BITS = 32
_ONNX_BITS = {1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 10: 16, 11: 64, 16: 16}
"""onnx.TensorProto data type -> bits (FLOAT, UINT8, INT8, UINT16, INT16, INT32,
INT64, FLOAT16, DOUBLE, BFLOAT16)."""


def _value(text: str, key: str, raw: str) -> float | int:
    try:
        number = float(raw)
    except ValueError:
        number = float("nan")
    if key == "sparsity":
        if not 0.0 <= number < 1.0:
            raise InputError(
                ERR_COMPRESSION_VALUE.format(
                    text=text, key=key, value=raw, kind="a fraction in [0, 1)"
                )
            )
        return number
    if not (number.is_integer() and number >= 1):
        raise InputError(
            ERR_COMPRESSION_VALUE.format(text=text, key=key, value=raw, kind="a positive integer")
        )
    return int(number)


def split_spec(text: str) -> tuple[str, dict[str, float | int]]:
    """Split ``SPEC@sparsity=0.9,bits=8`` into the spec and its compression metadata.

    Only a trailing ``@key=value[,key=value]`` with number values is read, and
    only when neither the text nor its part after ``NAME=`` is an existing path,
    so a path holding ``@`` (``models/v1@2/m.onnx``, ``runs/v1@sparsity=0.9``)
    stays a path.

    Raises
    ------
    InputError
        A key other than ``sparsity``, ``bits``, ``file_size``, ``parameters``
        (:data:`ERR_COMPRESSION_KEY`), or a value out of range.
    """
    match = _TAIL.search(text)
    name, sep, rest = text.partition("=")
    paths = [text, rest] if sep and "/" not in name and os.sep not in name else [text]
    # os.path.exists: False (never an error) on a name too long for the file system.
    if match is None or any(os.path.exists(p) for p in paths):
        return text, {}
    pairs = dict(item.split("=", 1) for item in match.group(1).split(","))
    return text[: match.start()], given_values(repr(text), pairs)


def given_values(where: str, values: Mapping[str, Any]) -> dict[str, float | int]:
    """``values`` checked: known keys (:data:`~compaudit.results.COMPRESSION_KEYS`),
    sparsity a fraction in [0, 1), the others positive integers; ``where`` names them
    in the error (:data:`ERR_COMPRESSION_KEY`, :data:`ERR_COMPRESSION_VALUE`)."""
    out: dict[str, float | int] = {}
    for key, raw in values.items():
        if key not in COMPRESSION_KEYS:
            raise InputError(
                ERR_COMPRESSION_KEY.format(text=where, key=key, known=", ".join(COMPRESSION_KEYS))
            )
        out[key] = _value(where, key, str(raw))
    return out


def merge(*layers: tuple[str, Mapping[str, Any]]) -> Compression | None:
    """One :class:`Compression` from ``(source, values)`` layers, first layer first;
    None when no layer knows anything."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    method = None
    for source, layer in layers:
        if method is None and layer.get("method") is not None:
            method = str(layer["method"])
        for key in COMPRESSION_KEYS:
            if key not in values and layer.get(key) is not None:
                values[key] = layer[key]
                sources[key] = source
    if not values:
        return None
    return Compression(**values, method=method, sources=sources)


MEASURED_MEMBERS = 8
"""ONNX files parsed per population: members share an architecture and a pruning
schedule, and parsing 30 large models again would slow every report."""


def measure_files(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Mean file size, and for ONNX files parameter count, zero share and weight bits
    (means over the first :data:`MEASURED_MEMBERS` members).

    Files that are not regular files (``module:factory``) are left out; an
    ONNX file that does not parse gives its size alone (loading it reports why).
    """
    files = [Path(p) for p in paths if Path(p).is_file()]
    if not files:
        return {}
    out: dict[str, Any] = {"file_size": round(statistics.fmean(f.stat().st_size for f in files))}
    first = files[:MEASURED_MEMBERS]
    onnx = [_onnx_weights(f) for f in first if f.suffix.lower() == ".onnx"]
    stats = [s for s in onnx if s is not None]
    if stats and len(stats) == len(first):
        out["parameters"] = round(statistics.fmean(s[0] for s in stats))
        out["sparsity"] = statistics.fmean(s[1] for s in stats)
        out["bits"] = max(s[2] for s in stats)
    return out


def _onnx_weights(path: Path) -> tuple[int, float, int] | None:
    """(parameters, share of zero weights, bits of most weights) of one ONNX file.

    Weights are initializers of two or more dimensions (what pruning prunes);
    a quantized model's ``uint8``/``int8`` weights count at 8 bits.
    """
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # unreadable: the runner reports it properly
        return None
    params = zeros = weights = 0
    bits: dict[int, int] = {}
    for tensor in proto.graph.initializer:
        size = 1
        for d in tensor.dims:
            size *= int(d)
        params += size
        if len(tensor.dims) < 2 or tensor.data_location == onnx.TensorProto.EXTERNAL:
            continue
        b = _ONNX_BITS.get(tensor.data_type)
        if b is None:
            continue
        bits[b] = bits.get(b, 0) + size
        array = numpy_helper.to_array(tensor)
        weights += size
        zeros += int(size - _count_nonzero(array, tensor.data_type))
    if not weights:
        return None
    return params, zeros / weights, max(bits, key=lambda b: (bits[b], b))


def _count_nonzero(array: Any, data_type: int) -> int:
    import numpy as np

    # A quantized weight is zero at its zero point, which the file keeps elsewhere:
    # int8 weights are quantized symmetrically (zero point 0), uint8 ones are not
    # (usually 128), so none of those counts as pruned.
    if data_type == 2:
        return int(array.size)
    return int(np.count_nonzero(array))


def from_variant(variant: VariantInfo) -> dict[str, Any]:
    """What the trainer's manifest says of one variant: its kind, the sparsity its
    members reached (the pruning metric, or their source's), and the weight bits."""
    config = variant.config
    out: dict[str, Any] = {"method": variant.kind}
    sparsity = variant.mean_std("sparsity") or variant.mean_std("source_sparsity")
    if sparsity is not None:
        out["sparsity"] = sparsity[0]
    elif variant.kind == "prune" and isinstance(config.get("prune"), dict):
        out["sparsity"] = config["prune"].get("sparsity")
    elif variant.kind == "dense":
        out["sparsity"] = 0.0
    quantize = config.get("quantize")
    if variant.kind == "quantize" and isinstance(quantize, dict):
        out["method"] = str(quantize.get("method"))
        out["bits"] = _QUANT_BITS.get(out["method"])
    else:
        out["bits"] = _FLOAT_BITS
    return out


def spec_compression(spec: str, given: Mapping[str, Any]) -> Compression | None:
    """A side's compression metadata: what ``@key=value`` gave, then what its model
    files show (nothing is measured for a predictions file)."""
    from compaudit.models.spec import resolve_members
    from compaudit.population import PREDICTIONS_SUFFIXES

    measured: dict[str, Any] = {}
    if not spec.lower().endswith(tuple(PREDICTIONS_SUFFIXES)):
        try:
            measured = measure_files([m.path for m in resolve_members(spec)])
        except CompauditError:  # loading the side reported any problem already
            measured = {}
    return merge(("given", given), ("measured", measured))


def run_compression(info: RunInfo) -> dict[str, Compression | None]:
    """Per variant of a trainer run: what its manifest says, then its files (the ONNX
    export beside a checkpoint, which holds the same weights)."""
    out: dict[str, Compression | None] = {}
    for name, variant in info.variants.items():
        files = [m.files.get("onnx", m.path) for m in variant.members]
        out[name] = merge(("manifest", from_variant(variant)), ("measured", measure_files(files)))
    return out


def with_compression(
    document: AuditReport, compression: Mapping[str, Compression | None]
) -> AuditReport:
    """``document`` with each population's compression metadata, where known."""
    if not any(compression.values()):
        return document
    populations = {
        name: dataclasses.replace(p, compression=compression.get(name) or p.compression)
        for name, p in document.populations.items()
    }
    return dataclasses.replace(document, populations=populations)
