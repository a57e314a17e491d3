"""Run a GitHub Actions job's ``run:`` steps locally, as the runner would.

Only what the gate workflow uses is supported, and anything else raises, so a
workflow that starts using a context this module does not know fails its test
instead of being simulated wrongly. ``uses:`` steps are recorded with their
evaluated ``with:`` (checkout and setup-python are what the test prepared;
caches and uploads are checked by the caller). Each ``run:`` step gets fresh
``GITHUB_OUTPUT`` and ``GITHUB_ENV`` files, read back after it the way the
runner does, and the shells GitHub uses (``bash --noprofile --norc -eo
pipefail``, ``python``).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["JobRun", "StepRun", "run_job"]

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.S)
_COMPARE = re.compile(r"^steps\.([\w-]+)\.outputs\.([\w-]+)\s*(==|!=)\s*'([^']*)'$")
SHELLS = {
    "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"],
    "python": ["python"],
}


@dataclass
class StepRun:
    """One step: its evaluated env/with, and for ``run:`` steps the process result."""

    name: str
    uses: str | None = None
    with_: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    skipped: bool = False


@dataclass
class JobRun:
    """The job's steps in order, their outputs, and whether the job failed."""

    steps: list[StepRun]
    outputs: dict[str, dict[str, str]]
    failed: bool

    def step(self, name: str) -> StepRun:
        """The step named (or with id) ``name``."""
        return next(s for s in self.steps if s.name == name)

    @property
    def log(self) -> str:
        """Everything the job's scripts printed, in order."""
        return "".join(s.stdout + s.stderr for s in self.steps)


def _read_commands_file(path: Path) -> dict[str, str]:
    """``NAME=value`` and ``NAME<<DELIM ... DELIM`` lines, as the runner reads them."""
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            end = lines.index(delim, i + 1)
            out[key] = "\n".join(lines[i + 1 : end])
            i = end + 1
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path.name}: malformed line {line!r}")
        out[key] = value
        i += 1
    return out


class _Context:
    def __init__(self, inputs: dict[str, str], workspace: Path, temp: Path) -> None:
        self.inputs = inputs
        self.workspace = workspace
        self.temp = temp
        self.outputs: dict[str, dict[str, str]] = {}

    def value(self, expr: str) -> str:
        parts = expr.split(".")
        if parts[0] == "inputs" and len(parts) == 2:
            return self.inputs[parts[1]]
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return self.outputs.get(parts[1], {}).get(parts[3], "")
        known = {
            "runner.os": "Linux",
            "runner.temp": str(self.temp),
            "github.workspace": str(self.workspace),
            "github.run_attempt": "1",
        }
        if expr in known:
            return known[expr]
        raise NotImplementedError(f"expression not simulated: ${{{{ {expr} }}}}")

    def substitute(self, text: str) -> str:
        return _EXPR.sub(lambda m: self.value(m.group(1)), text)

    def condition(self, cond: str | None, failed: bool) -> bool:
        if cond is None:
            return not failed
        terms = [t.strip() for t in _EXPR.sub(lambda m: m.group(1), cond).split("&&")]
        # GitHub's conditions imply success() unless a status function is named.
        ok = "always()" in terms or not failed
        for term in terms:
            if term == "always()":
                continue
            m = _COMPARE.match(term)
            if m is None:
                raise NotImplementedError(f"condition not simulated: {term}")
            actual = self.outputs.get(m.group(1), {}).get(m.group(2), "")
            ok = ok and ((actual == m.group(4)) == (m.group(3) == "=="))
        return ok


def _inputs(workflow: dict[str, Any], given: dict[str, Any]) -> dict[str, str]:
    declared = workflow[True]["workflow_call"]["inputs"]  # YAML 1.1 reads `on` as True
    unknown = set(given) - set(declared)
    if unknown:
        raise KeyError(f"inputs not declared by the workflow: {sorted(unknown)}")
    out = {}
    for name, spec in declared.items():
        if spec.get("required") and name not in given:
            raise KeyError(f"required input missing: {name}")
        value = given.get(name, spec.get("default", ""))
        out[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def run_job(
    workflow: dict[str, Any],
    job: str,
    inputs: dict[str, Any],
    *,
    workspace: Path,
    temp: Path,
    base_env: dict[str, str],
) -> JobRun:
    """Run ``job`` of ``workflow`` (parsed YAML) with ``inputs`` in ``workspace``.

    ``base_env`` is the runner's environment (PATH with the tools to use,
    HOME...); the ``GITHUB_*`` files live under ``temp``.
    """
    ctx = _Context(_inputs(workflow, inputs), workspace, temp)
    default_shell = workflow.get("defaults", {}).get("run", {}).get("shell", "bash")
    summary = temp / "step_summary.md"
    persistent: dict[str, str] = {}
    runs: list[StepRun] = []
    failed = False
    for i, step in enumerate(workflow["jobs"][job]["steps"]):
        run = StepRun(name=step.get("id") or step.get("name") or step.get("uses", f"step {i}"))
        runs.append(run)
        if not ctx.condition(step.get("if"), failed):
            run.skipped = True
            continue
        run.env = {k: ctx.substitute(str(v)) for k, v in step.get("env", {}).items()}
        if "uses" in step:
            run.uses = step["uses"]
            run.with_ = {k: ctx.substitute(str(v)) for k, v in step.get("with", {}).items()}
            continue
        output, env_file = temp / f"output_{i}", temp / f"env_{i}"
        script = temp / f"step_{i}.sh"
        script.write_text(step["run"], encoding="utf-8")
        env = {
            **base_env,
            **persistent,
            **run.env,
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_ENV": str(env_file),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_RUN_ATTEMPT": "1",
            "RUNNER_TEMP": str(temp),
            "RUNNER_OS": "Linux",
        }
        shell = SHELLS[step.get("shell", default_shell)]
        res = subprocess.run(
            [*shell, str(script)],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        run.returncode, run.stdout, run.stderr = res.returncode, res.stdout, res.stderr
        if "id" in step:
            ctx.outputs[step["id"]] = _read_commands_file(output)
        persistent.update(_read_commands_file(env_file))
        failed = failed or res.returncode != 0
    return JobRun(steps=runs, outputs=ctx.outputs, failed=failed)


def tool_path(*dirs: Path) -> str:
    """A PATH of ``dirs`` first, then this process's PATH."""
    return os.pathsep.join([*map(str, dirs), os.environ.get("PATH", "")])
