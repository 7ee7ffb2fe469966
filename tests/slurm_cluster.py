"""A real one-node Slurm cluster for tests: munged, slurmctld and slurmd in a temporary folder.

Debian's `slurm-wlm` and `munge` must be installed (`.ci/run` installs them; pytest never
does): without them `start_cluster` raises SlurmUnavailable and the tests that need a cluster
skip, saying which command is missing. The daemons run in the foreground as children of the
test process, on free ports, with their key, state, spool and logs under one folder, and are
stopped by PID. If the test process dies first (SIGKILL, a crash), the kernel kills the
daemons and a reaper (slurm_reaper.py) the job steps they detached: a killed `make test`
leaves nothing running. Nothing in /etc is used, so a system Slurm on the same machine is
left alone.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
REAPER = Path(__file__).with_name("slurm_reaper.py")
# Daemons live in /usr/sbin, which is not on every user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scontrol", "scancel")
KILL_WAIT_SECONDS = 5  # SIGTERM -> SIGKILL at a time limit or scancel: short, to keep tests fast
# Two fake GPUs for README's `--gres=gpu:1`: slurmd drops a GPU without a device file, and any
# character device will do (nothing opens it; the tests run on the CPU).
FAKE_GPU_FILES = ("/dev/null", "/dev/zero")


class SlurmUnavailable(Exception):
    """Slurm is not installed here: the tests that need it skip, with this as the reason."""


def missing_commands() -> list[str]:
    return [name for name in COMMANDS if shutil.which(name, path=SEARCH_PATH) is None]


def check_slurm_installed() -> None:
    """Raise SlurmUnavailable naming the missing commands; installing is `.ci/run`'s job."""
    missing = missing_commands()
    if missing:
        raise SlurmUnavailable(
            f"{', '.join(missing)} not found on PATH or in /usr/sbin; install "
            f"{' and '.join(PACKAGES)} (as root: apt-get install {' '.join(PACKAGES)}; "
            ".ci/run does this)"
        )


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_this_process() -> Callable[[], None]:
    """A `preexec_fn` that makes the child get SIGKILL when the thread that starts it ends
    (pytest's main thread: the test process), however it ends, even by SIGKILL.

    Prepared here, before the fork, so the child only calls prctl and getppid.
    """
    parent = os.getpid()

    def in_child() -> None:
        if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(127)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os._exit(127)

    return in_child


@dataclass(frozen=True)
class NodeHardware:
    """This machine as slurmd sees it: the node line of slurm.conf must match it."""

    name: str
    cpus: int
    real_memory_mb: int


def node_hardware() -> NodeHardware:
    """Parse `slurmd -C` ("NodeName=vm CPUs=2 ... RealMemory=24105")."""
    printed = subprocess.run(
        [shutil.which("slurmd", path=SEARCH_PATH), "-C"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = dict(re.findall(r"(\w+)=(\S+)", printed.splitlines()[0]))
    return NodeHardware(fields["NodeName"], int(fields["CPUs"]), int(fields["RealMemory"]))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def slurm_conf(root: Path, node: NodeHardware, munge_socket: Path) -> str:
    """One node, one partition; plugins that need no cgroups, no database, no root services.

    The scheduler starts waiting tasks as soon as others end (Slurm's defaults wait seconds,
    which matter for production submission storms, not here).
    """
    return f"""\
ClusterName=fastesmtest
SlurmctldHost={node.name}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
ReturnToService=2
KillWait={KILL_WAIT_SECONDS}
MinJobAge=3600
GresTypes=gpu
NodeName={node.name} NodeAddr=127.0.0.1 CPUs={node.cpus} RealMemory={node.real_memory_mb} \
Gres=gpu:{len(FAKE_GPU_FILES)} State=UNKNOWN
PartitionName=test Nodes={node.name} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    """A running cluster: `env` makes Slurm's client commands talk to it."""

    root: Path
    node: NodeHardware
    env: dict[str, str]
    daemons: list[subprocess.Popen] = field(default_factory=list)
    reaper: subprocess.Popen | None = None  # see slurm_reaper.py

    def command(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("env", self.env)
        return subprocess.run(
            [shutil.which(args[0], path=SEARCH_PATH), *args[1:]],
            capture_output=True,
            text=True,
            check=check,
            timeout=kwargs.pop("timeout", 60),
            **kwargs,
        )

    def node_state(self) -> str:
        return self.command("sinfo", "--noheader", "--format=%T", check=False).stdout.strip()

    def sbatch(self, script: Path, *options: str, env: dict[str, str], cwd: Path) -> str:
        """Submit and return the job ID (arrays: the array's job ID)."""
        submitted = self.command(
            "sbatch",
            "--parsable",
            *options,
            str(script),
            env={**self.env, **env, "SLURM_CONF": self.env["SLURM_CONF"]},
            cwd=cwd,
        )
        return submitted.stdout.strip().split(";")[0]

    def tasks(self, job_id: str) -> dict[str, dict[str, str]]:
        """`scontrol show job` of every task of a job (array), keyed by task ID or job ID."""
        shown = self.command("scontrol", "--oneliner", "show", "job", job_id, check=False)
        records = {}
        for line in shown.stdout.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            if "JobId" in fields:
                records[fields.get("ArrayTaskId", fields["JobId"])] = fields
        return records

    def wait(self, job_id: str, timeout: float = 120) -> dict[str, dict[str, str]]:
        """Wait until no task of the job is pending or running; return `tasks(job_id)`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.tasks(job_id)
            if tasks and all(
                t["JobState"] not in ("PENDING", "RUNNING", "COMPLETING") for t in tasks.values()
            ):
                return tasks
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} still running after {timeout} s: {self.tasks(job_id)}")

    def stop(self) -> None:
        """Cancel what is left, end exactly the daemons started here, by PID, then let the
        reaper end any process still running with this cluster's SLURM_CONF."""
        if self.daemons and self.daemons[1].poll() is None:  # slurmctld still answers
            self.command("scancel", f"--user={os.getuid()}", check=False)
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline
                and self.command("squeue", "--noheader", check=False).stdout.strip()
            ):
                time.sleep(0.5)
        for daemon in reversed(self.daemons):  # slurmd, slurmctld, then munged
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
        self.daemons.clear()
        if self.reaper is not None:  # end of its input: it ends whatever is left, then exits
            self.reaper.stdin.close()
            self.reaper.wait(timeout=30)
            self.reaper = None


def start_cluster(root: Path, timeout: float = 60) -> SlurmCluster:
    """Write keys and configuration under `root`, start the three daemons, wait for `idle`."""
    check_slurm_installed()
    node = node_hardware()
    for folder in ("key", "state", "spool"):
        (root / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
    (root / "munge").mkdir(mode=0o755, exist_ok=True)  # munged wants its socket reachable
    munge_socket = root / "munge" / "munge.socket"
    key = root / "key" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(root, node, munge_socket))
    (root / "gres.conf").write_text(
        "".join(f"NodeName={node.name} Name=gpu File={file}\n" for file in FAKE_GPU_FILES)
    )
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": SEARCH_PATH}
    cluster = SlurmCluster(root, node, env)
    # Started first, so nothing of the cluster outlives the test process without it; in its
    # own session, so a Ctrl-C or kill of pytest's process group leaves it to clean up.
    cluster.reaper = subprocess.Popen(
        [sys.executable, str(REAPER), str(conf)], stdin=subprocess.PIPE, start_new_session=True
    )

    def start(*command: str, log: str) -> subprocess.Popen:
        with open(root / log, "ab") as output:
            daemon = subprocess.Popen(
                [shutil.which(command[0], path=SEARCH_PATH), *command[1:]],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C of pytest reaches the teardown, not them
                preexec_fn=die_with_this_process(),  # a killed pytest takes them along
            )
        cluster.daemons.append(daemon)
        return daemon

    try:
        start(
            "munged",
            "--foreground",
            "--force",
            f"--socket={munge_socket}",
            f"--key-file={key}",
            f"--pid-file={root}/key/munged.pid",
            f"--seed-file={root}/key/munged.seed",
            f"--log-file={root}/munged.log",
            log="munged.out",
        )
        _wait_for(munge_socket.exists, 10, "munged socket", cluster)
        start("slurmctld", "-D", "-i", "-f", str(conf), log="slurmctld.out")
        start("slurmd", "-D", "-f", str(conf), "-N", node.name, log="slurmd.out")
        _wait_for(lambda: cluster.node_state() == "idle", timeout, "node idle in sinfo", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_for(ready, timeout: float, what: str, cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        dead = [d.args[0] for d in cluster.daemons if d.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = "; ".join(
                f"{p.name}: {p.read_text(errors='replace')[-400:]}"
                for p in sorted(cluster.root.glob("*.log")) + sorted(cluster.root.glob("*.out"))
            )
            raise RuntimeError(f"Slurm test cluster: no {what} (exited: {dead}); logs: {logs}")
        time.sleep(0.2)
