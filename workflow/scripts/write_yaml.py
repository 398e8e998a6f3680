"""Write `snakemake.params.simulation` as YAML to `snakemake.output[0]`, atomically.

Called by the `simulation_config` rule: the solver reads this file with `--config`.
"""
import os
import sys
from pathlib import Path

import yaml

with open(snakemake.log[0], "w") as log:  # noqa: F821 (injected by snakemake)
    sys.stderr = log
    out = Path(snakemake.output[0])  # noqa: F821
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write("# written by the simulation_config rule from config['simulation']\n")
        yaml.safe_dump(dict(snakemake.params.simulation), fh, sort_keys=False)  # noqa: F821
    os.replace(tmp, out)
    print(f"wrote {out}", file=log)
