"""Write `snakemake.params.simulation` as YAML to `snakemake.output[0]`, atomically.

Called by the `simulation_config` rule: the solver reads this file with `--config`. The file
is written through the solver's own atomic writer (`dlem.files.atomic_file`).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the checkout's dlem)

import yaml  # noqa: E402

from dlem.files import atomic_file  # noqa: E402

with open(snakemake.log[0], "w") as log:  # noqa: F821 (injected by snakemake)
    sys.stderr = log
    out = Path(snakemake.output[0])  # noqa: F821
    with atomic_file(out) as tmp, open(tmp, "w") as fh:
        fh.write("# written by the simulation_config rule from config['simulation']\n")
        yaml.safe_dump(dict(snakemake.params.simulation), fh, sort_keys=False)  # noqa: F821
    print(f"wrote {out}", file=log)
