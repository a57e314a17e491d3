"""Hostile model files: a model that is data never runs code; one that is code runs only trusted.

``.pt2`` archives are edited genuine ``torch.export`` files whose pickles (or
records) would run Python when unpickled, yet still load as a valid program.
TorchScript and ``module:factory`` models write a marker file when run or
imported. Every case checks that the marker is never written and that the
run fails closed with the exact message.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from compaudit.errors import ModelError
from compaudit.models.pt2 import ERR_PT2_PICKLE, ERR_PT2_RECORD
from compaudit.models.torch_runner import (
    ERR_UNTRUSTED_CODE,
    FACTORY_KIND,
    TORCHSCRIPT_KIND,
)

from ._expect import assert_error
from .conftest import fails_closed, run_cli

DATA = "digits:test"  # [N, 1, 8, 8], 10 classes


class Tiny(nn.Module):
    """Flatten and a linear layer: 64 inputs, 10 class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))  # type: ignore[no-any-return]


class FileWriter(nn.Module):
    """TorchScript that overwrites ``path`` (4 bytes) through ``torch.from_file``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.from_file(self.path, shared=True, size=4, dtype=torch.uint8)
        t.fill_(88)
        # The output depends on t, or TorchScript drops the write as dead code.
        return x.flatten(1)[:, :10] + t[0].float() * 0.0


def _export(path: Path) -> Path:
    torch.manual_seed(0)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(
        Tiny().eval(), (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, str(path))
    return path


def _payload(marker: Path) -> bytes:
    """Pickle opcodes that run ``open(marker, 'w')`` and pop the result (no trace left)."""
    code = f"open({str(marker)!r}, 'w').close()".encode()
    return b"cbuiltins\nexec\n(X" + struct.pack("<I", len(code)) + code + b"tR0"


def _poison_pickle(torch_save_bytes: bytes, marker: Path) -> bytes:
    """A ``torch.save`` zip whose data.pkl first runs the payload, then builds the original."""
    src = zipfile.ZipFile(io.BytesIO(torch_save_bytes))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("data.pkl"):
                assert data[:1] == b"\x80"  # PROTO n: the payload goes right after it
                data = data[:2] + _payload(marker) + data[2:]
            dst.writestr(name, data)
    return out.getvalue()


def _rewrite(
    pt2: Path, out: Path, edit: Callable[[str, bytes], bytes | None], add: dict[str, bytes]
) -> Path:
    """Copy ``pt2`` record by record through ``edit`` (None drops one), adding ``add``."""
    src = zipfile.ZipFile(pt2)
    root = src.namelist()[0].split("/", 1)[0]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name in src.namelist():
            data = edit(name.split("/", 1)[1], src.read(name))
            if data is not None:
                dst.writestr(name, data)
        for rel, data in add.items():
            dst.writestr(f"{root}/{rel}", data)
    return out


def _evil_sample_inputs(pt2: Path, out: Path, marker: Path) -> Path:
    # torch tries weights_only=True, then unpickles freely: the payload ran, exit 0.
    def edit(rel: str, data: bytes) -> bytes:
        return _poison_pickle(data, marker) if rel.startswith("data/sample_inputs/") else data

    return _rewrite(pt2, out, edit, {})


def _evil_pickled_weight(pt2: Path, out: Path, marker: Path) -> Path:
    # use_pickle weights go through torch.load(weights_only=False).
    buf = io.BytesIO()
    torch.save(torch.zeros(10), buf)
    evil = _poison_pickle(buf.getvalue(), marker)

    def edit(rel: str, data: bytes) -> bytes:
        if rel == "data/weights/model_weights_config.json":
            config = json.loads(data)
            config["config"]["fc.bias"]["use_pickle"] = True
            config["config"]["fc.bias"]["path_name"] = "weight_9"
            return json.dumps(config).encode()
        return data

    return _rewrite(pt2, out, edit, {"data/weights/weight_9": evil})


def _evil_opaque_constant(pt2: Path, out: Path, marker: Path) -> Path:
    # opaque_obj_* constants go through pickle.loads.
    def edit(rel: str, data: bytes) -> bytes:
        if rel == "data/constants/model_constants_config.json":
            config = json.loads(data)
            config["config"]["evil"] = {
                "path_name": "opaque_obj_0",
                "is_param": False,
                "use_pickle": True,
                "tensor_meta": None,
            }
            return json.dumps(config).encode()
        return data

    evil = b"\x80\x04" + _payload(marker) + b"N."
    return _rewrite(pt2, out, edit, {"data/constants/opaque_obj_0": evil})


def _aoti_library(pt2: Path, out: Path, marker: Path) -> Path:
    # AOTInductor packages hold a shared library torch dlopens: native code.
    return _rewrite(
        pt2, out, lambda rel, data: data, {"data/aotinductor/model/model.so": b"\x7fELF"}
    )


PT2_CASES = {
    "pt2-sample-inputs-pickle-runs-code": (_evil_sample_inputs, "pickle"),
    "pt2-weight-stored-as-pickle": (_evil_pickled_weight, "pickle"),
    "pt2-opaque-object-constant": (_evil_opaque_constant, "record"),
    "pt2-aotinductor-shared-library": (_aoti_library, "record"),
}


@pytest.fixture(scope="module")
def genuine_pt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("pt2") / "tiny.pt2")


def test_genuine_pt2_still_runs(genuine_pt2: Path, tmp_path: Path) -> None:
    run = run_cli(
        [
            "predict",
            str(genuine_pt2),
            "--data",
            DATA,
            "--out",
            str(tmp_path / "p.npz"),
            "--no-cache",
        ]
    )
    assert run.code == 0, run.stderr[-2000:]


@pytest.mark.parametrize("case", list(PT2_CASES), ids=list(PT2_CASES))
def test_hostile_pt2_is_refused_unrun(genuine_pt2: Path, tmp_path: Path, case: str) -> None:
    build, kind = PT2_CASES[case]
    marker = tmp_path / "PWNED"
    evil = build(genuine_pt2, tmp_path / "evil.pt2", marker)
    run = fails_closed(
        ["predict", str(evil), "--data", DATA, "--out", str(tmp_path / "p.npz"), "--no-cache"],
        names=str(evil),
    )
    assert not marker.exists(), "the archive's pickle ran"
    assert_error(
        run.error_lines[0], ERR_PT2_PICKLE if kind == "pickle" else ERR_PT2_RECORD, path=evil
    )


def test_sample_inputs_message(genuine_pt2: Path, tmp_path: Path) -> None:
    evil = _evil_sample_inputs(genuine_pt2, tmp_path / "evil.pt2", tmp_path / "PWNED")
    run = fails_closed(["predict", str(evil), "--data", DATA, "--out", str(tmp_path / "p.npz")])
    assert_error(run.error_lines[0], ERR_PT2_PICKLE, path=evil, what="data/sample_inputs/model.pt")


# -- code: TorchScript and module:factory ------------------------------------------------


@pytest.fixture
def file_writer(tmp_path: Path) -> tuple[Path, Path]:
    """A scripted :class:`FileWriter` and the 4-byte file it overwrites."""
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"\0" * 4)
    path = tmp_path / "writer.pt"
    torch.jit.script(FileWriter(str(victim))).save(str(path))  # type: ignore[no-untyped-call]
    return path, victim


FACTORY_MODULE = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")

def build():
    import torch
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
"""


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path, Path]:
    """``evil_factory_mod:build`` (importing it writes a marker), its weights, the marker."""
    marker = tmp_path / "IMPORTED"
    pkg = tmp_path / "src"
    pkg.mkdir()
    (pkg / "evil_factory_mod.py").write_text(FACTORY_MODULE.format(marker=str(marker)))
    weights = tmp_path / "w.pth"
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).state_dict(), weights)
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.delitem(sys.modules, "evil_factory_mod", raising=False)
    return "evil_factory_mod:build", weights, marker


def _audit(ref: str, cand: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["report", "-r", ref, "-c", f"cand={cand}", "--data", DATA, "-o", str(tmp_path / "r"),
            "--no-cache", *extra]  # fmt: skip


@pytest.mark.parametrize("command", ["report", "predict"])
def test_torchscript_needs_trust(
    file_writer: tuple[Path, Path], tmp_path: Path, command: str
) -> None:
    model, victim = file_writer
    args = (
        _audit(str(model), str(model), tmp_path)
        if command == "report"
        else ["predict", str(model), "--data", DATA, "--out", str(tmp_path / "p.npz")]
    )
    run = fails_closed(args, names=str(model))
    assert victim.read_bytes() == b"\0" * 4, "the TorchScript model ran"
    assert run.error_lines == [
        "compaudit: error: " + ERR_UNTRUSTED_CODE.format(spec=model, kind=TORCHSCRIPT_KIND)
    ]


@pytest.mark.parametrize("command", ["report", "predict"])
def test_factory_needs_trust(factory: tuple[str, Path, Path], tmp_path: Path, command: str) -> None:
    spec, weights, marker = factory
    if command == "predict":
        out = str(tmp_path / "p.npz")
        args = ["predict", spec, "--weights", str(weights), "--data", DATA, "--out", out]
    else:  # a data-format reference loads first; the factory candidate is refused
        args = _audit(str(_export(tmp_path / "ref.pt2")), spec, tmp_path)
    run = fails_closed(args, names=spec)
    assert not marker.exists(), "the factory's module was imported"
    assert run.error_lines == [
        "compaudit: error: " + ERR_UNTRUSTED_CODE.format(spec=spec, kind=FACTORY_KIND)
    ]


def test_trusted_torchscript_runs(file_writer: tuple[Path, Path], tmp_path: Path) -> None:
    model, victim = file_writer
    run = run_cli([*_audit(str(model), str(model), tmp_path), "--trust-model-code"])
    assert run.code == 0, run.stderr[-2000:]
    assert victim.read_bytes() == b"X" * 4  # it ran: that is what trust allows


def test_trusted_factory_runs(factory: tuple[str, Path, Path], tmp_path: Path) -> None:
    spec, weights, marker = factory
    out = tmp_path / "p.npz"
    args = ["predict", spec, "--weights", str(weights), "--data", DATA, "--out", str(out)]
    run = run_cli([*args, "--trust-model-code"])
    assert run.code == 0, run.stderr[-2000:]
    assert marker.exists()
    assert out.is_file()


def test_api_predict_trust(file_writer: tuple[Path, Path]) -> None:
    import compaudit

    model, victim = file_writer
    with pytest.raises(ModelError) as err:
        compaudit.predict(str(model), DATA, cache=False)
    assert str(err.value) == ERR_UNTRUSTED_CODE.format(spec=model, kind=TORCHSCRIPT_KIND)
    assert victim.read_bytes() == b"\0" * 4
    pop = compaudit.predict(str(model), DATA, cache=False, trust_model_code=True)
    assert pop.k == 1
    assert victim.read_bytes() == b"X" * 4


@pytest.mark.parametrize("op", ["from_file", "save"], ids=["aten-from-file", "aten-save"])
def test_graph_with_a_file_operator_is_refused(genuine_pt2: Path, op: str) -> None:
    # Deserialising never calls a graph's operators; the check runs before .module().
    from compaudit.models.pt2 import ERR_PT2_OPERATOR, _check_graph

    program = torch.export.load(str(genuine_pt2))
    node = next(n for n in program.graph.nodes if n.op == "call_function")
    node.target = getattr(torch.ops.aten, op).default
    with pytest.raises(ModelError) as err:
        _check_graph(genuine_pt2, program)
    assert str(err.value) == ERR_PT2_OPERATOR.format(path=genuine_pt2, op=f"aten::{op}")
