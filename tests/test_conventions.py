"""Package and workflow conventions: importing a package has no side effects on the caller's
matplotlib (figures are drawn outside pyplot), and the workflow files are snakefmt-formatted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import matplotlib
matplotlib.use("template")                 # a notebook's backend, say
import matplotlib.pyplot as plt
import numpy as np
import {modules}
from model.plots import plot_iou_vs_size
assert matplotlib.get_backend() == "template", matplotlib.get_backend()
plot_iou_vs_size(np.array([0.01, 0.02]), np.array([0.3, 0.6]),
                 [{{"threshold": 0.0, "IoU": 0.45}}], {out!r})
assert matplotlib.get_backend() == "template", matplotlib.get_backend()
assert plt.get_fignums() == [], plt.get_fignums()
print("ok")
"""


def test_importing_the_plotting_modules_keeps_the_matplotlib_backend(tmp_path):
    out = tmp_path / "iou.png"
    code = CHECK.format(modules="model.plots, model.compare, model.evaluate, dlem.plot",
                        out=str(out))
    env = {**os.environ, "MPLBACKEND": ""}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"            # drawn by Agg anyway
    assert not list(tmp_path.glob(".*tmp*"))                    # no temporary left


def test_no_module_sets_a_matplotlib_backend_at_import():
    offenders = [str(p.relative_to(ROOT)) for pkg in ("model", "dlem", "workflow/scripts")
                 for p in (ROOT / pkg).rglob("*.py") if "matplotlib.use(" in p.read_text()]
    assert not offenders


def test_workflow_files_are_snakefmt_formatted():
    """`snakefmt --check` (line length from pyproject's [tool.snakefmt])."""
    pytest.importorskip("snakefmt")
    files = ["Snakefile", *sorted(str(p.relative_to(ROOT))
                                  for p in (ROOT / "workflow" / "rules").glob("*.smk"))]
    run = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *files], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"run `snakefmt {' '.join(files)}`:\n{run.stderr}"
