"""The SLURM profile against a running SLURM: the tiny DAG, every job an `sbatch` job.

A session fixture brings up the throwaway single-node cluster of
`workflow/scripts/slurm_local.py` (or uses the one already up at its default state
directory), runs the tiny config of the local end-to-end test of test_workflow.py, cut to
one network, the mean box and one imaging baseline without held-out, robustness or scenario
sections (more jobs of the same rules, no SLURM feature), through
`--profile workflow/profiles/slurm --profile workflow/profiles/slurm-local` (the second
replaces the partition, the account, the per-rule memory and the GPU request, and sets the
squeue status command), checks the outputs the local run checks for those sections, and
takes the cluster down again by PID.

Where SLURM cannot run (not root, no apt-get or network to install it, daemons that do not
start) the SLURM tests are skipped and the reason is shown (`pytest -rs`); with
CRACKPOINT_REQUIRE_SLURM=1 they fail instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import test_workflow as local  # tiny config, snakemake runner, output checks of the local run

ROOT = local.ROOT
SCRIPT = ROOT / "workflow" / "scripts" / "slurm_local.py"
SLURM_PROFILE = ROOT / "workflow" / "profiles" / "slurm"
LOCAL_PROFILE = ROOT / "workflow" / "profiles" / "slurm-local"
PROFILES = ("--profile", SLURM_PROFILE, "--profile", LOCAL_PROFILE)
SLURM_MODELS = ("microcrackpointnet", "meanbox", "das")  # a network, the floor, imaging
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+)")


def slurm_local(*args, timeout=1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running SLURM; yields its slurm.conf path. Skips with the reason when it cannot run."""
    already = slurm_local("status")
    if already.returncode == 0:  # someone ran `slurm_local.py up`: use it, leave it up
        conf = re.search(r"SLURM_CONF=(\S+)", already.stdout).group(1)
        state_dir = None
    else:
        state_dir = tmp_path_factory.mktemp("slurm")
        result = slurm_local("up", "--state-dir", state_dir)
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["slurm_local.py up failed"])[-1]
            if os.environ.get("CRACKPOINT_REQUIRE_SLURM") == "1":
                pytest.fail(f"{reason}\n{result.stdout}")
            pytest.skip(reason)
        conf = str(state_dir / "slurm.conf")
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf  # sbatch/squeue of snakemake and of its jobs
    try:
        yield Path(conf)
    finally:
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
        if state_dir is not None:
            down = slurm_local("down", "--state-dir", state_dir, timeout=120)
            assert down.returncode == 0, down.stdout + down.stderr


def slurm_config() -> dict:
    """The tiny config cut to what SLURM adds something to: one network, the mean box and
    one imaging baseline, without the held-out, robustness and scenario sections (more jobs
    of the same rules). Every main rule still runs as an sbatch job, at a third of the jobs
    of the local test."""
    config = local.tiny_config()
    config["models"] = [m for m in config["models"] if m["name"] in SLURM_MODELS]
    config["baselines"] = [b for b in config["baselines"] if b["name"] in SLURM_MODELS]
    for section in ("heldout", "robustness", "scenarios"):
        config["evaluation"].pop(section)
    return config


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    """The tiny DAG through the SLURM profile; returns (workdir, config path, config, output)."""
    workdir = tmp_path_factory.mktemp("workflow-slurm")
    config = slurm_config()
    path = local.write_config(workdir / "tiny.yaml", config)
    result = local.snakemake("--directory", workdir, "--configfile", path, *PROFILES,
                             cwd=workdir, timeout=900)
    assert result.returncode == 0, result.stdout[-8000:]
    return workdir, path, config, result.stdout


@pytest.mark.slow
def test_tiny_dag_through_slurm_writes_the_outputs_of_the_local_run(slurm_run):
    workdir, _, config, _ = slurm_run
    local.check_main_outputs(workdir, config)


@pytest.mark.slow
def test_every_job_but_the_target_ran_as_a_completed_slurm_job(slurm_run):
    _, _, _, output = slurm_run
    jobs = local.job_counts(output)
    job_ids = SUBMITTED.findall(output)
    assert len(job_ids) == sum(jobs.values()) - jobs.get("all", 0), output[-4000:]
    states = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i %T",
                             "--jobs", ",".join(job_ids)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert states.returncode == 0, states.stdout
    state = dict(line.split() for line in states.stdout.splitlines())
    assert state == {job: "COMPLETED" for job in job_ids}


@pytest.mark.slow
def test_slurm_run_is_complete_for_a_rerun(slurm_run):
    workdir, path, _, _ = slurm_run
    result = local.snakemake("--dry-run", "--directory", workdir, "--configfile", path,
                             *PROFILES, cwd=workdir)
    assert result.returncode == 0, result.stdout
    assert "Nothing to be done" in result.stdout, result.stdout


# ---------------------------------------------------------------- without a cluster
def workflow_rules() -> set[str]:
    result = local.snakemake("--list-rules", "--configfile", local.DEFAULT_CONFIG)
    assert result.returncode == 0, result.stdout
    return {m.group(1) for m in re.finditer(r"^(\w+)(?: \(|$)", result.stdout, flags=re.M)}


def test_profiles_name_only_rules_of_the_workflow():
    rules = workflow_rules()
    for profile in (SLURM_PROFILE, LOCAL_PROFILE):
        named = set(yaml.safe_load((profile / "config.yaml").read_text())["set-resources"])
        assert named <= rules, f"{profile.name}: no such rule(s) {sorted(named - rules)}"


def test_local_profile_keeps_the_executor_of_the_slurm_profile():
    """slurm-local only overrides: the executor and run options come from the real profile."""
    real = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    override = yaml.safe_load((LOCAL_PROFILE / "config.yaml").read_text())
    assert real["executor"] == "slurm" and "executor" not in override
    assert "gres" not in str(override), "the throwaway cluster has no GPU"
