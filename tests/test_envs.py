"""The conda environment files under envs/ mirror the dependencies of pyproject.toml.

pyproject.toml is the one list of dependencies; `envs/*.yaml` (used by the rules with
`snakemake --sdm conda`) take their entries from it with the same lower bound: the full
`crackpoint.yaml` carries every one, the solver's `simulate.yaml` what `dlem` imports (no
torch), and each rule names the environment its command needs.
"""

from __future__ import annotations

import ast
import re
import sys
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


# import name -> distribution name, where they differ
DISTRIBUTION = {"netCDF4": "netcdf4", "yaml": "pyyaml", "torch": "pytorch"}
RULES = ROOT / "workflow" / "rules"


def file_requirements(path: Path) -> dict[str, str]:
    """The packages named in one env file: conda dependencies and pip sections."""
    found: dict[str, str] = {}
    env = yaml.safe_load(path.read_text())
    for dep in env.get("dependencies", []):
        items = dep.get("pip", []) if isinstance(dep, dict) else [dep]
        for item in items:
            name, spec = parse(item.split("::")[-1])
            found[name] = spec
    return found


def env_requirements(name: str = "crackpoint.yaml") -> dict[str, str]:
    """The packages of envs/NAME (by default the full environment)."""
    return file_requirements(ROOT / "envs" / name)


def imported_modules(path: Path) -> set[str]:
    """The dotted names of the modules one file imports (absolute imports)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def third_party_imports(package: str) -> set[str]:
    """Distribution names of the non-standard-library modules a package imports."""
    names = {n.split(".")[0] for path in (ROOT / package).rglob("*.py")
             for n in imported_modules(path)}
    names -= set(sys.stdlib_module_names) | {package, "__future__", "crackpoint"}  # ours
    return {DISTRIBUTION.get(n, n).lower() for n in names}


def rule_envs() -> dict[str, tuple[str, str]]:
    """rule name -> (env file it names, its shell command or script)."""
    found = {}
    for smk in RULES.glob("*.smk"):
        for block in re.split(r"(?m)^(?=rule )", smk.read_text())[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            found[name] = (env and Path(env.group(1)).name, block.split("shell:")[-1]
                           if "shell:" in block else block.split("script:")[-1])
    return found


def test_env_files_exist_and_parse():
    paths = sorted((ROOT / "envs").glob("*.yaml"))
    assert paths, "envs/ has no environment file"
    for path in paths:
        env = yaml.safe_load(path.read_text())
        assert env.get("channels"), f"{path.name} names no channel"
        assert env.get("dependencies"), f"{path.name} has no dependencies"


def test_every_pyproject_dependency_is_in_the_full_env():
    env = env_requirements()
    missing = [name for name in pyproject_requirements(extras=True)
               if CONDA_NAME.get(name, name) not in env]
    assert not missing, f"in pyproject.toml but not in envs/crackpoint.yaml: {missing}"


@pytest.mark.parametrize("path", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_entries_are_pyproject_dependencies_with_its_bounds(path):
    pyproject = {CONDA_NAME.get(n, n): spec
                 for n, spec in pyproject_requirements(extras=True).items()}
    env = file_requirements(path)
    extra = sorted(set(env) - set(pyproject) - {"python"})
    assert not extra, f"{path.name} names packages pyproject.toml does not: {extra}"
    differ = {n: (pyproject[n], spec) for n, spec in env.items()
              if n in pyproject and spec != pyproject[n]}
    assert not differ, f"{path.name}: version bounds differ (pyproject, env): {differ}"


@pytest.mark.parametrize("path", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_python_matches_requires_python(path):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert file_requirements(path).get("python") == project["requires-python"].replace(" ", "")


def test_simulation_env_has_what_dlem_imports_and_no_torch():
    env = env_requirements("simulate.yaml")
    assert "pytorch" not in env
    missing = sorted(third_party_imports("dlem") - set(env))
    assert not missing, f"dlem imports {missing}, missing from envs/simulate.yaml"


def test_each_rule_names_the_env_its_command_needs():
    for rule, (env, command) in rule_envs().items():
        assert env, f"rule {rule} names no conda env"
        if any(k in command for k in ("python -m model", "python -m crackpoint", "overview.py")):
            assert env == "crackpoint.yaml", f"rule {rule} runs the model package in {env}"
        elif "python -m dlem" in command or "write_yaml.py" in command:
            assert env == "simulate.yaml", f"rule {rule} only runs the solver, but names {env}"


def test_every_rule_env_exists():
    """Each `conda:` directive of the rules names a file that is there."""
    rules = ROOT / "workflow" / "rules"
    named = set()
    for smk in rules.glob("*.smk"):
        named |= set(re.findall(r'conda:\s*\n\s*"([^"]+)"', smk.read_text()))
    assert named, "no rule names a conda environment"
    for rel in named:
        assert (rules / rel).resolve().is_file(), f"conda env {rel} (from workflow/rules) missing"


@pytest.mark.parametrize("package,allowed", [
    ("dlem", {"dlem", "crackpoint.stopping"}),
    ("model", {"model", "crackpoint.stopping"}),
])
def test_the_packages_import_each_other_only_through_the_contract(package, allowed):
    """dlem and model import nothing of each other (the data contract is their interface)
    and of crackpoint only its standard-library `stopping`; crackpoint.peeling, which needs
    both, is imported by neither."""
    ours = ("dlem", "model", "crackpoint")
    for path in (ROOT / package).rglob("*.py"):
        bad = {n for n in imported_modules(path) if n.split(".")[0] in ours
               and not any(n == a or n.startswith(a + ".") for a in allowed)}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
    stopping = {n.split(".")[0] for n in imported_modules(ROOT / "crackpoint" / "stopping.py")}
    assert stopping <= set(sys.stdlib_module_names) | {"__future__"}, stopping
