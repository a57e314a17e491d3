"""Population predictions: run every model of a spec on a dataset (cache first).

Public API: :func:`predict_population`, :func:`load_population_spec` and
:func:`check_comparable`. The file form is :mod:`compaudit.population`'s.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compaudit.cache import PredictionCache, cache_key
from compaudit.comparable import (
    ERR_DIFFERENT_DATA,
    ERR_DIFFERENT_EXAMPLES,
    ERR_DIFFERENT_PREPROCESSING,
    check_same_examples,
    plain_json,
)
from compaudit.data.base import Dataset
from compaudit.errors import InputError, ModelError
from compaudit.models.base import MemberSpec, Prediction, Runner, RunnerSettings
from compaudit.models.spec import load_member, member_fingerprint, resolve_members
from compaudit.population import PREDICTIONS_SUFFIXES, Population, load_population

__all__ = [
    "ERR_DATA_REQUIRED",
    "ERR_DIFFERENT_DATA",
    "ERR_DIFFERENT_EXAMPLES",
    "ERR_DIFFERENT_PREPROCESSING",
    "ERR_MODEL_CLASSES",
    "ERR_MODEL_PREPROCESSING",
    "ERR_NOT_PREDICTIONS",
    "ERR_RUNNER_OUTPUT",
    "PREDICTIONS_SUFFIXES",
    "check_comparable",
    "load_population_spec",
    "predict_population",
]

_log = logging.getLogger(__name__)

LOG_CACHE = "{name}: predictions of {hits} of {k} model(s) read from the cache ({where})"
"""What ``-v`` shows after a population is predicted: how much the cache spared."""

ERR_DATA_REQUIRED = (
    "{spec}: --data is required to run models; give the dataset, or a predictions .npz "
    "written by `compaudit predict`"
)
ERR_NOT_PREDICTIONS = (
    "{spec}: this .npz holds no 'predictions' array, so it is not a predictions file; "
    "pass data files with --data and predictions written by `compaudit predict` as models"
)
ERR_RUNNER_OUTPUT = (
    "{model}: the runner returned top-k of shape {got} and probabilities of shape {probs} "
    "for {n} examples; expected [N, k] with labels in [0, {c})"
)
ERR_MODEL_CLASSES = (
    "{model}: the model was trained on classes {model_classes} but the dataset {data} has "
    "{data_classes}; evaluate it on the data it was trained for (or fix class_names)"
)
ERR_MODEL_PREPROCESSING = (
    "{model}: the model was trained on data prepared otherwise than the dataset {data} "
    "({diff}; model vs data). Fix: load the data with the model's preprocessing, "
    "--data 'SPEC?prep=PREP.json' (a trainer run has RUN_DIR/prep.json; for other models "
    "run `compaudit fit-data TRAIN_SPEC --out PREP.json` on their training data)"
)


def _spec_label(spec: str | Sequence[str]) -> str:
    return spec if isinstance(spec, str) else " ".join(str(s) for s in spec)


def _check_model_meta(runner: Runner, dataset: Dataset) -> None:
    """Trainer checkpoints record their classes and preprocessing; they must match."""
    meta = runner.meta
    names = meta.get("class_names")
    if names is not None and [str(c) for c in names] != list(dataset.class_names):
        raise InputError(
            ERR_MODEL_CLASSES.format(
                model=runner.name,
                model_classes=list(names),
                data=dataset.name,
                data_classes=list(dataset.class_names),
            )
        )
    prep = meta.get("preprocessing")
    want = dataset.preprocessing.to_dict()
    if prep is not None and plain_json(prep) != plain_json(want):
        from compaudit.data.prep import prep_diff

        diff = prep_diff(plain_json(prep), plain_json(want))
        raise InputError(
            ERR_MODEL_PREPROCESSING.format(model=runner.name, data=dataset.name, diff=diff)
        )


def _run(runner: Runner, dataset: Dataset, settings: RunnerSettings) -> Prediction:
    # Built-in runners check the output width on the first batch; third-party
    # runners may not accept the keyword, so their labels are range-checked below.
    if "num_classes" in inspect.signature(runner.predict).parameters:
        pred = runner.predict(dataset.x, settings, num_classes=dataset.num_classes)
    else:
        pred = runner.predict(dataset.x, settings)
    _check_prediction(runner.name, pred, dataset)
    return pred


def _check_prediction(model: str, pred: Prediction, dataset: Dataset) -> None:
    topk, probs = np.asarray(pred.topk), np.asarray(pred.probs)
    ok = topk.ndim == 2 and topk.shape[0] == dataset.n and topk.shape[1] >= 1
    ok = ok and probs.shape == topk.shape and topk.dtype.kind in "iu"
    ok = ok and int(topk.min()) >= 0 and int(topk.max()) < dataset.num_classes
    if not ok:
        raise ModelError(
            ERR_RUNNER_OUTPUT.format(
                model=model, got=topk.shape, probs=probs.shape, n=dataset.n, c=dataset.num_classes
            )
        )


def _predict_member(
    member: MemberSpec,
    dataset: Dataset,
    settings: RunnerSettings,
    store: PredictionCache | None,
    fingerprints: tuple[str, str],
) -> tuple[Prediction, str, bool]:
    """The member's prediction, its model fingerprint, and whether it came from the cache."""

    def key_for(model_fp: str) -> str:
        return cache_key(
            model_fingerprint=model_fp,
            dataset_fingerprint=fingerprints[0],
            preprocessing_fingerprint=fingerprints[1],
            # Dynamically quantized models scale activations per batch, so the
            # batch size can change their predictions: it is part of the key.
            settings_key={**settings.key(), "batch_size": settings.batch_size},
        )

    fp = member_fingerprint(member, settings)
    if store is not None and fp is not None:
        hit = store.get(key_for(fp))
        if hit is not None:
            _check_prediction(member.name, hit, dataset)
            return hit, fp, True
    runner = load_member(member, settings)
    _check_model_meta(runner, dataset)
    pred = _run(runner, dataset, settings)
    if store is not None:
        store.put(key_for(runner.fingerprint), pred)
    return pred, runner.fingerprint, False


def predict_population(
    spec: str | Sequence[str],
    dataset: Dataset,
    *,
    settings: RunnerSettings = RunnerSettings(),  # noqa: B008 (frozen dataclass)
    cache: bool = True,
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Population:
    """Run every model of a population spec on ``dataset``.

    Parameters
    ----------
    spec : str or sequence of str
        Model file(s), glob, directory or ``module:factory``
        (see :func:`compaudit.models.spec.resolve_members`).
    dataset : Dataset
        Preprocessed inputs, labels, ids, classes and attributes.
    settings : RunnerSettings
        Batch size, top-k, device, whether models output probabilities.
    cache : bool
        Read and write the prediction cache (:mod:`compaudit.cache`).
    name : str, optional
        Population name (its ``source``); default the spec.
    options : mapping, optional
        Loader options for every member, e.g. ``{"weights": FILE}``.

    Returns
    -------
    Population
        ``predictions [K, N]``, ``topk [K, N, k]`` with ``k = min(settings.k, C)``,
        the dataset's ``y``, ids, class names and attributes, and ``meta``
        (members, model fingerprints, dataset, its fingerprint, preprocessing,
        runner settings).

    Raises
    ------
    InputError, DataNotFoundError, ModelError
        Unusable spec, unreadable model, inputs the model rejects, output
        width different from ``dataset.num_classes``, non-finite outputs.
    """
    members = resolve_members(spec, options=options)
    dataset_fp = dataset.fingerprint()
    prep_fp = dataset.preprocessing.fingerprint()
    store = PredictionCache() if cache else None
    preds: list[Prediction] = []
    model_fps: list[str] = []
    hits = 0
    for member in members:
        pred, fp, hit = _predict_member(member, dataset, settings, store, (dataset_fp, prep_fp))
        preds.append(pred)
        model_fps.append(fp)
        hits += hit
    if store is not None:  # shown with -v: whether a rerun really skipped the models
        _log.debug(
            LOG_CACHE.format(
                name=name or _spec_label(spec), hits=hits, k=len(members), where=store.directory
            )
        )
    k = min(int(p.topk.shape[1]) for p in preds)
    topk = np.stack([np.asarray(p.topk)[:, :k] for p in preds])
    meta: dict[str, Any] = {
        "members": [m.name for m in members],
        "model_fingerprints": model_fps,
        "dataset": dataset.name,
        "dataset_fingerprint": dataset_fp,
        "preprocessing": dataset.preprocessing.to_dict(),
        "runner": settings.key(),
    }
    if name is not None:
        meta["name"] = name
    return Population.create(
        topk[:, :, 0],
        dataset.y,
        topk=topk,
        ids=dataset.ids,
        class_names=dataset.class_names,
        attributes=dataset.attributes,
        meta=meta,
        source=name or _spec_label(spec),
    )


def _is_predictions_file(spec: str) -> bool:
    p = Path(spec)
    if p.suffix.lower() not in PREDICTIONS_SUFFIXES or not p.is_file():
        return False
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError):
        # A corrupt zip can raise any of these (e.g. "zip file version 14.2").
        return True  # let load_population report the unreadable file
    if "predictions.npy" not in names:
        raise InputError(ERR_NOT_PREDICTIONS.format(spec=spec))
    return True


def load_population_spec(
    spec: str,
    *,
    dataset: Dataset | None,
    settings: RunnerSettings = RunnerSettings(),  # noqa: B008 (frozen dataclass)
    cache: bool = True,
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Population:
    """A population from a predictions ``.npz`` or from models run on ``dataset``.

    Parameters
    ----------
    spec : str
        A predictions file written by ``compaudit predict`` (or by hand), or
        a model spec for :func:`predict_population`.
    dataset : Dataset or None
        Required to run models. With a predictions file, its labels, ids and
        recorded dataset fingerprint are checked against it.
    settings, cache, name, options
        As for :func:`predict_population`.

    Raises
    ------
    InputError
        Models without a dataset, an ``.npz`` that is not a predictions
        file, or predictions made on other data than ``dataset``.
    DataNotFoundError
        A path that does not exist (with or without a dataset).
    """
    if _is_predictions_file(spec):
        pop = load_population(spec)
        if name is not None:
            pop = dataclasses.replace(pop, meta={**pop.meta, "name": name})
        if dataset is not None:
            check_comparable(pop, _dataset_view(dataset))
        return pop
    if dataset is None:
        # A missing file, or one no loader reads, is named as such before --data is.
        resolve_members(spec, options=options)
        raise InputError(ERR_DATA_REQUIRED.format(spec=spec))
    return predict_population(
        spec, dataset, settings=settings, cache=cache, name=name, options=options
    )


def _dataset_view(dataset: Dataset) -> Population:
    """The dataset as an empty-prediction population, for :func:`check_comparable`."""
    return Population(
        predictions=np.zeros((0, dataset.n), dtype=np.uint8),
        y=dataset.y,
        num_classes=dataset.num_classes,
        ids=dataset.ids,
        meta={
            "dataset_fingerprint": dataset.fingerprint(),
            "preprocessing": dataset.preprocessing.to_dict(),
        },
        source=f"--data {dataset.name}",
    )


def check_comparable(a: Population, b: Population) -> None:
    """Raise unless ``a`` and ``b`` are predictions on the same, identically prepared
    examples: :func:`compaudit.population.check_same_examples` (the one rule)."""
    check_same_examples(a, b, classes=False)
