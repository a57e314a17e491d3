"""Datasets and protected attributes: loaders, lookup, preprocessing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from compaudit.data.base import Dataset, DatasetProvider, Preprocessing

if TYPE_CHECKING:
    from compaudit.data.loading import load_dataset, parse_data_spec, read_attributes_csv

__all__ = [
    "Dataset",
    "DatasetProvider",
    "Preprocessing",
    "load_dataset",
    "parse_data_spec",
    "read_attributes_csv",
]

_LOADING = ("load_dataset", "parse_data_spec", "read_attributes_csv")


def __getattr__(name: str) -> Any:
    """The loaders, imported on first use: :mod:`compaudit.data.loading` brings in
    ``rich.progress``, ``urllib`` and the dataset modules, which an audit of
    predictions files (every ``compaudit report`` without ``--data``) never needs."""
    if name in _LOADING:
        from compaudit.data import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
