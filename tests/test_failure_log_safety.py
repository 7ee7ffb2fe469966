"""The API logs what failed as the CLI does; the failure log is never written through a
symlink planted in its place."""

import pytest

from fastesm_extract import FastaError, extract_fast_esm, extract_files


def rows_without_time(path):
    return [line.split("\t")[1:] for line in path.read_text().splitlines()]


def test_extract_fast_esm_logs_a_file_of_invalid_records_as_the_cli_then_raises(
    tiny_model, tmp_path
):
    fasta = tmp_path / "bad.fa"
    fasta.write_text(">e1\n\n>d1\nMK1\n>d2\nMK2\n")
    api_log, cli_log = tmp_path / "api.log", tmp_path / "cli.log"
    with pytest.raises(FastaError, match="no usable records"):
        extract_fast_esm(fasta, tmp_path / "bad_ESM.pt", model=tiny_model, failure_log=api_log)
    extract_files([fasta], tmp_path / "out", model=tiny_model, failure_log=cli_log,
                  show_progress=False)  # fmt: skip
    logged = rows_without_time(api_log)
    assert [row[1:3] for row in logged] == [
        ["e1", "empty_sequence"],
        ["d1", "invalid_character"],
        ["d2", "invalid_character"],
        ["-", "unreadable_file"],
    ]
    assert logged == rows_without_time(cli_log)
    assert not (tmp_path / "bad_ESM.pt").exists()


@pytest.mark.parametrize("dangling", [False, True], ids=["to a file", "dangling"])
def test_a_symlink_planted_at_the_failure_log_is_not_written_through(
    tiny_model, tmp_path, dangling
):
    fasta = tmp_path / "p.fa"
    fasta.write_text(">ok\nMKTL\n>bad\nMK1\n")
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_text("precious\n")
    log = tmp_path / "failures.log"
    log.symlink_to(victim)
    summary = extract_files(
        [fasta], tmp_path / "out", model=tiny_model, failure_log=log, show_progress=False
    )
    assert summary.records_failed == 1 and summary.records_embedded == 1
    assert "symbolic link" in summary.failure_log_problem
    assert log.is_symlink()
    if dangling:
        assert not victim.exists()
    else:
        assert victim.read_text() == "precious\n"
