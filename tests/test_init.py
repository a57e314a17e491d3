"""``compaudit init``: a starter policy and workflow, never over a file that exists."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from compaudit.cli import build_cli
from compaudit.cli.init import ERR_EXISTS, POLICY_FILE, WORKFLOW_FILE
from compaudit.policy import load_policy

ROOT = Path(__file__).resolve().parents[1]


def _init(*args: str) -> Result:
    return CliRunner().invoke(build_cli(), ["init", *args])


def test_init_writes_a_policy_that_loads_and_the_example_workflow(tmp_path: Path) -> None:
    res = _init(str(tmp_path))
    assert res.exit_code == 0, res.output
    policy, workflow = tmp_path / POLICY_FILE, tmp_path / WORKFLOW_FILE
    assert policy.read_text() == (ROOT / "examples/policies/strict-release.yaml").read_text()
    assert load_policy(policy).gates  # a real policy, with gates
    assert workflow.read_text() == (ROOT / "examples/github/release-gate.yml").read_text()
    job = yaml.safe_load(workflow.read_text())["jobs"]["compaudit"]
    assert job["uses"].split("@")[0].endswith("/compaudit-gate.yml")
    assert job["with"]["policy"] == POLICY_FILE
    # The next step names the files where they were written, not in the working directory.
    assert res.stderr.strip().splitlines()[-1].endswith(f"check --policy {policy} ...")


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / POLICY_FILE).write_text("mine\n")
    res = _init(str(tmp_path))
    assert res.exit_code == 2
    expected = ERR_EXISTS.format(path=tmp_path / POLICY_FILE)
    assert res.output.strip().splitlines()[-1] == f"compaudit: error: {expected}"
    assert (tmp_path / POLICY_FILE).read_text() == "mine\n"
    assert not (tmp_path / WORKFLOW_FILE).exists()  # nothing half done


def test_init_refuses_an_existing_workflow_too(tmp_path: Path) -> None:
    (tmp_path / WORKFLOW_FILE).parent.mkdir(parents=True)
    (tmp_path / WORKFLOW_FILE).write_text("mine\n")
    assert _init(str(tmp_path)).exit_code == 2
    assert not (tmp_path / POLICY_FILE).exists()


def test_init_force_overwrites_with_the_policy_asked_for(tmp_path: Path) -> None:
    (tmp_path / POLICY_FILE).write_text("mine\n")
    res = _init(str(tmp_path), "--force", "--policy", "advisory")
    assert res.exit_code == 0, res.output
    assert (tmp_path / POLICY_FILE).read_text() == (
        ROOT / "examples/policies/advisory.yaml"
    ).read_text()


def test_init_on_a_file_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    res = _init(str(target))
    assert res.exit_code == 2
    assert "is not a directory" in res.output
