"""Datasets and protected attributes: loaders, lookup, preprocessing."""

from compaudit.data.base import Dataset, DatasetProvider, Preprocessing
from compaudit.data.loading import load_dataset, parse_data_spec, read_attributes_csv

__all__ = [
    "Dataset",
    "DatasetProvider",
    "Preprocessing",
    "load_dataset",
    "parse_data_spec",
    "read_attributes_csv",
]
