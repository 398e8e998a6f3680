"""The training options: one entry per `model.train.TrainConfig` field, from which the rest
is derived.

`TrainConfig` declares each option's name, type and default (the defaults live there only);
`OPTIONS` below adds, per field, what the command line and the workflow need: the help
text, the allowed values, the flag when it is not `--field-name`, the JSON-schema bounds of
the workflow config, and whether a `models:` entry of the workflow config may set it
(`workflow: False` for options that change the speed, not the result). From the two:

- `add_train_arguments` builds the `python -m model train` options (defaults from
  `TrainConfig`; a bool defaulting to True becomes `--no-FIELD`, a dict a JSON string),
  and `config_from_args` turns parsed arguments back into a `TrainConfig`;
- `workflow_properties` gives the `models[]` properties of
  workflow/schemas/config.schema.yaml; the schema stays a static file (Snakemake validates
  against it), and tests/test_options.py fails when it, the `TRAIN_OPTIONS` mapping of
  workflow/rules/common.smk or this table disagree with `TrainConfig`
  (`python -m model.options` prints the properties to paste).

A `list[float]` field takes any number of values on the command line (`--FIELD A B`) and a
list in the workflow config. Adding an option: a `TrainConfig` field, an entry here, then the
schema block printed by `python -m model.options`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from model.data import REFERENCES, SCALINGS
from model.io import DataError
from model.losses import DEFAULT_LOSS, LOSSES
from model.nets import ARCHITECTURES
from model.train import SCHEDULERS, TrainConfig

DEVICES = ("auto", "cpu", "cuda")

# field -> help (str), choices (tuple or a callable giving one), flag, metavar,
# schema (JSON-schema bounds), workflow (bool, default True)
OPTIONS: dict[str, dict[str, Any]] = {
    "arch": {"help": "registered architecture (model/nets/__init__.py)",
             "choices": lambda: tuple(sorted(ARCHITECTURES))},
    "arch_kwargs": {"help": "architecture hyperparameters overriding its defaults, e.g. "
                            '\'{"attention": "gc", "dropout": 0.1}\'',
                    "metavar": "JSON"},
    "epochs": {"help": "maximum number of epochs", "schema": {"minimum": 1}},
    "batch_size": {"help": "samples per optimiser step", "schema": {"minimum": 1}},
    "lr": {"help": "AdamW learning rate", "schema": {"exclusiveMinimum": 0}},
    "weight_decay": {"help": "AdamW weight decay", "schema": {"minimum": 0}},
    "loss": {"help": "training loss: on box coordinates for box models (giou = 1 - "
                     "generalised IoU, l1_giou = MAE + 1 - GIoU), bce_dice for mask models, "
                     "crackset (centre heatmap, boxes, end points, log-variances) for "
                     f"crack-set models; auto = {DEFAULT_LOSS['box']} for box models, "
                     f"{DEFAULT_LOSS['mask']} for mask models (densenet1d), "
                     f"{DEFAULT_LOSS['cracks']} for crack-set models (crackset)",
             "choices": ("auto", *LOSSES)},
    "huber_delta": {"help": "Huber threshold between quadratic and linear (loss and metric)",
                    "schema": {"exclusiveMinimum": 0}},
    "bce_weight": {"help": "bce_dice loss: weight of the binary cross-entropy term",
                   "schema": {"minimum": 0}},
    "dice_weight": {"help": "bce_dice loss: weight of the 1 - soft Dice term",
                    "schema": {"minimum": 0}},
    "scheduler": {"help": "LR schedule: cosine to 0 over --epochs, or halve on a val-loss "
                          "plateau",
                  "choices": SCHEDULERS},
    "patience": {"help": "stop after this many epochs without a better validation loss",
                 "schema": {"minimum": 1}},
    "seed": {"help": "seed of weights, shuffling, dropout", "schema": {"minimum": 0}},
    "device": {"help": "where to run the network; auto = CUDA when available",
               "choices": DEVICES, "workflow": False},
    "workers": {"help": "DataLoader worker processes reading samples (0 = main process)",
                "schema": {"minimum": 0}, "workflow": False},
    "reference": {"help": "what is subtracted from every wavefield: subtract = the pristine "
                          "plate (feeds the scattered field; needs --pristine), mean = the "
                          "mean wavefield of the training samples, auto = subtract when "
                          "--pristine is given, else mean",
                  "choices": REFERENCES},
    "scaling": {"help": "how the difference is scaled: component = one mean/std per "
                        "displacement component, sensor = per sensor and component, trace "
                        "= each trace to unit RMS",
                "choices": SCALINGS},
    "warmup_epochs": {"help": "linear learning-rate warm-up before the cosine decay, in epochs",
                      "schema": {"minimum": 0}},
    "cache": {"help": "keep the conditioned inputs in memory after the first epoch (1.3 MB a "
                      "sample; speed only); --no-cache reads every sample from its shard in "
                      "every epoch",
              "workflow": False},
    "augment_snr_db": {"help": "training-time augmentation: Gaussian noise added to every raw "
                               "training wavefield (before conditioning; never to validation "
                               "or test) at an SNR relative to each trace's RMS, drawn anew per "
                               "sample and epoch: none (default), one value S, or LOW HIGH "
                               "(uniform) [dB] (model/augment.py)",
                       "metavar": "DB", "schema": {"maxItems": 2}},
    "augment_dead_sensors": {"help": "training-time augmentation: zero 0 to this many sensors "
                                     "of every training sample, drawn anew per sample and epoch "
                                     "(after the noise)",
                             "metavar": "K", "schema": {"minimum": 0}},
}

# TrainConfig annotation (a string: `from __future__ import annotations`) -> JSON-schema type
_SCHEMA_TYPES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean",
                 "dict": "object"}
_PARSERS: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str}
_LISTS = {"list[float]": "float"}  # list annotation -> its item's type


def train_fields() -> dict[str, dataclasses.Field]:
    """TrainConfig's fields by name, in declaration order."""
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def default(name: str) -> Any:
    """TrainConfig's default of field `name`."""
    f = train_fields()[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def choices(name: str) -> tuple | None:
    """The allowed values of option `name`, or None when any value of its type is allowed."""
    found = OPTIONS[name].get("choices")
    return found() if callable(found) else found


def flag(name: str) -> str:
    """The command-line flag of option `name` (`--no-cache` for a bool that defaults to True)."""
    if "flag" in OPTIONS[name]:
        return OPTIONS[name]["flag"]
    dashed = name.replace("_", "-")
    if train_fields()[name].type == "bool" and default(name):
        return f"--no-{dashed}"
    return f"--{dashed}"


def add_option(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the flag of TrainConfig field `name` to `parser`, default from the dataclass."""
    kind, spec = train_fields()[name].type, OPTIONS[name]
    kwargs: dict[str, Any] = {"dest": name, "help": spec["help"]}
    if kind == "bool":
        kwargs["action"] = "store_false" if default(name) else "store_true"
        kwargs["help"] += f" (default: {name}=%(default)s)"
    elif kind == "dict":
        kwargs.update(default=json.dumps(default(name)), metavar=spec.get("metavar", "JSON"))
    elif kind in _LISTS:
        kwargs.update(default=default(name), type=_PARSERS[_LISTS[kind]], nargs="*",
                      metavar=spec.get("metavar"))
    else:
        kwargs.update(default=default(name), type=_PARSERS[kind])
        if choices(name) is not None:
            kwargs["choices"] = choices(name)
        if "metavar" in spec:
            kwargs["metavar"] = spec["metavar"]
    parser.add_argument(flag(name), **kwargs)


def add_train_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Every TrainConfig field as an option of `parser`, except those in `skip`."""
    for name in train_fields():
        if name not in skip:
            add_option(parser, name)


def json_object(text: str, option: str) -> dict:
    """The JSON object given to `option`; DataError naming the option otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{option} is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise DataError(f"{option} must be a JSON object, got {text!r}")
    return value


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed `python -m model train` arguments."""
    values = {}
    for name, f in train_fields().items():
        value = getattr(args, name)
        values[name] = json_object(value, flag(name)) if f.type == "dict" else value
    return TrainConfig(**values)


def workflow_options() -> list[str]:
    """The options a `models:` entry of the workflow config may set, in declaration order."""
    return [name for name in train_fields() if OPTIONS[name].get("workflow", True)]


def workflow_properties() -> dict[str, dict]:
    """The JSON-schema properties of those options (models[] items of the workflow schema);
    no defaults: an option left out takes TrainConfig's."""
    properties = {}
    for name in workflow_options():
        spec = OPTIONS[name]
        allowed = choices(name)
        kind = train_fields()[name].type
        if allowed is not None:
            prop = {"enum": list(allowed)}
        elif kind in _LISTS:
            prop = {"type": "array", "items": {"type": _SCHEMA_TYPES[_LISTS[kind]]}}
        else:
            prop = {"type": _SCHEMA_TYPES[kind]}
        prop.update(spec.get("schema", {}))
        prop["description"] = f"{flag(name)}: {spec['help']}"
        properties[name] = prop
    return properties


def schema_lines(indent: int = 8) -> list[str]:
    """`workflow_properties` as the lines of the schema file, one option a line (JSON is
    YAML flow style)."""
    return [f"{' ' * indent}{name}: {json.dumps(prop)}"
            for name, prop in workflow_properties().items()]


def main() -> None:
    """Print the models[] option properties of workflow/schemas/config.schema.yaml."""
    print("\n".join(schema_lines()))


if __name__ == "__main__":
    main()
