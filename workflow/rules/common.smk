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
    check_cracks(config["simulation"]["cracks"], "simulation.cracks")
    check_scenarios(config)


def check_cracks(cracks, key):
    """A crack section (`key` names it in the error) needs families or fixed cracks."""
    if not cracks.get("families") and not cracks.get("fixed"):
        raise WorkflowError(
            f"config: {key} needs `families` (random geometries) "
            "or `fixed` (one user-defined scenario)"
        )


def check_scenarios(config):
    """evaluation.scenarios: unique names, other than the reference's `heldout`, each a
    crack section, and sample ranges apart from the dataset's and the held-out set's (a
    sample's cracks are drawn from its index: shared indices would share crack draws)."""
    scenarios = config["evaluation"]["scenarios"]
    names = [s["name"] for s in scenarios]
    # `heldout` names the reference's columns of the table (model.scenarios.REFERENCE)
    repeated = sorted({n for n in names if names.count(n) > 1 or n == "heldout"})
    if repeated:
        raise WorkflowError(
            "config: evaluation.scenarios[].name must be unique and not `heldout` (one "
            f"results/scenarios/NAME and one table column each), got: {', '.join(repeated)}"
        )
    taken = {"dataset.samples": (0, config["dataset"]["samples"])}
    heldout = config["evaluation"].get("heldout")
    if heldout:
        taken["evaluation.heldout"] = (
            heldout["start"],
            heldout["start"] + heldout["samples"],
        )
    for s in scenarios:
        key = f"evaluation.scenarios[{s['name']}]"
        check_cracks(s["cracks"], f"{key}.cracks")
        start, stop = s["start"], s["start"] + s["samples"]
        for other, (lo, hi) in taken.items():
            if start < hi and lo < stop:
                raise WorkflowError(
                    f"config: {key} samples [{start}, {stop}) overlap {other} [{lo}, {hi}); "
                    f"move {key}.start"
                )


check_config(config)


# ---------------------------------------------------------------- shards and models
SAMPLES = config["dataset"]["samples"]
SHARD_SIZE = config["dataset"]["shard_size"]
SHARDS = [f"{i:04d}" for i in range(math.ceil(SAMPLES / SHARD_SIZE))]
# the `--compression` of every simulate job: dataset.compression, or the solver's default
COMPRESSION = (
    f" --compression {config['dataset']['compression']}"
    if "compression" in config["dataset"]
    else ""
)
MODELS = {m["name"]: m for m in config["models"]}
BASELINES = {b["name"]: b for b in config.get("baselines", [])}
SCORED = [*MODELS, *BASELINES]  # every row of the comparison, in config order
# evaluation.peeling: the crack-set models peeled (`python -m crackpoint peel`)
PEELING = config["evaluation"].get("peeling")
PEELED = [n for n, m in MODELS.items() if m["arch"] == "crackset"] if PEELING else []


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


def block_shards(block):
    """Shard names of a sample block `{start, samples, shard_size}` (evaluation.heldout, a
    scenario), numbered from 0."""
    return [f"{i:04d}" for i in range(math.ceil(block["samples"] / block["shard_size"]))]


def block_range(block, shard, key):
    """`START:STOP` global sample indices of shard `shard` of a sample block; `key` names
    the block's config section in the error."""
    first = int(shard) * block["shard_size"]
    if first >= block["samples"]:
        raise WorkflowError(
            f"shard-{shard} of {key} starts beyond {key}.samples = {block['samples']} "
            f"({len(block_shards(block))} shards)"
        )
    stop = min(first + block["shard_size"], block["samples"])
    return f"{block['start'] + first}:{block['start'] + stop}"


HELDOUT_SHARDS = block_shards(HELDOUT) if HELDOUT else []
HELDOUT_SHARD_FILES = expand("results/heldout/data/shard-{shard}.nc", shard=HELDOUT_SHARDS)
HELDOUT_LABEL_FILES = expand("results/heldout/labels/shard-{shard}.nc", shard=HELDOUT_SHARDS)
HELDOUT_SPLIT = "results/heldout/split/split.json"
HELDOUT_EVAL_FOLDERS = expand("results/heldout/eval/{model}", model=SCORED) if HELDOUT else []


def heldout_shard_range(wildcards):
    """`START:STOP` global sample indices of held-out shard `wildcards.shard`."""
    if not HELDOUT:
        raise WorkflowError("results/heldout/ needs the config section evaluation.heldout")
    return block_range(HELDOUT, wildcards.shard, "evaluation.heldout")


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


def trained_model(wildcards):
    """What scores a trained model on data it chooses nothing on: the checkpoint and the
    main evaluation's metrics.json (mask thresholds chosen on the main split's val)."""
    return {
        "checkpoint": f"results/models/{wildcards.model}/checkpoint.pt",
        "chosen": f"results/eval/{wildcards.model}/metrics.json",
    }


def tuned_baseline(wildcards):
    """What scores a baseline on data it chooses nothing on: the (clean) pristine plate and
    the main run's metrics.json (hyperparameters chosen on the main split's val)."""
    return {"pristine": PRISTINE, "chosen": f"results/eval/{wildcards.baseline}/metrics.json"}


def robustness_evaluate_input(wildcards):
    """A model's inputs on one condition: its data and `trained_model`."""
    return {**robustness_data(wildcards), **trained_model(wildcards)}


def robustness_baseline_input(wildcards):
    """A baseline's inputs on one condition: its data and `tuned_baseline`."""
    return {**robustness_data(wildcards), **tuned_baseline(wildcards)}


def robustness_flags(wildcards):
    """`--perturb JSON` of a noise or dead-sensor condition, or the allowed set-up change
    of a speed shift."""
    if wildcards.condition in SPEED_SHIFTS:
        return f"--allow-setup-change {MATERIAL_KEY}"
    return f"--perturb {shlex.quote(json.dumps(PERTURBED[wildcards.condition]))}"


# ---------------------------------------------------------------- crack scenarios (optional)
# evaluation.scenarios: test sets simulated with another `simulation.cracks` section on the
# training set-up (the crack section is not part of the set-up hash), every model and
# baseline scored on each under results/scenarios/NAME/; empty, nothing requests them.
SCENARIOS = {s["name"]: s for s in config["evaluation"]["scenarios"]}


wildcard_constraints:
    scenario="|".join(re.escape(name) for name in SCENARIOS) or "(?!)",


def scenario_simulation(wildcards):
    """The `simulation:` section with the scenario's crack section in place of the
    training one (a param: editing one scenario reruns that scenario only)."""
    return {**config["simulation"], "cracks": SCENARIOS[wildcards.scenario]["cracks"]}


def scenario_shard_range(wildcards):
    """`START:STOP` global sample indices of one scenario shard."""
    name = wildcards.scenario
    return block_range(SCENARIOS[name], wildcards.shard, f"evaluation.scenarios[{name}]")


def scenario_files(name, kind):
    """A scenario's shard files of `kind` (data, labels)."""
    return expand(
        f"results/scenarios/{name}/{kind}/shard-{{shard}}.nc",
        shard=block_shards(SCENARIOS[name]),
    )


def scenario_labels(wildcards):
    return scenario_files(wildcards.scenario, "labels")


def scenario_data(wildcards):
    """Shards, labels and the all-test split of one scenario."""
    name = wildcards.scenario
    return {
        "data": scenario_files(name, "data"),
        "labels": scenario_files(name, "labels"),
        "split": f"results/scenarios/{name}/split/split.json",
    }


def scenario_evaluate_input(wildcards):
    return {**scenario_data(wildcards), **trained_model(wildcards)}


def scenario_baseline_input(wildcards):
    return {**scenario_data(wildcards), **tuned_baseline(wildcards)}


def scenario_eval_folders(name):
    """The evaluation folders of every model and baseline on scenario `name`."""
    return expand(f"results/scenarios/{name}/eval/{{model}}", model=SCORED)


def scenario_compare_args():
    """`[--reference DIR...] --scenario NAME DIR...` of `python -m model scenarios`: the
    held-out evaluations (if configured) are the reference columns."""
    flags = [f"--scenario {name} {' '.join(scenario_eval_folders(name))}" for name in SCENARIOS]
    if HELDOUT:
        flags.insert(0, f"--reference {' '.join(HELDOUT_EVAL_FOLDERS)}")
    return " ".join(flags)


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
    "augment_snr_db": "--augment-snr-db",
    "augment_dead_sensors": "--augment-dead-sensors",
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
    flags = [
        f"{flag} {' '.join(map(str, m[key])) if isinstance(m[key], list) else m[key]}"
        for key, flag in TRAIN_OPTIONS.items()
        if key in m
    ]
    if uses_pristine(m):
        flags.append(f"--pristine {PRISTINE}")
    if m.get("arch_kwargs"):
        flags.append(f"--arch-kwargs {shlex.quote(json.dumps(m['arch_kwargs']))}")
    return " ".join(flags)


def model_threads(wildcards):
    return MODELS[wildcards.model]["threads"]


def train_priority(wildcards):
    """Longest training first: more epochs, higher priority. With two one-thread trainings
    on two cores, a long one started last sets the wall time (the default run once started
    MicroCrackPointNet's 10 epochs after the 4- and 6-epoch trainings)."""
    return MODELS[wildcards.model].get("epochs", 1)


def evaluate_input(wildcards):
    return {
        "data": SHARD_FILES,
        "labels": LABEL_FILES,
        "split": "results/split/split.json",
        "checkpoint": f"results/models/{wildcards.model}/checkpoint.pt",
    }


def heldout_evaluate_input(wildcards):
    """A model's held-out inputs: the held-out data, its all-test split and `trained_model`."""
    return {
        "data": HELDOUT_SHARD_FILES,
        "labels": HELDOUT_LABEL_FILES,
        "split": HELDOUT_SPLIT,
        **trained_model(wildcards),
    }


def peel_input(wildcards):
    """A crack-set model's peeling inputs: the data and labels its evaluation scored, the
    checkpoint, that evaluation's metrics.json (its folder is the first pass) and, but for
    the validation plates, their peel's metrics.json (the intervals' rescaling)."""
    heldout = wildcards.set == "heldout/"
    inputs = {
        "data": HELDOUT_SHARD_FILES if heldout else SHARD_FILES,
        "labels": HELDOUT_LABEL_FILES if heldout else LABEL_FILES,
        "checkpoint": f"results/models/{wildcards.model}/checkpoint.pt",
        "evaluated": f"results/{wildcards.set}eval/{wildcards.model}/metrics.json",
    }
    if wildcards.set != "val/":
        inputs["rescale"] = f"results/val/peel/{wildcards.model}/metrics.json"
    return inputs


def peel_rescale(wildcards, input):
    """`--from-metrics` of the validation plates' peel, but when peeling them."""
    return f"--from-metrics {input.rescale}" if "rescale" in input.keys() else ""


def peel_flags(wildcards):
    """`python -m crackpoint peel` options as evaluation.peeling gives them (the command's
    defaults otherwise): `--key value`, or `--key` alone for a true switch."""
    return " ".join(
        f"--{key.replace('_', '-')}" + ("" if value is True else f" {value}")
        for key, value in PEELING.items()
        if value is not False
    )


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
    if SCENARIOS:
        outputs += expand("results/compare/scenarios.{ext}", ext=["csv", "md"])
    outputs += expand(
        "results/{set}peel/{model}/metrics.json",
        model=PEELED,
        set=["", "heldout/"] if HELDOUT else [""],
    )
    return outputs
