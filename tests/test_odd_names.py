"""Any file name round-trips through the failure log, manifests and messages: bytes that
are not UTF-8, newlines, tabs and runs of spaces are escaped, never collapsed, and never
end the run."""

import os
import subprocess

import pytest
from helpers import cli_command, finished_outputs, subprocess_environment

from fastesm_extract.disk.failures import escape, unescape
from fastesm_extract.disk.manifest import read_manifest

# Each file holds one good and one invalid record, so each gets an output and a log line.
NAMES = [b"bad\xff\xfename.fa", b"new\nline.fa", b"tab\there.fa", b"two  spaces.fa", b"plain.fa"]
NOT_FASTA = b"not\nfasta  \xff.fa"  # a whole-file failure, its name in the message too


def make_inputs(folder):
    folder.mkdir()
    for index, name in enumerate(NAMES):
        with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
            handle.write(b">good%d\nMKTLLVAG\n>bad%d\nMK1T\n" % (index, index))
    with open(os.path.join(os.fsencode(folder), NOT_FASTA), "wb") as handle:
        handle.write(b"hello, not FASTA\n")
    return folder


def run(command):
    return subprocess.run(command, env=subprocess_environment(), capture_output=True, timeout=300)


@pytest.mark.parametrize(
    "text",
    ["plain", "a\tb\nc\rd", "two  spaces", "back\\slash \\t", "nul\x00 nel\x85 ls\u2028",
     os.fsdecode(b"bad\xff\xfe"), "caf\u00e9 \u4e2d\u00a0"],
)  # fmt: skip
def test_escape_gives_one_tab_free_utf8_line_that_unescapes_exactly(text):
    escaped = escape(text)
    assert "\t" not in escaped and "\n" not in escaped and "\r" not in escaped
    escaped.encode("utf-8")  # never raises
    assert unescape(escaped) == text


@pytest.mark.e2e
def test_files_with_any_name_are_written_logged_and_rerun_consistently(tiny_checkpoint, tmp_path):
    inputs = make_inputs(tmp_path / "in")
    out, log = tmp_path / "out", tmp_path / "failures.log"
    command = [*cli_command(inputs, out, tiny_checkpoint, "--device", "cpu"),
               "--failure-log", str(log)]  # fmt: skip
    first = run(command)
    stderr = first.stderr.decode("utf-8", "backslashreplace")
    assert first.returncode == 1, stderr
    assert b"internal error" not in first.stderr and b"Traceback" not in first.stderr
    outputs = finished_outputs(out)
    assert len(outputs) == len(NAMES)

    rows = [line.split("\t") for line in log.read_text(encoding="utf-8").splitlines()]
    by_file = {os.fsencode(unescape(row[1])): row for row in rows}
    folder = os.fsencode(inputs)
    assert set(by_file) == {os.path.join(folder, name) for name in [*NAMES, NOT_FASTA]}
    assert all(len(row) == 5 for row in rows)
    whole = by_file[os.path.join(folder, NOT_FASTA)]
    assert whole[2] == "-" and os.fsencode(unescape(whole[4])).count(NOT_FASTA) == 1

    for name in NAMES:  # each manifest names its input exactly
        output = os.path.join(os.fsencode(out), name.removesuffix(b".fa") + b"_ESM.pt")
        manifest = read_manifest(os.fsdecode(output))
        assert os.fsencode(manifest["input"]["path"]) == os.path.join(folder, name)

    rerun = run(command)
    assert rerun.returncode == 1, rerun.stderr.decode("utf-8", "backslashreplace")
    assert b"internal error" not in rerun.stderr
    assert finished_outputs(out) == outputs  # nothing recomputed differently
    assert str(log).encode() in rerun.stderr and log.exists()


def test_the_summary_names_an_odd_file_on_one_line(tiny_checkpoint, tmp_path, capsys):
    from fastesm_extract.cli.main import main

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "not\nfasta\tat all.fa").write_bytes(b"no header here\n")
    argv = ["extract", str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint)]
    assert main([*argv, "--device", "cpu", "-q"]) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if "FAILED" in line]
    assert (
        len(failed) == 1 and "not\\nfasta\\tat all.fa" in failed[0] and "is not FASTA" in failed[0]
    )
