"""Public entry points: load a dataset from a spec, join protected attributes.

A data spec is ``NAME_OR_PATH[:SPLIT][?key=value&...]``:

* ``data.npz``, ``table.csv?label=income&attributes=sex,race``, ``images/``
  (a folder of class sub-folders);
* a built-in name with an optional split (default ``test``): ``digits``,
  ``fashion-mnist:train``, ``adult:test?path=/data/adult``.

Options every spec takes: ``subset=`` (an ids file or a fraction, with
``seed=``; see :mod:`compaudit.data.subset`) and ``prep=`` (a prep file, see
:mod:`compaudit.data.prep`: the built-in file loaders apply it, other loaders'
data must match it).

Loaders are plugins (hook ``register_datasets``); the one whose
``matches(spec)`` is true loads it. When several match, the plugin rule
decides (:func:`compaudit.plugins.best_matches`: the longest declared suffix
wins); a tie is ambiguous and ``?provider=NAME`` picks one.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compaudit.data._common import check_dataset, compact
from compaudit.data._spec import parse_data_spec
from compaudit.data.base import Dataset, DatasetProvider, Preprocessing
from compaudit.data.prep import given_prep, plain, prep_mismatch
from compaudit.data.subset import take_subset
from compaudit.data.tables import read_csv_columns
from compaudit.errors import PROBLEM_SEP, DataNotFoundError, InputError
from compaudit.population import LABEL_ATTRIBUTE, attribute_key

if TYPE_CHECKING:
    from compaudit.plugins import Registry

__all__ = ["load_dataset", "parse_data_spec", "read_attributes_csv"]

ERR_UNKNOWN_SPEC = (
    "unknown data spec '{spec}': no dataset loader reads it; known datasets and file kinds: "
    "{known}. Fix: give an existing .npz or .csv file or image folder, or one of the names above."
)
ERR_NO_SUCH_PATH = "data spec '{spec}': no such file or folder {path}; check the path"
ERR_AMBIGUOUS = (
    "data spec '{spec}' is claimed by several dataset loaders ({names}); "
    "pick one with ?provider=NAME"
)
ERR_NO_PROVIDER = "data spec '{spec}': no dataset loader named '{provider}'; known: {names}"
ERR_ATTR_NO_ID = (
    "{path}: no 'id' column; an attributes CSV needs an 'id' column holding the "
    "dataset's example ids and one column per protected attribute"
)
ERR_ATTR_NO_COLUMNS = "{path}: only an 'id' column; add one column per protected attribute"
ERR_ATTR_LABEL = (
    "{path}: column {column!r} would shadow the true label (the attribute 'label', always "
    "available); rename the column"
)
ERR_ATTR_COLLIDE = (
    "{path}: columns {first!r} and {second!r} name the same attribute (they are equal "
    "ignoring case and Unicode width); rename one"
)
ERR_ATTR_DUP = (
    "{path}: {count} id(s) appear on more than one row, e.g. {examples}; keep one row per example"
)
ERR_ATTR_MISSING = (
    "{path}: {count} of {n} example id(s) have no row, e.g. {examples}; "
    "add a row for every example of the dataset (ids are compared as strings)"
)


def _known(providers: Mapping[str, Any]) -> str:
    return PROBLEM_SEP.join(
        f"{name}: {getattr(p, 'summary', name)}" for name, p in sorted(providers.items())
    )


def load_dataset(
    spec: str,
    *,
    options: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    prep: Preprocessing | None = None,
    prep_source: str = "the model",
    fit: bool = False,
) -> Dataset:
    """Load the dataset named by ``spec`` through the dataset plugins.

    Parameters
    ----------
    spec : str
        ``NAME_OR_PATH[:SPLIT][?key=value&...]`` (see the module docstring).
    options : mapping of str to str, optional
        Loader options; they override options given in ``spec``. The option
        ``provider=NAME`` forces a loader.
    registry : Registry, optional
        Plugin registry; default :func:`compaudit.plugins.get_registry`.
    prep : Preprocessing, optional
        The preprocessing the data must get (a model's, fitted on its
        training data). Loaders that take it (CSV, image folders, ``.npz``)
        apply it; for others the loaded data must already match it. A
        ``?prep=FILE`` in the spec must agree with it.
    prep_source : str
        Where ``prep`` came from, named in mismatch messages.
    fit : bool
        The data are training data: loaders that fit their preprocessing
        (CSV tables) may fit it on them. Without ``fit`` or ``prep``, a CSV
        table is an error unless its spec says ``fit=eval``.

    Returns
    -------
    Dataset
        Checked against the contract (lengths, label range, unique ids).

    Raises
    ------
    InputError
        Unknown or ambiguous spec (listing known datasets and file kinds),
        or data a loader rejects.
    DataNotFoundError
        A path that does not exist, or a built-in dataset not found (listing
        every place searched).
    """
    from compaudit.plugins import best_matches, get_registry

    if registry is None:
        registry = get_registry()
    base, split, merged = parse_data_spec(spec)
    merged.update(options or {})
    forced = merged.pop("provider", None)
    target = base if split is None else f"{base}:{split}"
    providers: dict[str, DatasetProvider] = registry.providers("register_datasets", DatasetProvider)
    if forced is not None:
        if forced not in providers:
            names = ", ".join(sorted(providers))
            raise InputError(ERR_NO_PROVIDER.format(spec=spec, provider=forced, names=names))
        chosen = [forced]
    else:
        chosen = [p.name for p in best_matches(target, providers.values())]
    if not chosen:
        if ("/" in base or base.startswith(".")) and not Path(base).exists():
            raise DataNotFoundError(ERR_NO_SUCH_PATH.format(spec=spec, path=base))
        raise InputError(ERR_UNKNOWN_SPEC.format(spec=spec, known=_known(providers)))
    if len(chosen) > 1:
        raise InputError(ERR_AMBIGUOUS.format(spec=spec, names=", ".join(sorted(chosen))))
    # seed= belongs to the subset only beside subset= (digits has a seed= of its own).
    subset = merged.pop("subset", None)
    seed = merged.pop("seed", None) if subset is not None else None
    provider = providers[chosen[0]]
    if _takes_prep(provider):
        named = merged.get("prep", merged.get("encoding"))
        if named is not None and prep is not None:
            # The spec's prep file must be the model's; checked here to name both sources.
            _spec_prep({"prep": named}, prep, prep_source, src=spec)
            prep = None  # the loader applies the (equal) file
        load: Any = provider.load  # the protocol's load takes no prep; this one does
        dataset: Dataset = load(target, options=merged, prep=prep, fit=fit)
    else:
        # A loader that knows nothing of prep: the spec's prep= (if any) and the
        # model's must both describe what it produced.
        prep, prep_source = _spec_prep(merged, prep, prep_source, src=spec)
        dataset = provider.load(target, options=merged)
        if prep is not None and plain(prep.to_dict()) != plain(dataset.preprocessing.to_dict()):
            raise prep_mismatch(
                prep.to_dict(), dataset.preprocessing.to_dict(), model=prep_source, data=spec
            )
    check_dataset(dataset, src=f"dataset loader '{chosen[0]}' on '{spec}'")
    if subset is not None:
        dataset = take_subset(dataset, subset, seed, src=spec)
    return dataset


def _takes_prep(provider: object) -> bool:
    """Whether a loader's ``load`` accepts ``prep=`` and ``fit=`` (the built-in file loaders)."""
    try:
        params = inspect.signature(provider.load).parameters  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return False
    return "prep" in params and "fit" in params


def _spec_prep(
    options: dict[str, str], prep: Preprocessing | None, prep_source: str, *, src: str
) -> tuple[Preprocessing | None, str]:
    """Pop ``prep=`` from ``options``; it must agree with ``prep`` when both are given."""
    path = options.pop("prep", None)
    if path is None:
        return prep, prep_source
    return given_prep(path, prep, src=src, model=prep_source), path


def read_attributes_csv(path: str | Path, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Read protected attributes for the examples ``ids`` from a CSV file.

    The file has an ``id`` column and one column per attribute. Ids are
    compared as strings (``7`` matches ``"7"``, not ``"007"``); every example
    id must have exactly one row, extra rows are ignored.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    ids : ndarray of shape (N,)
        The dataset's example ids.

    Returns
    -------
    dict of str to ndarray of str
        One array per attribute column, aligned with ``ids``.

    Raises
    ------
    InputError
        No ``id`` column, no attribute column, a column named ``label`` (any
        case: it would shadow the true label), two columns equal ignoring case
        and Unicode width, duplicated ids or example ids without a row; every
        message names the file.
    DataNotFoundError
        The file does not exist.
    """
    src = str(path)
    header, cells, _ = read_csv_columns(Path(path), src=src)
    if "id" not in header:
        raise InputError(ERR_ATTR_NO_ID.format(path=src))
    if len(header) == 1:
        raise InputError(ERR_ATTR_NO_COLUMNS.format(path=src))
    # 'label' is the true label in the subgroup analysis: a column of that name would
    # silently replace it; 'Sex' beside 'sex' would show two look-alike attributes.
    _check_attribute_names([h for h in header if h != "id"], src)
    id_col = header.index("id")
    file_ids = cells[:, id_col]
    order = np.argsort(file_ids, kind="stable")
    sorted_ids = file_ids[order]
    repeated = sorted_ids[1:] == sorted_ids[:-1]
    if repeated.any():
        dup = np.unique(sorted_ids[1:][repeated])
        examples = ", ".join(repr(str(d)) for d in dup[:5])
        raise InputError(ERR_ATTR_DUP.format(path=src, count=dup.size, examples=examples))
    wanted = np.asarray([str(i) for i in np.asarray(ids).tolist()], dtype=np.str_)
    pos = np.searchsorted(sorted_ids, wanted)
    found = pos < sorted_ids.size
    found[found] = sorted_ids[pos[found]] == wanted[found]
    if not found.all():
        missing = wanted[~found]
        examples = ", ".join(repr(str(m)) for m in missing[:5])
        raise InputError(
            ERR_ATTR_MISSING.format(path=src, count=missing.size, n=wanted.size, examples=examples)
        )
    rows = order[pos]
    return {col: compact(cells[rows, i]) for i, col in enumerate(header) if i != id_col}


def _check_attribute_names(columns: list[str], src: str) -> None:
    """Refuse a column that shadows ``label`` or collides with another (see the errors)."""
    seen: dict[str, str] = {}
    for col in columns:
        key = attribute_key(col)
        if key == LABEL_ATTRIBUTE:
            raise InputError(ERR_ATTR_LABEL.format(path=src, column=col))
        if key in seen:
            raise InputError(ERR_ATTR_COLLIDE.format(path=src, first=seen[key], second=col))
        seen[key] = col
