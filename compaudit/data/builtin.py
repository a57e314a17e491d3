"""The built-in dataset plugin: registers every bundled loader.

Listed in :data:`compaudit.plugins.BUILTIN_PLUGINS`, so built-ins go through
the same registry as third-party plugins (which may override them by name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compaudit.plugins import hookimpl

if TYPE_CHECKING:
    from compaudit.data.base import DatasetProvider


@hookimpl
def register_datasets() -> list[DatasetProvider]:
    """Return the built-in dataset providers."""
    # Imported when datasets are asked for (PIL, urllib, rich.progress), not when the
    # registry starts: an audit of predictions files never loads a dataset.
    from compaudit.data.adult import AdultProvider
    from compaudit.data.digits import DigitsProvider
    from compaudit.data.fashion_mnist import FashionMnistProvider
    from compaudit.data.images import ImageFolderProvider
    from compaudit.data.npz import NpzProvider
    from compaudit.data.tables import CsvProvider

    return [
        NpzProvider(),
        CsvProvider(),
        ImageFolderProvider(),
        DigitsProvider(),
        FashionMnistProvider(),
        AdultProvider(),
    ]
