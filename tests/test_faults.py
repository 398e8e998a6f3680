"""Fault injection: every expected failure of `python -m dlem` and `python -m model` ends in
one line on stderr naming the problem and the path, exit status 2, and leaves no temporary
file or partial output behind.

Faults: non-finite numbers (config, shards, labels, training loss, baseline grid), corrupt,
truncated and unfinished files, OS faults (permission denied, a folder where a file goes, a
file where a folder goes, a full disk, a read-only file system), SIGTERM and SIGKILL, a
corrupt training cache and a checkpoint whose weights do not fit its architecture. A full
disk and a read-only file system are real tmpfs mounts where this process may mount them
(root), and skipped with the reason elsewhere; the same faults are also raised by a
monkeypatch, which runs everywhere.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from dlem import config as config_mod
from dlem import dataset
from dlem.cli import main as dlem_main
from model.cli import main as model_main
from model.io import SHARD_VARIABLES, DataError, open_checked
from test_dlem_dataset import TINY
from test_workers import children

TINY_SIM = {**TINY,  # test_dlem_dataset's 24-node-wide plate, 120 records; one segment crack
            "cracks": {"count": {"min": 1, "max": 1},
                       "families": [{"geometry": "segment", "length": [0.004, 0.01]}]}}
TINY_NET = {"filters": [4, 8, 8, 8], "time_conv_channels": 8, "grid_conv_channels": [8, 8],
            "dense_units": [8], "dropout": 0.0}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

pytestmark = pytest.mark.usefixtures("contract_single_thread")


# ------------------------------------------------------------------ helpers

def one_line_error(stderr: str, *needles: str) -> str:
    """The single stderr line (no traceback) after checking it holds every needle."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary files (`.NAME.tmp-PID`) anywhere below `folder`."""
    return sorted(str(p) for p in folder.rglob(".*.tmp-*"))


def write_config(folder: Path, cfg: dict) -> Path:
    path = folder / "sim.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(module: str, *args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                          text=True, env=ENV, **kwargs)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll until `predicate()` holds; fail if `proc` ends first or it takes too long."""
    start = time.monotonic()
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def shard(tmp_path_factory) -> Path:
    """A finished four-sample dlem shard of TINY_SIM."""
    out = tmp_path_factory.mktemp("dlem") / "shard.nc"
    dataset.write_shard(config_mod.validate(copy.deepcopy(TINY_SIM)), out, 0, 4, progress=False)
    return out


def copy_with(src: Path, dst: Path, edit) -> Path:
    """Copy `src` to `dst` and let `edit(netCDF4.Dataset)` change the copy in place."""
    shutil.copy(src, dst)
    with netCDF4.Dataset(dst, "a") as nc:
        edit(nc)
    return dst


def corrupt_middle(src: Path, dst: Path) -> Path:
    """`src` with 2000 random bytes written over its middle: it opens, its data do not read."""
    data = bytearray(src.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2000] = np.random.default_rng(0).integers(0, 256, 2000, np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def set_nan(variable: str, position: int):
    def edit(nc):
        values = nc[variable][position]
        nc[variable][position] = np.full(np.shape(values), np.nan)
    return edit


@pytest.fixture
def mount_tmpfs(tmp_path):
    """`mount(options)` -> a fresh tmpfs folder (e.g. "size=64k", "ro"); skip the test with
    the reason when this process may not mount (not root, or in a container without it)."""
    mounted = []

    def mount(options: str) -> Path:
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs to simulate the fault: {res.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        # lazily: a netCDF handle whose close failed on the full disk may still hold it
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Fill the file system of `folder` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC


def model_data_args(contract_data, shards=None, labels=None, split=None) -> list[str]:
    return ["--data", *map(str, shards or contract_data["shards"]),
            "--labels", *map(str, labels or contract_data["labels"]),
            "--split", str(split or contract_data["split"])]


# ------------------------------------------------------------------ dlem: config

@pytest.mark.parametrize("key,value", [
    (("plate", "width"), ".nan"), (("time", "duration"), ".inf"),
    (("sources", 0, "amplitude"), ".nan"), (("plate", "density"), "-.inf"),
])
def test_non_finite_config_values_are_refused_naming_the_key(tmp_path, capsys, key, value):
    cfg = copy.deepcopy(TINY_SIM)
    node = cfg
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = "PLACEHOLDER"
    text = yaml.safe_dump(cfg).replace("PLACEHOLDER", value)
    (tmp_path / "sim.yaml").write_text(text)
    out = tmp_path / "s.nc"
    assert dlem_main(["simulate", "--config", str(tmp_path / "sim.yaml"), "--out", str(out)]) == 2
    dotted = ".".join(str(k) for k in key).replace(".0.", "[0].")
    one_line_error(capsys.readouterr().err, dotted, "finite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.yaml"]


def test_an_unknown_key_is_refused_in_one_line(tmp_path, capsys):
    cfg = copy.deepcopy(TINY_SIM)
    cfg["plate"]["widht"] = 0.04
    code = dlem_main(["simulate", "--config", str(write_config(tmp_path, cfg)),
                      "--out", str(tmp_path / "s.nc")])
    assert code == 2
    one_line_error(capsys.readouterr().err, "widht")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.yaml"]


def test_a_time_step_above_the_stable_limit_is_refused(tmp_path, capsys):
    cfg = copy.deepcopy(TINY_SIM)
    cfg["time"]["dt"] = 1e-6
    code = dlem_main(["simulate", "--config", str(write_config(tmp_path, cfg)),
                      "--out", str(tmp_path / "s.nc")])
    assert code == 2
    one_line_error(capsys.readouterr().err, "exceeds the stable limit", "time.dt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.yaml"]


# ------------------------------------------------------------------ dlem: readers

def test_inspect_names_a_non_finite_wavefield_sample(shard, tmp_path, capsys):
    bad = copy_with(shard, tmp_path / "nan.nc", set_nan("wavefield", 2))
    assert dlem_main(["inspect", str(bad)]) == 2
    one_line_error(capsys.readouterr().err, str(bad), "wavefield of sample 2", "non-finite")


def test_inspect_names_a_non_finite_crack_size(shard, tmp_path, capsys):
    bad = copy_with(shard, tmp_path / "nan.nc", set_nan("crack_size", 1))
    assert dlem_main(["inspect", str(bad)]) == 2
    one_line_error(capsys.readouterr().err, str(bad), "crack_size", "non-finite")


def test_inspect_names_a_shard_corrupted_mid_file(shard, tmp_path, capsys):
    bad = corrupt_middle(shard, tmp_path / "corrupt.nc")
    assert dlem_main(["inspect", str(bad)]) == 2
    one_line_error(capsys.readouterr().err, str(bad), "cannot read wavefield of sample",
                   "corrupt")


def test_inspect_names_a_truncated_shard(shard, tmp_path, capsys):
    bad = tmp_path / "truncated.nc"
    bad.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert dlem_main(["inspect", str(bad)]) == 2
    one_line_error(capsys.readouterr().err, str(bad), "not a readable NetCDF")


def test_a_shard_without_the_complete_attribute_is_refused_as_unfinished(shard, tmp_path,
                                                                         capsys):
    bad = copy_with(shard, tmp_path / "unfinished.nc", lambda nc: nc.delncattr("complete"))
    assert dlem_main(["inspect", str(bad)]) == 2
    one_line_error(capsys.readouterr().err, str(bad), "unfinished")
    with pytest.raises(DataError, match="unfinished"):
        open_checked(bad, SHARD_VARIABLES, "shard")
    assert model_main(["labels", str(bad), "--out", str(tmp_path / "labels.nc")]) == 2
    one_line_error(capsys.readouterr().err, str(bad), "unfinished")
    assert not (tmp_path / "labels.nc").exists()


def test_a_finished_shard_says_it_is_complete(shard):
    with xr.open_dataset(shard) as ds:
        assert ds.attrs["complete"] == 1


# ------------------------------------------------------------------ dlem: OS faults

def test_simulate_to_a_folder_is_refused_before_simulating(tmp_path, capsys):
    cfg, out = write_config(tmp_path, TINY_SIM), tmp_path / "out.nc"
    out.mkdir()
    assert dlem_main(["simulate", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
    one_line_error(capsys.readouterr().err, str(out), "is a directory")
    assert list(out.iterdir()) == [] and leftovers(tmp_path) == []


def test_simulate_below_a_file_is_refused(tmp_path, capsys):
    cfg, blocker = write_config(tmp_path, TINY_SIM), tmp_path / "file"
    blocker.write_text("not a folder")
    out = blocker / "sub" / "s.nc"
    assert dlem_main(["simulate", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
    one_line_error(capsys.readouterr().err, str(out), "not a directory")
    assert leftovers(tmp_path) == []


def test_simulate_without_write_permission_names_the_shard(tmp_path, capsys, monkeypatch):
    cfg, out = write_config(tmp_path, TINY_SIM), tmp_path / "s.nc"

    def denied(self, path, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", denied)
    assert dlem_main(["simulate", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
    one_line_error(capsys.readouterr().err, str(out), "Permission denied")
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions (the "
                    "monkeypatched test above covers the message)")
def test_simulate_into_a_read_only_folder_names_it(tmp_path):
    cfg, folder = write_config(tmp_path, TINY_SIM), tmp_path / "locked"
    folder.mkdir(mode=0o500)
    res = run("dlem", "simulate", "--config", cfg, "--out", folder / "s.nc", "--quiet")
    assert res.returncode == 2
    one_line_error(res.stderr, str(folder / "s.nc"), "Permission denied")


def test_simulate_on_a_full_disk_says_so(tmp_path, capsys, mount_tmpfs):
    small = mount_tmpfs("size=64k")
    out = small / "s.nc"
    code = dlem_main(["simulate", "--config", str(write_config(tmp_path, TINY_SIM)),
                      "--out", str(out), "--samples", "0:8", "--quiet"])
    assert code == 2
    one_line_error(capsys.readouterr().err, str(out), "no space left on device")
    assert list(small.iterdir()) == []


def test_a_netcdf_error_with_no_space_left_is_reported_as_a_full_disk(tmp_path, capsys,
                                                                      monkeypatch):
    """netCDF-C reports ENOSPC as "NetCDF: HDF error"; the free space tells them apart."""
    from dlem import files

    def hdf_error(self, path, *args, **kwargs):
        Path(path).write_bytes(b"\x89HDF\r\n\x1a\n")      # a partial file, then the failure
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", hdf_error)
    monkeypatch.setattr(files, "free_bytes", lambda folder: 0)
    out = tmp_path / "s.nc"
    code = dlem_main(["simulate", "--config", str(write_config(tmp_path, TINY_SIM)),
                      "--out", str(out), "--quiet"])
    assert code == 2
    one_line_error(capsys.readouterr().err, str(out), "no space left on device",
                   "NetCDF: HDF error")
    assert not out.exists() and leftovers(tmp_path) == []


def test_simulate_on_a_read_only_file_system_names_it(tmp_path, capsys, mount_tmpfs):
    ro = mount_tmpfs("ro,size=64k")
    code = dlem_main(["simulate", "--config", str(write_config(tmp_path, TINY_SIM)),
                      "--out", str(ro / "s.nc"), "--quiet"])
    assert code == 2
    one_line_error(capsys.readouterr().err, str(ro / "s.nc"), "Read-only file system")


# ------------------------------------------------------------------ dlem: signals

def simulating_with_two_workers(tmp_path: Path) -> subprocess.Popen:
    """`dlem simulate --workers 2` of many samples, 0.5 s after its temporary file appeared
    (workers running, samples arriving)."""
    cfg, out = write_config(tmp_path, TINY_SIM), tmp_path / "s.nc"
    proc = subprocess.Popen([sys.executable, "-m", "dlem", "simulate", "--config", str(cfg),
                             "--out", str(out), "--samples", "0:20000", "--workers", "2",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    wait_for(lambda: leftovers(tmp_path), proc)
    time.sleep(0.5)
    return proc


def test_sigterm_with_two_workers_removes_the_temporary_file_quietly(tmp_path):
    proc = simulating_with_two_workers(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)  # a hang still fails; a loaded CI machine is slow
    assert proc.returncode == 128 + signal.SIGTERM
    one_line_error(stderr, "terminated (SIGTERM)")
    assert "BrokenPipe" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.yaml"]


def test_a_killed_worker_ends_simulate_with_one_line_and_no_file(tmp_path):
    """A worker killed from outside (as by the out-of-memory killer) is an error naming it,
    not a wait for a sample that never comes."""
    proc = simulating_with_two_workers(tmp_path)
    workers = sorted(children(proc.pid))
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    one_line_error(stderr, f"worker process {workers[0]} ended (exit code -9")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.yaml"]


INTERRUPTED_NETCDF = """
import faulthandler, os, random, signal, sys, threading
import numpy as np, xarray as xr
from xarray.backends import locks
faulthandler.dump_traceback_later(60, exit=True)         # a deadlock fails, with its stack
from crackpoint import stopping
stopping.REDELIVER_S = 1e9                               # each signal once, when the timer says
signal.signal(signal.SIGTERM, stopping.raise_terminated)
ds = xr.Dataset({f"v{i}": (("a", "b"), np.random.rand(20, 30)) for i in range(8)})
path = os.path.join(sys.argv[1], "f.nc")
random.seed(0)
for _ in range(100):
    timer = threading.Timer(random.uniform(0, 0.03), os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        while True:
            ds.to_netcdf(path, engine="netcdf4")
            with xr.open_dataset(path, engine="netcdf4") as back:
                back.load()
    except stopping.Terminated:
        timer.join()
    for lock in (locks.HDF5_LOCK, locks.NETCDFC_LOCK):
        assert lock.acquire(blocking=False), "a lock was left held"
        lock.release()
print("ok")
"""


def test_sigterm_at_any_moment_of_netcdf_io_leaves_no_lock_held(tmp_path):
    """SIGTERM 100 times at random moments of xarray writes and reads: each ends the I/O
    with `Terminated` and leaves xarray's locks free. (Raised inside xarray, between the
    locks of its CombinedLock, it left one held, and the clean-up waited for it forever:
    the hang of a `dlem simulate` stopped while writing a shard's header.) Both CLIs install
    this handler."""
    res = subprocess.run([sys.executable, "-c", INTERRUPTED_NETCDF, str(tmp_path)],
                         capture_output=True, text=True, timeout=120, env=ENV)
    assert res.returncode == 0 and res.stdout == "ok\n", res.stderr[-3000:]


def test_a_sigkill_leftover_is_unfinished_and_the_rerun_replaces_it(tmp_path, shard):
    """SIGKILL leaves the temporary file; readers refuse it; the next simulate to the same
    --out removes it and writes the same bits as an uninterrupted run (resume by rerun)."""
    cfg, out = write_config(tmp_path, TINY_SIM), tmp_path / "shard.nc"
    proc = subprocess.Popen([sys.executable, "-m", "dlem", "simulate", "--config", str(cfg),
                             "--out", str(out), "--samples", "0:20000", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    wait_for(lambda: leftovers(tmp_path), proc)
    time.sleep(0.5)
    proc.kill()
    proc.communicate(timeout=60)
    (tmp,) = map(Path, leftovers(tmp_path))
    assert tmp.name == f".shard.nc.tmp-{proc.pid}" and not out.exists()
    res = run("dlem", "inspect", tmp)
    assert res.returncode == 2
    line = one_line_error(res.stderr, str(tmp))
    assert "unfinished" in line or "not a readable NetCDF" in line
    with pytest.raises(DataError, match="unfinished|not a readable NetCDF"):
        open_checked(tmp, SHARD_VARIABLES, "shard")
    res = run("dlem", "simulate", "--config", cfg, "--out", out, "--samples", "0:4", "--quiet")
    assert res.returncode == 0, res.stderr
    assert leftovers(tmp_path) == []
    with xr.open_dataset(out) as rerun, xr.open_dataset(shard) as straight:
        assert rerun["wavefield"].values.tobytes() == straight["wavefield"].values.tobytes()


def test_a_live_writers_temporary_file_is_left_alone(tmp_path):
    from dlem.files import remove_stale_temporaries

    live = tmp_path / f".s.nc.tmp-{os.getpid()}"
    dead = tmp_path / ".s.nc.tmp-999999999"                  # above any pid_max
    other = tmp_path / ".t.nc.tmp-999999999"
    for path in (live, dead, other):
        path.write_bytes(b"")
    assert remove_stale_temporaries(tmp_path / "s.nc") == [dead]
    assert live.exists() and other.exists() and not dead.exists()


# ------------------------------------------------------------------ model: readers

def test_model_labels_names_a_non_finite_crack_size(contract_data, tmp_path, capsys):
    bad = copy_with(contract_data["shards"][0], tmp_path / "nan.nc", set_nan("crack_size", 3))
    assert model_main(["labels", str(bad), "--out", str(tmp_path / "l.nc")]) == 2
    one_line_error(capsys.readouterr().err, str(bad), "crack_size", "sample(s) [3]", "non-finite")
    assert not (tmp_path / "l.nc").exists() and leftovers(tmp_path) == []


def test_training_statistics_name_a_non_finite_training_sample(contract_data, tmp_path, capsys):
    split = json.loads(contract_data["split"].read_text())
    victim = split["train"][1]
    shard_no = victim // 10                                    # shards hold 0..9 and 10..19
    shards = list(contract_data["shards"])
    shards[shard_no] = copy_with(shards[shard_no], tmp_path / f"nan-{shard_no}.nc",
                                 set_nan("wavefield", victim % 10))
    code = model_main(["train", *model_data_args(contract_data, shards=shards),
                       "--arch-kwargs", json.dumps(TINY_NET), "--epochs", "1",
                       "--out-dir", str(tmp_path / "m"), "--no-progress"])
    assert code == 2
    one_line_error(capsys.readouterr().err, str(shards[shard_no]), f"[{victim}]", "NaN or inf")
    assert not (tmp_path / "m" / "checkpoint.pt").exists() and leftovers(tmp_path) == []


def test_a_dataset_item_names_its_non_finite_sample(contract_data, tmp_path):
    from model.data import ShardIndex, WavefieldDataset, load_labels

    shards = [copy_with(contract_data["shards"][0], tmp_path / "nan.nc", set_nan("wavefield", 4)),
              contract_data["shards"][1]]
    items = WavefieldDataset(ShardIndex.build(shards), np.array([3, 4]),
                             load_labels(contract_data["labels"]),
                             {"mean": [0.0, 0.0], "std": [1.0, 1.0]})
    assert torch.isfinite(items[0][0]).all()
    with pytest.raises(DataError, match=r"nan.nc: wavefield of sample\(s\) \[4\] holds"):
        items[1]
    items.close()


def test_labels_with_a_non_finite_box_are_refused(contract_data, tmp_path, capsys):
    bad = copy_with(contract_data["labels"][1], tmp_path / "labels.nc", set_nan("box", 2))
    code = model_main(["split", "--labels", str(contract_data["labels"][0]), str(bad),
                       "--out", str(tmp_path / "split.json")])
    assert code == 2
    one_line_error(capsys.readouterr().err, str(bad), "box", "[12]")
    assert list(p.name for p in tmp_path.iterdir()) == ["labels.nc"]


def test_training_names_a_shard_corrupted_mid_file(contract_data, tmp_path, capsys):
    shards = [corrupt_middle(contract_data["shards"][0], tmp_path / "corrupt.nc"),
              contract_data["shards"][1]]
    code = model_main(["train", *model_data_args(contract_data, shards=shards),
                       "--arch-kwargs", json.dumps(TINY_NET), "--epochs", "1",
                       "--out-dir", str(tmp_path / "m"), "--no-progress"])
    assert code == 2
    one_line_error(capsys.readouterr().err, "corrupt.nc", "cannot read", "HDF error")
    assert not (tmp_path / "m" / "checkpoint.pt").exists()


def test_a_diverging_training_loss_stops_the_run_naming_epoch_and_batch(contract_data, tmp_path,
                                                                       capsys):
    code = model_main(["train", *model_data_args(contract_data), "--arch-kwargs",
                       json.dumps(TINY_NET), "--epochs", "3", "--batch-size", "2",
                       "--lr", "1e30", "--out-dir", str(tmp_path / "m"), "--no-progress"])
    assert code == 2
    line = one_line_error(capsys.readouterr().err, "epoch 1/3, batch", "training loss is")
    assert "nan" in line or "inf" in line
    assert not (tmp_path / "m" / "checkpoint.pt").exists() and leftovers(tmp_path) == []


def test_baseline_names_a_non_finite_wavefield(contract_data, tmp_path, capsys):
    split = json.loads(contract_data["split"].read_text())
    victim = [i for i in split["val"] if i not in split["no_crack"]][0]
    shards = list(contract_data["shards"])
    shards[victim // 10] = copy_with(shards[victim // 10], tmp_path / "nan.nc",
                                     set_nan("wavefield", victim % 10))
    code = model_main(["baseline", "das", *model_data_args(contract_data, shards=shards),
                       "--pristine", str(contract_data["pristine"]),
                       "--grid", '{"t_max": [4e-5], "alpha": [0.5]}',
                       "--out-dir", str(tmp_path / "e")])
    assert code == 2
    one_line_error(capsys.readouterr().err, "nan.nc", f"[{victim}]", "non-finite")
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("grid,needle", [('{"speed": ["x"]}', "'speed'"),
                                         ('{"alpha": [NaN]}', "'alpha'"),
                                         ('{"t_max": []}', "non-empty")])
def test_baseline_grid_values_out_of_range_are_refused(contract_data, tmp_path, capsys, grid,
                                                       needle):
    code = model_main(["baseline", "das", *model_data_args(contract_data),
                       "--pristine", str(contract_data["pristine"]), "--grid", grid,
                       "--out-dir", str(tmp_path / "e")])
    assert code == 2
    one_line_error(capsys.readouterr().err, "--grid", needle)
    assert not (tmp_path / "e").exists()


# ------------------------------------------------------------------ model: checkpoints

@pytest.fixture(scope="module")
def meanbox_checkpoint(contract_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("meanbox")
    assert model_main(["train", *model_data_args(contract_data), "--arch", "meanbox",
                       "--out-dir", str(out), "--no-progress"]) == 0
    return out / "checkpoint.pt"


def test_evaluate_names_a_checkpoint_whose_weights_do_not_fit_its_architecture(
        contract_data, meanbox_checkpoint, tmp_path, capsys):
    state = torch.load(meanbox_checkpoint, weights_only=True)
    state.update(arch="microcrackpointnet", hyperparameters=TINY_NET)
    bad = tmp_path / "mixed.pt"
    torch.save(state, bad)
    code = model_main(["evaluate", *model_data_args(contract_data), "--checkpoint", str(bad),
                       "--out-dir", str(tmp_path / "e")])
    assert code == 2
    one_line_error(capsys.readouterr().err, str(bad), "do not fit", "missing")
    assert not (tmp_path / "e").exists()


def test_a_corrupt_training_state_warns_and_trains_from_scratch(contract_data, tmp_path):
    out, cache = tmp_path / "m", tmp_path / "m" / "training-state.pt"
    out.mkdir()
    cache.write_bytes(b"half a pickle")
    res = run("model", "train", *model_data_args(contract_data), "--arch", "meanbox",
              "--out-dir", out, "--state", cache, "--no-progress")
    assert res.returncode == 0, res.stderr
    line = one_line_error(res.stderr, str(cache), "training from scratch")
    assert line.startswith("warning:")
    assert (out / "checkpoint.pt").exists()


# ------------------------------------------------------------------ model: OS faults

def test_model_labels_to_a_folder_is_refused(contract_data, tmp_path, capsys):
    (tmp_path / "out.nc").mkdir()
    assert model_main(["labels", str(contract_data["shards"][0]),
                       "--out", str(tmp_path / "out.nc")]) == 2
    one_line_error(capsys.readouterr().err, str(tmp_path / "out.nc"), "is a directory")
    assert list((tmp_path / "out.nc").iterdir()) == [] and leftovers(tmp_path) == []


def test_model_train_into_a_file_is_refused(contract_data, tmp_path, capsys):
    (tmp_path / "m").write_text("a file")
    code = model_main(["train", *model_data_args(contract_data), "--arch", "meanbox",
                       "--out-dir", str(tmp_path / "m" / "run"), "--no-progress"])
    assert code == 2
    one_line_error(capsys.readouterr().err, str(tmp_path / "m"), "not a directory")
    assert (tmp_path / "m").read_text() == "a file"


def test_model_labels_without_write_permission_names_the_file(contract_data, tmp_path, capsys,
                                                              monkeypatch):
    def denied(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(src), str(dst))

    monkeypatch.setattr(os, "replace", denied)
    out = tmp_path / "labels.nc"
    assert model_main(["labels", str(contract_data["shards"][0]), "--out", str(out)]) == 2
    one_line_error(capsys.readouterr().err, str(out), "Permission denied")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["labels", "train"])
def test_model_on_a_full_disk_says_so(contract_data, tmp_path, capsys, mount_tmpfs, command):
    small = mount_tmpfs("size=64k")
    fill(small)
    if command == "labels":
        out = small / "labels.nc"
        args = ["labels", str(contract_data["shards"][0]), "--out", str(out)]
    else:
        out = small / "m"
        args = ["train", *model_data_args(contract_data), "--arch", "meanbox",
                "--out-dir", str(out), "--no-progress"]
    assert model_main(args) == 2
    one_line_error(capsys.readouterr().err, str(out), "o space left on device")
    assert leftovers(small) == [] and sorted(p.name for p in small.rglob("*") if p.is_file()) \
        == ["filler"]


def test_model_on_a_read_only_file_system_names_it(contract_data, tmp_path, capsys,
                                                   mount_tmpfs):
    ro = mount_tmpfs("ro,size=64k")
    assert model_main(["labels", str(contract_data["shards"][0]),
                       "--out", str(ro / "labels.nc")]) == 2
    one_line_error(capsys.readouterr().err, str(ro / "labels.nc"), "Read-only file system")


def test_model_sigterm_removes_the_temporary_files(contract_data, tmp_path):
    out = tmp_path / "m"
    proc = subprocess.Popen([sys.executable, "-m", "model", "train",
                             *model_data_args(contract_data), "--arch-kwargs",
                             json.dumps(TINY_NET), "--epochs", "1000", "--patience", "1000",
                             "--out-dir", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    wait_for(lambda: (out / "history.csv").exists(), proc, timeout=300)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in stderr and "terminated (SIGTERM)" in stderr.strip().splitlines()[-1]
    assert leftovers(tmp_path) == []
