"""`plan` (and `extract --dry-run`) exits as the run would, writes nothing (not even the
`-o` folders), and survives a damaged rates cache; a tiny run does not replace a rate
measured on many records."""

import json
import math

import pytest
from helpers import random_proteins, write_fasta

from fastesm_extract.cli.main import main
from fastesm_extract.model.identity import folder_fingerprint
from fastesm_extract.running import rates

MODEL = "someone/tiny"


COMMANDS = {"plan": ["plan"], "dry-run": ["extract", "--dry-run"], "run": ["extract"]}


def argv(command, fasta, out, checkpoint, *extra):
    where = [str(fasta), "-o", str(out), "--model", str(checkpoint), "--device", "cpu"]
    return [*COMMANDS[command], *where, "-q", *map(str, extra)]


def plan_json(path):
    data = json.loads(path.read_text())
    return data["exit_status"], data["files"], data["plan"]["files"]


@pytest.mark.parametrize("accept", [[], ["--accept-invalid"]])
def test_one_invalid_record_plan_and_dry_run_exit_as_the_run(tiny_checkpoint, tmp_path, accept):
    fasta = write_fasta(tmp_path / "a.fa", [*random_proteins(3, 5, 20), ("bad", "MK1V")])
    out, report = tmp_path / "out", tmp_path / "plan.json"
    expected = 0 if accept else 1
    for when in ("before the run", "after it"):
        for command in ("plan", "dry-run"):
            code = main(
                argv(command, fasta, out, tiny_checkpoint, *accept, "--summary-json", report)
            )
            assert code == expected, (when, command)
            status, counts, files = plan_json(report)
            action = "write" if when == "before the run" else "skip"
            assert status == expected and counts == {action: 1}
            assert files[0]["invalid_records"] == 1
        if when == "before the run":
            assert main(argv("run", fasta, out, tiny_checkpoint, *accept)) == expected
    assert main(argv("run", fasta, out, tiny_checkpoint, *accept)) == expected  # rerun: same


def test_a_file_of_invalid_records_only_is_planned_as_failing(tiny_checkpoint, tmp_path):
    fasta = tmp_path / "bad.fa"
    fasta.write_text(">r1\nMK1\n>r2\nMK2\n")
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    out, report = tmp_path / "out", tmp_path / "plan.json"
    for path in (fasta, empty):
        assert main(argv("plan", path, out, tiny_checkpoint, "--summary-json", report)) == 1
        status, counts, files = plan_json(report)
        assert (status, counts) == (1, {"invalid": 1}), files
        assert main(argv("run", path, out, tiny_checkpoint)) == 1
    assert main(argv("plan", fasta, out, tiny_checkpoint, "--accept-invalid")) == 1
    assert main(argv("run", fasta, out, tiny_checkpoint, "--accept-invalid")) == 1


def test_plan_creates_no_output_folder(tiny_checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    fasta = write_fasta(folder / "a.fa", random_proteins(2, 5, 20))
    out = tmp_path / "not" / "yet" / "out"
    assert main(argv("plan", folder, out, tiny_checkpoint)) == 0
    assert main(argv("dry-run", fasta, out, tiny_checkpoint)) == 0
    assert not (tmp_path / "not").exists()
    (tmp_path / "file").write_text("")  # a file where a folder would be made: as the run says
    assert main(argv("plan", fasta, tmp_path / "file" / "out", tiny_checkpoint)) == 2
    assert main(argv("run", fasta, tmp_path / "file" / "out", tiny_checkpoint)) == 2


@pytest.mark.parametrize("bad", ["0", "0.0", "NaN", "Infinity", "-3", '"fast"'])
def test_a_damaged_cached_rate_is_ignored(tiny_checkpoint, tmp_path, monkeypatch, capsys, bad):
    monkeypatch.setenv("FASTESM_EXTRACT_CACHE", str(tmp_path / "cache"))
    fasta = write_fasta(tmp_path / "a.fa", random_proteins(5, 5, 20))
    key = f"files:{folder_fingerprint(tiny_checkpoint)[:16]} @ {rates.device_label(['cpu'])}"
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "rates.json").write_text(
        f'{{"{key}": {{"records_per_s": {bad}, "measured": "2026-01-01T00:00:00Z"}}}}'
    )
    assert main(argv("plan", fasta, tmp_path / "out", tiny_checkpoint)) == 0
    assert "time: unknown for" in capsys.readouterr().err


def test_a_one_record_run_barely_moves_a_rate_measured_on_300(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTESM_EXTRACT_CACHE", str(tmp_path))
    rates.record_rate(MODEL, "cpu", 300, 10.0)  # 30 records/s
    rates.record_rate(MODEL, "cpu", 1, 5.0)  # 0.2 records/s: mostly the model's load
    rate = json.loads((tmp_path / "rates.json").read_text())[f"{MODEL} @ cpu"]
    assert math.isclose(rate["records_per_s"], (30 * 300 + 0.2 * 1) / 301)
    assert rate["records"] == 301
    rates.record_rate(MODEL, "cpu", 301, 301 / 10)  # as many records again, at 10/s
    rate = json.loads((tmp_path / "rates.json").read_text())[f"{MODEL} @ cpu"]
    assert math.isclose(rate["records_per_s"], ((30 * 300 + 0.2) / 301 + 10) / 2)


def test_a_damaged_cached_rate_is_replaced_by_the_next_run(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTESM_EXTRACT_CACHE", str(tmp_path))
    (tmp_path / "rates.json").write_text(
        json.dumps({f"{MODEL} @ cpu": {"records_per_s": 0, "records": 10**6, "measured": "x"}})
    )
    assert rates.known_rate(MODEL, "cpu") is None
    rates.record_rate(MODEL, "cpu", 10, 2.0)
    assert rates.known_rate(MODEL, "cpu").records_per_s == 5.0
