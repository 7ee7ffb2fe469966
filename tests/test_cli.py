import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import says

from fastesm_extract.cli.main import main
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK, EXIT_USAGE

BAD = b">good\nMKTAYIAK\n>empty\n\n"


def test_cli_extracts_and_resumes(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "output_1.fa").write_text(">a\nMKT\n>b\nQQL\n")
    argv = [
        "extract",
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(tiny_checkpoint),
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(argv) == EXIT_OK
    saved = torch.load(tmp_path / "out" / "output_1_ESM.pt", weights_only=True)
    assert saved["proteins"] == ["a", "b"] and saved["data"][0].shape == (32,)
    assert main(argv) == EXIT_OK
    assert says(capsys.readouterr().err, "0 written, 1 skipped")


def test_cli_settings_reach_the_extraction(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "a.fa").write_text(">a\n" + "M" * 50 + "\n")
    base = [
        "extract",
        str(tmp_path / "a.fa"),
        "--model",
        str(tiny_checkpoint),
        "--device",
        "cpu",
        "-q",
    ]
    assert (
        main(
            [
                *base,
                "-o",
                str(tmp_path / "t"),
                "--truncation-seq-length",
                "5",
                "--toks-per-batch",
                "64",
            ]
        )
        == EXIT_OK
    )
    first = capsys.readouterr().err
    assert says(first, "1 records embedded, 0 failed") and "; 1 truncated" in first
    (tmp_path / "b.fa").write_text(">a\nMMMMM\n")
    assert main([*base[:1], str(tmp_path / "b.fa"), *base[2:], "-o", str(tmp_path / "u")]) == 0
    truncated = torch.load(tmp_path / "t" / "a_ESM.pt", weights_only=True)["data"][0]
    short = torch.load(tmp_path / "u" / "b_ESM.pt", weights_only=True)["data"][0]
    assert torch.equal(truncated, short)
    summaries = capsys.readouterr().err
    assert "; 1 truncated" not in summaries  # b.fa has nothing to truncate


def test_cli_failures_give_a_summary_and_exit_1(tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "a.fa").write_bytes(BAD)
    (tmp_path / "b.fa").write_bytes(b"not fasta")
    code = main(
        [
            "extract",
            str(tmp_path / "a.fa"),
            str(tmp_path / "b.fa"),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_FAILURES
    assert says(err, "1 written, 0 skipped, 1 failed files; 1 records embedded, 1 failed")
    assert "FAILED" in err and "b.fa" in err and "extraction_failures.log" in err


def test_cli_usage_errors_exit_2_with_a_message(tiny_checkpoint, tmp_path, capsys):
    assert main(["extract", str(tmp_path / "missing.fa"), "--device", "cpu"]) == EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "a.fa").write_text(">a\nMK\n")
    assert (
        main(
            [
                "extract",
                str(tmp_path / "a.fa"),
                "--model",
                str(tmp_path / "no-model"),
                "--device",
                "cpu",
            ]
        )
        == EXIT_USAGE
    )
    assert "cannot load model" in capsys.readouterr().err
    assert main(["extract", str(tmp_path / "a.fa"), "--toks-per-batch", "0"]) == EXIT_USAGE


@pytest.mark.e2e
def test_installed_command_shows_no_traceback_without_cuda(tmp_path):
    (tmp_path / "a.fa").write_text(">a\nMK\n")
    script = Path(sys.executable).parent / "fastesm-extract"
    env = {"CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [str(script), "extract", str(tmp_path / "a.fa")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == EXIT_USAGE
    assert "Traceback" not in result.stderr
    assert "CUDA is not available" in result.stderr and "--device cpu" in result.stderr


def test_an_unexpected_error_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    import fastesm_extract.cli.main as cli

    def broken(*args, **kwargs):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(cli, "run", broken)
    monkeypatch.delenv("FASTESM_EXTRACT_DEBUG", raising=False)
    (tmp_path / "a.fa").write_text(">a\nMK\n")
    assert main(["extract", str(tmp_path / "a.fa"), "--device", "cpu"]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: something nobody expected" in err
    assert "FASTESM_EXTRACT_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("FASTESM_EXTRACT_DEBUG", "1")
    with pytest.raises(RuntimeError, match="nobody expected"):
        main(["extract", str(tmp_path / "a.fa"), "--device", "cpu"])
