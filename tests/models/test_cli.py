"""``compaudit predict`` and ``compaudit plugins`` through click's CliRunner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from compaudit import plugins
from compaudit.cli import build_cli
from compaudit.cli.plugins import ERR_BROKEN
from compaudit.data.base import Dataset
from compaudit.models.onnx_runner import ERR_ONNX_UNREADABLE
from compaudit.models.spec import ERR_NO_SUCH_MODEL
from compaudit.population import load_population


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_cli(), list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_predict_writes_a_population(
    digits_models: dict[str, Path], digits_test: Dataset, tmp_path: Path, cache_dir: Path
) -> None:
    out = tmp_path / "preds.npz"
    onnx, mlp = digits_models["fp32_onnx"], digits_models["mlp_torchscript"]
    code, stdout, _ = _invoke(
        "predict", str(onnx), str(mlp), "--data", "digits:test", "--out", str(out), "--top-k", "3",
        "--trust-model-code",
    )  # fmt: skip
    assert code == 0
    pop = load_population(out)
    assert (pop.k, pop.n) == (2, digits_test.n)
    assert pop.topk is not None
    assert pop.topk.shape[2] == 3
    assert pop.meta["members"] == ["cnn", "mlp"]
    top1 = (pop.predictions == pop.y[None, :]).mean(axis=1)
    assert stdout.splitlines() == [
        f"wrote {out}: 2 model(s) x {digits_test.n} examples of digits:test (top-3)",
        f"  cnn: top-1 {top1[0]:.4f}",
        f"  mlp: top-1 {top1[1]:.4f}",
    ]


def test_predict_module_factory_with_weights(
    digits_models: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cache_dir: Path,
) -> None:
    (tmp_path / "cli_factory_mod.py").write_text(
        "from models.helpers import TinyCNN\n\ndef build():\n    return TinyCNN(in_size=8)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "f.npz"
    weights = digits_models["cnn_state_dict"]
    code, _, _ = _invoke(
        "predict", "cli_factory_mod:build", "--weights", str(weights),
        "--data", "digits:test", "--out", str(out), "--no-cache", "--trust-model-code",
    )  # fmt: skip
    assert code == 0
    ref = tmp_path / "ref.npz"
    assert _invoke("predict", str(digits_models["torchscript"]), "--data", "digits:test",
                   "--out", str(ref), "--trust-model-code")[0] == 0  # fmt: skip
    np.testing.assert_array_equal(load_population(out).topk, load_population(ref).topk)
    assert len(list(cache_dir.glob("*/*.npz"))) == 1  # --no-cache wrote nothing


def test_predict_errors_exit_2_with_the_message(
    digits_models: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(digits_models["fp32_onnx"].read_bytes()[:500])
    out = tmp_path / "p.npz"
    code, _, stderr = _invoke("predict", str(bad), "--data", "digits:test", "--out", str(out))
    assert code == 2
    head = ERR_ONNX_UNREADABLE.format(path=bad, reason="R").split("(R)")[0]
    assert stderr.startswith(f"compaudit: error: {head}")
    assert not out.exists()

    missing = str(tmp_path / "missing.onnx")
    code, _, stderr = _invoke("predict", missing, "--data", "digits:test", "--out", str(out))
    assert (code, stderr) == (2, f"compaudit: error: {ERR_NO_SUCH_MODEL.format(spec=missing)}\n")

    code, _, stderr = _invoke("predict", str(digits_models["fp32_onnx"]), "--out", str(out))
    assert code == 2
    assert "Missing option '--data'" in stderr


def test_plugins_lists_the_builtins() -> None:
    code, stdout, _ = _invoke("plugins")
    assert code == 0
    assert "compaudit.models.builtin" in stdout
    assert "register_model_loaders" in stdout


def test_plugins_shows_broken_plugins_and_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = plugins.Registry(load_entry_points=False)
    registry.infos.append(
        plugins.PluginInfo(
            "shiny", "compaudit-shiny", "0.3", (), False, error="ImportError: no module 'shiny'"
        )
    )
    monkeypatch.setattr(plugins, "get_registry", lambda: registry)
    code, stdout, stderr = _invoke("plugins")
    assert code == 2
    assert "shiny" in stdout
    assert "compaudit.models.builtin" in stdout
    assert "ImportError" in stdout
    message = ERR_BROKEN.format(n=1, names="shiny (compaudit-shiny)")
    assert stderr == f"compaudit: error: {message}\n"
