"""Population specs: files, globs, directories, lists, factories, plugin loaders."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compaudit import plugins
from compaudit.data.base import Dataset
from compaudit.errors import DataNotFoundError, InputError, ModelError, PluginError
from compaudit.models.base import Prediction, RunnerSettings
from compaudit.models.spec import (
    ERR_EMPTY_SPEC,
    ERR_NO_LOADER,
    ERR_NO_SUCH_MODEL,
    ERR_NOT_A_FILE,
    ERR_PREDICTIONS_NOT_MODELS,
    resolve_members,
)
from compaudit.predictions import ERR_RUNNER_OUTPUT, predict_population

SUFFIXES = ".ckpt, .onnx, .pt, .pt2, .pth"


def _touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    _touch(
        d / "b.onnx", d / "a.pt", d / "c.pt2", d / "notes.txt", d / "preds.npz", d / "sub/d.onnx"
    )
    return d


def test_single_file(model_dir: Path) -> None:
    [member] = resolve_members(str(model_dir / "b.onnx"))
    assert (member.path, member.name, member.options) == (str(model_dir / "b.onnx"), "b", {})


def test_directory_is_sorted_non_recursive_and_skips_other_files(model_dir: Path) -> None:
    members = resolve_members(str(model_dir))
    assert [m.path for m in members] == [str(model_dir / n) for n in ("a.pt", "b.onnx", "c.pt2")]
    assert [m.name for m in members] == ["a", "b", "c"]


def test_glob_and_list_keep_order_and_drop_duplicates(model_dir: Path) -> None:
    assert [m.name for m in resolve_members(str(model_dir / "*.onnx"))] == ["b"]
    members = resolve_members([str(model_dir / "c.pt2"), str(model_dir)])
    assert [m.name for m in members] == ["c", "a", "b"]


def test_empty_expansions_name_the_spec(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for spec in (str(tmp_path / "*.onnx"), str(tmp_path / "empty")):
        with pytest.raises(InputError) as exc:
            resolve_members(spec)
        assert str(exc.value) == ERR_EMPTY_SPEC.format(spec=spec, suffixes=SUFFIXES)


def test_a_folder_or_glob_of_predictions_files_says_so(tmp_path: Path) -> None:
    """Before: "no model files found (looked for .ckpt, ...)", as if they were missing."""
    (tmp_path / "preds").mkdir()
    _touch(tmp_path / "preds" / "int8.npz", tmp_path / "preds" / "p90.npz")
    for spec in (str(tmp_path / "preds"), str(tmp_path / "preds" / "*.npz")):
        with pytest.raises(InputError) as exc:
            resolve_members(spec)
        assert str(exc.value) == ERR_PREDICTIONS_NOT_MODELS.format(spec=spec)


def test_a_pipe_or_a_broken_link_is_there_but_not_a_model(tmp_path: Path) -> None:
    """Both read as "no such model file" before, though the path exists."""
    import os

    fifo, dangling = tmp_path / "m.onnx", tmp_path / "gone.onnx"
    os.mkfifo(fifo)
    dangling.symlink_to(tmp_path / "nowhere.onnx")
    for spec in (str(fifo), str(dangling)):
        with pytest.raises(InputError) as exc:
            resolve_members(spec)
        assert str(exc.value) == ERR_NOT_A_FILE.format(spec=spec)


def test_missing_and_unknown_files(model_dir: Path) -> None:
    missing = str(model_dir / "nope.onnx")
    with pytest.raises(DataNotFoundError) as exc:
        resolve_members(missing)
    assert str(exc.value) == ERR_NO_SUCH_MODEL.format(spec=missing)
    notes = str(model_dir / "notes.txt")
    with pytest.raises(InputError) as exc2:
        resolve_members(notes)
    assert str(exc2.value) == ERR_NO_LOADER.format(spec=notes, suffixes=SUFFIXES)


def test_colliding_stems_get_longer_names(tmp_path: Path) -> None:
    _touch(tmp_path / "x/m.onnx", tmp_path / "x/m.pt", tmp_path / "y/m.onnx")
    # Listed file by file (a folder holding m.onnx and m.pt would be refused).
    members = resolve_members(
        [str(tmp_path / "x/m.onnx"), str(tmp_path / "x/m.pt"), str(tmp_path / "y")]
    )
    x_onnx, y_onnx = str(tmp_path / "x/m.onnx"), str(tmp_path / "y/m.onnx")
    assert [m.name for m in members] == [x_onnx, "m.pt", y_onnx]


def test_factory_spec_is_named_after_its_weights() -> None:
    [member] = resolve_members("pkg.models:build", options={"weights": "/w/resnet_int8.pth"})
    assert (member.path, member.name) == ("pkg.models:build", "resnet_int8")
    assert member.options == {"weights": "/w/resnet_int8.pth"}


# -- a third-party loader through the plugin registry ---------------------------
class _FixedRunner:
    """A plugin runner with the bare protocol signature (no ``num_classes``)."""

    def __init__(self, path: str, label: int) -> None:
        self.name, self.fingerprint, self.meta = Path(path).stem, "f" * 64, {}
        self.label = label

    def predict(self, x: np.ndarray, settings: RunnerSettings) -> Prediction:
        n = x.shape[0]
        return Prediction(topk=np.full((n, 1), self.label), probs=np.ones((n, 1), np.float32))


class _FooLoader:
    name = "foo"
    suffixes = (".foo",)

    def __init__(self, label: int) -> None:
        self.label = label

    def matches(self, path: str) -> bool:
        return path.endswith(".foo")

    def load(self, path: str, *, options: Mapping[str, Any] | None = None) -> _FixedRunner:
        return _FixedRunner(path, self.label)


def _registry_with(loader: _FooLoader) -> plugins.Registry:
    class Plugin:
        @plugins.hookimpl
        def register_model_loaders(self) -> list[Any]:
            return [loader]

    registry = plugins.Registry(load_entry_points=False)
    registry.register(Plugin(), name="foo-plugin", distribution="compaudit-foo")
    return registry


def test_plugin_loaders_extend_specs(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    _touch(model_dir / "e.foo")
    monkeypatch.setattr(plugins, "get_registry", lambda: _registry_with(_FooLoader(label=2)))
    assert [m.name for m in resolve_members(str(model_dir))] == ["a", "b", "c", "e"]
    data = Dataset(
        "toy", np.zeros((4, 3), np.float32), np.array([0, 1, 2, 2]), np.arange(4), ("a", "b", "c")
    )
    pop = predict_population(str(model_dir / "e.foo"), data, cache=False)
    np.testing.assert_array_equal(pop.predictions, [[2, 2, 2, 2]])


def test_plugin_runner_labels_are_range_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _touch(tmp_path / "e.foo")
    monkeypatch.setattr(plugins, "get_registry", lambda: _registry_with(_FooLoader(label=7)))
    data = Dataset(
        "toy", np.zeros((4, 3), np.float32), np.array([0, 1, 2, 2]), np.arange(4), ("a", "b", "c")
    )
    with pytest.raises(ModelError) as exc:
        predict_population(str(tmp_path / "e.foo"), data, cache=False)
    assert str(exc.value) == ERR_RUNNER_OUTPUT.format(model="e", got=(4, 1), probs=(4, 1), n=4, c=3)


def test_a_folder_with_one_model_in_two_formats_is_refused(tmp_path: Path) -> None:
    from compaudit.errors import InputError
    from compaudit.models.spec import resolve_members

    for name in ("member-000.ckpt", "member-000.onnx", "member-001.ckpt", "member-001.onnx"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(InputError, match=r"member-000\.ckpt, member-000\.onnx"):
        resolve_members(str(tmp_path))
    with pytest.raises(InputError, match="holds the same model in several formats"):
        resolve_members(str(tmp_path / "member-*"))
    assert [m.name for m in resolve_members(str(tmp_path / "*.onnx"))] == [
        "member-000",
        "member-001",
    ]


# -- the resolution rule and names from the loaders' suffixes --------------------------
class _OnnxAgain(_FooLoader):
    """A third-party loader that claims ``.onnx`` (and a longer ``.int8.onnx``)."""

    def __init__(self, name: str, suffixes: tuple[str, ...]) -> None:
        super().__init__(label=0)
        self.name, self.suffixes = name, suffixes

    def matches(self, path: str) -> bool:
        return any(path.lower().endswith(s) for s in self.suffixes)


def test_the_longest_declared_suffix_wins_and_a_tie_names_both_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from compaudit.models.spec import find_loader
    from compaudit.plugins import ERR_TIE

    longer = _OnnxAgain("int8-onnx", (".int8.onnx",))
    monkeypatch.setattr(plugins, "get_registry", lambda: _registry_with(longer))
    assert find_loader("m/a.int8.onnx") is longer
    assert find_loader("m/a.onnx").name == "onnx"
    assert find_loader("pkg.mod:make").name == "module-factory"

    same = _OnnxAgain("my-onnx", (".onnx",))
    monkeypatch.setattr(plugins, "get_registry", lambda: _registry_with(same))
    with pytest.raises(PluginError) as exc:
        find_loader("m/a.onnx")
    assert str(exc.value) == ERR_TIE.format(
        spec="m/a.onnx",
        kind="model loaders",
        a="'my-onnx' (plugin foo-plugin)",
        b="'onnx' (plugin compaudit.models.builtin)",
    )
    # Registered under the built-in's name, it replaces the built-in instead.
    replacing = _OnnxAgain("onnx", (".onnx",))
    monkeypatch.setattr(plugins, "get_registry", lambda: _registry_with(replacing))
    assert find_loader("m/a.onnx") is replacing


def test_a_loader_that_breaks_the_contract_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from compaudit.models.spec import find_loader

    class NoSuffixes:
        name = "bare"

        def matches(self, path: str) -> bool:
            return False

    class Plugin:
        @plugins.hookimpl
        def register_model_loaders(self) -> list[Any]:
            return [NoSuffixes()]

    registry = plugins.Registry(load_entry_points=False)
    registry.register(Plugin(), name="bare-plugin", distribution="x")
    monkeypatch.setattr(plugins, "get_registry", lambda: registry)
    with pytest.raises(PluginError) as exc:
        find_loader("a.onnx")
    assert "plugin 'bare-plugin'" in str(exc.value)
    assert "ModelLoader (missing: load, suffixes)" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("m/int8.pth", "int8"),
        ("m/INT8.PT", "INT8"),
        ("m/model.pt2", "model"),
        ("runs/r/p50/member-000.ckpt", "member-000"),
        ("preds/half.npz", "half"),
        ("models/p50/*.onnx", "p50"),
        ("models/p50/member-*", "p50"),
        ("models/p50/", "p50"),
        ("models/[ab]*/x?.onnx", "models"),
        ("int8=models/p50/*.onnx", "int8"),
        ("notes.txt", "notes.txt"),
        ("pkg.mod:make", "pkg.mod:make"),
    ],
)
def test_candidate_names_come_from_the_loaders_suffixes(text: str, name: str) -> None:
    from compaudit._model_data import parse_named_spec

    assert parse_named_spec(text)[0] == name


def test_an_unnamed_glob_in_the_working_directory_is_named_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from compaudit._model_data import parse_named_spec

    work = tmp_path / "p50"
    work.mkdir()
    monkeypatch.chdir(work)
    assert parse_named_spec("*.onnx") == ("p50", "*.onnx")


def test_a_plugin_suffix_names_candidates_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from compaudit._model_data import parse_named_spec

    monkeypatch.setattr(plugins, "get_registry", lambda: _registry_with(_FooLoader(label=0)))
    assert parse_named_spec("m/tiny.foo") == ("tiny", "m/tiny.foo")
