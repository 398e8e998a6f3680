"""Command line: `python -m model labels|split|train|evaluate|baseline|predict|compare|
robustness|scenarios` (see `--help`).

Inputs are checked here, at the edge: a missing or corrupt file, a shard that lacks a
variable of docs/data-format.md, or a split naming unknown samples ends the command with a
one-line error (exit status 2) that names the problem.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence

from crackpoint.stopping import Terminated, raise_terminated
from model.data import SUBSETS, load_labels, make_split, write_split
from model.io import DataError, check_output_dir, check_output_file, describe_os_error
from model.keypoints import BOX_RULES, DEFAULT_BOX_RULE
from model.baselines import METHODS
from model.metrics import DEFAULT_SIZE_THRESHOLDS
from model.options import json_object, add_option, add_train_arguments, config_from_args

FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def _add_data_args(parser: argparse.ArgumentParser, network: bool = True) -> None:
    """--data, --labels, --split; with `network`, also where and how a network runs."""
    parser.add_argument("--data", nargs="+", required=True, metavar="SHARD.nc",
                        help="simulation shards (docs/data-format.md) holding the wavefields")
    parser.add_argument("--labels", nargs="+", required=True, metavar="LABELS.nc",
                        help="key-point label files written by `python -m model labels`")
    parser.add_argument("--split", required=True, metavar="SPLIT.json",
                        help="train/val/test split written by `python -m model split`")
    if not network:
        return
    add_option(parser, "device")
    add_option(parser, "workers")


def _add_robustness_args(parser: argparse.ArgumentParser) -> None:
    """--perturb, --allow-setup-change: score on data other than the clean data of the
    training set-up, choosing nothing there (docs/robustness.md)."""
    parser.add_argument("--perturb", metavar="JSON",
                        help="perturb each raw wavefield before it is conditioned, as a "
                             "noisy or partly failed sensor array would deliver it: "
                             "'{\"snr_db\": 20, \"seed\": 0}' adds Gaussian noise at that SNR "
                             "relative to each trace's RMS, '{\"dead_sensors\": 5, \"draw\": 1}' "
                             "zeroes 5 sensors per sample (model/perturb.py); needs "
                             "--from-metrics where something would be chosen")
    parser.add_argument("--allow-setup-change", nargs="+", default=[], metavar="PATH",
                        help="score shards whose set-up differs from the training (or "
                             "pristine) set-up in these paths only, e.g. plate.youngs_modulus "
                             "(a material change); the differences go to metrics.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model",
        description="Key-point crack localisation (MicroCrackPointNet) on crackpoint shards.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("labels", formatter_class=FORMATTER,
                       help="bounding key points from a shard's crack masks",
                       description="Write the key-point labels (box, has_crack, crack_size, "
                                   "n_cracks) of one shard, following paper §3.5, and each "
                                   "crack's own box, outline and length (crack_box, "
                                   "crack_outline, crack_length; docs/data-format.md).")
    p.add_argument("shard", metavar="SHARD.nc", help="simulation shard with crack_mask")
    p.add_argument("--out", required=True, metavar="LABELS.nc", help="labels file to write")
    p.add_argument("--box-rule", choices=BOX_RULES, default=DEFAULT_BOX_RULE,
                   help="how the one-cell margin is read (docs/model.md, Labels): cell edges "
                        "[cmin-1, cmax+2]/W, or cell indices [cmin-1, cmax+1]/W; recorded in "
                        "the file's box_rule attribute")

    p = sub.add_parser("split", formatter_class=FORMATTER,
                       help="deterministic train/val/test split by sample index",
                       description="Split all labelled samples into train/val/test with a "
                                   "seeded permutation and write it as JSON.")
    p.add_argument("--labels", nargs="+", required=True, metavar="LABELS.nc",
                   help="label files whose samples are split")
    p.add_argument("--out", required=True, metavar="SPLIT.json", help="split file to write")
    p.add_argument("--fractions", nargs=3, type=float, default=[0.7, 0.15, 0.15],
                   metavar=("TRAIN", "VAL", "TEST"), help="subset fractions, summing to 1")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutation")

    p = sub.add_parser("train", formatter_class=FORMATTER, help="train a box model",
                       description="Train an architecture on the split's training samples "
                                   "(those with a crack); writes OUT_DIR/checkpoint.pt (every "
                                   "epoch), OUT_DIR/history.csv and OUT_DIR/summary.txt.")
    _add_data_args(p, network=False)  # --device, --workers: TrainConfig options below
    p.add_argument("--out-dir", required=True, help="folder for checkpoint, history, summary")
    add_train_arguments(p)  # one per TrainConfig field (model/options.py)
    p.add_argument("--pristine", metavar="PRISTINE.nc",
                   help="pristine reference file (one uncracked sample); needed by --reference subtract")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT_DIR/checkpoint.pt if it exists, giving the same "
                        "weights as an uninterrupted run; refused, naming the difference, when "
                        "the options or input files differ from the checkpoint's")
    p.add_argument("--stop-after", type=int, metavar="EPOCHS",
                   help="end this run after that many completed epochs (e.g. a job time "
                        "limit); continue later with --resume")
    p.add_argument("--state", metavar="STATE.pt",
                   help="keep the per-epoch training state here instead of OUT_DIR/checkpoint.pt "
                        "and continue from it when it was written for the same options and "
                        "input files (else start fresh); the finished checkpoint goes to OUT_DIR")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    p = sub.add_parser("evaluate", formatter_class=FORMATTER, help="score a checkpoint",
                       description="Predict boxes for a split subset and write predictions.nc, "
                                   "metrics.json, table1.csv, table1.md and figures/*.png.")
    _add_data_args(p)
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by train")
    p.add_argument("--out-dir", required=True, help="folder for the evaluation outputs")
    p.add_argument("--subset", default="test", choices=SUBSETS, help="split subset to score")
    p.add_argument("--size-thresholds", nargs="+", type=float,
                   default=list(DEFAULT_SIZE_THRESHOLDS), metavar="M",
                   help="Table-1 rows: crack size (total length, m) greater than each value")
    p.add_argument("--batch-size", type=int, default=32, help="samples per forward pass")
    p.add_argument("--mask-threshold", type=float, metavar="P",
                   help="mask models: binarise the crack probability at P for both the box "
                        "and the pixel IoU, instead of choosing each threshold on the "
                        "validation subset")
    p.add_argument("--from-metrics", metavar="METRICS.json",
                   help="mask models: take both thresholds from this metrics.json of the "
                        "same architecture (e.g. the main split's results/eval/NAME/"
                        "metrics.json) instead of choosing them; box models: only checked")
    _add_robustness_args(p)

    p = sub.add_parser("baseline", formatter_class=FORMATTER,
                       help="classical damage imaging (RAPID, delay-and-sum), scored like a model",
                       description="Choose the method's hyperparameters by grid search on "
                                   "the validation subset (best mean box IoU), then score the "
                                   "test subset and write what `evaluate` writes "
                                   "(model/baselines/run.py explains the method).")
    p.add_argument("method", choices=METHODS,
                   help="rapid: correlation damage indices on elliptical paths; das: "
                        "delay-and-sum of the scattered field's envelopes")
    _add_data_args(p, network=False)
    p.add_argument("--pristine", required=True, metavar="PRISTINE.nc",
                   help="pristine reference file (one uncracked sample)")
    p.add_argument("--out-dir", required=True, help="folder for the evaluation outputs")
    p.add_argument("--name", help="the model's name in figures and metrics.json (default: METHOD)")
    p.add_argument("--subset", default="test", choices=SUBSETS, help="split subset to score")
    p.add_argument("--search-subset", default="val", choices=SUBSETS,
                   help="split subset the hyperparameters are chosen on")
    p.add_argument("--grid", default="{}", metavar="JSON",
                   help="override search grids, e.g. '{\"beta\": [1.05, 1.2], \"alpha\": [0.9]}'; "
                        "rapid: beta, alpha; das: speed (p|s), t_max [s], alpha")
    p.add_argument("--from-metrics", metavar="METRICS.json",
                   help="skip the search: reuse the hyperparameters in this metrics.json, "
                        "written by an earlier run of the same method (e.g. on the main "
                        "split's validation subset)")
    p.add_argument("--size-thresholds", nargs="+", type=float,
                   default=list(DEFAULT_SIZE_THRESHOLDS), metavar="M",
                   help="Table-1 rows: crack size (total length, m) greater than each value")
    _add_robustness_args(p)

    p = sub.add_parser("predict", formatter_class=FORMATTER,
                       help="predict crack boxes on new shards (no labels, no split)",
                       description="Predict every sample of the shards with a checkpoint or "
                                   "an imaging baseline; write PRED.nc and PRED.csv (boxes in "
                                   "plate fractions and in metres) and optional figures "
                                   "(model/predict.py explains the rules).")
    p.add_argument("--data", nargs="+", required=True, metavar="SHARD.nc",
                   help="shards of the set-up the checkpoint was trained on")
    p.add_argument("--checkpoint", help="checkpoint.pt written by train")
    p.add_argument("--method", choices=METHODS,
                   help="an imaging baseline instead of a checkpoint (needs --pristine and "
                        "--from-metrics)")
    p.add_argument("--pristine", metavar="PRISTINE.nc", help="--method: the pristine reference")
    p.add_argument("--from-metrics", metavar="METRICS.json",
                   help="an evaluation's metrics.json: mask models take its box threshold "
                        "(default 0.5), --method its chosen hyperparameters (required)")
    p.add_argument("--out", required=True, metavar="PRED.nc",
                   help="predictions file; the CSV goes beside it (same stem, .csv)")
    p.add_argument("--figures", metavar="DIR", help="folder for one figure per --samples entry")
    p.add_argument("--samples", nargs="+", type=int, default=[], metavar="I",
                   help="global sample indices to draw (sample-I.png in --figures)")
    p.add_argument("--batch-size", type=int, default=32, help="samples per forward pass")
    add_option(p, "device")
    add_option(p, "workers")

    p = sub.add_parser("compare", formatter_class=FORMATTER, help="one table over all models",
                       description="Read the evaluation folders (and training histories) of "
                                   "several models and write OUT_DIR/table.csv, table.md, "
                                   "iou_vs_crack_size.png and loss_curves.png.")
    add_eval_dirs(p)
    p.add_argument("--histories", nargs="*", default=[], metavar="HISTORY.csv",
                   help="training histories (results/models/NAME/history.csv) for the loss plot")
    p.add_argument("--out-dir", required=True, help="folder for the comparison")

    p = sub.add_parser("robustness", formatter_class=FORMATTER,
                       help="one table and figure over clean and perturbed evaluations",
                       description="Read evaluation folders of clean and perturbed data (the "
                                   "condition is what each metrics.json records; one clean "
                                   "folder per model) and write OUT_DIR/robustness.csv, "
                                   "robustness.md and robustness.png (model/robustness.py).")
    add_eval_dirs(p)
    p.add_argument("--out-dir", required=True, help="folder for the table and figure")

    p = sub.add_parser("scenarios", formatter_class=FORMATTER,
                       help="one table over crack scenarios the models were not trained on",
                       description="Read the evaluation folders of each crack scenario (and "
                                   "of the held-out reference) and write "
                                   "OUT_DIR/scenarios.csv and scenarios.md: a row per model, "
                                   "IoU with its bootstrap interval per scenario "
                                   "(model/scenarios.py).")
    p.add_argument("--scenario", nargs="+", action="append", required=True,
                   metavar=("NAME", "DIR"),
                   help="a scenario's name, then its folders written by evaluate or baseline "
                        "(the folder name is the model's); repeat per scenario")
    p.add_argument("--reference", nargs="+", default=[], metavar="DIR",
                   help="the same models on held-out samples of the training cracks")
    p.add_argument("--out-dir", required=True, help="folder for the tables")
    return parser


def add_eval_dirs(p: argparse.ArgumentParser) -> None:
    """`--eval-dirs`: the evaluation folders a summary command (compare, robustness) reads."""
    p.add_argument("--eval-dirs", nargs="+", required=True, metavar="DIR",
                   help="folders written by evaluate or baseline; the folder name is the model's")


def _perturbation(args: argparse.Namespace):
    from model.perturb import parse_perturbation

    return None if args.perturb is None else parse_perturbation(args.perturb)


def _run_train(args: argparse.Namespace) -> None:
    from model.train import train

    config = config_from_args(args)
    if args.reference == "subtract" and not args.pristine and not args.resume:
        raise DataError("--reference subtract needs --pristine PRISTINE.nc")
    state = train(args.data, args.labels, args.split, args.out_dir, config, pristine=args.pristine,
                  resume=args.resume, stop_after=args.stop_after, progress=not args.no_progress,
                  state_path=args.state)
    print(f"{args.out_dir}/checkpoint.pt: epoch {state['epoch']}, "
          f"finished={state['finished']}, params={state['params']}")


def _run_evaluate(args: argparse.Namespace) -> None:
    from model.evaluate import evaluate

    result = evaluate(args.data, args.labels, args.split, args.checkpoint, args.out_dir,
                      subset=args.subset, thresholds=args.size_thresholds,
                      batch_size=args.batch_size, device=args.device, workers=args.workers,
                      mask_threshold=args.mask_threshold, from_metrics=args.from_metrics,
                      perturbation=_perturbation(args),
                      allow_setup_change=args.allow_setup_change)
    summary = {k: result[k] for k in ("count", "IoU", "Purity", "Integrity", "pixel_IoU",
                                      "score_threshold") if k in result}
    if "detection" in result:  # a crack-set model
        summary.update({k: result["detection"][k] for k in (
            "AP50", "AP50_95", "count_accuracy", "count_accuracy_cracked", "false_alarm_rate",
            "endpoint_error_m")})
    print(json.dumps(summary))


def _run_baseline(args: argparse.Namespace) -> None:
    from model.baselines.run import run_baseline

    result = run_baseline(args.method, args.data, args.labels, args.split, args.pristine,
                          args.out_dir, subset=args.subset, search_subset=args.search_subset,
                          thresholds=args.size_thresholds,
                          grid=json_object(args.grid, "--grid"), name=args.name,
                          from_metrics=args.from_metrics, perturbation=_perturbation(args),
                          allow_setup_change=args.allow_setup_change)
    print(json.dumps({"hyperparameters": result["hyperparameters"],
                      **{k: result[k] for k in ("count", "IoU", "Purity", "Integrity", "pixel_IoU")}}))


def _run_predict(args: argparse.Namespace) -> None:
    from model.predict import csv_path, run_predict

    preds = run_predict(args.data, args.out, checkpoint=args.checkpoint, method=args.method,
                        pristine=args.pristine, from_metrics=args.from_metrics,
                        figures=args.figures, samples=args.samples, batch_size=args.batch_size,
                        device=args.device, workers=args.workers)
    print(f"wrote {args.out} and {csv_path(args.out)}: {preds.sizes['sample']} samples, "
          f"{int(preds['detected'].sum())} with a predicted box")


def _run_compare(args: argparse.Namespace) -> None:
    from model.compare import compare

    out = compare(args.eval_dirs, args.histories, args.out_dir)
    print(f"compared {len(args.eval_dirs)} models: {', '.join(map(str, out))}")


def _run_scenarios(args: argparse.Namespace) -> None:
    from model.scenarios import scenarios

    names = [name for name, *_ in args.scenario]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"--scenario {', '.join(repeated)} given twice (one per scenario)")
    out = scenarios({name: dirs for name, *dirs in args.scenario}, args.out_dir, args.reference)
    print(f"{len(names)} scenarios: {', '.join(map(str, out))}")


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an --out that is a folder or an --out-dir that is a file."""
    for name in ("out", "state"):
        if getattr(args, name, None):
            check_output_file(getattr(args, name))
    if getattr(args, "out_dir", None):
        check_output_dir(args.out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, raise_terminated)  # cleanup runs as on Ctrl-C
    try:
        _check_outputs(args)
        if args.command == "labels":
            from model.keypoints import write_labels
            write_labels(args.shard, args.out, args.box_rule)
        elif args.command == "split":
            split = make_split(load_labels(args.labels), args.fractions, args.seed)
            write_split(split, args.out)
            print(json.dumps({"n_samples": split["n_samples"], "counts": split["counts"]}))
        elif args.command == "train":
            _run_train(args)
        elif args.command == "evaluate":
            _run_evaluate(args)
        elif args.command == "baseline":
            _run_baseline(args)
        elif args.command == "predict":
            _run_predict(args)
        elif args.command == "robustness":
            from model.robustness import robustness
            paths = robustness(args.eval_dirs, args.out_dir)
            print(f"robustness of {len(args.eval_dirs)} evaluations: {', '.join(map(str, paths))}")
        elif args.command == "scenarios":
            _run_scenarios(args)
        else:
            _run_compare(args)
    except (DataError, ValueError) as err:
        print(f"python -m model {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"python -m model {args.command}: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # cleaned up: no redelivery
        why = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        print(f"python -m model {args.command}: {why}; unfinished output removed", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    return 0
