"""Exit codes decided in one place: 0 pass, 1 a gate failed, 2 anything else.

Real predictions files, the shipped example policies and the real CLI
(click's CliRunner, and ``python -m compaudit`` in a subprocess).
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner, Result

from compaudit import cli
from compaudit.cli import COMMANDS, build_cli
from compaudit.report.base import validate_report
from tests.conftest import gated_predictions

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "examples" / "policies"
DEMO_POLICY = POLICIES / "digits-demo.yaml"


@pytest.fixture(scope="module")
def preds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reference, a quantized candidate that passes ``digits-demo.yaml`` and a pruned
    one that fails it (:func:`tests.conftest.gated_predictions`)."""
    return gated_predictions(tmp_path_factory.mktemp("preds"), ("ref", "int8", "pruned"))


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(build_cli(), list(args), env=env)


def check(preds: dict[str, Path], out: Path, *cands: str, extra: tuple[str, ...] = ()) -> Result:
    args = ["check", "-r", str(preds["ref"]), "--policy", str(DEMO_POLICY), "--out", str(out)]
    for c in cands:
        args += ["-c", f"{c}={preds[c]}"]
    return invoke(*args, "--format", "json,junit,md", *extra)


def no_traceback(res: Result) -> None:
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


# -- check with a shipped policy -------------------------------------------------------


def test_passing_candidate_exits_0(preds: dict[str, Path], tmp_path: Path) -> None:
    res = check(preds, tmp_path, "int8", extra=("--paired",))
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "report.json").read_text())["verdict"] == "pass"


def test_failed_gate_exits_1_and_exit_zero_makes_it_0(
    preds: dict[str, Path], tmp_path: Path
) -> None:
    res = check(preds, tmp_path / "a", "pruned")
    assert res.exit_code == 1, res.output
    assert "verdict: fail" in res.stderr
    # The policy's int8 override matches no candidate here: a library warning, rendered.
    assert "compaudit: warning: policy override 'int8' matches no candidate" in res.stderr
    assert json.loads((tmp_path / "a" / "report.json").read_text())["verdict"] == "fail"

    res = check(preds, tmp_path / "b", "pruned", extra=("--exit-zero", "-q"))
    assert res.exit_code == 0, res.output
    assert "warning" not in res.stderr  # -q hides warnings ...
    assert "wrote " not in res.stderr  # ... and progress lines, not the verdict
    assert "verdict: fail" in res.stderr


def test_input_error_exits_2_and_still_writes_the_error_report(
    preds: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    out = tmp_path / "out"
    args = ["check", "-r", str(preds["ref"]), "-c", str(bad), "-p", str(DEMO_POLICY)]
    res = invoke(*args, "--out", str(out), env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert res.exit_code == 2, res.output
    no_traceback(res)
    error_line = next(line for line in res.stderr.splitlines() if "error:" in line)
    assert error_line.startswith(f"compaudit: error: {bad}")
    message = error_line.removeprefix("compaudit: error: ")

    report = json.loads((out / "report.json").read_text())
    validate_report(report)
    assert report["verdict"] == "error"
    assert report["errors"] == [message]
    assert report["settings"]["files"]["policy"] == str(DEMO_POLICY)

    suites = ET.parse(out / "junit.xml").getroot()
    assert suites.get("errors") == "1"
    cases = suites.findall(".//testcase")
    assert len(cases) == 1
    error = cases[0].find("error")
    assert error is not None
    assert error.get("message") == message

    markdown = (out / "report.md").read_text()
    assert "### Errors" in markdown
    assert "### Populations" not in markdown  # nothing loaded: no empty table
    assert "bad.npz" in markdown  # the message, Markdown-escaped
    text = summary.read_text()
    assert text == "earlier step\n\n" + markdown  # appended, not overwritten
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files

    # --exit-zero masks a failed gate only, never an error (README: "Nothing exits 0
    # because something was skipped").
    res = invoke(*args, "--out", str(tmp_path / "o2"), "--exit-zero")
    assert res.exit_code == 2


@pytest.mark.parametrize(
    "text", ["version: 1\nalpha: 2\ngates: {top1_dorp: 1}\n", "gates:\n  top1_drop: [0.01\n"]
)
def test_a_policy_error_is_one_line_on_the_terminal(
    preds: dict[str, Path], tmp_path: Path, text: str
) -> None:
    """Before: the problems were joined by newlines, which the terminal showed as '\\n'."""
    policy = tmp_path / "p.yaml"
    policy.write_text(text)
    res = invoke(
        "check",
        "-r",
        str(preds["ref"]),
        "-c",
        str(preds["int8"]),
        "-p",
        str(policy),
        "--out",
        str(tmp_path / "out"),
    )
    assert res.exit_code == 2, res.output
    no_traceback(res)
    [line] = [ln for ln in res.stderr.splitlines() if ln.startswith("compaudit: error: ")]
    assert "\\n" not in line
    assert str(policy) in line
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["errors"] == [line.removeprefix("compaudit: error: ")]


def test_unevaluable_gate_is_not_masked_by_exit_zero(
    preds: dict[str, Path], tmp_path: Path
) -> None:
    # fairness-review.yaml gates subgroups of 'sex' and 'race'; the data carry neither,
    # and its on_unevaluable is 'error': the run fails closed.
    res = invoke(
        "check",
        "-r",
        str(preds["ref"]),
        "-c",
        f"pruned={preds['pruned']}",
        "-p",
        str(POLICIES / "fairness-review.yaml"),
        "--out",
        str(tmp_path),
        "--exit-zero",
    )
    assert res.exit_code == 2, res.output
    assert json.loads((tmp_path / "report.json").read_text())["verdict"] == "error"
    # No --format: the default (terminal, JSON) plus what an input error writes, so CI
    # reviewers see why in the JUnit view and the Markdown too.
    suites = ET.parse(tmp_path / "junit.xml").getroot()
    assert int(suites.get("errors") or 0) >= 1
    assert "cannot be evaluated" in (tmp_path / "report.md").read_text()


def test_report_writes_no_error_report(preds: dict[str, Path], tmp_path: Path) -> None:
    res = invoke(
        "report",
        "-r",
        str(preds["ref"]),
        "-c",
        str(tmp_path / "missing.npz"),
        "--out",
        str(tmp_path / "out"),
    )
    assert res.exit_code == 2
    assert not (tmp_path / "out" / "report.json").exists()


# -- internal errors -------------------------------------------------------------------


def test_internal_error_exits_2_with_one_line_and_a_hint(
    preds: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import compaudit.pipeline

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(compaudit.pipeline, "audit", boom)
    res = check(preds, tmp_path / "a", "pruned")
    assert res.exit_code == 2, res.output
    no_traceback(res)
    lines = res.stderr.splitlines()
    assert "compaudit: internal error: RuntimeError: boom second line" in lines
    hint = lines[lines.index("compaudit: internal error: RuntimeError: boom second line") + 1]
    assert hint.startswith("compaudit: this is a bug in compaudit; please report it")
    assert "`compaudit -v check -r " in hint
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["errors"] == ["internal error: RuntimeError: boom second line"]

    res = check(preds, tmp_path / "b", "pruned", extra=("-v",))
    assert res.exit_code == 2
    assert "Traceback (most recent call last)" in res.stderr
    assert 'raise RuntimeError("boom\\nsecond line")' in res.stderr


@pytest.mark.parametrize("case", ["meta-list", "recursive-alias"])
def test_crashing_inputs_exit_2_without_a_traceback(
    preds: dict[str, Path], tmp_path: Path, case: str
) -> None:
    cand, policy = str(preds["pruned"]), str(DEMO_POLICY)
    if case == "meta-list":  # a predictions file whose meta is a JSON list
        cand = str(tmp_path / "meta.npz")
        y = np.arange(20) % 2
        np.savez(cand, predictions=np.stack([y, y]), y=y, meta=np.asarray("[1, 2]"))
    else:  # a policy with a recursive YAML alias
        policy = str(tmp_path / "alias.yaml")
        Path(policy).write_text("version: 1\na: &a [*a]\ngates:\n  top1_drop: 0.01\n")
    res = invoke("check", "-r", str(preds["ref"]), "-c", cand, "-p", policy, "-o", str(tmp_path))
    assert res.exit_code == 2, res.output
    no_traceback(res)
    assert any(
        line.startswith(("compaudit: error: ", "compaudit: internal error: "))
        for line in res.stderr.splitlines()
    ), res.stderr
    validate_report(json.loads((tmp_path / "report.json").read_text()))


# -- click's own exits -----------------------------------------------------------------


def _group_with(*commands: click.Command) -> click.Group:
    group = build_cli()
    for c in commands:
        group.add_command(c)
    return group


@click.command("click-error")
def _click_error() -> None:
    raise click.ClickException("a click error")  # click's default exit code is 1


@click.command("exits-3")
@click.pass_context
def _exits_3(ctx: click.Context) -> None:
    ctx.exit(3)


@click.command("sys-exit")
def _sys_exit() -> None:
    sys.exit(0)


def test_click_errors_are_2_and_explicit_exits_keep_their_code() -> None:
    group = _group_with(_click_error, _exits_3, _sys_exit)
    res = CliRunner().invoke(group, ["click-error"])
    assert (res.exit_code, res.stderr) == (2, "Error: a click error\n")
    assert CliRunner().invoke(group, ["exits-3"]).exit_code == 3
    assert CliRunner().invoke(group, ["sys-exit"]).exit_code == 0
    assert CliRunner().invoke(group, ["no-such-command"]).exit_code == 2
    assert CliRunner().invoke(group, ["check", "--no-such-option"]).exit_code == 2
    assert CliRunner().invoke(group, ["-v", "-q", "schema", "report"]).exit_code == 2


def test_verbose_and_quiet_on_the_group_and_on_each_command() -> None:
    for name in COMMANDS:
        res = invoke(name, "--help")
        assert res.exit_code == 0, (name, res.output)
        assert "-v, --verbose" in res.output
        assert "-q, --quiet" in res.output
    assert invoke("-q", "schema", "report").exit_code == 0
    assert invoke("schema", "report", "-v").exit_code == 0
    assert invoke("-q", "schema", "report", "-v").exit_code == 0  # the command's flag wins
    assert cli.verbosity() == cli.NORMAL  # reset after each run


def test_short_help_of_lazy_commands_is_the_commands_own() -> None:
    group = build_cli()
    ctx = click.Context(group)
    for name, spec in COMMANDS.items():
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        stand_in = click.Command(name, help=spec.help)
        assert stand_in.get_short_help_str(200) == cmd.get_short_help_str(200), name


# -- python -m compaudit ---------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=False, cwd=ROOT, timeout=300
    )


def test_python_m_compaudit_has_the_same_exit_codes(tmp_path: Path) -> None:
    proc = _run("-m", "compaudit", "--version")
    assert (proc.returncode, proc.stdout) == (0, "compaudit, version 0.1.0\n")
    proc = _run("-m", "compaudit", "no-such-command")
    assert proc.returncode == 2
    assert "Usage: python -m compaudit" in proc.stderr


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_neither_torch_nor_scipy(flag: str) -> None:
    proc = _run("-X", "importtime", "-m", "compaudit", flag)
    assert proc.returncode == 0, proc.stderr
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "compaudit.cli" in imported  # the parse found the modules
    for heavy in ("torch", "scipy", "numpy"):
        assert heavy not in imported, f"{flag} imports {heavy}"


def test_a_broken_plugin_command_hook_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from compaudit import plugins

    def broken(self: Any, cli: click.Group) -> None:
        raise RuntimeError("hook crashed")

    monkeypatch.setattr(plugins.Registry, "add_commands", broken)
    res = invoke("--help")
    assert res.exit_code == 0, res.output
    assert "compaudit: warning: plugin commands not loaded: RuntimeError: hook crashed" in (
        res.stderr
    )
    assert "report" in res.stdout


_LATE_SIGNAL = {
    # While atexit runs (threads joined, files flushed): still an interrupt, 2.
    "atexit": (
        "def late():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.5)\n"
        "atexit.register(late)  # registered after compaudit.cli's: runs before it\n"
    ),
    # During module teardown, after the interpreter reset its handlers to the system's:
    # ignored, the decided code stands (before: killed by SIGINT, 130, no message).
    "teardown": (
        "class Bomb:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(0.2)\n"
        "bomb = Bomb()\n"
    ),
}


@pytest.mark.parametrize("when", sorted(_LATE_SIGNAL))
def test_a_signal_while_the_process_exits_never_escapes_the_contract(when: str) -> None:
    code = (
        "import atexit, os, signal, sys, time\n"
        "from compaudit import cli\n"
        + _LATE_SIGNAL[when]
        + "sys.argv = ['compaudit', '--version']\n"
        "cli.main()\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.startswith("compaudit, version"), run.stdout
    if when == "atexit":
        assert (run.returncode, run.stderr.strip()) == (2, "compaudit: interrupted")
    else:
        assert (run.returncode, run.stderr) == (0, "")


def test_a_usage_error_lists_choices_without_escaped_tabs() -> None:
    """Before: click's tab-indented choice list showed as a literal '\\t'."""
    res = invoke("schema")
    assert res.exit_code == 2
    assert "\\t" not in res.stderr
    assert "    policy," in res.stderr.splitlines()


def _closed_stdout(*args: str) -> tuple[int, str]:
    """Run ``python -m compaudit ARGS`` with its stdout a pipe closed before it writes
    (``compaudit ... | head -0``); return the exit code and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "compaudit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=300), err


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("schema", "policy")])
def test_a_closed_stdout_is_2_not_a_failed_gate(args: tuple[str, ...]) -> None:
    """click answers EPIPE with exit 1, the code for "a gate failed", and no message."""
    code, err = _closed_stdout(*args)
    assert code == 2, err
    assert err == f"compaudit: error: {cli.ERR_STDOUT_CLOSED}\n"


def test_a_closed_stdout_still_gets_the_report_files(
    preds: dict[str, Path], tmp_path: Path
) -> None:
    """Files are committed before the terminal output, so ``| head`` costs none of them."""
    out = tmp_path / "out"
    args = ["check", "-r", str(preds["ref"]), "-c", f"int8={preds['int8']}", "--paired"]
    code, err = _closed_stdout(
        *args, "--policy", str(DEMO_POLICY), "--out", str(out), "-f", "terminal,json,junit"
    )
    assert code == 2, err
    assert cli.ERR_STDOUT_CLOSED in err
    assert json.loads((out / "report.json").read_text())["verdict"] == "pass"
    assert (out / "junit.xml").is_file()
