"""The training options are declared once: `model.train.TrainConfig` (names, types, defaults)
with model/options.py (help, choices, bounds). The `python -m model train` options, the
workflow schema's models[] properties and common.smk's TRAIN_OPTIONS are derived from them or
checked against them here."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from model.cli import build_parser
from model.options import (OPTIONS, config_from_args, flag, schema_lines, train_fields,
                           workflow_options, workflow_properties)
from model.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ["--data", "d.nc", "--labels", "l.nc", "--split", "s.json", "--out-dir", "out"]


def parse_train(*extra: str):
    return build_parser().parse_args(["train", *REQUIRED, *extra])


def test_every_trainconfig_field_has_one_option_entry():
    assert list(OPTIONS) == list(train_fields())
    for name, spec in OPTIONS.items():
        assert spec.get("help"), f"{name}: no help text"


def test_train_flags_keep_their_names():
    assert [flag(name) for name in train_fields()] == [
        "--arch", "--arch-kwargs", "--epochs", "--batch-size", "--lr", "--weight-decay",
        "--loss", "--huber-delta", "--bce-weight", "--dice-weight", "--scheduler",
        "--patience", "--seed", "--device", "--workers", "--reference", "--scaling",
        "--warmup-epochs", "--no-cache", "--augment-snr-db", "--augment-dead-sensors"]


def test_cli_defaults_are_the_dataclass_defaults():
    assert config_from_args(parse_train()) == TrainConfig()


def test_cli_options_reach_the_config():
    args = parse_train("--arch", "densenet1d", "--arch-kwargs", '{"dropout": 0.1}',
                       "--epochs", "3", "--lr", "0.5", "--bce-weight", "2", "--no-cache",
                       "--scheduler", "plateau", "--device", "cpu", "--workers", "1")
    config = config_from_args(args)
    assert config == dataclasses.replace(
        TrainConfig(), arch="densenet1d", arch_kwargs={"dropout": 0.1}, epochs=3, lr=0.5,
        bce_weight=2.0, cache=False, scheduler="plateau", device="cpu", workers=1)


def test_a_list_option_takes_one_or_two_values():
    assert config_from_args(parse_train("--augment-snr-db", "20")).augment_snr_db == [20.0]
    assert config_from_args(parse_train("--augment-snr-db", "10", "30")).augment_snr_db == [10.0, 30.0]
    assert config_from_args(parse_train("--augment-snr-db")).augment_snr_db == []


def test_a_choice_outside_the_table_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_train("--scheduler", "linear")
    assert "--scheduler" in capsys.readouterr().err


def test_workflow_schema_models_properties_are_generated_from_trainconfig():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    properties = dict(schema["properties"]["models"]["items"]["properties"])
    workflow_only = {key: properties.pop(key) for key in ("name", "threads")}
    assert workflow_only["threads"]["type"] == "integer"
    assert properties == workflow_properties(), (
        "workflow/schemas/config.schema.yaml models[] differs from TrainConfig; paste the "
        "output of `python -m model.options`:\n" + "\n".join(schema_lines()))


def test_workflow_schema_gives_no_training_defaults():
    """Defaults come from TrainConfig alone (they are tuned there)."""
    assert not any("default" in prop for prop in workflow_properties().values())


def test_common_smk_maps_every_workflow_option_to_its_flag():
    text = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    literal = re.search(r"^TRAIN_OPTIONS = (\{.*?^\})", text, flags=re.S | re.M).group(1)
    mapping = ast.literal_eval(literal)
    expected = {name: flag(name) for name in workflow_options() if name != "arch_kwargs"}
    assert mapping == expected
