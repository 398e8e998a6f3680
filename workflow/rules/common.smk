# Helpers shared by the rules: config checks the schema cannot express, the shard and model
# lists, input functions and CLI flag strings. No rules here.
import json
import math
import re
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError


# ---------------------------------------------------------------- config checks
def check_config(config):
    """Cross-field checks that JSON schema cannot state; each error names the key."""
    names = [m["name"] for m in config["models"] + config.get("baselines", [])]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise WorkflowError(
            "config: models[].name and baselines[].name must be unique (one results/eval/NAME "
            f"each), repeated: {', '.join(duplicated)}"
        )
    fractions = config["split"]["fractions"]
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise WorkflowError(
            f"config: split.fractions must sum to 1 (train, val, test), got {fractions}"
        )
    samples = config["dataset"]["samples"]
    bad = [s for s in config["figures"]["samples"] if s >= samples]
    if bad:
        raise WorkflowError(
            f"config: figures.samples {bad} are outside dataset.samples = {samples} "
            f"(valid indices 0..{samples - 1})"
        )
    heldout = config["evaluation"].get("heldout")
    if heldout and heldout["start"] < samples:
        stop = heldout["start"] + heldout["samples"]
        raise WorkflowError(
            f"config: evaluation.heldout samples [{heldout['start']}, {stop}) overlap the "
            f"dataset's [0, {samples}) (dataset.samples); set evaluation.heldout.start >= {samples}"
        )
    robustness = config["evaluation"].get("robustness")
    if robustness is not None and not heldout:
        raise WorkflowError(
            "config: evaluation.robustness perturbs the held-out samples; it needs "
            "evaluation.heldout"
        )
    if robustness is not None:
        sensors = config["simulation"]["sensors"]
        n_sensors = sensors["nx"] * sensors["ny"]
        too_many = [k for k in robustness["dead_sensors"] if k > n_sensors]
        if too_many:
            raise WorkflowError(
                f"config: evaluation.robustness.dead_sensors {too_many} exceed the "
                f"{n_sensors} sensors (simulation.sensors nx x ny)"
            )
    cracks = config["simulation"]["cracks"]
    if not cracks.get("families") and not cracks.get("fixed"):
        raise WorkflowError(
            "config: simulation.cracks needs `families` (random geometries) "
            "or `fixed` (one user-defined scenario)"
        )


check_config(config)


# ---------------------------------------------------------------- shards and models
SAMPLES = config["dataset"]["samples"]
SHARD_SIZE = config["dataset"]["shard_size"]
SHARDS = [f"{i:04d}" for i in range(math.ceil(SAMPLES / SHARD_SIZE))]
MODELS = {m["name"]: m for m in config["models"]}
BASELINES = {b["name"]: b for b in config.get("baselines", [])}
SCORED = [*MODELS, *BASELINES]  # every row of the comparison, in config order


wildcard_constraints:
    shard=r"\d{4}",
    sample=r"\d+",
    model="|".join(re.escape(name) for name in MODELS),
    baseline="|".join(re.escape(name) for name in BASELINES) or "(?!)",


def shard_range(wildcards):
    """`START:STOP` global sample indices of a shard (the last one may be short)."""
    start = int(wildcards.shard) * SHARD_SIZE
    if start >= SAMPLES:
        raise WorkflowError(
            f"shard-{wildcards.shard} starts at sample {start}, beyond "
            f"dataset.samples = {SAMPLES} ({len(SHARDS)} shards)"
        )
    return f"{start}:{min(start + SHARD_SIZE, SAMPLES)}"


def shard_of_sample(wildcards):
    """The shard that holds global sample index `wildcards.sample`."""
    return f"results/data/shard-{int(wildcards.sample) // SHARD_SIZE:04d}.nc"


def position_in_shard(wildcards):
    """Position of global sample `wildcards.sample` within its shard (`dlem plot --sample`)."""
    return int(wildcards.sample) % SHARD_SIZE


SHARD_FILES = expand("results/data/shard-{shard}.nc", shard=SHARDS)
LABEL_FILES = expand("results/labels/shard-{shard}.nc", shard=SHARDS)


# ---------------------------------------------------------------- held-out set (optional)
# evaluation.heldout: samples [start, start + samples) in shards of shard_size, numbered
# from 0 under results/heldout/; absent, the held-out rules exist but nothing requests them.
HELDOUT = config["evaluation"].get("heldout")
HELDOUT_SHARDS = (
    [f"{i:04d}" for i in range(math.ceil(HELDOUT["samples"] / HELDOUT["shard_size"]))]
    if HELDOUT
    else []
)
HELDOUT_SHARD_FILES = expand("results/heldout/data/shard-{shard}.nc", shard=HELDOUT_SHARDS)
HELDOUT_LABEL_FILES = expand("results/heldout/labels/shard-{shard}.nc", shard=HELDOUT_SHARDS)
HELDOUT_SPLIT = "results/heldout/split/split.json"


def heldout_shard_range(wildcards):
    """`START:STOP` global sample indices of held-out shard `wildcards.shard`."""
    if not HELDOUT:
        raise WorkflowError("results/heldout/ needs the config section evaluation.heldout")
    first = int(wildcards.shard) * HELDOUT["shard_size"]
    if first >= HELDOUT["samples"]:
        raise WorkflowError(
            f"held-out shard-{wildcards.shard} starts beyond evaluation.heldout.samples = "
            f"{HELDOUT['samples']} ({len(HELDOUT_SHARDS)} shards)"
        )
    start = HELDOUT["start"] + first
    return f"{start}:{HELDOUT['start'] + min(first + HELDOUT['shard_size'], HELDOUT['samples'])}"


# ---------------------------------------------------------------- robustness (optional)
# evaluation.robustness: the held-out samples perturbed (noise, dead sensors: --perturb) and
# simulated again with shifted wave speeds (--allow-setup-change), every model and baseline
# scored on each condition under results/robustness/CONDITION/; absent, nothing requests them.
ROBUSTNESS = config["evaluation"].get("robustness")
PERTURBED = (
    {
        **{f"noise-snr{snr:g}": {"snr_db": snr, "seed": 0} for snr in ROBUSTNESS["snr_db"]},
        **{
            f"dead-{k}-draw-{d}": {"dead_sensors": k, "draw": d}
            for k in ROBUSTNESS["dead_sensors"]
            for d in range(ROBUSTNESS["draws"])
        },
    }
    if ROBUSTNESS
    else {}
)
SPEED_SHIFTS = {f"speed{s:+g}": s for s in ROBUSTNESS["speed_shift"]} if ROBUSTNESS else {}
CONDITIONS = [*PERTURBED, *SPEED_SHIFTS]
MATERIAL_KEY = "plate.youngs_modulus"  # the one set-up path a speed shift changes


wildcard_constraints:
    condition="|".join(re.escape(name) for name in CONDITIONS) or "(?!)",
    speed="|".join(re.escape(name) for name in SPEED_SHIFTS) or "(?!)",


def shifted_simulation(wildcards):
    """The `simulation:` section with Young's modulus times (1 + shift)^2: at fixed density
    and Poisson's ratio every wave speed of the plate scales with sqrt(E)."""
    simulation = json.loads(json.dumps(config["simulation"]))
    simulation["plate"]["youngs_modulus"] *= (1.0 + SPEED_SHIFTS[wildcards.speed]) ** 2
    return simulation


def robustness_data(wildcards):
    """Shards, labels and the all-test split a condition is scored on: the held-out ones,
    or those simulated with the condition's speed shift (same sample indices)."""
    if wildcards.condition in SPEED_SHIFTS:
        root = f"results/robustness/{wildcards.condition}"
        return {
            "data": expand(f"{root}/data/shard-{{shard}}.nc", shard=HELDOUT_SHARDS),
            "labels": expand(f"{root}/labels/shard-{{shard}}.nc", shard=HELDOUT_SHARDS),
            "split": HELDOUT_SPLIT,
        }
    return {"data": HELDOUT_SHARD_FILES, "labels": HELDOUT_LABEL_FILES, "split": HELDOUT_SPLIT}


def robustness_evaluate_input(wildcards):
    """A model's inputs on one condition: its data, the checkpoint, and the main
    evaluation's metrics.json (mask thresholds chosen on the main split's val)."""
    return {
        **robustness_data(wildcards),
        "checkpoint": f"results/models/{wildcards.model}/checkpoint.pt",
        "chosen": f"results/eval/{wildcards.model}/metrics.json",
    }


def robustness_baseline_input(wildcards):
    """A baseline's inputs on one condition: its data, the (clean) pristine plate, and the
    main run's metrics.json (hyperparameters chosen on the main split's val)."""
    return {
        **robustness_data(wildcards),
        "pristine": PRISTINE,
        "chosen": f"results/eval/{wildcards.baseline}/metrics.json",
    }


def robustness_flags(wildcards):
    """`--perturb JSON` of a noise or dead-sensor condition, or the allowed set-up change
    of a speed shift."""
    if wildcards.condition in SPEED_SHIFTS:
        return f"--allow-setup-change {MATERIAL_KEY}"
    return f"--perturb {shlex.quote(json.dumps(PERTURBED[wildcards.condition]))}"


# ---------------------------------------------------------------- train / evaluate
# model entry key -> `python -m model train` option: the TrainConfig options of the schema's
# models[] (model/options.py; tests/test_options.py checks this mapping against it). Keys left
# out take TrainConfig's defaults; arch_kwargs is passed as JSON by train_flags.
TRAIN_OPTIONS = {
    "arch": "--arch",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "weight_decay": "--weight-decay",
    "loss": "--loss",
    "huber_delta": "--huber-delta",
    "bce_weight": "--bce-weight",
    "dice_weight": "--dice-weight",
    "scheduler": "--scheduler",
    "patience": "--patience",
    "seed": "--seed",
    "reference": "--reference",
    "scaling": "--scaling",
    "warmup_epochs": "--warmup-epochs",
}


PRISTINE = "results/data/pristine.nc"


def uses_pristine(model):
    """Whether a model entry's training reads the pristine plate: `reference` subtract, or
    auto (the CLI's default when the key is left out), which subtracts it when given."""
    return model.get("reference", "auto") in ("subtract", "auto")


def train_input(wildcards):
    inputs = {
        "data": SHARD_FILES,
        "labels": LABEL_FILES,
        "split": "results/split/split.json",
    }
    if uses_pristine(MODELS[wildcards.model]):
        inputs["pristine"] = PRISTINE
    return inputs


def train_flags(wildcards):
    """The `python -m model train` options of one configured model. `threads` is left out:
    it changes the speed, not the result, so it must not trigger a rerun. (No `input`
    argument: Snakemake leaves params derived from input out of the params rerun trigger.)"""
    m = MODELS[wildcards.model]
    flags = [f"{flag} {m[key]}" for key, flag in TRAIN_OPTIONS.items() if key in m]
    if uses_pristine(m):
        flags.append(f"--pristine {PRISTINE}")
    if m.get("arch_kwargs"):
        flags.append(f"--arch-kwargs {shlex.quote(json.dumps(m['arch_kwargs']))}")
    return " ".join(flags)


def model_threads(wildcards):
    return MODELS[wildcards.model]["threads"]


def evaluate_input(wildcards):
    return {
        "data": SHARD_FILES,
        "labels": LABEL_FILES,
        "split": "results/split/split.json",
        "checkpoint": f"results/models/{wildcards.model}/checkpoint.pt",
    }


def heldout_evaluate_input(wildcards):
    """A model's held-out inputs: the held-out data, its all-test split, the checkpoint, and
    the main evaluation's metrics.json (mask thresholds chosen on the main split's val)."""
    return {
        "data": HELDOUT_SHARD_FILES,
        "labels": HELDOUT_LABEL_FILES,
        "split": HELDOUT_SPLIT,
        "checkpoint": f"results/models/{wildcards.model}/checkpoint.pt",
        "chosen": f"results/eval/{wildcards.model}/metrics.json",
    }


def baseline_method(wildcards):
    return BASELINES[wildcards.baseline]["method"]


def baseline_flags(wildcards):
    """`python -m model baseline` options of one configured baseline (its method first)."""
    b = BASELINES[wildcards.baseline]
    flags = [b["method"]]
    if b.get("grid"):
        flags.append(f"--grid {shlex.quote(json.dumps(b['grid']))}")
    return " ".join(flags)


# ---------------------------------------------------------------- final targets
def get_final_output():
    """Everything `snakemake` with no target builds."""
    outputs = [
        "results/config/simulation.yaml",
        "results/data/pristine.nc",
        *expand("results/data/summary/shard-{shard}.txt", shard=SHARDS),
        "results/split/split.json",
        *expand("results/models/{model}/history.csv", model=MODELS),
        *expand("results/eval/{model}/metrics.json", model=SCORED),
        "results/compare/table.csv",
        "results/compare/table.md",
        "results/compare/iou_vs_crack_size.png",
        "results/compare/loss_curves.png",
        "results/report/overview.png",
        *expand(
            "results/figures/sample-{sample}/{kind}.png",
            sample=config["figures"]["samples"],
            kind=["traces", "snapshots"],
        ),
    ]
    if HELDOUT:
        outputs += expand(
            "results/heldout/compare/{name}",
            name=["table.csv", "table.md", "iou_vs_crack_size.png", "loss_curves.png"],
        )
    if ROBUSTNESS:
        outputs += expand("results/compare/robustness.{ext}", ext=["csv", "md", "png"])
    return outputs
