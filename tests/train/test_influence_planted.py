"""Planted memorization, end to end: real influence runs on a tiny tabular dataset.

Issue 15, "Tests that could fail": training examples that are unique must
come out with high memorization, and a test example that depends on one of
them must list it first among its influencers. Here nothing is planted in the
correctness bits: ``compaudit train`` trains the recipe's ``influence:`` runs
on an ``.npz`` dataset of Gaussian blobs in which a few outliers (each alone
in its own spot, far out in the tail of a blob) carry the label of another
class. A run that saw such an outlier fits it; a run that did not predicts
its blob's class. The test split holds near-copies of some of them, with the
same flipped label, so only the outlier itself can teach them.

Control in the same run: as many outliers placed the same way but keeping
their blob's label (one-of-a-kind inputs the model gets right anyway), and a
near-copy of one of them. Their memorization must stay low and their
near-copy must not be led by its original, so the assertions separate "a
mislabelled unique example" from "any far-out point".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from compaudit.analysis.influence import influence, load_runs, memorization, top_influencers
from compaudit.cli.train import command
from compaudit.train.manifest import INFLUENCE_RUNS

from .conftest import write_recipe

DIM, CLASSES, PER_CLASS = 8, 3, 80
N_FLIPPED, N_CONTROL = 5, 5
OUTLIER_RADIUS = 4.5  # the blobs' shells lie at about sqrt(DIM) = 2.8; this is well past them
COPY_NOISE = 0.05
DATA_SEED = 0
INFLUENCE = {"runs": 40, "subset_fraction": 0.5, "seed": 0, "variant": "dense"}
# Enough capacity and steps to fit a lone outlier (125 examples a run: 4 steps an epoch).
TRAINING = {
    "epochs": 80,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 0.01,
    "lr_schedule": "constant",
}


def _blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples per class around the means ``5 e_c`` (unit variance)."""
    y = np.repeat(np.arange(CLASSES), n)
    means = 5.0 * np.eye(CLASSES, DIM)
    return (means[y] + rng.standard_normal((y.size, DIM))).astype(np.float32), y


def _outliers(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points, each at ``OUTLIER_RADIUS`` from its blob's mean in its own
    direction (directions kept apart, pointing away from the other blobs),
    and the blob's class."""
    y = np.arange(count) % CLASSES
    means = 5.0 * np.eye(CLASSES, DIM)
    x = np.empty((count, DIM), dtype=np.float32)
    for i, c in enumerate(y):
        u = rng.standard_normal(DIM)
        u[:CLASSES] = -np.abs(u[:CLASSES])  # away from every mean (they lie on +e_c)
        u[c] = abs(u[c])  # ... but outward along its own
        x[i] = means[c] + OUTLIER_RADIUS * u / np.linalg.norm(u)
    return x, y


def _write(path: Path, x: np.ndarray, y: np.ndarray) -> str:
    np.savez(path, x=x, y=y.astype(np.int64))
    return str(path)


def planted_data(folder: Path, seed: int) -> dict[str, Any]:
    """Write train.npz and test.npz; return their specs and the planted indices.

    Train: the blobs, then ``N_FLIPPED`` outliers labelled ``(c + 1) % C``,
    then ``N_CONTROL`` outliers keeping ``c``. Test: fresh blob examples,
    then near-copies of flipped outliers 0 and 1 (flipped labels) and of
    control outlier 0 (its label).
    """
    rng = np.random.default_rng(seed)
    x_blobs, y_blobs = _blobs(rng, PER_CLASS)
    x_out, y_out = _outliers(rng, N_FLIPPED + N_CONTROL)
    y_out[:N_FLIPPED] = (y_out[:N_FLIPPED] + 1) % CLASSES
    x_train = np.concatenate([x_blobs, x_out])
    y_train = np.concatenate([y_blobs, y_out])
    flipped = np.arange(N_FLIPPED) + x_blobs.shape[0]
    control = np.arange(N_CONTROL) + flipped[-1] + 1
    originals = np.array([flipped[0], flipped[1], control[0]])

    x_test, y_test = _blobs(rng, 20)
    copies = x_train[originals] + COPY_NOISE * rng.standard_normal((3, DIM)).astype(np.float32)
    copy_rows = np.arange(3) + x_test.shape[0]
    x_test = np.concatenate([x_test, copies])
    y_test = np.concatenate([y_test, y_train[originals]])
    return {
        "train": _write(folder / "train.npz", x_train, y_train),
        "eval": _write(folder / "test.npz", x_test, y_test),
        "flipped": flipped,
        "control": control,
        "originals": originals,
        "copy_rows": copy_rows,
    }


def train_planted(
    folder: Path, data_seed: int = DATA_SEED, **influence: Any
) -> tuple[Path, dict[str, Any]]:
    """Train the planted recipe with ``compaudit train``; return the run dir and the plant."""
    plant = planted_data(folder, data_seed)
    recipe = {
        "name": "planted",
        "dataset": {"train": plant["train"], "eval": plant["eval"]},
        "architecture": {"name": "mlp", "kwargs": {"hidden": [64, 64]}},
        "training": TRAINING,
        "k": 1,
        "seed": 0,
        "variants": [{"name": "dense", "kind": "dense"}],
        "influence": {**INFLUENCE, **influence},
    }
    path = write_recipe(folder / "planted.yaml", recipe)
    out = folder / "run"
    args = [str(path), "--out", str(out), "--threads", "1", "--quiet"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    return out, plant


@pytest.mark.slow
def test_mislabelled_unique_examples_are_memorized_and_lead_their_copies(tmp_path: Path) -> None:
    run_dir, plant = train_planted(tmp_path)
    runs = load_runs(run_dir / INFLUENCE_RUNS)
    assert runs.n_runs == INFLUENCE["runs"]
    mem = memorization(runs)
    flipped, control = plant["flipped"], plant["control"]

    # Every mislabelled outlier is memorized: fitted when seen, wrong when not,
    # i.e. memorization near 1, several standard errors above 0.5.
    assert (mem.n_in[flipped] > 0).all()
    assert (mem.n_out[flipped] > 0).all()
    assert (mem.value[flipped] - 3 * mem.se[flipped] > 0.5).all(), mem.value[flipped]
    # ... and they lead the ranking: all within the top 2 x their count (ties
    # rank the smaller index first, i.e. the blob examples, against us).
    order = np.argsort(-np.nan_to_num(mem.value, nan=-np.inf), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    assert (rank[flipped] < 2 * flipped.size).all(), rank[flipped]
    # Control: outliers in the same kind of spots with their blob's label are
    # not memorized (the model gets them right whether or not it saw them).
    assert (mem.value[control] < 0.3).all(), mem.value[control]

    # The near-copies of mislabelled outliers have their original first, well
    # above 0.5, and clear of the runner-up (chance agreement of two random
    # subsets reaches about 0.5 over 250 examples at R = 40: seen up to 0.55).
    top = top_influencers(runs, plant["copy_rows"], k=2)
    for row in range(2):
        assert top.train_indices[row, 0] == plant["originals"][row], top.train_indices[row]
        first, second = top.influence[row]
        assert first - 3 * top.se[row, 0] > 0.5
        assert first - second > 0.3, top.influence[row]
    # Control: the copy of a correctly labelled outlier does not depend on it.
    assert top.influence[2, 0] < 0.5, top.influence[2]
    ctrl = influence(runs, plant["copy_rows"][2:])
    assert abs(ctrl.value[0, plant["originals"][2]]) < 0.3
