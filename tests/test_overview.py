"""workflow/scripts/overview.py: the README's figure, drawn from the data contract alone and
outside pyplot (the caller's matplotlib backend is left as it was)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from conftest import write_contract_shard

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "workflow" / "scripts" / "overview.py"

CHECK = """
import importlib.util, sys
from pathlib import Path
import matplotlib
matplotlib.use("template")                 # a notebook's backend, say
import matplotlib.pyplot as plt
spec = importlib.util.spec_from_file_location("overview", {script!r})
overview = importlib.util.module_from_spec(spec)
spec.loader.exec_module(overview)
overview.overview([Path({shard!r})], {{"m": Path({pred!r})}}, Path({out!r}))
assert matplotlib.get_backend() == "template", matplotlib.get_backend()
assert plt.get_fignums() == [], plt.get_fignums()
"""


def test_draws_from_the_contract_only_and_keeps_the_backend(tmp_path):
    shard = tmp_path / "shard-0000.nc"
    write_contract_shard(shard, list(range(6)), np.random.default_rng(0))
    with netCDF4.Dataset(shard, "a") as nc:      # the solver's own attribute is no contract
        nc.setncattr("config", "{not JSON")
    rng = np.random.default_rng(1)
    box = np.sort(rng.uniform(0, 1, (6, 2, 2)), axis=1).transpose(0, 2, 1).reshape(6, 4)
    pred = tmp_path / "predictions.nc"
    xr.Dataset({"iou": ("sample", rng.uniform(0, 1, 6)),
                "pred_box": (("sample", "coord"), box),
                "true_box": (("sample", "coord"), box[::-1].copy())},
               coords={"sample": np.arange(6)}).to_netcdf(pred)
    out = tmp_path / "report" / "overview.png"
    code = CHECK.format(script=str(SCRIPT), shard=str(shard), pred=str(pred), out=str(out))
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "MPLBACKEND": ""}, timeout=300)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob(".*tmp*"))               # written through a temporary
