import re

import torch
from helpers import random_proteins, write_fasta

from fastesm_extract import extract_files
from fastesm_extract.cli.main import main
from fastesm_extract.disk.store import save_embeddings_atomic
from fastesm_extract.disk.verify import verify_output
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK


def make_output(tiny_model, tmp_path, count=6):
    fasta = write_fasta(tmp_path / "p.fa", random_proteins(count, 5, 40))
    extract_files([fasta], tmp_path, model=tiny_model, show_progress=False)
    return fasta, tmp_path / "p_ESM.pt"


def test_a_fresh_output_verifies(tiny_model, tmp_path):
    fasta, output = make_output(tiny_model, tmp_path)
    report = verify_output(output, expected_dim=32)
    assert report.ok and report.n_records == 6 and report.hidden_size == 32
    assert report.fasta.resolve() == fasta.resolve()


def test_wrong_ids_order_count_and_dimension_are_problems(tiny_model, tmp_path):
    fasta, output = make_output(tiny_model, tmp_path)
    proteins = torch.load(output, weights_only=True)["proteins"]
    data = torch.load(output, weights_only=True)["data"]
    save_embeddings_atomic(output, proteins[::-1], data[::-1])
    assert verify_output(output).problems == [
        "it is not the output its manifest describes (replaced or copied over): rerun extract",
        "records are not in FASTA order",
    ]
    save_embeddings_atomic(output, proteins[:-1], data[:-1])
    report = verify_output(output)
    assert any("missing IDs: prot_0_5" in p for p in report.problems)
    assert any("manifest says 6 embedded, file has 5" in p for p in report.problems)
    save_embeddings_atomic(output, proteins, data)
    assert "64" in verify_output(output, expected_dim=64).problems[0]
    data[2] = torch.full((32,), float("inf"))
    save_embeddings_atomic(output, proteins, data)
    assert "NaN or infinite" in verify_output(output).problems[0]


def test_a_changed_fasta_is_a_problem(tiny_model, tmp_path):
    fasta, output = make_output(tiny_model, tmp_path)
    fasta.write_text(fasta.read_text().replace(">prot_0_0", ">renamed"))
    problems = verify_output(output).problems
    assert "the FASTA changed since this output was made" in problems


def test_original_pipeline_outputs_verify_at_2560_dimensions(virnucpro_fixtures, capsys):
    folder = virnucpro_fixtures / "test_with_orfs"
    report = verify_output(folder / "output_1_ESM.pt", folder / "output_1_protein.fa", 2560)
    assert report.ok and report.n_records == 4 and report.hidden_size == 2560
    assert report.notes == ["IDs match the FASTA but not its order (original pipeline order)"]
    code = main(
        [
            "verify",
            str(folder / "output_1_ESM.pt"),
            "--fasta",
            str(folder / "output_1_protein.fa"),
            "--expect-dim",
            "2560",
        ]
    )
    assert code == EXIT_OK
    assert re.search(r"^OK +4 +2560 +\S+output_1_ESM.pt$", capsys.readouterr().out, re.M)
    assert main(["verify", str(folder / "output_1_ESM.pt"), "--expect-dim", "1280"]) == 1


def test_verify_cli_prints_a_table_and_fails_on_any_problem(tiny_model, tmp_path, capsys):
    _, output = make_output(tiny_model, tmp_path)
    (tmp_path / "broken_ESM.pt").write_bytes(b"junk")
    code = main(["verify", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == EXIT_FAILURES
    assert "FAILED" in out and "broken_ESM.pt" in out and "cannot be loaded" in out
    assert re.search(r"^OK +6 +32 +\S+p_ESM.pt$", out, re.M)


def test_a_failed_copy_of_a_duplicated_id_verifies_as_extract_wrote_it(tiny_model, tmp_path):
    fasta = tmp_path / "p.fa"
    fasta.write_text(">dup\nMKTAYIAK\n>x\nMKV\n>dup\nMK1\n")  # the second dup is invalid
    extract_files([fasta], tmp_path, model=tiny_model, show_progress=False)
    report = verify_output(tmp_path / "p_ESM.pt")
    assert report.ok, report.problems
    assert report.n_records == 2


def test_an_archive_bomb_is_refused_before_loading(tmp_path, capsys):
    import zipfile

    bomb = tmp_path / "b_ESM.pt"
    save_embeddings_atomic(bomb, ["a"], [torch.zeros(4)])
    with zipfile.ZipFile(bomb) as original:
        entries = [(info, original.read(info)) for info in original.infolist()]
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as deflated:
        for info, content in entries:
            deflated.writestr(info.filename, content)
        deflated.writestr("b_ESM/data/1", bytes(64 << 20))  # 64 MiB of zeros, ~64 KB stored
    assert bomb.stat().st_size < 1 << 20
    report = verify_output(bomb)
    assert not report.ok and "refused without loading it" in report.problems[0]
    assert main(["verify", str(bomb)]) == EXIT_FAILURES


def test_an_implausible_width_is_flagged_without_expect_dim(tmp_path):
    output = tmp_path / "w_ESM.pt"
    save_embeddings_atomic(output, ["a"], [torch.zeros(20000)])
    report = verify_output(output)
    assert any("implausible width 20000" in problem for problem in report.problems)
    assert verify_output(output, expected_dim=20000).ok
