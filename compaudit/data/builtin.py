"""The built-in dataset plugin: registers every bundled loader.

Listed in :data:`compaudit.plugins.BUILTIN_PLUGINS`, so built-ins go through
the same registry as third-party plugins (which may override them by name).
"""

from __future__ import annotations

from compaudit.data.adult import AdultProvider
from compaudit.data.base import DatasetProvider
from compaudit.data.digits import DigitsProvider
from compaudit.data.fashion_mnist import FashionMnistProvider
from compaudit.data.images import ImageFolderProvider
from compaudit.data.npz import NpzProvider
from compaudit.data.tables import CsvProvider
from compaudit.plugins import hookimpl


@hookimpl
def register_datasets() -> list[DatasetProvider]:
    """Return the built-in dataset providers."""
    return [
        NpzProvider(),
        CsvProvider(),
        ImageFolderProvider(),
        DigitsProvider(),
        FashionMnistProvider(),
        AdultProvider(),
    ]
