"""Peeling with exact geometry: what would peeling reach if the found cracks' end points were
exact? (docs/model.md, "Peeling the found cracks off with the solver").

    python bench/crackset_peeling.py --evaluation DIR --checkpoint CKPT --data SHARD ... \
        [--separation 2.0] [--first N]

`python -m crackpoint peel` peels what a user has, the detections (`detected`) or their end
points fitted to the record (`fitted`). This bench subtracts instead the true cracks that
the first pass found (greedy at IoU 0.5), each straight between its true end points (a
kinked crack is still drawn straight): the ceiling of peeling with straight cracks. The
rest is `crackpoint.peeling`'s: the second pass, the merge at `--separation` label cells,
the scoring of both passes by `model.detection`, paired over the plates (95 % bootstrap).
Prints one JSON line with the plates, the count accuracy by crack count of both passes and
the added detections, then one per metric (baseline: first pass, candidate: peeled).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from crackpoint.fitting import cracks_field  # noqa: E402
from crackpoint.peeling import decoded_cracks, first_pass, merge, second_pass  # noqa: E402
from dlem import dataset as dlem_dataset  # noqa: E402
from model.checkpoint import check_setup, load_checkpoint, model_from_checkpoint  # noqa: E402
from model.crack_labels import plate_size  # noqa: E402
from model.crackset_scoring import scale_sigmas  # noqa: E402
from model.data import ShardIndex  # noqa: E402
from model.detection import count_table, paired_differences, plate_matches  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evaluation", required=True, type=Path, metavar="DIR")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, nargs="+", help="the shards holding DIR's plates")
    p.add_argument("--separation", type=float, default=2.0, help="label cells (see above)")
    p.add_argument("--first", type=int, help="only the first N plates (a quick look)")
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    if args.first is not None and args.first < 1:
        p.error(f"--first must be at least 1, got {args.first}")
    ds, chosen = first_pass(args.evaluation)
    ds = ds.isel(sample=slice(args.first))
    threshold, ids = float(chosen["score_threshold"]), ds["sample"].values
    index = ShardIndex.build(args.data)
    state = load_checkpoint(args.checkpoint)
    check_setup(state, index.setup_hash, index.setup, f"shard {index.paths[0]}", args.checkpoint)
    plate = np.asarray(plate_size(index.paths[0]))
    true_box, true_ends = ds["true_box"].values, ds["true_ends"].values
    first = decoded_cracks(ds, plate)

    def matches(d: dict):
        return plate_matches(d["box"], d["score"], true_box, threshold, d["ends"] * plate,
                             true_ends)

    before = matches(first)
    setup = dlem_dataset.setup(json.loads(index.setup))
    pristine = cracks_field(setup, np.zeros((0, 2, 2)))
    fields = {int(ids[i]): (cracks_field(setup, true_ends[i][before.found50[i]]) - pristine)
              .astype(np.float32)
              for i in tqdm(np.flatnonzero(before.found50.any(axis=1)), desc="simulating",
                            file=sys.stderr)}
    model = model_from_checkpoint(state, source=args.checkpoint)
    grid, second = second_pass(model, state, index, ids, fields, args.batch_size)
    second = scale_sigmas(second, chosen["sigma_scale"])
    peeled, source = merge(first, second, threshold, args.separation, tuple(grid))
    after = matches(peeled)
    by_count = {name: {r["n_cracks"]: r["count_accuracy"] for r in count_table(m) if r["samples"]}
                for name, m in (("first", before), ("peeled", after))}
    print(json.dumps({"plates": len(ids), "subtract": "true", "plates_subtracted": len(fields),
                      "added": int((source == 2).sum()), "count_accuracy_by_cracks": by_count}))
    rows = paired_differences(before, after)
    for row in rows:
        print(json.dumps(row))
    return rows


if __name__ == "__main__":
    main()
