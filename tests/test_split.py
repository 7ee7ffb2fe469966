"""split.py: parts as VirNucPro's split_fasta_file() cuts them, embedded part by part."""

import gzip
import hashlib
import logging

import pytest
import torch
from helpers import random_proteins, says, write_fasta

from fastesm_extract import extract_fast_esm, read_fasta
from fastesm_extract.api.files import extract_split
from fastesm_extract.cli.main import main
from fastesm_extract.disk.split import iter_parts, split_fasta
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK, EXIT_USAGE, FastaError

# Preamble before the first header, wrapped and blank lines, an empty header, no final newline.
AWKWARD = (
    "; comment before the first record\n\n"
    ">r1 first record\nMKT\nAYI\n"
    ">r2\nQQL\n\n"
    ">\nMM\n"
    ">r4\nA\n>r5\nC\n>r6\nD\n>r7\nE\n"
    ">r8\nFG"
)


def virnucpro_split(fasta, out_dir, per_file):
    """Reference for VirNucPro's split_fasta_file(): text lines copied, a new output_K.fa
    before every per_file-th header line, anything before the first header dropped."""
    out_dir.mkdir(parents=True, exist_ok=True)
    headers, part, handle = 0, 0, None
    with open(fasta) as source:
        for line in source:
            if line.startswith(">"):
                if headers % per_file == 0:
                    if handle is not None:
                        handle.close()
                    part += 1
                    handle = open(out_dir / f"output_{part}.fa", "w")
                headers += 1
            if handle is not None:
                handle.write(line)
    if handle is not None:
        handle.close()


def file_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("per_part", [1, 3, 8, 100])
def test_parts_equal_virnucpro_split_byte_for_byte(tmp_path, per_part):
    fasta = tmp_path / "big.fa"
    fasta.write_text(AWKWARD)
    virnucpro_split(fasta, tmp_path / "original", per_part)
    parts = split_fasta(fasta, tmp_path / "ours", per_part)
    assert file_bytes(tmp_path / "ours") == file_bytes(tmp_path / "original")
    assert [p.path.name for p in parts] == [f"output_{i}.fa" for i in range(1, len(parts) + 1)]
    assert sum(p.n_records for p in parts) == 8
    assert [p.n_records for p in parts][:-1] == [per_part] * (len(parts) - 1)


def test_gzip_input_gives_the_same_parts(tmp_path):
    (tmp_path / "big.fa").write_text(AWKWARD)
    (tmp_path / "big.fa.gz").write_bytes(gzip.compress(AWKWARD.encode()))
    split_fasta(tmp_path / "big.fa", tmp_path / "plain", 3)
    split_fasta(tmp_path / "big.fa.gz", tmp_path / "gz", 3)
    assert file_bytes(tmp_path / "gz") == file_bytes(tmp_path / "plain")


def test_record_assignment(tmp_path):
    fasta = write_fasta(
        tmp_path / "big.fa", [(f"s{i} desc", "MKV" * (i % 5 + 1)) for i in range(7)]
    )
    parts = split_fasta(fasta, tmp_path / "parts", 3)
    ids = [[r.id for r in read_fasta(p.path).records] for p in parts]
    assert ids == [["s0", "s1", "s2"], ["s3", "s4", "s5"], ["s6"]]


def test_unchanged_parts_are_left_alone_and_changed_ones_rewritten(tmp_path, caplog):
    fasta = write_fasta(tmp_path / "big.fa", [(f"s{i}", "MKV") for i in range(5)])
    first = split_fasta(fasta, tmp_path / "parts", 2)
    stamps = [p.path.stat().st_mtime_ns for p in first]
    seen = []
    again = split_fasta(fasta, tmp_path / "parts", 2, lambda *rewrite: seen.append(rewrite))
    assert [p.rewritten for p in first] == [True] * 3
    assert [p.rewritten for p in again] == [False] * 3 and seen == []
    assert [p.path.stat().st_mtime_ns for p in again] == stamps
    write_fasta(fasta, [(f"s{i}", "MKV") for i in range(4)] + [("s4", "WWW")])
    changed = split_fasta(fasta, tmp_path / "parts", 2, lambda *rewrite: seen.append(rewrite))
    new_sha256 = hashlib.sha256(changed[2].path.read_bytes()).hexdigest()
    assert [p.rewritten for p in changed] == [False, False, True] and seen == [(3, new_sha256)]
    assert read_fasta(changed[2].path).records[0].sequence == b"WWW"
    with caplog.at_level(logging.WARNING, logger="fastesm_extract"):
        assert len(split_fasta(fasta, tmp_path / "parts", 5)) == 1
    assert says(caplog.text, "2 part files from an earlier split") and "output_3.fa" in caplog.text


def test_unusable_inputs_raise_fasta_error(tmp_path):
    (tmp_path / "empty.fa").write_text("")
    (tmp_path / "text.fa").write_text("no header here\n")
    (tmp_path / "bad.fa.gz").write_bytes(gzip.compress(b">a\nMK\n" * 100)[:30])
    for name in ["empty.fa", "text.fa", "bad.fa.gz", "missing.fa"]:
        with pytest.raises(FastaError, match=name):
            list(iter_parts(tmp_path / name, 10))
    with pytest.raises(ValueError):
        list(iter_parts(tmp_path / "text.fa", 0))


def test_a_changed_part_gets_a_fresh_output_and_the_others_are_skipped(
    tiny_model, tmp_path, caplog
):
    fasta = write_fasta(tmp_path / "big.fa", random_proteins(5, 5, 12, seed=3))
    parts, summary = extract_split(
        fasta, tmp_path / "out", 2, model=tiny_model, show_progress=False
    )
    assert summary.ok and summary.count("written") == 3 and len(parts) == 3
    records = random_proteins(5, 5, 12, seed=3)
    records[4] = ("replaced", "MKTAYIAK")
    write_fasta(fasta, records)
    parts, summary = extract_split(
        fasta, tmp_path / "out", 2, model=tiny_model, show_progress=False
    )
    assert [p.rewritten for p in parts] == [False, False, True]
    assert (summary.count("written"), summary.count("skipped")) == (1, 2)
    saved = torch.load(tmp_path / "out" / "output_3_ESM.pt", weights_only=True)
    assert saved["proteins"] == ["replaced"]
    with caplog.at_level(logging.WARNING, logger="fastesm_extract"):
        parts, summary = extract_split(
            fasta, tmp_path / "out", 5, model=tiny_model, show_progress=False
        )
    assert [p.rewritten for p in parts] == [True] and summary.count("written") == 1
    saved = torch.load(tmp_path / "out" / "output_1_ESM.pt", weights_only=True)
    assert saved["proteins"] == [record_id for record_id, _ in records]
    assert "part 1 changed; removing its old output" in caplog.text
    assert says(caplog.text, "2 outputs from an earlier split") and "output_3_ESM.pt" in caplog.text


def test_cli_split_usage_errors(tiny_checkpoint, tmp_path, capsys):
    fasta = write_fasta(tmp_path / "big.fa", [("a", "MK")])
    base = ["extract", "--model", str(tiny_checkpoint), "--device", "cpu", "-q"]
    out = ["-o", str(tmp_path / "out")]
    assert main([*base, str(fasta), "--split-every", "10"]) == EXIT_USAGE
    assert main([*base, str(fasta), str(fasta), *out, "--split-every", "10"]) == EXIT_USAGE
    assert "exactly one FASTA file and -o OUTDIR" in capsys.readouterr().err
    assert main([*base, str(fasta), *out, "--split-every", "0"]) == EXIT_USAGE
    assert main([*base, str(tmp_path), *out, "--split-every", "10"]) == EXIT_USAGE
    assert "is not a file" in capsys.readouterr().err
    (tmp_path / "text.fa").write_text("not fasta\n")
    code = main([*base, str(tmp_path / "text.fa"), *out, "--split-every", "10"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURES and "not FASTA" in err and "Traceback" not in err


def test_25000_records_split_embedded_resumed_and_merged(
    tiny_checkpoint, tiny_model, tmp_path, capsys
):
    """The VirNucPro recipe end to end: split + embed proteins, DNABERT-S (synthetic) on the
    nucleotide file split the same way, merge by folder."""
    records = random_proteins(25_000, 5, 20, seed=7)
    protein_fasta = write_fasta(tmp_path / "viral.identified_protein.fa", records)
    out = tmp_path / "protein"
    argv = [
        "extract",
        str(protein_fasta),
        "--split-every",
        "10000",
        "-o",
        str(out),
        "--model",
        str(tiny_checkpoint),
        "--device",
        "cpu",
        "--toks-per-batch",
        "16384",
        "-q",
    ]
    assert main(argv) == EXIT_OK
    assert says(
        capsys.readouterr().err, "3 written, 0 skipped, 0 failed files; 25000 records embedded"
    )
    assert sorted(p.name for p in (out / "parts").iterdir()) == [
        "output_1.fa",
        "output_2.fa",
        "output_3.fa",
    ]
    ids = [record_id for record_id, _ in records]
    expected_parts = [ids[:10_000], ids[10_000:20_000], ids[20_000:]]
    outputs = [out / f"output_{k}_ESM.pt" for k in (1, 2, 3)]
    saved = [torch.load(path, weights_only=True) for path in outputs]
    assert [s["proteins"] for s in saved] == expected_parts
    # Each embedding belongs to its ID: equal to the record embedded alone.
    for index in [0, 9_999, 10_000, 24_999]:
        single = write_fasta(tmp_path / "one.fa", [records[index]])
        _, alone = extract_fast_esm(single, model=tiny_model)
        part, row = divmod(index, 10_000)
        torch.testing.assert_close(saved[part]["data"][row], alone[0], atol=1e-5, rtol=0)

    stamps = [p.stat().st_mtime_ns for p in [*outputs, *(out / "parts").iterdir()]]
    assert main(argv) == EXIT_OK
    assert says(capsys.readouterr().err, "0 written, 3 skipped, 0 failed files")
    assert [p.stat().st_mtime_ns for p in [*outputs, *(out / "parts").iterdir()]] == stamps

    # Nucleotide file with the same IDs, split the same way; synthetic DNABERT-S outputs.
    nucleotide_fasta = write_fasta(
        tmp_path / "viral.identified_nucleotide.fa", [(i, "ACGT" * 5) for i in ids]
    )
    nucleotide_dir = tmp_path / "nucleotide"
    split_fasta(nucleotide_fasta, nucleotide_dir, 10_000)
    # 64 distinct 768-float rows, shared between records so that pickle stores each once and
    # the weights_only loader stays fast; row of record `prot_7_i` is i % 64.
    pool = torch.randn(64, 768, generator=torch.Generator().manual_seed(0))
    pool_rows = pool.tolist()
    for part in sorted(nucleotide_dir.glob("output_*.fa")):
        part_ids = [r.id for r in read_fasta(part).records]
        data = [
            {"label": i, "mean_representation": pool_rows[int(i.rsplit("_", 1)[1]) % 64]}
            for i in part_ids
        ]
        torch.save(
            {"nucleotide": part_ids, "data": data},
            nucleotide_dir / part.name.replace(".fa", "_DNABERT_S.pt"),
        )
    merged_dir = tmp_path / "merged"
    merge_argv = ["merge", str(nucleotide_dir), str(out), "-o", str(merged_dir)]
    assert main([*merge_argv, "--label", "viral", "--expect-dim", "32"]) == EXIT_OK
    assert says(capsys.readouterr().err, "3 written, 0 skipped, 0 failed")
    for k, part_ids in enumerate(expected_parts, start=1):
        merged = torch.load(merged_dir / f"output_{k}_merged.pt", weights_only=True)
        assert merged["ids"] == part_ids and merged["labels"] == [1]
        assert merged["data"].shape == (len(part_ids), 768 + 32)
        rows = torch.tensor([int(i.rsplit("_", 1)[1]) % 64 for i in part_ids])
        assert torch.equal(merged["data"][:, :768], pool[rows])
        assert torch.equal(merged["data"][:, 768:], torch.stack(saved[k - 1]["data"]))
