"""The demo's packaged recipe and policy are the ones shown in examples/."""

from __future__ import annotations

from pathlib import Path

import pytest

from compaudit.demo import POLICY, RECIPES, demo_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("packaged", "example"),
    [
        (RECIPES["digits"], "examples/recipes/digits-demo.yaml"),
        (RECIPES["fashion-mnist"], "examples/recipes/fashion-mnist.yaml"),
        (POLICY, "examples/policies/digits-demo.yaml"),
    ],
)
def test_packaged_demo_files_match_examples(packaged: str, example: str) -> None:
    assert demo_file(packaged).read_text() == (ROOT / example).read_text(), (
        f"compaudit/demo/{packaged} and {example} differ: copy the example over the packaged file"
    )
