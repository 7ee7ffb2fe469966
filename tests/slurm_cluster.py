"""A real one-node Slurm cluster for tests: munged, slurmctld and slurmd in a temporary folder.

Debian's `slurm-wlm` and `munge` are installed when missing (as root, with apt-get); the
daemons run in the foreground as children of the test process, on free ports, with their
key, state, spool and logs under one folder, and are stopped by PID. Nothing in /etc is used,
so a system Slurm on the same machine is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
# Daemons live in /usr/sbin, which is not on every user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scontrol", "scancel")
KILL_WAIT_SECONDS = 5  # SIGTERM -> SIGKILL at a time limit or scancel: short, to keep tests fast
# Two fake GPUs for README's `--gres=gpu:1`: slurmd drops a GPU without a device file, and any
# character device will do (nothing opens it; the tests run on the CPU).
FAKE_GPU_FILES = ("/dev/null", "/dev/zero")


class SlurmUnavailable(Exception):
    """Slurm is not installed here and could not be installed: the tests that need it skip."""


def _missing_commands() -> list[str]:
    return [name for name in COMMANDS if shutil.which(name, path=SEARCH_PATH) is None]


def ensure_slurm_installed() -> None:
    """Install slurm-wlm and munge with apt-get when a command is missing (root only)."""
    if not _missing_commands():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SlurmUnavailable(
            f"Slurm commands {', '.join(_missing_commands())} not found and cannot be installed "
            f"here (needs root and apt-get): apt-get install {' '.join(PACKAGES)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:  # a fresh container has no package lists yet
        update = ["apt-get", "update", "-qq"]
        subprocess.run(update, env=env, capture_output=True, text=True, timeout=600)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if _missing_commands():
        reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SlurmUnavailable(
            f"apt-get install {' '.join(PACKAGES)} failed ({reason[0]}); Slurm tests need them"
        )


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
        """Cancel what is left, then end exactly the daemons started here, by PID."""
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


def start_cluster(root: Path, timeout: float = 60) -> SlurmCluster:
    """Write keys and configuration under `root`, start the three daemons, wait for `idle`."""
    ensure_slurm_installed()
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

    def start(*command: str, log: str) -> subprocess.Popen:
        with open(root / log, "ab") as output:
            daemon = subprocess.Popen(
                [shutil.which(command[0], path=SEARCH_PATH), *command[1:]],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C of pytest reaches the teardown, not them
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
