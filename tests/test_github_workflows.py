"""The reusable gate workflow and its example validate against GitHub's workflow schema."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = [
    ROOT / ".github/workflows/compaudit-gate.yml",
    ROOT / ".github/workflows/ci.yml",
    ROOT / "examples/github/release-gate.yml",
]


def _check_jsonschema() -> list[str]:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    return [exe]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_validates_offline(path: Path) -> None:
    cmd = [*_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_schema_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    cmd = [*_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(bad)]
    assert subprocess.run(cmd, capture_output=True, check=False).returncode != 0


def test_gate_workflow_contract() -> None:
    wf = yaml.safe_load((ROOT / ".github/workflows/compaudit-gate.yml").read_text())
    call = wf[True]["workflow_call"]  # YAML 1.1 reads the key `on` as True
    assert {"reference", "candidates", "data", "policy"} <= set(call["inputs"])
    steps = wf["jobs"]["gate"]["steps"]
    text = yaml.safe_dump(steps)
    assert "compaudit check" in text
    assert "actions/upload-artifact" in text
    assert any(s.get("if") == "always()" for s in steps)  # reports uploaded even on failure
    example = yaml.safe_load((ROOT / "examples/github/release-gate.yml").read_text())
    assert example["jobs"]["compaudit"]["uses"].endswith("compaudit-gate.yml@main")


_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def _pasted(text: str) -> list[tuple[str, str]]:
    """``(step, expression)`` for each input or step output written into a ``run:`` script."""
    wf = yaml.safe_load(text)
    return [
        (f"{job}/{step.get('name', step.get('id', '?'))}", m.group(0))
        for job, spec in wf.get("jobs", {}).items()
        for step in spec.get("steps", [])
        if "run" in step
        for m in _EXPRESSION.finditer(step["run"])
        if re.search(r"\b(inputs|steps|github\.event|needs)\b", m.group(1))
    ]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_is_pasted_into_a_script(path: Path) -> None:
    # GitHub substitutes ${{ }} into the script text before bash parses it, so an
    # input (or an output derived from the checkout) such as '$(curl ...)' would
    # run; values reach scripts through env: and quoted "$VAR" only.
    assert not _pasted(path.read_text())


def test_expression_check_can_fail() -> None:
    bad = 'jobs:\n  a:\n    steps:\n      - run: echo "${{ inputs.reference }}"\n'
    assert _pasted(bad) == [("a/?", "${{ inputs.reference }}")]


def test_gate_workflow_passes_every_input_through_env() -> None:
    wf = yaml.safe_load((ROOT / ".github/workflows/compaudit-gate.yml").read_text())
    steps = {s.get("id") or s.get("name"): s for s in wf["jobs"]["gate"]["steps"]}
    env = steps["check"]["env"]
    for name in ("reference", "candidates", "data", "policy", "attributes", "trust-model-code"):
        assert f"${{{{ inputs.{name} }}}}" in env.values(), name
    assert "--trust-model-code" in steps["check"]["run"]
    assert wf[True]["workflow_call"]["inputs"]["trust-model-code"]["default"] is False
