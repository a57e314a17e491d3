"""predict_population, load_population_spec and check_comparable."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest

from compaudit.data.base import Dataset, Preprocessing
from compaudit.errors import CompauditError, DataNotFoundError, InputError
from compaudit.models.base import RunnerSettings
from compaudit.models.spec import ERR_NO_SUCH_MODEL
from compaudit.population import save_population
from compaudit.predictions import (
    ERR_DATA_REQUIRED,
    ERR_DIFFERENT_DATA,
    ERR_DIFFERENT_EXAMPLES,
    ERR_DIFFERENT_PREPROCESSING,
    ERR_MODEL_CLASSES,
    ERR_MODEL_PREPROCESSING,
    ERR_NOT_PREDICTIONS,
    check_comparable,
    load_population_spec,
    predict_population,
)

from .helpers import train


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def with_attributes(digits_test: Dataset) -> Dataset:
    rng = np.random.default_rng(0)
    return dataclasses.replace(
        digits_test, attributes={"group": rng.choice(["a", "b"], digits_test.n)}
    )


def test_population_carries_data_and_provenance(
    digits_models: dict[str, Path], with_attributes: Dataset, cache_dir: Path
) -> None:
    paths = [digits_models["fp32_onnx"], digits_models["mlp_onnx"], digits_models["pt2"]]
    settings = RunnerSettings(k=3, batch_size=100)
    pop = predict_population([str(p) for p in paths], with_attributes, settings=settings)
    data = with_attributes
    assert (pop.k, pop.n, pop.num_classes) == (3, data.n, 10)
    assert pop.topk is not None
    assert pop.topk.shape == (3, data.n, 3)
    np.testing.assert_array_equal(pop.topk[:, :, 0], pop.predictions)
    np.testing.assert_array_equal(pop.y, data.y)
    np.testing.assert_array_equal(pop.ids, data.ids)
    np.testing.assert_array_equal(pop.attributes["group"], data.attributes["group"])
    assert pop.class_names == data.class_names
    assert pop.source == " ".join(str(p) for p in paths)
    assert pop.meta == {
        "members": ["cnn.onnx", "mlp", "cnn.pt2"],  # colliding stems get file names
        "model_fingerprints": [_sha(p) for p in paths],
        "dataset": "digits:test",
        "dataset_fingerprint": data.fingerprint(),
        "preprocessing": data.preprocessing.to_dict(),
        "runner": settings.key(),
    }


def test_predictions_file_round_trip_and_checks_against_data(
    digits_models: dict[str, Path], digits_test: Dataset, tmp_path: Path, cache_dir: Path
) -> None:
    pop = predict_population(str(digits_models["fp32_onnx"]), digits_test, name="ref")
    assert pop.source == "ref"
    assert pop.meta["name"] == "ref"
    out = tmp_path / "preds.npz"
    save_population(pop, out)
    for dataset in (None, digits_test):
        loaded = load_population_spec(str(out), dataset=dataset)
        np.testing.assert_array_equal(loaded.topk, pop.topk)
        assert loaded.meta == pop.meta
    from .helpers import digits

    train_split = digits("train")
    with pytest.raises(InputError) as exc:
        load_population_spec(str(out), dataset=train_split)
    assert str(exc.value) == ERR_DIFFERENT_EXAMPLES.format(
        a=out, b="--data digits:train", what=f"N = {digits_test.n} vs {train_split.n}"
    )


@pytest.mark.parametrize("name", ["nope.npz", "nope.onnx", "nope", "m/*.onnx"])
def test_a_missing_file_is_named_missing_with_or_without_data(
    name: str, tmp_path: Path, digits_test: Dataset
) -> None:
    """Before: without --data a missing predictions file was told to add --data."""
    spec = str(tmp_path / name)
    for dataset in (None, digits_test):
        with pytest.raises(CompauditError) as exc:
            load_population_spec(spec, dataset=dataset)
        assert ERR_DATA_REQUIRED.format(spec=spec) != str(exc.value)
        if "*" not in name:
            assert isinstance(exc.value, DataNotFoundError)
            assert str(exc.value) == ERR_NO_SUCH_MODEL.format(spec=spec)
        else:  # a glob that matches nothing
            assert str(exc.value).startswith(f"{spec}: no model files found")


def test_models_need_data_and_data_files_are_not_predictions(
    digits_models: dict[str, Path], tmp_path: Path
) -> None:
    spec = str(digits_models["fp32_onnx"])
    with pytest.raises(InputError) as exc:
        load_population_spec(spec, dataset=None)
    assert str(exc.value) == ERR_DATA_REQUIRED.format(spec=spec)
    data_file = tmp_path / "data.npz"
    np.savez(data_file, x=np.zeros((3, 2)), y=np.arange(3))
    with pytest.raises(InputError) as exc:
        load_population_spec(str(data_file), dataset=None)
    assert str(exc.value) == ERR_NOT_PREDICTIONS.format(spec=data_file)


def _variant(data: Dataset, **changes: object) -> Dataset:
    return dataclasses.replace(data, **changes)  # type: ignore[arg-type]


def test_check_comparable_names_what_differs(
    digits_models: dict[str, Path], digits_test: Dataset, cache_dir: Path
) -> None:
    spec = str(digits_models["mlp_onnx"])
    a = predict_population(spec, digits_test, name="A")
    check_comparable(a, a)

    relabelled = _variant(digits_test, y=np.where(digits_test.y == 3, 4, digits_test.y))
    b = predict_population(spec, relabelled, name="B")
    with pytest.raises(InputError) as exc:
        check_comparable(a, b)
    bad = int((digits_test.y == 3).sum())
    assert str(exc.value) == ERR_DIFFERENT_EXAMPLES.format(
        a="A", b="B", what=f"labels differ on {bad} of {digits_test.n} examples"
    )

    b = predict_population(spec, _variant(digits_test, ids=digits_test.ids + 10_000), name="B")
    with pytest.raises(InputError) as exc:
        check_comparable(a, b)
    assert str(exc.value) == ERR_DIFFERENT_EXAMPLES.format(a="A", b="B", what="example ids differ")

    prep = dataclasses.replace(digits_test.preprocessing, scaling="standardize")
    b = predict_population(spec, _variant(digits_test, preprocessing=prep), name="B")
    with pytest.raises(InputError) as exc:
        check_comparable(a, b)
    assert str(exc.value) == ERR_DIFFERENT_PREPROCESSING.format(
        a="A", b="B", what="scaling: 'divide:16' vs 'standardize'"
    )

    noisy = _variant(digits_test, x=digits_test.x + np.float32(0.01))
    b = predict_population(spec, noisy, name="B")
    with pytest.raises(InputError) as exc:
        check_comparable(a, b)
    assert str(exc.value) == ERR_DIFFERENT_DATA.format(
        a="A", b="B", fa=digits_test.fingerprint(), fb=noisy.fingerprint()
    )


def test_checkpoint_classes_and_preprocessing_must_match_the_data(
    digits_test: Dataset, tmp_path: Path, cache_dir: Path
) -> None:
    from compaudit.models import checkpoint
    from compaudit.models.architectures import build

    kwargs = {"in_features": 64, "hidden": [24], "num_classes": 10}
    model = train(build("mlp", **kwargs), digits_test.x, digits_test.y, epochs=3)

    def save(name: str, classes: tuple[str, ...], prep: Preprocessing) -> Path:
        path = tmp_path / f"{name}.ckpt"
        checkpoint.save_checkpoint(
            path,
            model,
            arch="mlp",
            arch_kwargs=kwargs,
            class_names=classes,
            preprocessing=prep.to_dict(),
            quantization=None,
            meta={"seed": 0},
        )
        return path

    good = save("good", digits_test.class_names, digits_test.preprocessing)
    pop = predict_population(str(good), digits_test)
    assert (pop.predictions[0] == digits_test.y).mean() > 0.5
    assert pop.meta["members"] == ["good"]

    letters = tuple("abcdefghij")
    path = save("letters", letters, digits_test.preprocessing)
    with pytest.raises(InputError) as exc:
        predict_population(str(path), digits_test)
    assert str(exc.value) == ERR_MODEL_CLASSES.format(
        model="letters",
        model_classes=list(letters),
        data="digits:test",
        data_classes=list(digits_test.class_names),
    )

    raw = dataclasses.replace(digits_test.preprocessing, scaling="none")
    path = save("raw", digits_test.class_names, raw)
    with pytest.raises(InputError) as exc:
        predict_population(str(path), digits_test)
    scaling = digits_test.preprocessing.scaling
    assert str(exc.value) == ERR_MODEL_PREPROCESSING.format(
        model="raw", data="digits:test", diff=f"scaling: 'none' vs '{scaling}'"
    )
