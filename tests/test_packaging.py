"""Packaging that tells the truth: Python versions, license, data files, PyPI links."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import re
from pathlib import Path

import pytest
import tomllib
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from compaudit.policy import policy_json_schema

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def _pins() -> dict[str, str]:
    text = (ROOT / "constraints.txt").read_text()
    return {m[0].lower(): m[1] for m in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def _runtime() -> set[str]:
    return {re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0].lower() for d in PROJECT["dependencies"]}


def _lowest_python(spec: str) -> Version:
    """The lowest 3.x minor release that ``spec`` allows."""
    allowed = SpecifierSet(spec)
    return next(Version(f"3.{m}") for m in range(6, 20) if Version(f"3.{m}") in allowed)


def pins_refusing(requires_python: str) -> list[str]:
    """Pinned run-time dependencies whose Requires-Python excludes the lowest
    Python that ``requires_python`` promises (checked on the installed pins)."""
    lowest, refusing, checked = _lowest_python(requires_python), [], 0
    for name, version in _pins().items():
        if name not in _runtime():
            continue
        dist = importlib.metadata.distribution(name)
        assert dist.version.split("+")[0] == version, f"{name} {dist.version} is not the pin"
        checked += 1
        theirs = dist.metadata.get("Requires-Python") or ""
        if lowest not in SpecifierSet(theirs):
            refusing.append(f"{name}=={version} (Requires-Python {theirs})")
    assert checked >= 10, "too few pins checked for the test to mean anything"
    return refusing


def test_requires_python_is_one_the_pins_can_satisfy() -> None:
    assert pins_refusing(PROJECT["requires-python"]) == []


def test_requires_python_check_can_fail() -> None:
    # 3.10 was promised before: the pinned numpy and scipy need 3.11.
    refused = pins_refusing(">=3.10")
    assert any(r.startswith("numpy==") for r in refused), refused


def test_classifiers_agree_with_requires_python_and_license() -> None:
    allowed = SpecifierSet(PROJECT["requires-python"])
    versions = [c.rsplit(" :: ", 1)[1] for c in PROJECT["classifiers"]]
    minors = [v for v in versions if re.fullmatch(r"3\.\d+", v)]
    assert minors, "no Python version classifier"
    assert all(Version(v) in allowed for v in minors)
    # PEP 639: an SPDX expression, and no License :: classifier beside it.
    assert PROJECT["license"] == "Apache-2.0"
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License ::")]
    for name in PROJECT["license-files"]:
        assert "Apache License" in (ROOT / name).read_text()
    assert all(url.startswith("https://") for url in PROJECT["urls"].values())


def test_every_data_file_of_the_package_ships() -> None:
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["compaudit"]
    package = ROOT / "compaudit"
    data = [
        p.relative_to(package).as_posix()
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    ]
    assert "report/report.schema.json" in data
    unshipped = [
        d
        for d in data
        if not any(
            fnmatch.fnmatch(d, g.replace("**/", "*")) or fnmatch.fnmatch(d, g) for g in globs
        )
    ]
    assert unshipped == []


@pytest.mark.parametrize(
    "example",
    sorted(
        p.relative_to(ROOT / "examples").as_posix()
        for p in [
            *(ROOT / "examples/policies").glob("*.yaml"),
            ROOT / "examples/github/release-gate.yml",
        ]
    ),
)
def test_shipped_examples_are_the_examples(example: str) -> None:
    shipped = ROOT / "compaudit/examples" / example
    assert shipped.is_file(), f"compaudit/examples/{example} missing: copy examples/{example} there"
    assert shipped.read_text() == (ROOT / "examples" / example).read_text(), (
        f"compaudit/examples/{example} and examples/{example} differ: copy the example over it"
    )


def test_shipped_policy_schema_is_the_policy_model() -> None:
    shipped = ROOT / "compaudit/policy.schema.json"
    assert json.loads(shipped.read_text()) == policy_json_schema(), (
        "compaudit/policy.schema.json is stale: "
        "compaudit schema policy > compaudit/policy.schema.json"
    )


def test_schema_ids_are_relative_to_where_the_schema_is_read() -> None:
    # No $id naming a host that does not serve it: relative ids resolve against the
    # file or URL the schema was read from (check-jsonschema --schemafile, editors).
    report = json.loads((ROOT / "compaudit/report/report.schema.json").read_text())
    assert report["$id"] == "report.schema.json"
    assert policy_json_schema()["$id"] == "policy.schema.json"


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _anchors(markdown: str) -> set[str]:
    """GitHub's and PyPI's heading ids: lower case, punctuation dropped, spaces to -."""
    out = set()
    for heading in re.findall(r"^#+\s+(.+?)\s*$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        out.add(slug)
    return out


def broken_on_pypi(markdown: str) -> list[str]:
    """Links and images that PyPI cannot follow: relative paths, unknown anchors."""
    anchors = _anchors(markdown)
    text = re.sub(r"```.*?```", "", markdown, flags=re.S)
    bad = []
    for target in _LINK.findall(text):
        if target.startswith(("https://", "http://", "mailto:")):
            continue
        if target.startswith("#") and target[1:] in anchors:
            continue
        bad.append(target)
    return bad


def test_readme_links_work_on_pypi() -> None:
    assert broken_on_pypi((ROOT / "README.md").read_text()) == []


def test_link_check_can_fail() -> None:
    md = "# Trust\n[a](docs/x.md) [b](#trust) [c](#nowhere) ![d](img/p.png) [e](https://x.org)\n"
    assert broken_on_pypi(md) == ["docs/x.md", "#nowhere", "img/p.png"]
