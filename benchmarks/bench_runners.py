"""Runner overhead against bare inference loops, and throughput on Fashion-MNIST.

Target: compaudit's batched runners cost at most 10% more than a bare
``InferenceSession.run`` loop (ONNX) or a bare ``torch.inference_mode`` loop
(TorchScript) over the same batches, timed in the same run, alternating, best
of ``REPEAT``. The bare loops use the runner's own session / module, so that
only the loop around the model differs. The runner's extra work per batch is
the input checks, finite checks, top-k, softmax and writing into preallocated
outputs; ``postprocess_per_batch`` times that work alone (wall-clock ratios
on a busy 2-core machine move by a few per cent between runs).

Model: the trainer's small CNN (``compaudit.models.architectures.build("cnn28")``,
conv 32 - conv 64 - fc 128), **random init** (seed 0): throughput does not
depend on the weights. Exported to ONNX fp32, quantized to int8 (static, QDQ,
calibrated on 512 images), and traced to TorchScript. Data: the Fashion-MNIST
test split (10,000 images; 2,000 in quick mode) when it can be found, else
seeded synthetic images of the same shape (said in the notes).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import row
from compaudit.train.export import quiet

__all__ = ["build_cnn_files", "fashion_test", "run"]

NAME = "runners"
BATCH = 256
REPEAT = 5
SEED = 0


_quiet = quiet  # the exporter's and onnxruntime.quantization's advisory warnings


def fashion_test(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``(x, y, description)``: the first ``n`` Fashion-MNIST test images, or synthetic ones."""
    from compaudit.data.loading import load_dataset
    from compaudit.errors import CompauditError

    spec = "fashion-mnist:test" + (f"?limit={n}" if n < 10_000 else "")
    try:
        data = load_dataset(spec)
        return data.x, data.y, f"Fashion-MNIST test, first {data.n}"
    except CompauditError:
        rng = np.random.default_rng(SEED)
        x = rng.random((n, 1, 28, 28), dtype=np.float32)
        return x, rng.integers(0, 10, n), f"synthetic {n} x 1x28x28 (Fashion-MNIST not found)"


def build_cnn_files(
    out_dir: Path, x_calib: np.ndarray, *, seed: int = SEED, int8: bool = True
) -> dict[str, Path]:
    """Random-init CNN28 as ``fp32_onnx``, ``int8_static_onnx`` (QDQ) and ``torchscript``."""
    import torch
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from compaudit.models.architectures import build

    torch.manual_seed(seed)
    model = build("cnn28").eval()
    example = torch.from_numpy(x_calib[:2])
    files = {"fp32_onnx": out_dir / f"cnn_{seed}.onnx", "torchscript": out_dir / f"cnn_{seed}.pt"}
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(files["fp32_onnx"]),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
        traced = torch.jit.trace(model, example)  # type: ignore[no-untyped-call]
        traced.save(str(files["torchscript"]))
    if not int8:
        return files

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter([{"x": x_calib[i : i + 64]} for i in range(0, 512, 64)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    prepped = out_dir / f"cnn_{seed}.prep.onnx"
    files["int8_static_onnx"] = out_dir / f"cnn_{seed}_int8.onnx"
    with _quiet():
        quant_pre_process(str(files["fp32_onnx"]), str(prepped))
        quantize_static(
            str(prepped),
            str(files["int8_static_onnx"]),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    return files


def _alternate(
    a: Callable[[], Any], b: Callable[[], Any], repeat: int
) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately (after one warm-up each) so load drifts hit both."""
    a()
    b()
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(repeat):
        for fn, times in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return ta, tb


def _runs(note: str, bare: list[float], ours: list[float]) -> str:
    """``note`` plus every timed repeat, so that a noisy run shows as one."""

    def fmt(times: list[float]) -> str:
        return ", ".join(f"{t:.3g}" for t in times)

    return f"{note} (bare {fmt(bare)} s; runner {fmt(ours)} s)"


def _postprocess_seconds(scores: list[np.ndarray]) -> float:
    """Best-of-20 time of the runner's per-batch work outside the model, per batch."""
    from compaudit.models.inference import topk_from_scores

    n = sum(len(s) for s in scores)
    idx_out = np.empty((n, 5), dtype=np.int64)
    prob_out = np.empty((n, 5), dtype=np.float32)
    best = float("inf")
    for _ in range(20):
        start = time.perf_counter()
        pos = 0
        for s in scores:
            if not np.isfinite(s).all():
                raise ValueError("non-finite scores")
            idx, probs = topk_from_scores(s, 5, probabilities=False)
            idx_out[pos : pos + len(s)] = idx
            prob_out[pos : pos + len(s)] = probs
            pos += len(s)
        best = min(best, time.perf_counter() - start)
    return best / len(scores)


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure runner overhead ratios and throughput; see the module docstring."""
    import torch

    from compaudit.models.base import RunnerSettings
    from compaudit.models.onnx_runner import OnnxLoader
    from compaudit.models.torch_runner import TorchScriptLoader

    n = 2_000 if quick else 10_000
    repeat = 3 if quick else REPEAT
    x, _, data_note = fashion_test(n)
    settings = RunnerSettings(batch_size=BATCH, k=5)
    batches = [x[i : i + BATCH] for i in range(0, len(x), BATCH)]
    rows: list[dict[str, Any]] = []
    note = f"{data_note}; batch {BATCH}; best of {repeat}, alternating with the bare loop"
    with tempfile.TemporaryDirectory(prefix="compaudit-bench-") as tmp:
        files = build_cnn_files(Path(tmp), x)

        best: dict[str, float] = {}
        for key in ("fp32_onnx", "int8_static_onnx"):
            runner = OnnxLoader().load(str(files[key]))
            session = runner.session  # one thread pool for both loops: only the loop differs

            def bare_onnx(session: Any = session) -> None:
                for b in batches:
                    session.run(None, {"x": b})

            def ours_onnx(runner: Any = runner) -> None:
                runner.predict(x, settings)

            t_bare, t_ours = _alternate(bare_onnx, ours_onnx, repeat)
            best[key] = min(t_ours)
            if key == "fp32_onnx":
                ratio = min(t_ours) / min(t_bare)
                rows.append(
                    row(NAME, "onnx_fp32_overhead", ratio, "x", _runs(note, t_bare, t_ours))
                )
                post = _postprocess_seconds([session.run(None, {"x": b})[0] for b in batches])
                per_batch_model = min(t_bare) / len(batches)
                rows.append(
                    row(
                        NAME,
                        "postprocess_per_batch",
                        post * 1e6,
                        "us",
                        f"finite check + top-5 + softmax of one [{BATCH}, 10] batch, best of 20; "
                        f"{100 * post / per_batch_model:.2f}% of the model's "
                        f"{per_batch_model * 1e3:.1f} ms per batch",
                    )
                )

        ts = TorchScriptLoader().load(str(files["torchscript"]), options={"trust_model_code": True})
        module = ts.module

        def bare_torch() -> None:
            with torch.inference_mode():
                for b in batches:
                    module(torch.from_numpy(b))

        def ours_torch() -> None:
            ts.predict(x, settings)

        with _quiet():
            t_bare, t_ours = _alternate(bare_torch, ours_torch, repeat)
        ratio = min(t_ours) / min(t_bare)
        rows.append(row(NAME, "torch_fp32_overhead", ratio, "x", _runs(note, t_bare, t_ours)))
        best["torch_fp32"] = min(t_ours)

    model_note = f"CNN28 random init (seed {SEED}); {data_note}; batch {BATCH}"
    for key, metric in (
        ("fp32_onnx", "onnx_fp32_throughput"),
        ("int8_static_onnx", "onnx_int8_static_throughput"),
        ("torch_fp32", "torch_fp32_throughput"),
    ):
        rows.append(row(NAME, metric, n / best[key], "examples/s", model_note))
    return rows


if __name__ == "__main__":
    from benchmarks.common import markdown_table

    print(markdown_table(run()))
