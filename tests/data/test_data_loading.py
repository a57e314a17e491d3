"""Spec parsing, provider dispatch through the plugin registry, contract checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from compaudit.data import _spec, loading
from compaudit.data._common import ERR_LENGTH
from compaudit.data.base import Dataset
from compaudit.data.loading import load_dataset, parse_data_spec
from compaudit.errors import DataNotFoundError, InputError
from compaudit.plugins import Registry, hookimpl

BUILTIN_NAMES = ["adult", "csv", "digits", "fashion-mnist", "images", "npz"]


@pytest.fixture
def registry() -> Registry:
    """Built-ins only: installed third-party plugins must not change these tests."""
    return Registry(load_entry_points=False)


def _npz(path: Path) -> Path:
    np.savez(path, x=np.zeros((3, 2), np.float32), y=np.array([0, 1, 0]))
    return path


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("digits", ("digits", None, {})),
        ("adult:train", ("adult", "train", {})),
        ("fashion-mnist:test?limit=10", ("fashion-mnist", "test", {"limit": "10"})),
        (
            "t.csv?label=income&attributes=sex,race&categorical=workclass,education",
            (
                "t.csv",
                None,
                {"label": "income", "attributes": "sex,race", "categorical": "workclass,education"},
            ),
        ),
        ("x.csv?label=a%26b&&id=", ("x.csv", None, {"label": "a&b", "id": ""})),
        ("/no/such/fmnist:train", ("/no/such/fmnist", "train", {})),
        ("/a/b:c/d.npz", ("/a/b:c/d.npz", None, {})),  # a ':' inside a path is not a split
        ("data:v2.npz", ("data:v2.npz", None, {})),  # nor one followed by a file name
    ],
)
def test_parse_data_spec(spec: str, expected: tuple[str, str | None, dict[str, str]]) -> None:
    assert parse_data_spec(spec) == expected


def test_parse_data_spec_existing_path_keeps_its_colon(tmp_path: Path) -> None:
    path = tmp_path / "set:test"
    path.mkdir()
    assert parse_data_spec(str(path)) == (str(path), None, {})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("  ", _spec.ERR_EMPTY_SPEC),
        ("t.csv?label", _spec.ERR_BAD_OPTION.format(spec="t.csv?label", part="label")),
        ("t.csv?=x", _spec.ERR_BAD_OPTION.format(spec="t.csv?=x", part="=x")),
        ("t.csv?a=1&a=2", _spec.ERR_DUP_OPTION.format(spec="t.csv?a=1&a=2", key="a")),
    ],
)
def test_parse_data_spec_errors(spec: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_data_spec(spec)
    assert str(err.value) == message


def test_option_helpers() -> None:
    opts = {"flag": "Yes", "off": "0", "n": "12", "bad": "maybe", "neg": "-1"}
    assert _spec.opt_bool(opts, "flag", src="s") is True
    assert _spec.opt_bool(opts, "off", src="s") is False
    assert _spec.opt_bool(opts, "absent", src="s", default=True) is True
    assert _spec.opt_int(opts, "n", src="s") == 12
    assert _spec.opt_int(opts, "absent", src="s", default=3) == 3
    assert _spec.opt_list({"a": " x, y,,z "}, "a") == ["x", "y", "z"]
    with pytest.raises(InputError) as err:
        _spec.opt_bool(opts, "bad", src="s")
    assert str(err.value) == _spec.ERR_OPT_BOOL.format(src="s", key="bad", value="maybe")
    with pytest.raises(InputError) as err:
        _spec.opt_int(opts, "neg", src="s", minimum=0)
    assert str(err.value) == _spec.ERR_OPT_INT.format(src="s", key="neg", value="-1", minimum=0)


def test_builtins_are_registered_through_the_plugin_registry(registry: Registry) -> None:
    providers = registry.datasets()
    assert sorted(providers) == BUILTIN_NAMES
    info = next(i for i in registry.infos if i.name == "compaudit.data.builtin")
    assert info.builtin
    assert info.hooks == ("register_datasets",)


def test_unknown_spec_lists_known_datasets_and_kinds(registry: Registry) -> None:
    with pytest.raises(InputError) as err:
        load_dataset("mnist:test", registry=registry)
    message = str(err.value)
    known = loading._known(registry.datasets())
    assert message == loading.ERR_UNKNOWN_SPEC.format(spec="mnist:test", known=known)
    assert "\n" not in message  # one line: the CLI would show a newline as "\\n"
    for name in BUILTIN_NAMES:
        assert f"{name}: " in message
    assert ".npz" in message
    assert ".csv" in message


def test_missing_path_is_data_not_found(registry: Registry, tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(DataNotFoundError) as err:
        load_dataset(str(missing), registry=registry)
    assert str(err.value) == loading.ERR_NO_SUCH_PATH.format(spec=missing, path=missing)


def test_load_dataset_dispatches_by_kind(registry: Registry, tmp_path: Path) -> None:
    ds = load_dataset(str(_npz(tmp_path / "d.npz")), registry=registry)
    assert ds.n == 3
    assert ds.class_names == ("0", "1")


def test_options_argument_overrides_spec_options(registry: Registry, tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("a,b,c\n1,2,x\n3,4,y\n")
    ds = load_dataset(f"{table}?label=b", options={"label": "c"}, registry=registry, fit=True)
    assert ds.class_names == ("x", "y")
    assert ds.preprocessing.params["columns"] == ["a", "b"]


class _Greedy:
    """A third-party provider that claims every spec and breaks the contract."""

    name = "greedy"

    def matches(self, spec: str) -> bool:
        return True

    def load(self, spec: str, *, options: Mapping[str, str] | None = None) -> Dataset:
        y = np.array([0, 1, 1])
        return Dataset("bad", np.zeros((3, 2)), y, np.arange(2), ("a", "b"))


class _GreedyPlugin:
    @hookimpl
    def register_datasets(self) -> list[_Greedy]:
        return [_Greedy()]


def test_ambiguous_spec_and_provider_option(registry: Registry, tmp_path: Path) -> None:
    registry.register(_GreedyPlugin(), name="greedy-plugin", distribution="tests")
    spec = str(_npz(tmp_path / "d.npz"))
    with pytest.raises(InputError) as err:
        load_dataset(spec, registry=registry)
    assert str(err.value) == loading.ERR_AMBIGUOUS.format(spec=spec, names="greedy, npz")
    assert load_dataset(f"{spec}?provider=npz", registry=registry).n == 3
    with pytest.raises(InputError) as err:
        load_dataset(spec, options={"provider": "nope"}, registry=registry)
    names = ", ".join(sorted([*BUILTIN_NAMES, "greedy"]))
    assert str(err.value) == loading.ERR_NO_PROVIDER.format(spec=spec, provider="nope", names=names)


def test_a_provider_that_breaks_the_contract_is_named(registry: Registry) -> None:
    registry.register(_GreedyPlugin(), name="greedy-plugin", distribution="tests")
    with pytest.raises(InputError) as err:
        load_dataset("anything", options={"provider": "greedy"}, registry=registry)
    src = "dataset loader 'greedy' on 'anything'"
    assert str(err.value) == ERR_LENGTH.format(src=src, key="ids", got=2, n=3)


def test_unknown_options_fail_closed(registry: Registry, tmp_path: Path) -> None:
    spec = str(_npz(tmp_path / "d.npz"))
    with pytest.raises(InputError) as err:
        load_dataset(f"{spec}?lable=y", registry=registry)
    assert str(err.value) == _spec.ERR_UNKNOWN_OPTION.format(
        src=spec, unknown="lable", allowed="prep"
    )


def test_files_have_no_splits(registry: Registry, tmp_path: Path) -> None:
    path = _npz(tmp_path / "d.npz")
    with pytest.raises(InputError) as err:
        load_dataset(f"{path}:train", registry=registry)
    assert str(err.value) == _spec.ERR_NO_SPLITS.format(src=path, kind=".npz file", split="train")
