#!/usr/bin/env python3
"""A throwaway single-node SLURM on this machine, to run the SLURM profile against a real
scheduler (tests/test_slurm.py, bench/scale.py, or by hand).

    python3 workflow/scripts/slurm_local.py up       # install if missing, start, wait until idle
    python3 workflow/scripts/slurm_local.py status   # what runs, what `up` created
    python3 workflow/scripts/slurm_local.py env      # `export SLURM_CONF=...` for client commands
    python3 workflow/scripts/slurm_local.py down     # stop the daemons `up` started, remove its files

`up` needs root and Debian/Ubuntu: it runs `apt-get install -y slurm-wlm munge` when a daemon
is missing, creates a munge key when there is none, starts its own `munged` (as the munge
user, on a socket of its own under /run), writes `slurm.conf` into the state directory (one
node = this machine, one default partition `local`, the first free pair of ports from 6817,
no accounting database, no cgroups), links it to /etc/slurm/slurm.conf when that file does
not exist, starts `slurmctld` and `slurmd` in the foreground of their own sessions, and waits
until `sinfo` shows the node idle. The PIDs and every path it created go to
`<state dir>/state.json`. Clusters of different state directories are independent (own
ports, own munged), so two test sessions on one machine do not collide.

`down` cancels the jobs left on this cluster, stops exactly the recorded PIDs (SIGTERM, then
SIGKILL after 10 s; a PID whose command line is no longer the daemon is left alone) and
removes the recorded paths. Installed packages stay (`down --purge-packages` removes them
when `up` installed them).

Both are idempotent: `up` on a running cluster reports it and does nothing, `down` with no
state does nothing. When SLURM cannot run here, `up` exits with status 1 and one line on
stderr starting with `slurm_local: cannot run SLURM:` that says why (and stops whatever it
had started). Standard library only, so the system python3 runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

DEFAULT_STATE_DIR = Path(os.environ.get("CRACKPOINT_SLURM_DIR", "/tmp/crackpoint-slurm"))
PARTITION = "local"
FIRST_PORT = 6817     # slurmctld, slurmd on the next port; +2 until both are free
PACKAGES = ("slurm-wlm", "munge")
DAEMONS = ("munged", "slurmctld", "slurmd")
ETC_CONF = Path("/etc/slurm/slurm.conf")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run")  # munged's socket dir: /run/crackpoint-munge-<hash of the state dir>
IDLE_TIMEOUT = 90  # s for the node to register and show idle
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


class CannotRun(RuntimeError):
    """SLURM cannot run on this machine; the message says why."""


def log(message: str) -> None:
    print(f"slurm_local: {message}", flush=True)


def which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def run(cmd: list[str], env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, timeout=timeout)


# ---------------------------------------------------------------- state
class State:
    """What `up` started and created, kept in `<dir>/state.json`."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.file = directory / "state.json"
        self.data = {"pids": {}, "created": [], "installed": [], "conf": str(directory / "slurm.conf"),
                     "partition": PARTITION}
        if self.file.is_file():
            self.data.update(json.loads(self.file.read_text()))

    @property
    def conf(self) -> Path:
        return Path(self.data["conf"])

    def env(self) -> dict:
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def created(self, path: Path) -> None:
        self.data["created"].append(str(path))
        self.save()

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        tmp.replace(self.file)


def pid_is(pid: int, name: str) -> bool:
    """True when `pid` is alive (not a zombie) and is the program `name` (guards against reuse)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and comm == name[:15]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------- up
def ensure_installed(state: State) -> None:
    missing = [d for d in DAEMONS if which(d) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise CannotRun(f"{', '.join(missing)} not installed and not root (cannot apt-get install)")
    if which("apt-get") is None:
        raise CannotRun(f"{', '.join(missing)} not installed and no apt-get on this machine")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    log(f"installing {' '.join(PACKAGES)} (missing: {', '.join(missing)}) ...")
    result = run(cmd, env=env, timeout=900)
    if result.returncode != 0:
        log("apt-get install failed; running apt-get update and retrying")
        update = run(["apt-get", "update"], env=env, timeout=600)
        result = run(cmd, env=env, timeout=900)
        if result.returncode != 0:
            tail = (update.stdout + result.stdout).strip().splitlines()[-3:]
            raise CannotRun(f"apt-get install {' '.join(PACKAGES)} failed (no network or "
                            f"repository?): {' | '.join(tail)}")
    state.data["installed"] = list(PACKAGES)
    state.save()
    still = [d for d in DAEMONS if which(d) is None]
    if still:
        raise CannotRun(f"{', '.join(still)} still missing after apt-get install")


def munge_works(sock: Path) -> bool:
    if which("munge") is None or which("unmunge") is None:
        return False
    try:
        cred = run([which("munge"), "-n", "-S", str(sock)], timeout=5)
        if cred.returncode != 0:
            return False
        check = subprocess.run([which("unmunge"), "-S", str(sock)], input=cred.stdout, text=True,
                               capture_output=True, timeout=5)
        return check.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def start(state: State, name: str, cmd: list[str], **popen) -> subprocess.Popen:
    out = open(state.dir / "log" / f"{name}.out", "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True, **popen)
    out.close()
    state.data["pids"][name] = proc.pid
    state.save()
    log(f"started {name} (PID {proc.pid})")
    return proc


def start_munge(state: State) -> None:
    try:
        munge = pwd.getpwnam("munge")
    except KeyError:
        raise CannotRun("no `munge` user (is the munge package installed?)") from None
    if not MUNGE_KEY.is_file():
        MUNGE_KEY.parent.mkdir(mode=0o700, exist_ok=True)
        os.chown(MUNGE_KEY.parent, munge.pw_uid, munge.pw_gid)
        MUNGE_KEY.write_bytes(os.urandom(1024))
        state.created(MUNGE_KEY)
        log(f"created {MUNGE_KEY}")
    os.chown(MUNGE_KEY, munge.pw_uid, munge.pw_gid)
    os.chmod(MUNGE_KEY, 0o400)
    rundir = MUNGE_RUN / f"crackpoint-munge-{zlib.crc32(str(state.dir).encode()):08x}"
    if not rundir.is_dir():
        rundir.mkdir(mode=0o755, parents=True)
        state.created(rundir)
    os.chown(rundir, munge.pw_uid, munge.pw_gid)
    sock = rundir / "munge.socket.2"
    state.data["munge_socket"] = str(sock)
    proc = start(state, "munged", [which("munged"), "--foreground", "--force", f"--socket={sock}",
                                  f"--pid-file={rundir}/munged.pid",
                                  f"--seed-file={rundir}/munged.seed",
                                  f"--log-file={rundir}/munged.log"],
                user=munge.pw_uid, group=munge.pw_gid, extra_groups=[])
    for _ in range(50):
        if munge_works(sock):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise CannotRun(f"munged did not start: {tail(state.dir / 'log' / 'munged.out')}")


def node_line() -> str:
    """`NodeName=... CPUs=... RealMemory=...` of this machine as `slurmd -C` sees it."""
    result = run([which("slurmd"), "-C"], timeout=30)
    line = next((l for l in result.stdout.splitlines() if l.startswith("NodeName=")), None)
    if result.returncode != 0 or line is None:
        raise CannotRun(f"`slurmd -C` failed: {result.stdout.strip()[-300:]}")
    fields = dict(f.split("=", 1) for f in line.split())
    fields["NodeAddr"] = "127.0.0.1"
    fields["State"] = "UNKNOWN"
    return " ".join(f"{k}={v}" for k, v in fields.items())


def write_conf(state: State) -> None:
    d = state.dir
    for sub in ("log", "ctld", "spool"):
        (d / sub).mkdir(exist_ok=True)
    host = socket.gethostname().split(".")[0]
    node = node_line()
    state.data["node"] = node.split()[0].split("=", 1)[1]
    state.conf.write_text(f"""\
# Written by workflow/scripts/slurm_local.py up: a throwaway single-node cluster.
ClusterName=crackpoint-local
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmctldPort={state.data["ports"][0]}
SlurmdPort={state.data["ports"][1]}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={state.data["munge_socket"]}
StateSaveLocation={d}/ctld
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
ReturnToService=2
# finished jobs stay visible to `squeue` for 10 min: snakemake's `--slurm-status-command squeue`
MinJobAge=600
InactiveLimit=0
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=60
{node}
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    if not ETC_CONF.exists() and not ETC_CONF.is_symlink():
        if not ETC_CONF.parent.is_dir():
            ETC_CONF.parent.mkdir(parents=True)
            state.created(ETC_CONF.parent)
        ETC_CONF.symlink_to(state.conf)
        state.created(ETC_CONF)
        log(f"linked {ETC_CONF} -> {state.conf}")
    else:
        log(f"{ETC_CONF} exists: client commands need `export SLURM_CONF={state.conf}`")


def node_state(state: State) -> str:
    try:
        result = run([which("sinfo"), "-h", "-N", "-o", "%t"], env=state.env(), timeout=10)
    except subprocess.TimeoutExpired:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"(no {path})"
    return " | ".join(text[-lines:]) or f"({path} is empty)"


def is_up(state: State) -> bool:
    pids = state.data["pids"]
    return (all(pid_is(pids.get(n, -1), n) for n in ("slurmctld", "slurmd"))
            and node_state(state).rstrip("*") in ("idle", "mix", "alloc"))


def up(state: State) -> None:
    if state.file.is_file():
        if is_up(state):
            log(f"already up: node {state.data.get('node')} {node_state(state)}, "
                f"partition {PARTITION}, SLURM_CONF={state.conf}")
            return
        log("a previous cluster is half up: taking it down first")
        down(state)
        state = State(state.dir)
    if os.geteuid() != 0:
        raise CannotRun("needs root (SlurmUser=root, munge key, apt-get)")
    ensure_installed(state)
    port = FIRST_PORT
    while port_open(port) or port_open(port + 1):
        port += 2
        if port > FIRST_PORT + 200:
            raise CannotRun(f"no two free ports in {FIRST_PORT}..{port}")
    state.data["ports"] = [port, port + 1]
    if not state.dir.is_dir():
        state.dir.mkdir(parents=True)
        state.created(state.dir)
    else:
        state.save()
    (state.dir / "log").mkdir(exist_ok=True)
    try:
        start_munge(state)
        write_conf(state)
        env = state.env()
        procs = {"slurmctld": start(state, "slurmctld", [which("slurmctld"), "-D", "-i", "-f",
                                                         str(state.conf)], env=env)}
        procs["slurmd"] = start(state, "slurmd", [which("slurmd"), "-D", "-f", str(state.conf)],
                                env=env)
        deadline = time.monotonic() + IDLE_TIMEOUT
        seen = ""
        while time.monotonic() < deadline:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise CannotRun(f"{name} exited with status {proc.returncode}: "
                                    f"{tail(state.dir / 'log' / (name + '.log'))} "
                                    f"{tail(state.dir / 'log' / (name + '.out'))}")
            seen = node_state(state)
            if seen.rstrip("*") == "idle":
                log(f"up: node {state.data['node']} idle, partition {PARTITION}, "
                    f"SLURM_CONF={state.conf}")
                return
            time.sleep(1)
        reason = run([which("sinfo"), "-R", "-h"], env=env).stdout.strip()
        raise CannotRun(f"node not idle after {IDLE_TIMEOUT} s (state {seen or 'unknown'!r}"
                        f"{', reason ' + reason if reason else ''}): "
                        f"{tail(state.dir / 'log' / 'slurmd.log')}")
    except BaseException:
        log("start failed: stopping what was started")
        down(state, quiet=True)
        raise


# ---------------------------------------------------------------- down
def stop_pid(name: str, pid: int) -> None:
    if not pid_is(pid, name):
        log(f"{name} (PID {pid}) is not running")
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not pid_is(pid, name):
            log(f"stopped {name} (PID {pid})")
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    log(f"killed {name} (PID {pid}) after 10 s")


def cancel_jobs(state: State) -> None:
    squeue, scancel = which("squeue"), which("scancel")
    if not (squeue and scancel and pid_is(state.data["pids"].get("slurmctld", -1), "slurmctld")):
        return
    env = state.env()
    jobs = run([squeue, "-h", "-o", "%i", "-t", "PD,R,CG,S"], env=env, timeout=10).stdout.split()
    if not jobs:
        return
    log(f"cancelling {len(jobs)} job(s) left on the cluster")
    run([scancel, *jobs], env=env, timeout=10)
    for _ in range(30):
        if not run([squeue, "-h", "-o", "%i", "-t", "PD,R,CG,S"], env=env, timeout=10).stdout.split():
            return
        time.sleep(0.5)


def down(state: State, quiet: bool = False, purge_packages: bool = False) -> None:
    if not state.file.is_file():
        if not quiet:
            log(f"nothing to stop (no {state.file})")
        return
    try:
        cancel_jobs(state)
    except (OSError, subprocess.TimeoutExpired) as err:
        log(f"could not cancel jobs: {err}")
    for name in ("slurmd", "slurmctld", "munged"):
        if name in state.data["pids"]:
            stop_pid(name, state.data["pids"][name])
    installed = state.data.get("installed", [])
    for path in map(Path, reversed(state.data["created"])):
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            continue
        if not quiet:
            log(f"removed {path}")
    if state.file.is_file():  # the state dir existed before `up`: remove only our file
        state.file.unlink()
    if purge_packages and installed:
        log(f"purging {' '.join(installed)}")
        run(["apt-get", "purge", "-y", *installed], timeout=600)
    log("down")


def status(state: State) -> int:
    if not state.file.is_file():
        log(f"not up (no {state.file})")
        return 1
    for name, pid in state.data["pids"].items():
        log(f"{name}: PID {pid} {'running' if pid_is(pid, name) else 'NOT running'}")
    log(f"node {state.data.get('node')}: {node_state(state) or 'unreachable'}, "
        f"partition {state.data['partition']}, SLURM_CONF={state.conf}")
    return 0 if is_up(state) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help="where the config, logs, spool and state.json live "
                             "(env CRACKPOINT_SLURM_DIR)")
    parser.add_argument("--purge-packages", action="store_true",
                        help="down: also apt-get purge the packages that `up` installed")
    args = parser.parse_args(argv)
    state = State(args.state_dir.resolve())
    try:
        if args.command == "up":
            up(state)
        elif args.command == "down":
            down(state, purge_packages=args.purge_packages)
        elif args.command == "status":
            return status(state)
        else:
            print(f"export SLURM_CONF={state.conf}")
    except CannotRun as err:
        print(f"slurm_local: cannot run SLURM: {err}", file=sys.stderr)
        return 1
    except (OSError, subprocess.SubprocessError) as err:
        print(f"slurm_local: cannot run SLURM: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
