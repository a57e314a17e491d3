"""``compaudit report`` on predictions files loads only what it uses (issue 10, point 7).

Without a policy the policy module (pydantic models, 0.3 s of CPU) is never
imported, and without ``--data`` neither are the dataset loaders (PIL, urllib,
``rich.progress``). The HTML report draws its charts as SVG, so without
long-tail scores it never imports matplotlib (0.5 s of CPU). The names the lazy
modules re-export still resolve.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from compaudit.population import Population, save_population

NOT_LOADED = ("compaudit.policy", "pydantic", "compaudit.data.loading", "PIL")

_RUN = """
import json, sys
from compaudit.cli import main
sys.argv = ["compaudit", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}))
"""


def _populations(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    paths = []
    for name in ("ref", "cand"):
        noise = rng.integers(0, 4, (3, 300))
        preds = np.where(rng.random((3, 300)) < 0.7, y, noise)
        path = tmp_path / f"{name}.npz"
        save_population(Population.create(preds, y), path)
        paths.append(path)
    return paths[0], paths[1]


def _loaded(cwd: Path, modules: tuple[str, ...], args: list[str]) -> dict[str, Any]:
    """Run ``compaudit ARGS`` in a fresh interpreter; which of ``modules`` it loaded."""
    proc = subprocess.run(
        [sys.executable, "-c", _RUN % (modules,), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    )
    got: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["code"] in (0, None), proc.stderr
    return got


def test_report_without_policy_or_data_imports_neither(tmp_path: Path) -> None:
    ref, cand = _populations(tmp_path)
    args = ["report", "-r", str(ref), "-c", f"c={cand}", "-o", str(tmp_path / "out")]
    got = _loaded(tmp_path, NOT_LOADED, args)
    assert (tmp_path / "out" / "report.json").is_file()
    assert got["loaded"] == []


def test_an_html_report_imports_no_matplotlib(tmp_path: Path) -> None:
    ref, cand = _populations(tmp_path)
    out = tmp_path / "out"
    args = ["report", "-r", str(ref), "-c", f"a={cand}", "-c", f"b={cand}", "-o", str(out)]
    args += ["--format", "html"]
    got = _loaded(tmp_path, ("matplotlib",), args)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg class='plot'") == 2  # one class chart per candidate
    assert page.count("<svg class='plot-curve'") == 1  # two candidates: the curve
    assert got["loaded"] == []


def test_lazy_reexports_resolve() -> None:
    import compaudit.data as data
    import compaudit.gates as gates
    from compaudit import policy
    from compaudit.data import loading

    assert gates.settings is policy.settings
    assert gates.required_attributes is policy.required_attributes
    assert data.load_dataset is loading.load_dataset
    assert data.read_attributes_csv is loading.read_attributes_csv
    assert data.parse_data_spec is loading.parse_data_spec
