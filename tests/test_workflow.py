"""The Snakemake workflow: lint, dry runs, config validation, and one tiny end-to-end run.

The end-to-end test runs the repository's Snakefile in a temporary working directory
(`--directory`) with the default config made tiny by `.test/config/config.yaml` (16 samples in
2 shards, a 24-node lattice, one epoch, 6 held-out samples in 2 shards, scored again with
noise, dead sensors and shifted wave speeds),
then checks that every final output exists and parses, and that the rerun triggers
(params, input, mtime) rerun exactly the jobs that depend on a change.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
DEFAULT_CONFIG = ROOT / "workflow" / "config" / "default.yaml"
PAPER_CONFIG = ROOT / "workflow" / "config" / "paper.yaml"
MEDIUM_CONFIG = ROOT / "workflow" / "config" / "medium.yaml"
TEST_CONFIG = ROOT / ".test" / "config" / "config.yaml"   # given after DEFAULT_CONFIG
TINY_CONFIGS = (DEFAULT_CONFIG, TEST_CONFIG)
TINY_MODEL_KEYS = {"epochs", "batch_size", "threads"}    # what .test changes in models[]
MULTICRACK_CONFIG = ROOT / "workflow" / "config" / "multicrack.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_SCENARIO = yaml.safe_load(TEST_CONFIG.read_text())["evaluation"]["scenarios"][0]
TWO_CRACKS = {"name": "two-cracks", "start": 3_000_000, "samples": 4, "shard_size": 2,
              "cracks": {"count": {"min": 2, "max": 2}, "clearance": 0.004, "families": [
                  {"name": "straight", "geometry": "segment", "length": [0.004, 0.02],
                   "angle": [0, 180]}]}}


def snakemake(*args, cwd=ROOT, timeout=120) -> subprocess.CompletedProcess:
    """Run snakemake in a subprocess; stdout and stderr together in `.stdout`. The rules'
    `python` is this interpreter (its folder first on PATH), as in an activated venv."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = dict(os.environ, PYTHONWARNINGS="ignore", PATH=path)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), *map(str, args)],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout,
    )


def job_counts(output: str) -> dict[str, int]:
    """The `Job stats` table of a (dry) run as {rule: count}, without `total`."""
    counts: dict[str, int] = {}
    if "Job stats:" not in output:
        return counts
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match or match.group(1) == "total":
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def default_config() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def with_scenarios(*changes):
    """A config edit setting evaluation.scenarios to one copy of TINY_SCENARIO per mapping
    of `changes`, its keys replaced by the mapping's."""
    def edit(config):
        config["evaluation"]["scenarios"] = [{**copy.deepcopy(TINY_SCENARIO), **c}
                                             for c in changes]
    return edit


# ---------------------------------------------------------------- static checks
def test_lint_has_no_findings():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout
    assert "Congratulations, your workflow is in a good condition" in result.stdout, result.stdout


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="default-config"),
        pytest.param(["--configfile", PAPER_CONFIG], id="paper-config"),
        pytest.param(["--profile", ROOT / "workflow" / "profiles" / "slurm"], id="slurm-profile"),
        pytest.param(["--profile", ROOT / "workflow" / "profiles" / "default"], id="local-profile"),
    ],
)
def test_dry_run_succeeds(args, tmp_path):
    result = snakemake("--dry-run", "--directory", tmp_path,
                       "--configfile", DEFAULT_CONFIG, *args)
    assert result.returncode == 0, result.stdout
    jobs = job_counts(result.stdout)
    for rule in ("simulate_shard", "simulate_pristine", "labels", "split", "train", "evaluate",
                 "baseline", "compare", "sample_figures"):
        assert jobs.get(rule, 0) >= 1, f"no {rule} job in the dry run: {jobs}"
    if PAPER_CONFIG not in args:   # default.yaml's evaluation.robustness
        for rule in ("simulate_robustness_shard", "evaluate_robustness", "baseline_robustness",
                     "compare_robustness"):
            assert jobs.get(rule, 0) >= 1, f"no {rule} job in the dry run: {jobs}"


def test_medium_config_differs_from_the_default_only_in_sample_counts_and_models(tmp_path):
    """The medium run must not make the task easier: same plate, lattice, source, sensors,
    crack families and sizes as the default run; its held-out range lies outside the data."""
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    medium = yaml.safe_load(MEDIUM_CONFIG.read_text())
    assert medium["simulation"] == default["simulation"]
    assert medium["labels"] == default["labels"]
    heldout = medium["evaluation"]["heldout"]
    assert heldout["start"] >= medium["dataset"]["samples"] and heldout["samples"] >= 300
    result = snakemake("--dry-run", "--directory", tmp_path, "--configfile", MEDIUM_CONFIG)
    assert result.returncode == 0, result.stdout
    assert job_counts(result.stdout)["evaluate_heldout"] == len(medium["models"])


def test_multicrack_config_differs_from_the_default_only_in_the_crack_count(tmp_path):
    """Same plate, lattice, source, sensors, label grid and crack families as the default run
    (one set-up hash), 0 to 3 cracks per sample; its held-out range lies outside the data."""
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    multi = yaml.safe_load(MULTICRACK_CONFIG.read_text())
    assert multi["simulation"]["cracks"].pop("count") == {"min": 0, "max": 3}
    default["simulation"]["cracks"].pop("count")
    assert multi["simulation"] == default["simulation"]
    assert multi["labels"] == default["labels"]
    assert multi["evaluation"]["heldout"]["start"] >= multi["dataset"]["samples"]
    result = snakemake("--dry-run", "--printshellcmds", "--directory", tmp_path, "--configfile",
                       MULTICRACK_CONFIG)
    assert result.returncode == 0, result.stdout
    jobs = job_counts(result.stdout)
    assert jobs["labels"] == math.ceil(multi["dataset"]["samples"] / multi["dataset"]["shard_size"])
    assert jobs["train"] == len(multi["models"]) == jobs["evaluate_heldout"]
    peeled = [m for m in multi["models"] if m["arch"] == "crackset"]
    assert "peeling" in multi["evaluation"] and len(peeled) > 0
    assert jobs["peel"] == 3 * len(peeled) and jobs["evaluate_val"] == len(peeled)  # val, test, held out
    peels = [line for line in result.stdout.splitlines() if "python -m crackpoint peel" in line]
    assert len(peels) == jobs["peel"]
    for line in peels:   # a true switch is a bare flag; the validation peel chooses, others take
        assert " --check " in line and "--check True" not in line, line
        assert ("--from-metrics results/val/peel/" in line) == ("results/val/eval" not in line)


def test_paper_config_has_one_job_per_shard_and_model(tmp_path):
    paper = yaml.safe_load(PAPER_CONFIG.read_text())
    result = snakemake("--dry-run", "--directory", tmp_path, "--configfile", PAPER_CONFIG)
    assert result.returncode == 0, result.stdout
    jobs = job_counts(result.stdout)
    n_shards = math.ceil(paper["dataset"]["samples"] / paper["dataset"]["shard_size"])
    assert jobs["simulate_shard"] == n_shards
    assert jobs["labels"] == n_shards
    assert jobs["train"] == len(paper["models"]) == jobs["evaluate"]
    assert jobs["simulate_pristine"] == 1


@pytest.mark.parametrize(
    "edit, named",
    [
        pytest.param(lambda c: c["dataset"].update(samplez=3), "samplez", id="unknown-dataset-key"),
        pytest.param(lambda c: c["simulation"]["plate"].update(colour="red"), "colour",
                     id="unknown-simulation-key"),
        pytest.param(lambda c: c["models"][0].update(epochs="many"), "epochs", id="wrong-type"),
        pytest.param(lambda c: c["simulation"]["lattice"].update(nodes_x=2), "nodes_x",
                     id="below-minimum"),
        pytest.param(lambda c: c["models"][0].update(arch="resnet"), "arch", id="unknown-arch"),
        pytest.param(lambda c: c["models"].append(dict(c["models"][0])), "models[].name",
                     id="duplicate-model-name"),
        pytest.param(lambda c: c["split"].update(fractions=[0.5, 0.5, 0.5]), "split.fractions",
                     id="fractions-not-summing-to-one"),
        pytest.param(lambda c: c["baselines"][0].update(method="tomography"), "method",
                     id="unknown-baseline-method"),
        pytest.param(lambda c: c["baselines"].append({"name": "meanbox", "method": "das"}),
                     "baselines[].name", id="baseline-named-like-a-model"),
        pytest.param(lambda c: c["evaluation"].update(
            heldout={"start": c["dataset"]["samples"] - 1, "samples": 5, "shard_size": 5}),
            "evaluation.heldout", id="heldout-overlapping-the-dataset"),
        pytest.param(lambda c: c["evaluation"].update(heldout={"start": 10**6, "samples": 5}),
                     "shard_size", id="heldout-without-shard-size"),
        pytest.param(lambda c: c["labels"].update(box_rule="centres"), "box_rule",
                     id="unknown-box-rule"),
        pytest.param(lambda c: c["evaluation"].pop("heldout"), "needs evaluation.heldout",
                     id="robustness-without-heldout"),
        pytest.param(lambda c: c["evaluation"]["robustness"].update(dead_sensors=[5, 82]),
                     "evaluation.robustness.dead_sensors [82]", id="more-dead-sensors-than-sensors"),
        pytest.param(lambda c: c["evaluation"]["robustness"].update(speed_shift=[0.9]),
                     "speed_shift", id="speed-shift-out-of-range"),
        pytest.param(lambda c: c["evaluation"]["robustness"].update(draws=0), "draws",
                     id="no-dead-sensor-draws"),
        pytest.param(lambda c: c["evaluation"]["robustness"].update(snr=[10]), "snr",
                     id="unknown-robustness-key"),
        pytest.param(with_scenarios({}, {}), "evaluation.scenarios[].name must be unique",
                     id="duplicate-scenario-name"),
        pytest.param(with_scenarios({"name": "heldout"}), "not `heldout`",
                     id="scenario-named-like-the-reference"),
        pytest.param(with_scenarios({"name": "../up"}), "'../up' does not match",
                     id="scenario-name-not-a-path-part"),
        pytest.param(with_scenarios({"start": 200}),
                     "evaluation.scenarios[long-cracks] samples [200, 204) overlap "
                     "dataset.samples [0, ", id="scenario-overlapping-the-dataset"),
        pytest.param(with_scenarios({"start": 1_000_100}),
                     "overlap evaluation.heldout [1000000, 1000120)",
                     id="scenario-overlapping-the-heldout-set"),
        pytest.param(with_scenarios({"cracks": {"families": [
            {"geometry": "segment", "lenght": 0.03}]}}), "'lenght' was unexpected",
            id="scenario-crack-key-not-in-the-solver-schema"),
        pytest.param(with_scenarios({"cracks": {"count": {"min": 2, "max": 2}}}),
                     "evaluation.scenarios[long-cracks].cracks needs `families`",
                     id="scenario-without-cracks"),
    ],
)
def test_invalid_config_fails_naming_the_key(edit, named, tmp_path):
    config = default_config()
    edit(config)
    bad = write_config(tmp_path / "bad.yaml", config)
    result = snakemake("--dry-run", "--directory", tmp_path, "--configfile", bad)
    assert result.returncode != 0, result.stdout
    assert named in result.stdout, result.stdout


# ---------------------------------------------------------------- end to end
def tiny_config() -> dict:
    """The config snakemake builds from `--configfile` TINY_CONFIGS (its own merge)."""
    from snakemake.utils import update_config

    config = default_config()
    update_config(config, yaml.safe_load(TEST_CONFIG.read_text()))
    return config


def test_the_test_config_is_the_default_made_small():
    """.test changes sizes only: the physics, baselines and every model's options but
    TINY_MODEL_KEYS are the default run's, so the tiny run exercises what the default runs."""
    default, tiny = default_config(), tiny_config()
    default["simulation"]["lattice"].pop("nodes_x")
    assert tiny["simulation"]["lattice"].pop("nodes_x") < 96
    assert tiny["simulation"] == default["simulation"]
    assert tiny["baselines"] == default["baselines"] and tiny["labels"] == default["labels"]
    assert [m["name"] for m in tiny["models"]] == [m["name"] for m in default["models"]], \
        "add or remove the same models[] entries in .test/config/config.yaml"
    for small, full in zip(tiny["models"], default["models"]):
        differ = {k for k in set(small) | set(full) if small.get(k) != full.get(k)}
        assert differ <= TINY_MODEL_KEYS, \
            f".test/config/config.yaml models[{small['name']}]: {sorted(differ)} differ from default.yaml"
        assert small["epochs"] == 1 and small["threads"] == 1
    assert tiny["dataset"]["samples"] <= 16 and tiny["evaluation"]["heldout"]["samples"] <= 6


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Run the whole DAG once on the tiny config; returns (workdir, config files, config)."""
    workdir = tmp_path_factory.mktemp("workflow-e2e")
    result = snakemake("--cores", 2, "--directory", workdir, "--configfile", *TINY_CONFIGS,
                       "--show-failed-logs", cwd=workdir, timeout=900)
    assert result.returncode == 0, result.stdout[-8000:]
    return workdir, TINY_CONFIGS, tiny_config()


def png_ok(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def find_iou(metrics) -> list[float]:
    """Every value under a key named IoU (any case), at any depth of metrics.json."""
    found = []
    if isinstance(metrics, dict):
        for key, value in metrics.items():
            if key.lower() == "iou" and isinstance(value, (int, float)):
                found.append(float(value))
            else:
                found += find_iou(value)
    elif isinstance(metrics, list):
        for value in metrics:
            found += find_iou(value)
    return found


@pytest.mark.slow
def test_end_to_end_outputs_exist_and_parse(tiny_run):
    workdir, _, config = tiny_run
    check_main_outputs(workdir, config)
    check_heldout_outputs(workdir, config)
    check_robustness_outputs(workdir, config)
    check_scenario_outputs(workdir, config)


def check_main_outputs(workdir: Path, config: dict) -> None:
    """Shards, labels, split, every model's training and scores, the comparison, figures,
    and a log and a benchmark for every stage (tests/test_slurm.py checks its run with it)."""
    import xarray as xr

    results = workdir / "results"
    models = [m["name"] for m in config["models"]]
    baselines = [b["name"] for b in config["baselines"]]

    for shard, start in (("0000", 0), ("0001", 8)):
        with xr.open_dataset(results / "data" / f"shard-{shard}.nc") as ds:
            assert ds.sizes["sample"] == 8
            assert int(ds["sample"][0]) == start
            assert ds["wavefield"].dims == ("sample", "time", "sensor", "component")
        with xr.open_dataset(results / "labels" / f"shard-{shard}.nc") as labels:
            assert labels.sizes["sample"] == 8
        assert (results / "data" / "summary" / f"shard-{shard}.txt").stat().st_size > 0
    with xr.open_dataset(results / "data" / "pristine.nc") as ds:
        assert ds.sizes["sample"] == 1
    assert json.loads((results / "split" / "split.json").read_text())

    for name in models + baselines:
        model_dir, eval_dir = results / "models" / name, results / "eval" / name
        if name in models:
            assert (model_dir / "checkpoint.pt").stat().st_size > 0
            with open(model_dir / "history.csv", newline="") as fh:
                assert list(csv.DictReader(fh)), f"{name}: empty history"
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        ious = find_iou(metrics)
        assert ious, f"{name}: no IoU in metrics.json: {metrics}"
        assert all(0.0 <= v <= 1.0 for v in ious if not math.isnan(v)), ious
        with open(eval_dir / "table1.csv", newline="") as fh:
            assert len(list(csv.DictReader(fh))) == len(config["evaluation"]["size_thresholds"])
        assert (eval_dir / "table1.md").read_text().count("|") > 4
        with xr.open_dataset(eval_dir / "predictions.nc") as ds:
            assert ds.sizes["sample"] >= 1
        figures = list((eval_dir / "figures").glob("*.png"))
        assert figures and all(png_ok(p) for p in figures)

    with open(results / "compare" / "table.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["model"] for r in rows] == models + baselines
    assert all(0.0 <= float(r["IoU"]) <= 1.0 for r in rows)
    assert all(m in (results / "compare" / "table.md").read_text() for m in models + baselines)
    for png in ("iou_vs_crack_size.png", "loss_curves.png"):
        assert png_ok(results / "compare" / png), png
    for sample in config["figures"]["samples"]:
        for kind in ("traces", "snapshots"):
            assert png_ok(results / "figures" / f"sample-{sample}" / f"{kind}.png")

    for stage in ("simulate", "labels", "split", "train", "evaluate", "report"):
        assert list((workdir / "logs" / stage).glob("*.log")), f"no log for {stage}"
        assert list((workdir / "benchmarks" / stage).glob("*.tsv")), f"no benchmark for {stage}"


def check_heldout_outputs(workdir: Path, config: dict) -> None:
    """The held-out samples simulated apart, scored by every model and baseline with what
    was chosen on the main split, and their comparison table."""
    import xarray as xr

    results = workdir / "results"
    models = [m["name"] for m in config["models"]]
    baselines = [b["name"] for b in config["baselines"]]
    heldout = results / "heldout"
    for shard, (start, size) in (("0000", (16, 4)), ("0001", (20, 2))):
        with xr.open_dataset(heldout / "data" / f"shard-{shard}.nc") as ds:
            assert ds["sample"].values.tolist() == list(range(start, start + size))
        assert (heldout / "labels" / f"shard-{shard}.nc").is_file()
    split = json.loads((heldout / "split" / "split.json").read_text())
    assert split["train"] == split["val"] == [] and split["test"] == list(range(16, 22))
    for name in models + baselines:
        main_metrics = json.loads((results / "eval" / name / "metrics.json").read_text())
        held = json.loads((heldout / "eval" / name / "metrics.json").read_text())
        assert held["count"] == split["counts"]["test"]["with_crack"], name
        # what was chosen on the main split's val, never on held-out samples
        if "mask_threshold" in main_metrics:
            assert ([held["mask_threshold"][k] for k in ("box", "pixel")]
                    == [main_metrics["mask_threshold"][k] for k in ("box", "pixel")]), name
        if "hyperparameters" in main_metrics:
            assert held["hyperparameters"] == main_metrics["hyperparameters"], name
        with xr.open_dataset(heldout / "eval" / name / "predictions.nc") as ds:
            assert ds["sample"].values.min() >= 16
    with open(heldout / "compare" / "table.csv", newline="") as fh:
        held_rows = list(csv.DictReader(fh))
    assert [r["model"] for r in held_rows] == models + baselines
    assert all(float(r["IoU_lo"]) <= float(r["IoU"]) <= float(r["IoU_hi"]) for r in held_rows)
    assert "[" in (heldout / "compare" / "table.md").read_text()
    for png in ("iou_vs_crack_size.png", "loss_curves.png"):
        assert png_ok(heldout / "compare" / png), png


def check_robustness_outputs(workdir: Path, config: dict) -> None:
    """The held-out samples perturbed and re-simulated, scored by every model and baseline
    with the main split's choices, and the robustness table."""
    import xarray as xr

    results, heldout = workdir / "results", workdir / "results" / "heldout"
    models = [m["name"] for m in config["models"]]
    baselines = [b["name"] for b in config["baselines"]]
    split = json.loads((heldout / "split" / "split.json").read_text())
    robustness, settings = results / "robustness", config["evaluation"]["robustness"]
    perturbed = {**{f"noise-snr{v:g}": {"snr_db": v, "seed": 0} for v in settings["snr_db"]},
                 **{f"dead-{k}-draw-{d}": {"dead_sensors": k, "draw": d}
                    for k in settings["dead_sensors"] for d in range(settings["draws"])}}
    speeds = {f"speed{v:+g}": v for v in settings["speed_shift"]}
    for condition, shift in speeds.items():
        for shard in ("0000", "0001"):
            with xr.open_dataset(heldout / "data" / f"shard-{shard}.nc") as clean, \
                    xr.open_dataset(robustness / condition / "data" / f"shard-{shard}.nc") as moved:
                assert moved["sample"].values.tolist() == clean["sample"].values.tolist()
                assert (moved["crack_mask"].values == clean["crack_mask"].values).all()
                assert moved.attrs["setup_hash"] != clean.attrs["setup_hash"]
                assert moved.attrs["wave_speed_p"] == pytest.approx(
                    (1 + shift) * clean.attrs["wave_speed_p"], rel=1e-9)
    for name in models + baselines:
        main_metrics = json.loads((results / "eval" / name / "metrics.json").read_text())
        for condition in [*perturbed, *speeds]:
            scored = json.loads((robustness / condition / "eval" / name / "metrics.json")
                                .read_text())
            assert scored["count"] == split["counts"]["test"]["with_crack"], (name, condition)
            if condition in perturbed:
                assert scored["perturbation"] == perturbed[condition], (name, condition)
            else:
                assert list(scored["setup_change"]["changes"]) == ["plate.youngs_modulus"]
            if "hyperparameters" in main_metrics:   # chosen on the main split's val
                assert scored["hyperparameters"] == main_metrics["hyperparameters"], name
    with open(results / "compare" / "robustness.csv", newline="") as fh:
        robust_rows = list(csv.DictReader(fh))
    assert len(robust_rows) == (1 + len(perturbed) + len(speeds)) * len(models + baselines)
    assert {r["kind"] for r in robust_rows} == {"clean", "noise", "dead_sensors", "speed"}
    assert "| condition | " + " | ".join(models + baselines) + " |" in (
        results / "compare" / "robustness.md").read_text()
    assert png_ok(results / "compare" / "robustness.png")


def check_scenario_outputs(workdir: Path, config: dict) -> None:
    """The crack scenario simulated with the trained set-up, scored by every model and
    baseline, and the scenario table beside the held-out set."""
    import xarray as xr

    results = workdir / "results"
    models = [m["name"] for m in config["models"]]
    baselines = [b["name"] for b in config["baselines"]]
    split = json.loads((results / "heldout" / "split" / "split.json").read_text())
    scenario = results / "scenarios" / TINY_SCENARIO["name"]
    start, size = TINY_SCENARIO["start"], TINY_SCENARIO["samples"]
    low, high = TINY_SCENARIO["cracks"]["families"][0]["length"]
    with xr.open_dataset(scenario / "data" / "shard-0000.nc") as ds, \
            xr.open_dataset(results / "data" / "shard-0000.nc") as trained:
        assert ds["sample"].values.tolist() == list(range(start, start + size))
        assert ds.attrs["setup_hash"] == trained.attrs["setup_hash"]   # cracks are not set-up
    with xr.open_dataset(scenario / "labels" / "shard-0000.nc") as labels:
        lengths = labels["crack_length"].transpose("sample", "crack").values
        assert np.all((lengths[:, 0] >= low - 1e-9) & (lengths[:, 0] <= high + 1e-9)), lengths
    for name in models + baselines:
        main_metrics = json.loads((results / "eval" / name / "metrics.json").read_text())
        scored = json.loads((scenario / "eval" / name / "metrics.json").read_text())
        assert scored["count"] == size, name
        if "hyperparameters" in main_metrics:   # chosen on the main split's val
            assert scored["hyperparameters"] == main_metrics["hyperparameters"], name
    with open(results / "compare" / "scenarios.csv", newline="") as fh:
        scenario_rows = list(csv.DictReader(fh))
    assert [r["model"] for r in scenario_rows] == models + baselines
    assert all(int(r[f"{TINY_SCENARIO['name']}:count"]) == size
               and int(r["heldout:count"]) == split["counts"]["test"]["with_crack"]
               for r in scenario_rows)
    assert f"| {TINY_SCENARIO['name']} (n = {size}) |" in (
        results / "compare" / "scenarios.md").read_text()


@pytest.mark.slow
def test_end_to_end_is_complete_and_reports(tiny_run):
    workdir, paths, _ = tiny_run
    result = snakemake("--dry-run", "--directory", workdir, "--configfile", *paths, cwd=workdir)
    assert result.returncode == 0, result.stdout
    assert "Nothing to be done" in result.stdout, result.stdout
    report = workdir / "report.zip"
    result = snakemake("--report", report, "--directory", workdir, "--configfile", *paths,
                       cwd=workdir)
    assert result.returncode == 0, result.stdout[-4000:]
    assert report.stat().st_size > 0


def rerun_jobs(tiny_run, tmp_path, edit=None, *args) -> dict[str, int]:
    """The jobs a dry run would run after `edit` of the tiny config (targets/flags in args)."""
    workdir, paths, config = tiny_run
    if edit is not None:
        config = copy.deepcopy(config)
        edit(config)
        paths = [write_config(tmp_path / "edited.yaml", config)]
    result = snakemake(*args, "--dry-run", "--directory", workdir, "--configfile", *paths,
                       cwd=workdir)
    assert result.returncode == 0, result.stdout
    jobs = job_counts(result.stdout)
    jobs.pop("all", None)
    return jobs


@pytest.mark.slow
def test_changing_a_model_param_reruns_that_model_only(tiny_run, tmp_path):
    jobs = rerun_jobs(tiny_run, tmp_path, lambda c: c["models"][0].update(lr=0.01234))
    conditions = n_conditions(tiny_run[2])
    assert jobs == {"train": 1, "evaluate": 1, "compare": 1, "overview": 1,
                    "evaluate_heldout": 1, "compare_heldout": 1,
                    "evaluate_robustness": conditions, "compare_robustness": 1,
                    "evaluate_scenario": n_scenarios(tiny_run[2]), "compare_scenarios": 1}, jobs


@pytest.mark.slow
def test_changing_a_simulation_param_reruns_the_simulation(tiny_run, tmp_path):
    jobs = rerun_jobs(tiny_run, tmp_path,
                      lambda c: c["simulation"]["sources"][0].update(amplitude=2.0))
    assert jobs["simulation_config"] == 1
    assert jobs["simulate_shard"] == 2 and jobs["simulate_pristine"] == 1
    assert jobs["train"] == len(tiny_run[2]["models"]) and jobs["compare"] == 1
    assert jobs["baseline"] == len(tiny_run[2]["baselines"])
    assert jobs["simulate_heldout_shard"] == 2 and jobs["compare_heldout"] == 1
    speeds = len(tiny_run[2]["evaluation"]["robustness"]["speed_shift"])
    assert jobs["simulate_robustness_shard"] == 2 * speeds and jobs["compare_robustness"] == 1
    assert jobs["simulate_scenario_shard"] == n_scenarios(tiny_run[2])   # one shard each
    assert jobs["compare_scenarios"] == 1


@pytest.mark.slow
def test_changing_only_threads_or_workers_reruns_nothing(tiny_run, tmp_path):
    def edit(config):
        config["dataset"]["workers"] = 2
        config["models"][0]["threads"] = 2

    assert rerun_jobs(tiny_run, tmp_path, edit) == {}


@pytest.mark.slow
def test_changing_evaluation_thresholds_does_not_retrain(tiny_run, tmp_path):
    jobs = rerun_jobs(tiny_run, tmp_path,
                      lambda c: c["evaluation"].update(size_thresholds=[0.0, 0.01]))
    config = tiny_run[2]
    conditions = n_conditions(config)
    assert jobs == {"evaluate": len(config["models"]), "baseline": len(config["baselines"]),
                    "compare": 1, "overview": 1, "evaluate_heldout": len(config["models"]),
                    "baseline_heldout": len(config["baselines"]), "compare_heldout": 1,
                    "evaluate_robustness": conditions * len(config["models"]),
                    "baseline_robustness": conditions * len(config["baselines"]),
                    "compare_robustness": 1,
                    "evaluate_scenario": n_scenarios(config) * len(config["models"]),
                    "baseline_scenario": n_scenarios(config) * len(config["baselines"]),
                    "compare_scenarios": 1}, jobs


def n_scenarios(config) -> int:
    return len(config["evaluation"]["scenarios"])


def n_conditions(config) -> int:
    """How many robustness conditions a config scores: SNRs, dead sensors x draws, shifts."""
    r = config["evaluation"]["robustness"]
    return len(r["snr_db"]) + len(r["dead_sensors"]) * r["draws"] + len(r["speed_shift"])


@pytest.mark.slow
def test_a_new_robustness_level_runs_only_its_own_jobs(tiny_run, tmp_path):
    config = tiny_run[2]

    def more(key, value):
        return lambda c: c["evaluation"]["robustness"][key].append(value)

    jobs = rerun_jobs(tiny_run, tmp_path, more("snr_db", 30))
    assert jobs == {"evaluate_robustness": len(config["models"]),
                    "baseline_robustness": len(config["baselines"]),
                    "compare_robustness": 1}, jobs
    jobs = rerun_jobs(tiny_run, tmp_path, more("speed_shift", -0.02))
    assert jobs == {"robustness_simulation_config": 1, "simulate_robustness_shard": 2,
                    "robustness_labels": 2, "evaluate_robustness": len(config["models"]),
                    "baseline_robustness": len(config["baselines"]),
                    "compare_robustness": 1}, jobs


@pytest.mark.slow
def test_one_shard_can_be_regenerated_alone(tiny_run, tmp_path):
    jobs = rerun_jobs(tiny_run, tmp_path, None, "results/data/shard-0001.nc", "--force")
    assert jobs == {"simulate_shard": 1}, jobs


# ---------------------------------------------------------------- rerun scope on stubs
@pytest.fixture(scope="module")
def stub_run(tmp_path_factory):
    """The tiny DAG with every output an empty stub that `--touch --forceall` records as
    made (params, code, input sets: the rerun triggers) without running a job: what a
    config edit reruns, in seconds.
    Returns (workdir, config files, config), like tiny_run."""
    workdir = tmp_path_factory.mktemp("workflow-stub")
    args = ("--directory", workdir, "--configfile", *TINY_CONFIGS)
    result = snakemake("--dry-run", *args, cwd=workdir)
    assert result.returncode == 0, result.stdout
    outputs = [workdir / path.strip() for line in result.stdout.splitlines()
               if line.strip().startswith("output:")
               for path in line.split(":", 1)[1].split(",")]
    for path in outputs:
        if path.name == "figures":   # the one directory() output of the rules
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    result = snakemake("--touch", "--forceall", "--cores", 1, *args, cwd=workdir)
    assert result.returncode == 0, result.stdout
    assert rerun_jobs((workdir, TINY_CONFIGS, None), workdir) == {}
    return workdir, TINY_CONFIGS, tiny_config()


def scenario_jobs(config, shards: int) -> dict[str, int]:
    """The jobs of one scenario of `shards` shards, and the table."""
    return {"scenario_simulation_config": 1, "simulate_scenario_shard": shards,
            "scenario_labels": shards, "scenario_split": 1,
            "evaluate_scenario": len(config["models"]),
            "baseline_scenario": len(config["baselines"]), "compare_scenarios": 1}


def test_a_new_scenario_runs_only_its_own_jobs(stub_run, tmp_path):
    jobs = rerun_jobs(stub_run, tmp_path,
                      lambda c: c["evaluation"]["scenarios"].append(copy.deepcopy(TWO_CRACKS)))
    assert jobs == scenario_jobs(stub_run[2], shards=2), jobs


def test_editing_a_scenario_reruns_that_scenario_only(stub_run, tmp_path):
    def longer(config):
        config["evaluation"]["scenarios"][0]["cracks"]["families"][0]["length"] = [0.03, 0.04]

    assert rerun_jobs(stub_run, tmp_path, longer) == scenario_jobs(stub_run[2], shards=1)


def test_a_model_edit_rescores_it_on_each_scenario(stub_run, tmp_path):
    jobs = rerun_jobs(stub_run, tmp_path, lambda c: c["models"][0].update(lr=0.01234))
    assert jobs["evaluate_scenario"] == len(stub_run[2]["evaluation"]["scenarios"])
    assert jobs["compare_scenarios"] == 1 and "simulate_scenario_shard" not in jobs


# ---------------------------------------------------------------- README examples
def test_readme_crack_examples_are_valid_configs():
    """The `simulation.cracks` examples in the README pass the solver's schema."""
    import jsonschema
    from referencing import Registry, Resource

    schema = yaml.safe_load((ROOT / "dlem" / "schema" / "simulation.schema.yaml").read_text())
    validator = jsonschema.Draft202012Validator(
        schema, registry=Registry().with_resource("", Resource.from_contents(schema)))
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    examples = [yaml.safe_load(b)["simulation"] for b in blocks
                if "cracks:" in b and "simulation:" in b]
    assert len(examples) >= 2, "README shows no families / fixed example"
    for example in examples:
        simulation = copy.deepcopy(default_config()["simulation"])
        simulation["cracks"] = example["cracks"]
        errors = [e.message for e in validator.iter_errors(simulation)]
        assert not errors, errors


def test_readme_scenario_example_adds_its_jobs_to_the_default_run(tmp_path):
    """The README's `evaluation.scenarios` example, given after default.yaml, adds each
    scenario's simulation and scoring jobs and the table."""
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    example = next(yaml.safe_load(b) for b in blocks if "scenarios:" in b)
    scenarios = example["evaluation"]["scenarios"]
    extra = write_config(tmp_path / "scenario.yaml", example)
    result = snakemake("--dry-run", "--directory", tmp_path,
                       "--configfile", DEFAULT_CONFIG, extra)
    assert result.returncode == 0, result.stdout
    jobs, config = job_counts(result.stdout), default_config()
    assert jobs["scenario_simulation_config"] == len(scenarios)
    assert jobs["evaluate_scenario"] == len(scenarios) * len(config["models"])
    assert jobs["baseline_scenario"] == len(scenarios) * len(config["baselines"])
    assert jobs["compare_scenarios"] == 1


def test_schema_choices_match_the_model_cli():
    """The enums of the baselines/evaluation sections are the `model` package's registries
    (models[]: tests/test_options.py)."""
    from model.baselines import METHODS
    from model.data import SUBSETS
    from model.keypoints import BOX_RULES, DEFAULT_BOX_RULE

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    baseline = schema["properties"]["baselines"]["items"]["properties"]
    assert set(baseline["method"]["enum"]) == set(METHODS)
    subset = schema["properties"]["evaluation"]["properties"]["subset"]
    assert set(subset["enum"]) == set(SUBSETS)
    box_rule = schema["properties"]["labels"]["properties"]["box_rule"]
    assert set(box_rule["enum"]) == set(BOX_RULES) and box_rule["default"] == DEFAULT_BOX_RULE


def test_peeling_keys_are_options_of_the_peel_command():
    """evaluation.peeling's keys become `python -m crackpoint peel` flags (peel_flags): each
    must be one, with the command's choices; the defaults are the command's alone."""
    from crackpoint.cli import build_parser
    from crackpoint.peeling import BOX_SOURCES, MODES

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    peeling = schema["properties"]["evaluation"]["properties"]["peeling"]["properties"]
    peel = next(a for a in build_parser()._actions if a.dest == "command").choices["peel"]
    flags = {opt for action in peel._actions for opt in action.option_strings}
    for key, spec in peeling.items():
        assert f"--{key.replace('_', '-')}" in flags, key
        assert "default" not in spec, key
    assert set(peeling["subtract"]["enum"]) == set(MODES)
    assert set(peeling["boxes"]["enum"]) == set(BOX_SOURCES)
