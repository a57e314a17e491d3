"""The ``ray`` executor (plugins/compaudit-ray) on a real local Ray instance.

One Ray instance (2 CPUs, no dashboard) serves the module. A tiny digits
recipe (dense, pruned, quantized-from-dense members and two influence runs)
is trained once in process and once through ``compaudit train --executor
ray``; the two must agree file for file. Further tests resume a run, kill a
worker process mid-task, and fail a job that must not be retried.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip(
    "compaudit_ray",
    reason="the Ray plugin is not installed: "
    "pip install -c constraints.txt -e ./plugins/compaudit-ray (./run setup does it)",
)

import ray  # the plugin requires ray: a missing ray fails, never skips
from compaudit_ray import executor as ray_executor
from compaudit_ray.executor import ERR_NO_GPU, RayExecutor, RayExecutorError, task_resources

from compaudit.cli import build_cli
from compaudit.errors import CompauditError
from compaudit.plugins import get_registry
from compaudit.train import train_recipe
from compaudit.train.base import MemberJob, MemberResult, ProgressEvent
from compaudit.train.manifest import load_run, member_finished, read_manifest
from compaudit.train.recipe import recipe_from_dict
from compaudit.train.registry import executors

# digits:train has 1,257 examples: batch 64 gives 20 steps per epoch.
RECIPE: dict[str, Any] = {
    "name": "tiny-ray",
    "dataset": {"name": "digits", "train": "train", "eval": "test"},
    "architecture": {"name": "mlp", "kwargs": {"hidden": [16]}},
    "training": {"epochs": 2, "batch_size": 64, "lr": 0.2, "weight_decay": 0.0005},
    "k": 2,
    "seed": 0,
    "variants": [
        {"name": "dense", "kind": "dense"},
        {
            "name": "p50",
            "kind": "prune",
            "prune": {"sparsity": 0.5, "begin_step": 4, "end_step": 28, "frequency": 4},
        },
        {
            "name": "int8s",
            "kind": "quantize",
            "from": "dense",
            "quantize": {"method": "onnx-static", "calibration_examples": 64},
        },
    ],
    "influence": {"runs": 2, "subset_fraction": 0.7, "seed": 0, "variant": "dense"},
}
# Members that differ between two runs of one recipe only by when they ran.
VOLATILE = ("timings", "finished_at")


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local Ray instance with 2 CPUs; workers inherit the no-download setting."""
    if ray.is_initialized():  # pragma: no cover - another module left one behind
        ray.shutdown()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"COMPAUDIT_NO_DOWNLOAD": "1"}},
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "tiny-ray.yaml"
    path.write_text(yaml.safe_dump(RECIPE, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recipe trained by the in-process executor: the reference for every Ray run."""
    out = tmp_path_factory.mktemp("local") / "run"
    train_recipe(recipe_from_dict(RECIPE), out, progress=False, executor="local", threads=1)
    return out


@pytest.fixture(scope="module")
def ray_run(cluster: None, recipe_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recipe trained through the CLI with ``--executor ray``."""
    out = tmp_path_factory.mktemp("ray") / "run"
    args = ["-q", "train", str(recipe_file), "--executor", "ray", "--out", str(out)]
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code == 0, result.output
    return out


def _entries(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every member and influence entry of a run, without the fields that vary by time."""
    manifest = read_manifest(run_dir)
    assert manifest is not None
    out: dict[str, dict[str, Any]] = {}
    for variant, section in manifest["variants"].items():
        for i, entry in section["members"].items():
            out[f"{variant}/{i}"] = {k: v for k, v in entry.items() if k not in VOLATILE}
    for r, entry in manifest["influence"]["done"].items():
        out[f"influence/{r}"] = {k: v for k, v in entry.items() if k not in VOLATILE}
    out["influence"] = {"sha256": manifest["influence"]["sha256"]}
    return out


def test_the_plugin_registers_the_ray_executor() -> None:
    found = executors()
    assert isinstance(found["ray"], RayExecutor)
    assert get_registry().origin("register_executors", "ray") == "ray"
    dists = {i.distribution for i in get_registry().infos if not i.error}
    assert "compaudit-ray" in dists


def test_resources_come_from_threads_and_device() -> None:
    recipe = recipe_from_dict(RECIPE).to_dict()
    cpu = MemberJob("runs/x", recipe, "dense", 0, "cpu", None)
    assert task_resources(cpu) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert task_resources(MemberJob("runs/x", recipe, "dense", 0, "cpu", 3))["num_cpus"] == 3.0
    # Trained on CUDA: one GPU; quantized members are made on CPU and ask for none.
    assert task_resources(MemberJob("runs/x", recipe, "p50", 1, "cuda", 2)) == {
        "num_cpus": 2.0,
        "num_gpus": 1.0,
    }
    assert task_resources(MemberJob("runs/x", recipe, "int8s", 0, "cuda", 2))["num_gpus"] == 0.0
    assert (
        task_resources(MemberJob("runs/x", recipe, "@influence", 0, "cuda", 1))["num_gpus"] == 1.0
    )


def test_ray_address_needs_the_ray_executor(recipe_file: Path) -> None:
    args = ["train", str(recipe_file), "--executor", "pool", "--ray-address", "auto"]
    result = CliRunner().invoke(build_cli(), args)
    assert result.exit_code == 2
    assert "--ray-address needs --executor ray" in result.output


def test_ray_members_equal_in_process_members(local_run: Path, ray_run: Path) -> None:
    """Same seeds, same members: metrics and the sha256 of every file (weights included)."""
    got, want = _entries(ray_run), _entries(local_run)
    assert set(got) == set(want)
    assert len([k for k in want if not k.startswith("influence")]) == 6
    for key in want:
        assert got[key] == want[key], key
    assert load_run(ray_run).complete


def test_resume_skips_finished_members(
    cluster: None, ray_run: Path, local_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the member whose file is gone is made again, on the cluster, identically."""
    submitted: list[str] = []
    original = RayExecutor.run

    def spy(self: RayExecutor, jobs: Any, **kwargs: Any) -> None:
        submitted.extend(j.key for j in jobs)
        original(self, jobs, **kwargs)

    monkeypatch.setattr(RayExecutor, "run", spy)
    kept = ray_run / "dense" / "member-000.ckpt"
    before = kept.stat().st_mtime_ns
    (ray_run / "p50" / "member-001.onnx").unlink()
    train_recipe(recipe_from_dict(RECIPE), ray_run, progress=False, executor="ray")
    assert submitted == ["p50/1"]
    assert kept.stat().st_mtime_ns == before
    assert _entries(ray_run) == _entries(local_run)


def _pids_titled(title: str) -> list[int]:
    """Processes whose command line Ray set to ``title`` (``ray::<task name>``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.split(b"\0")[0].strip() == title.encode():
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc (Linux)")
def test_a_killed_worker_is_retried_and_nothing_is_lost(
    cluster: None, local_run: Path, tmp_path: Path
) -> None:
    """SIGKILL the worker process running dense/1: Ray re-runs the task, the run completes."""
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set() and not killed:
            for pid in _pids_titled("ray::compaudit:dense/1"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=killer, daemon=True)
    watcher.start()
    out = tmp_path / "run"
    try:
        train_recipe(recipe_from_dict(RECIPE), out, progress=False, executor="ray")
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert len(killed) == 1
    assert _entries(out) == _entries(local_run)
    assert load_run(out).complete


def test_a_job_that_fails_on_its_own_is_not_retried(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quantized member whose source is missing fails once, with its own error."""
    attempts = tmp_path / "attempts"
    real = ray_executor.run_member

    def counted(*args: Any) -> Any:  # a closure: Ray ships it by value
        with attempts.open("a") as f:
            f.write("x")
        return real(*args)

    monkeypatch.setattr(ray_executor, "run_member", counted)
    recipe = recipe_from_dict(RECIPE).to_dict()
    job = MemberJob(str(tmp_path / "run"), recipe, "int8s", 0, "cpu", 1)
    results: list[Any] = []
    with pytest.raises(CompauditError) as info:
        RayExecutor().run([job], workers=1, on_result=results.append)
    assert not isinstance(info.value, ray.exceptions.RayError)
    assert "member-000.ckpt" in str(info.value)
    assert results == []
    assert attempts.read_text() == "x"


def test_progress_reaches_the_driver_once_per_member(cluster: None, tmp_path: Path) -> None:
    """start, one event per epoch, end; the files are in the run directory before on_result."""
    recipe = recipe_from_dict(RECIPE).to_dict()
    job = MemberJob(str(tmp_path), recipe, "dense", 0, "cpu", 1)
    events: list[ProgressEvent] = []
    finished: list[bool] = []

    def on_result(result: MemberResult) -> None:
        finished.append(member_finished(tmp_path, result.entry))

    RayExecutor().run([job], workers=1, on_result=on_result, on_progress=events.append)
    assert [(e.kind, e.done, e.total) for e in events] == [
        ("start", 0, 2),
        ("epoch", 1, 2),
        ("epoch", 2, 2),
        ("end", 2, 2),
    ]
    assert {e.job for e in events} == {"dense/0"}
    assert finished == [True]


def test_a_retried_task_does_not_count_twice() -> None:
    """A worker that died after epoch 1 starts again: the bars see each epoch once."""
    seen: list[tuple[str, int]] = []
    relay = ray_executor._Relay(lambda e: seen.append((e.kind, e.done)))
    for kind, done in [("start", 0), ("epoch", 1), ("start", 0), ("epoch", 1), ("epoch", 2)]:
        relay(ProgressEvent(kind, "dense/1", done, 2))  # type: ignore[arg-type]
    relay(ProgressEvent("end", "dense/1", 2, 2))  # the worker's own end is not the record
    assert seen == [("start", 0), ("epoch", 1), ("epoch", 2)]
    relay.end("dense/1")
    assert seen[-1] == ("end", 2)


def test_a_cuda_member_on_a_cluster_without_gpus_fails_at_once(
    cluster: None, tmp_path: Path
) -> None:
    recipe = recipe_from_dict(RECIPE).to_dict()
    job = MemberJob(str(tmp_path), recipe, "dense", 0, "cuda", 1)
    with pytest.raises(RayExecutorError) as info:
        RayExecutor().run([job], workers=1, on_result=lambda r: None)
    assert str(info.value) == ERR_NO_GPU.format(job="dense/0")
