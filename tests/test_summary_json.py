"""`--summary-json` has one versioned schema, written on every exit: a finished run, a usage
error, an argument error (argparse's exit 2), a signal and `plan` all leave the same keys,
with `ok`, `exit_status` and `error` saying how it ended (README, "The summary JSON")."""

import json
import signal
import subprocess

import pytest
from helpers import cli_command, random_proteins, subprocess_environment, write_fasta
from test_signals import interrupt_after_next_output

from fastesm_extract.cli.main import main

FORMAT = 2
# The schema's keys, spelled out here as README documents them (not read from the package).
KEYS = {
    "format",
    "command",
    "ok",
    "exit_status",
    "error",
    "seconds",
    "model_loaded",
    "stopped",
    "failure_log",
    "failure_log_problem",
    "files",
    "records",
    "stale",
    "rebuilt",
    "file_results",
    "plan",
}


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_fasta(folder / "a.fa", random_proteins(3, 5, 20, seed=1))
    write_fasta(folder / "b.fa", random_proteins(2, 5, 20, seed=2))
    return folder


def extract(folder, checkpoint, out, summary, *extra):
    argv = ["extract", str(folder), "-o", str(out), "--model", str(checkpoint)]
    return main([*argv, "--device", "cpu", "-q", "--summary-json", str(summary), *extra])


def test_a_finished_run_a_usage_error_an_argument_error_and_plan_write_the_same_keys(
    tiny_checkpoint, folder, tmp_path, capsys
):
    out, summary = tmp_path / "out", tmp_path / "summary.json"

    assert extract(folder, tiny_checkpoint, out, summary) == 0
    finished = json.loads(summary.read_text())
    assert set(finished) == KEYS
    assert finished["format"] == FORMAT and finished["command"] == "extract"
    assert (finished["ok"], finished["exit_status"], finished["error"]) == (True, 0, None)
    assert finished["files"] == {"written": 2} and finished["plan"] is None
    assert finished["records"]["embedded"] == 5

    # A usage error (checked after parsing): every key, nothing done, the message.
    assert extract(folder, tiny_checkpoint, out, summary, "--toks-per-batch", "0") == 2
    usage = json.loads(summary.read_text())
    assert set(usage) == KEYS
    assert (usage["ok"], usage["exit_status"]) == (False, 2)
    assert usage["error"] == "--toks-per-batch and --truncation-seq-length must be positive"
    assert usage["files"] == {} and usage["file_results"] == [] and usage["format"] == FORMAT

    # An argument error: argparse exits 2 before any namespace exists; the summary is written.
    with pytest.raises(SystemExit) as refused:
        extract(folder, tiny_checkpoint, out, summary, "--dtype", "float64")
    assert refused.value.code == 2
    assert "invalid choice: 'float64'" in capsys.readouterr().err  # argparse's own message
    argument = json.loads(summary.read_text())
    assert set(argument) == KEYS
    assert (argument["ok"], argument["exit_status"], argument["command"]) == (False, 2, "extract")
    assert "argument --dtype: invalid choice: 'float64'" in argument["error"]

    # plan: the same keys; `files` counted by action, each file's verdict under `plan`.
    write_fasta(folder / "c.fa", random_proteins(4, 5, 20, seed=3))
    argv = ["plan", str(folder), "-o", str(out), "--model", str(tiny_checkpoint)]
    assert main([*argv, "--device", "cpu", "--summary-json", str(summary)]) == 0
    plan = json.loads(summary.read_text())
    assert set(plan) == KEYS
    assert (plan["command"], plan["ok"], plan["exit_status"]) == ("plan", True, 0)
    assert plan["files"] == {"skip": 2, "write": 1}
    actions = {entry["output"]: entry["action"] for entry in plan["plan"]["files"]}
    assert actions == {
        str(out / "a_ESM.pt"): "skip",
        str(out / "b_ESM.pt"): "skip",
        str(out / "c_ESM.pt"): "write",
    }
    assert plan["plan"]["hidden_size"] == 32 and plan["file_results"] == []


def test_an_argument_error_writes_no_summary_over_a_file_named_on_the_command_line(
    tiny_checkpoint, folder, capsys
):
    fasta = folder / "a.fa"
    before = fasta.read_bytes()
    argv = ["extract", str(fasta), "--model", str(tiny_checkpoint), "--dtype", "float64"]
    with pytest.raises(SystemExit):
        main([*argv, f"--summary-json={fasta}"])
    assert fasta.read_bytes() == before
    assert "no --summary-json written" in capsys.readouterr().err


@pytest.mark.e2e
@pytest.mark.parametrize(
    "signum, status, what",
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")],
)
def test_a_stopped_run_writes_every_key(tiny_checkpoint, tmp_path, signum, status, what):
    folder = tmp_path / "in"
    folder.mkdir()
    for part in range(6):
        write_fasta(folder / f"output_{part}.fa", random_proteins(100, 50, 300, seed=part))
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    command = cli_command(folder, out, tiny_checkpoint, "--device", "cpu")
    code, stderr = interrupt_after_next_output(
        [*command, "--summary-json", str(summary)], out, signum
    )
    assert code == status, stderr
    data = json.loads(summary.read_text())
    assert set(data) == KEYS
    assert (data["ok"], data["exit_status"], data["error"]) == (False, status, what)
    assert data["format"] == FORMAT and data["command"] == "extract"


@pytest.mark.e2e
def test_the_installed_command_writes_the_summary_of_an_argument_error(tmp_path):
    fasta = write_fasta(tmp_path / "a.fa", [("a", "MKV")])
    summary = tmp_path / "summary.json"
    done = subprocess.run(
        [*cli_command(fasta, tmp_path / "out", tmp_path / "model"), "--dtype", "float64"]
        + ["--summary-json", str(summary)],
        env=subprocess_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    data = json.loads(summary.read_text())
    assert set(data) == KEYS and data["exit_status"] == 2 and "--dtype" in data["error"]
