"""``compaudit train``: exit codes, summary table, errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from compaudit.cli.train import command

from .conftest import TINY, tiny_dict, write_recipe


def test_train_prints_a_summary_and_resumes(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", tiny_dict(k=1, variants=TINY["variants"][:3]))
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(command, [str(recipe), "--out", str(out), "--quiet", "--threads", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:3] == ["dense", "reference", "1"] for line in lines if line.strip())
    assert any(line.split()[:3] == ["p50", "prune", "1"] for line in lines if line.strip())
    assert any(
        line.split()[:5] == ["int8s", "quantize", "of", "dense", "1"]
        for line in lines
        if line.strip()
    )
    assert lines[-1] == f"audit it with: compaudit report {out}", result.output
    assert (out / "manifest.json").is_file()
    again = runner.invoke(command, [str(recipe), "--out", str(out), "-q"])
    assert again.exit_code == 0, again.output


def test_bad_recipe_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    d = tiny_dict()
    d["trainig"] = d.pop("training")
    recipe = write_recipe(tmp_path / "bad.yaml", d)
    result = CliRunner().invoke(command, [str(recipe), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert f"compaudit: error: {recipe}:" in result.output
    assert "recipe key 'trainig': unknown key" in result.output
    assert "recipe key 'training': required key is missing" in result.output
    assert not (tmp_path / "run").exists()


def test_missing_recipe_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(command, [str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert f"{tmp_path / 'none.yaml'}: no such recipe file" in result.output
