"""The conda environment files under envs/ mirror the dependencies of pyproject.toml.

pyproject.toml is the one list of dependencies; `envs/*.yaml` (used by the rules with
`snakemake --sdm conda`) must carry each of them, with the same lower bound.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]

# PyPI name -> conda-forge name, where they differ (names compared lower-case).
CONDA_NAME = {"torch": "pytorch"}

REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*$")


def parse(requirement: str) -> tuple[str, str]:
    """('name', 'specifier') of a PEP 508 / conda match spec, name lower-cased, `_`->`-`."""
    requirement = requirement.split(";")[0].split("#")[0]
    match = REQUIREMENT.match(requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    name, spec = match.groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def pyproject_requirements(extras: bool) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    if extras:
        for group in project.get("optional-dependencies", {}).values():
            requirements += group
    return dict(parse(r) for r in requirements)


def env_requirements() -> dict[str, str]:
    """All packages named in envs/*.yaml: conda dependencies and pip sections."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "envs").glob("*.yaml")):
        env = yaml.safe_load(path.read_text())
        for dep in env.get("dependencies", []):
            items = dep.get("pip", []) if isinstance(dep, dict) else [dep]
            for item in items:
                name, spec = parse(item.split("::")[-1])
                found[name] = spec
    return found


def test_env_files_exist_and_parse():
    paths = sorted((ROOT / "envs").glob("*.yaml"))
    assert paths, "envs/ has no environment file"
    for path in paths:
        env = yaml.safe_load(path.read_text())
        assert env.get("channels"), f"{path.name} names no channel"
        assert env.get("dependencies"), f"{path.name} has no dependencies"


def test_every_pyproject_dependency_is_in_the_env_files():
    env = env_requirements()
    missing = [name for name in pyproject_requirements(extras=True)
               if CONDA_NAME.get(name, name) not in env]
    assert not missing, f"in pyproject.toml but not in envs/*.yaml: {missing}"


def test_env_lower_bounds_match_pyproject():
    env = env_requirements()
    differ = {
        name: (spec, env[CONDA_NAME.get(name, name)])
        for name, spec in pyproject_requirements(extras=True).items()
        if CONDA_NAME.get(name, name) in env and spec != env[CONDA_NAME.get(name, name)]
    }
    assert not differ, f"version bounds differ (pyproject, env): {differ}"


def test_env_python_matches_requires_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = env_requirements()
    assert env.get("python") == project["requires-python"].replace(" ", "")


def test_every_rule_env_exists():
    """Each `conda:` directive of the rules names a file that is there."""
    rules = ROOT / "workflow" / "rules"
    named = set()
    for smk in rules.glob("*.smk"):
        named |= set(re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()))
    assert named, "no rule names a conda environment"
    for rel in named:
        assert (rules / rel).resolve().is_file(), f"conda env {rel} (from workflow/rules) missing"
