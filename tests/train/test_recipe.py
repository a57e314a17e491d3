"""Recipes: validation errors name the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from compaudit.errors import PROBLEM_SEP, InputError
from compaudit.train.recipe import ERR_DUPLICATE, ERR_KEY, load_recipe, recipe_from_dict

from .conftest import tiny_dict

RECIPES = sorted((Path(__file__).parents[2] / "examples" / "recipes").glob("*.yaml"))

GOOD = """\
name: t
dataset: {name: digits}
architecture: {name: mlp}
training:
  epochs: 1
k: 2
variants:
  - name: dense
    kind: dense
  - name: p
    kind: prune
    prune:
      sparsity: 0.5
      end_step: 10
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        load_recipe(path)
    return str(info.value)


def test_good_recipe_and_defaults(tmp_path: Path) -> None:
    r = load_recipe(_write(tmp_path, GOOD))
    assert r.reference_variant == "dense"
    assert r.dataset.spec(r.dataset.eval) == "digits:test"
    assert r.training.optimizer == "sgd"
    assert r.variant("p").prune is not None


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_example_recipes_are_valid(path: Path) -> None:
    r = load_recipe(path)
    assert r.variants[0].kind == "dense"


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path, GOOD.replace("      end_step: 10", "      end_step: 10\n      sparsty: 0.2")
    )
    assert _error(path) == ERR_KEY.format(
        src=path,
        line=15,
        key="variants[1].prune.sparsty",
        problem="unknown key; check its spelling against the recipe reference",
    )


def test_bad_value_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("sparsity: 0.5", "sparsity: 1.5"))
    assert _error(path) == ERR_KEY.format(
        src=path, line=13, key="variants[1].prune.sparsity", problem="Input should be less than 1"
    )


def test_missing_key_points_at_its_parent(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("  epochs: 1\n", "  lr: 0.1\n"))
    assert _error(path) == ERR_KEY.format(
        src=path, line=4, key="training.epochs", problem="required key is missing"
    )


def test_cross_field_error_names_the_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path, GOOD + "  - {name: q, kind: quantize, from: nope, quantize: {method: fp16}}\n"
    )
    assert _error(path) == ERR_KEY.format(
        src=path,
        line=15,
        key="variants[2].from",
        problem="no variant named 'nope'; choose from ['dense', 'p', 'q']",
    )


def test_every_problem_in_one_line(tmp_path: Path) -> None:
    text = GOOD.replace("sparsity: 0.5", "sparsity: 1.5").replace("  epochs: 1\n", "  lr: 0.1\n")
    message = _error(_write(tmp_path, text))
    assert "\n" not in message  # the CLI would show a newline escaped
    assert message.split(PROBLEM_SEP) == [
        ERR_KEY.format(
            src=tmp_path / "r.yaml",
            line=4,
            key="training.epochs",
            problem="required key is missing",
        ),
        ERR_KEY.format(
            src=tmp_path / "r.yaml",
            line=13,
            key="variants[1].prune.sparsity",
            problem="Input should be less than 1",
        ),
    ]


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("k: 2\n", "k: 2\nk: 3\n"))
    assert _error(path) == ERR_KEY.format(src=path, line=7, key="k", problem=ERR_DUPLICATE)


def test_a_tagged_value_it_cannot_read_is_invalid_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("k: 2", "k: !!int two"))
    message = _error(path)
    assert message.startswith(
        f"{path}:0: not valid YAML (a tagged value cannot be read (ValueError"
    )
    assert "\n" not in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("kind: dense", "kind: [dense"))
    assert _error(path).startswith(f"{path}:")
    assert "not valid YAML" in _error(path)


def test_unknown_quantizer_and_architecture() -> None:
    with pytest.raises(InputError) as info:
        recipe_from_dict(tiny_dict(architecture={"name": "vgg"}), source="x.yaml")
    assert str(info.value) == (
        "x.yaml: recipe key 'architecture.name': unknown architecture 'vgg'; "
        "choose one of ['cnn28', 'mlp', 'resnet20']"
    )
    d = tiny_dict()
    d["variants"][2]["quantize"]["method"] = "int3"
    d["variants"][1]["prune"]["sparsity"] = 2  # every problem is listed, one per line
    with pytest.raises(InputError) as info:
        recipe_from_dict(d, source="x.yaml")
    assert str(info.value).splitlines() == [
        "x.yaml: recipe key 'variants[1].prune.sparsity': Input should be less than 1"
    ]
    d["variants"][1]["prune"]["sparsity"] = 0.5
    with pytest.raises(InputError) as info:
        recipe_from_dict(d, source="x.yaml")
    assert str(info.value).startswith(
        "x.yaml: recipe key 'variants[2].quantize.method': unknown method 'int3'; choose one of"
    )


@pytest.mark.parametrize(
    ("variant", "key", "problem"),
    [
        (
            {"name": "q", "kind": "quantize", "quantize": {"method": "fp16"}},
            "variants[1].kind",
            "a quantize variant needs 'from: <variant>' to quantize",
        ),
        (
            {"name": "p", "kind": "prune"},
            "variants[1].prune",
            "a prune variant needs a 'prune' section",
        ),
        (
            {"name": "dense", "kind": "dense"},
            "variants[1].name",
            "variant name 'dense' is used twice; names must differ",
        ),
        (
            {"name": "d2", "kind": "dense", "from": "dense"},
            "variants[1].from",
            "a dense variant trains from scratch; remove 'from'",
        ),
    ],
)
def test_variant_consistency(variant: dict[str, object], key: str, problem: str) -> None:
    d = tiny_dict(variants=[{"name": "dense", "kind": "dense"}, variant])
    with pytest.raises(InputError) as info:
        recipe_from_dict(d, source="r.yaml")
    assert str(info.value) == f"r.yaml: recipe key '{key}': {problem}"


def test_variant_fingerprint_ignores_k_and_other_variants() -> None:
    a = recipe_from_dict(tiny_dict())
    b = recipe_from_dict(tiny_dict(k=7, variants=tiny_dict()["variants"][:1]))
    c = recipe_from_dict(tiny_dict(seed=1))
    assert a.variant_fingerprint("dense") == b.variant_fingerprint("dense")
    assert a.variant_fingerprint("dense") != c.variant_fingerprint("dense")
    assert a.variant_fingerprint("int8s") != a.variant_fingerprint("tdyn")
