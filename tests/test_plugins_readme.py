"""The plugin example in ``plugins/README.md`` works as written (a typed AuditReport)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from compaudit import plugins
from compaudit.cli import build_cli
from compaudit.population import Population, save_population

README = Path(__file__).resolve().parents[1] / "plugins" / "README.md"
MODULE = "compaudit_readme_csv"


def _example() -> str:
    [code] = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return str(code)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site directory holding the README's plugin as an installed distribution."""
    site = tmp_path / "site"
    info = site / f"{MODULE}-1.0.0.dist-info"
    info.mkdir(parents=True)
    (site / f"{MODULE}.py").write_text(_example())
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {MODULE}\nVersion: 1.0.0\n")
    (info / "entry_points.txt").write_text(f"[compaudit]\ncsv = {MODULE}\n")
    monkeypatch.syspath_prepend(str(site))
    plugins.get_registry.cache_clear()
    yield site
    plugins.get_registry.cache_clear()
    sys.modules.pop(MODULE, None)


def test_the_readme_reporter_and_command_work(site: Path, tmp_path: Path) -> None:
    y = np.array([0, 1, 0, 1])
    save_population(Population.create([[0, 1, 0, 1]], y), tmp_path / "r.npz")
    save_population(Population.create([[0, 1, 1, 1]], y), tmp_path / "c.npz")
    cli = build_cli()
    args = ["report", "-r", str(tmp_path / "r.npz"), "-c", str(tmp_path / "c.npz")]
    res = CliRunner().invoke(cli, [*args, "-f", "csv", "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "out" / "classes.csv").read_text().splitlines()
    assert lines[0] == "candidate,class,normalized_recall_difference,verdict"
    assert len(lines) == 3
    assert lines[1].startswith("c,0,")
    assert lines[1].endswith(",ungated")
    res = CliRunner().invoke(cli, ["hello"])
    assert res.exit_code == 0, res.output
    assert res.output == "hello from a plugin\n"


def test_the_hook_spec_says_reporters_get_the_typed_report() -> None:
    doc = plugins.HookSpecs.register_reporters.__doc__ or ""
    assert "compaudit.results.AuditReport" in doc
    assert "to_dict()" in doc
