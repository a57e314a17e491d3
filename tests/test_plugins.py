"""Third-party plugins through real entry points: discovered, versioned, named when broken."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from compaudit import plugins
from compaudit.cli import build_cli
from compaudit.errors import PluginError

PLUGIN = '''
from compaudit.plugins import hookimpl
import click


class CSVReporter:
    name = "csv"
    filename = "classes.csv"

    def write(self, report, *, out_dir, context):
        # ``report`` is the typed AuditReport; to_dict() is the report.json document.
        rows = ["candidate,class,normalized_recall_difference,verdict"]
        for c in report.comparisons:
            for r in c.classes:
                rows.append(
                    f"{c.candidate},{r.class_index},{r.normalized_recall_difference},"
                    f"{report.verdict}"
                )
        doc = report.to_dict()
        assert doc["verdict"] == report.verdict
        path = out_dir / self.filename
        path.write_text("\\n".join(rows) + "\\n")
        return path


@hookimpl
def register_reporters():
    return [CSVReporter()]


@hookimpl
def register_commands(cli):
    @cli.command("hello")
    def hello():
        """Say hello from a plugin."""
        click.echo("hello from a plugin")
'''


def _distribution(site: Path, name: str, version: str, entry: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[compaudit]\n{entry}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site directory with one working and one broken plugin distribution."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "compaudit_csv.py").write_text(PLUGIN)
    _distribution(site, "compaudit_csv", "1.2.0", "csv = compaudit_csv")
    _distribution(site, "compaudit_broken", "0.1.0", "broken = compaudit_missing_module")
    monkeypatch.syspath_prepend(str(site))
    plugins.get_registry.cache_clear()
    yield site
    plugins.get_registry.cache_clear()
    sys.modules.pop("compaudit_csv", None)


def test_entry_point_plugins_are_loaded_with_versions(site: Path) -> None:
    registry = plugins.Registry()
    info = {i.name: i for i in registry.infos}
    assert info["csv"].distribution == "compaudit_csv"
    assert info["csv"].version == "1.2.0"
    assert info["csv"].hooks == ("register_commands", "register_reporters")
    assert not info["csv"].builtin
    assert "csv" in registry.reporters()
    assert "json" in registry.reporters()  # built-ins stay
    # a broken plugin is recorded by name with a one-line reason, not raised
    assert info["broken"].error is not None
    assert "compaudit_missing_module" in info["broken"].error
    assert [b.name for b in registry.broken] == ["broken"]


def test_plugins_command_names_the_broken_plugin(site: Path) -> None:
    res = CliRunner().invoke(build_cli(), ["plugins"])
    assert res.exit_code == 2
    assert "compaudit_csv" in res.output
    assert "1.2.0" in res.output
    assert "broken" in res.output
    assert "Traceback" not in res.output


def test_a_plugin_reporter_and_command_work_end_to_end(site: Path, tmp_path: Path) -> None:
    import numpy as np

    from compaudit.population import Population, save_population

    y = np.array([0, 1, 0, 1])
    save_population(Population.create([[0, 1, 0, 1]], y), tmp_path / "r.npz")
    save_population(Population.create([[0, 1, 1, 1]], y), tmp_path / "c.npz")
    cli = build_cli()
    res = CliRunner().invoke(
        cli,
        [
            "report",
            "-r",
            str(tmp_path / "r.npz"),
            "-c",
            str(tmp_path / "c.npz"),
            "-f",
            "csv",
            "-o",
            str(tmp_path / "out"),
        ],
    )
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "out/classes.csv").read_text().splitlines()
    assert lines[0] == "candidate,class,normalized_recall_difference,verdict"
    assert len(lines) == 3
    assert lines[1].startswith("c,0,")
    assert lines[1].endswith(",ungated")  # no policy: not gated
    res = CliRunner().invoke(cli, ["hello"])
    assert res.exit_code == 0
    assert res.output == "hello from a plugin\n"


class _Claim:
    """Claims specs with its suffixes (any spec when it has none), unless ``claims`` is False."""

    def __init__(self, name: str, suffixes: tuple[str, ...] = (), claims: bool = True) -> None:
        self.name, self.suffixes, self.claims = name, suffixes, claims

    def matches(self, spec: str) -> bool:
        fits = not self.suffixes or any(spec.lower().endswith(s.lower()) for s in self.suffixes)
        return self.claims and fits


def test_the_resolution_rule() -> None:
    """Longest declared suffix wins; no fitting suffix ranks 0; a tie for the top is an error."""
    onnx, int8 = _Claim("onnx", (".onnx",)), _Claim("int8", (".INT8.onnx",))
    anything, shy = _Claim("anything"), _Claim("shy", (".onnx",), claims=False)
    assert plugins.specificity(int8, "m/a.int8.ONNX") == len(".int8.onnx")
    assert plugins.specificity(anything, "m/a.onnx") == 0
    assert plugins.resolve("a.int8.onnx", [onnx, int8, anything], kind="x") is int8
    assert plugins.resolve("a.onnx", [anything, onnx, shy], kind="x") is onnx
    assert plugins.resolve("a.txt", [onnx, shy], kind="x") is None
    tied = plugins.best_matches("a.txt", [anything, _Claim("b"), onnx])
    assert [p.name for p in tied] == ["anything", "b"]
    with pytest.raises(PluginError) as exc:
        plugins.resolve("a.txt", [_Claim("b"), anything], kind="dataset providers")
    assert str(exc.value) == plugins.ERR_TIE.format(
        spec="a.txt", kind="dataset providers", a="'anything'", b="'b'"
    )
