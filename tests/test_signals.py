"""SIGTERM behaves like Ctrl-C, with one process or worker processes.

Real signals are sent to a real CLI process in the middle of a run.
"""

import contextlib
import os
import signal
import subprocess
import time

import pytest
from helpers import (
    cli_command,
    finished_outputs,
    random_proteins,
    subprocess_environment,
    write_fasta,
)

from fastesm_extract import extract_files
from fastesm_extract.disk.verify import verify_output

pytestmark = pytest.mark.e2e

N_FILES = 8  # enough that three interrupted runs in a row leave work for the rerun
DEVICES = ["--devices", "cpu,cpu"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("signals-in")
    for part in range(N_FILES):
        write_fasta(folder / f"output_{part}.fa", random_proteins(100, 50, 300, seed=part))
    return folder


@pytest.fixture(scope="module")
def reference(inputs, tiny_model, tmp_path_factory):
    """The uninterrupted run, in this process: interrupted CLI runs must end up equal to it."""
    out = tmp_path_factory.mktemp("signals-reference")
    assert extract_files([inputs], out, model=tiny_model, show_progress=False).ok
    return finished_outputs(out)


def interrupt_after_next_output(command, out, signum, whole_group=False, repeat_after_s=None):
    """Start `command`, send `signum` once it has finished an output more than `out` held;
    returns (exit code, stderr).

    With `repeat_after_s`, the signal is sent again that long after the first, then every
    5 ms until the process exits (batch systems may signal twice)."""
    finished_before = len(finished_outputs(out)) if out.exists() else 0
    process = subprocess.Popen(
        command,
        env=subprocess_environment(),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a job under Slurm
    )
    deadline = time.monotonic() + 120
    while (
        len(finished_outputs(out)) <= finished_before
        and process.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before the signal: make the workload larger"

    def send():
        if whole_group:  # Ctrl-C in a terminal, or scancel: every process of the job
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)

    send()
    if repeat_after_s is not None:
        time.sleep(repeat_after_s)
        while process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                send()
            time.sleep(0.005)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def assert_clean_stop(out, stderr, what):
    assert "Traceback" not in stderr, stderr
    assert stderr.count(f"fastesm-extract: {what}; finished outputs are kept") == 1, stderr
    names = [path.name for path in out.iterdir()]
    assert not [name for name in names if name.startswith(".tmp-")], names
    assert not [name for name in names if name.endswith(".lock")], names
    for name in finished_outputs(out):  # every output left is a finished unit
        assert verify_output(out / name).ok, name


# The signals differ only in the exit status and the message: each mode interrupts one run
# after another with each of them (every run resuming the last one's leftovers), then one
# rerun completes the folder.
SIGTERM = (signal.SIGTERM, 143, "terminated (SIGTERM)", False)
CTRL_C = (signal.SIGINT, 130, "interrupted", True)  # to the whole process group
SIGHUP = (signal.SIGHUP, 129, "terminated (SIGHUP)", False)  # a closed terminal or ssh session
CHAINS = {"one process": ([], [SIGTERM, CTRL_C, SIGHUP]), "--devices": (DEVICES, [SIGTERM, CTRL_C])}


@pytest.mark.parametrize("mode", CHAINS)
def test_each_signal_stops_the_run_cleanly_and_a_rerun_completes_it(
    inputs, reference, tiny_checkpoint, tmp_path, mode
):
    extra, signals = CHAINS[mode]
    out = tmp_path / "out"
    command = cli_command(inputs, out, tiny_checkpoint, "--device", "cpu", *extra)
    for signum, status, what, whole_group in signals:
        code, stderr = interrupt_after_next_output(command, out, signum, whole_group)
        assert code == status, (what, stderr)
        assert_clean_stop(out, stderr, what)
        assert len(finished_outputs(out)) < N_FILES

    rerun = subprocess.run(
        cli_command(inputs, out, tiny_checkpoint, "--device", "cpu"),
        env=subprocess_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert finished_outputs(out) == reference  # bitwise


REPEATED = [  # name, signal, exit status, message, extra options, to the whole process group
    ("SIGTERM", signal.SIGTERM, 143, "terminated (SIGTERM)", [], False),
    ("SIGTERM --devices", signal.SIGTERM, 143, "terminated (SIGTERM)", DEVICES, False),
    # A closed terminal hangs up every process of the group: the workers too.
    ("SIGHUP --devices", signal.SIGHUP, 129, "terminated (SIGHUP)", DEVICES, True),
]


@pytest.mark.parametrize(
    "signum, status, what, extra, whole_group",
    [case[1:] for case in REPEATED],
    ids=[case[0] for case in REPEATED],
)
def test_signals_after_the_first_never_cut_the_cleanup_short(
    inputs, tiny_checkpoint, tmp_path, signum, status, what, extra, whole_group
):
    """The same signal again 50 ms after the first, then every 5 ms until the process exits:
    it still stops as after one signal, with nothing left behind."""
    out = tmp_path / "out"
    command = cli_command(inputs, out, tiny_checkpoint, "--device", "cpu", *extra)
    code, stderr = interrupt_after_next_output(command, out, signum, whole_group, 0.05)
    assert code == status, stderr
    assert_clean_stop(out, stderr, what)
