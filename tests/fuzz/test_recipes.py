"""Hostile training recipes: bounded parsing, ``from`` cycles, encodings (issue 11, part 6).

``compaudit train RECIPE`` reads the recipe before anything else. Each case
here looped forever, ran for minutes, or crashed (an internal error) on the
code before the fix; each now exits 2 with one line naming the recipe file,
asserted against its message constant, and no run directory is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compaudit import _yaml
from compaudit.train import recipe as recipe_mod
from tests.fuzz._expect import assert_error
from tests.fuzz.conftest import fails_closed
from tests.fuzz.test_yaml import alias_chain, laughs

HEAD = """\
name: t
dataset: {name: digits}
architecture: {name: mlp}
training: {epochs: 1}
k: 2
"""
DENSE = "  - {name: dense, kind: dense}\n"


def prune(name: str, source: str) -> str:
    """A prune variant fine-tuned from ``source``."""
    section = "prune: {sparsity: 0.5, end_step: 9}"
    return f"  - {{name: {name}, kind: prune, from: {source}, {section}}}\n"


VARIANTS = "variants:\n" + DENSE
YAML_AT = recipe_mod.ERR_YAML  # "{src}:{line}: not valid YAML ({problem}); fix the syntax"
EXPANDED = _yaml.ERR_EXPANDED.format(limit=_yaml.MAX_EXPANDED)
DEPTH = _yaml.ERR_DEPTH.format(limit=_yaml.MAX_DEPTH)
CYCLE = recipe_mod.ERR_KEY.replace("{problem}", recipe_mod.ERR_CYCLE)

# (id, recipe bytes, template, known fields)
CASES: list[tuple[str, bytes, str, dict[str, Any]]] = [
    (
        "from-cycle-of-two",
        (HEAD + VARIANTS + prune("a", "b") + prune("b", "a")).encode(),
        CYCLE,
        {"line": 8, "key": "variants[1].from", "chain": "a -> b -> a"},
    ),
    (
        "from-cycle-of-three",
        (HEAD + VARIANTS + prune("a", "c") + prune("b", "a") + prune("c", "b")).encode(),
        CYCLE,
        {"line": 8, "key": "variants[1].from", "chain": "a -> c -> b -> a"},
    ),
    (
        "latin-1-not-utf-8",
        (HEAD + "description: caf\xe9\n" + VARIANTS).encode("latin-1"),
        recipe_mod.ERR_ENCODING,
        {"byte": 0xE9, "offset": len(HEAD) + len("description: caf")},
    ),
    (
        "utf-16-with-bom",
        (HEAD + VARIANTS).encode("utf-16"),
        recipe_mod.ERR_ENCODING,
        {"byte": 0xFF, "offset": 0},
    ),
    (
        "billion-laughs",
        (HEAD + VARIANTS + laughs()).encode(),
        YAML_AT,
        {"problem": EXPANDED},
    ),
    (
        "recursive-alias",
        (HEAD + VARIANTS + "loop: &a [*a]\n").encode(),
        YAML_AT,
        {"problem": _yaml.ERR_RECURSIVE},
    ),
    (
        "20000-nested-flow-mappings",
        (HEAD + VARIANTS + "deep: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n").encode(),
        YAML_AT,
        {"problem": DEPTH},
    ),
    (
        "alias-chain-1200-deep-once-expanded",
        (HEAD + VARIANTS + alias_chain()).encode(),
        YAML_AT,
        {"problem": DEPTH},
    ),
]


@pytest.mark.parametrize(
    ("raw", "template", "known"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_recipe_fails_closed(
    tmp_path: Path, raw: bytes, template: str, known: dict[str, Any]
) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(raw)
    out = tmp_path / "run"
    args = ["train", str(path), "--out", str(out), "--device", "cpu"]
    run = fails_closed(args, names=str(path))
    assert_error(run.error_lines[0], template, src=str(path), **known)
    assert not out.exists()


def test_order_of_a_cyclic_recipe_terminates() -> None:
    # Built without validation (model_construct): order() used to loop forever here.
    a = recipe_mod.VariantConfig.model_construct(name="a", kind="prune", from_="b")
    b = recipe_mod.VariantConfig.model_construct(name="b", kind="prune", from_="a")
    d = recipe_mod.VariantConfig.model_construct(name="d", kind="dense", from_=None)
    r = recipe_mod.Recipe.model_construct(variants=[d, a, b])  # type: ignore[call-arg]
    assert [v.name for v in r.order()] == ["d"]
