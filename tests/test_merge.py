"""merge.py: VirNucPro's merge_data() reproduced, its missing-ID bug fixed, and the CLI."""

import pytest
import torch
from helpers import says
from test_virnucpro_format import SETS, merge_data

from fastesm_extract.cli.main import main
from fastesm_extract.disk.store import atomic_write, save_embeddings_atomic
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK, EXIT_USAGE, MergeError
from fastesm_extract.merge.folders import merge_folder
from fastesm_extract.merge.pairs import merge_embeddings, merge_files


def write_dnabert_s(path, ids, block):
    """A DNABERT-S file in the format of VirNucPro's extract_DNABERT_S() (lists of floats)."""
    data = [{"label": i, "mean_representation": row} for i, row in zip(ids, block.tolist())]
    torch.save({"nucleotide": list(ids), "data": data}, path)
    return path


def write_esm(path, ids, block):
    save_embeddings_atomic(path, list(ids), list(block.unbind(0)))
    return path


def random_block(rows, width, seed):
    return torch.randn(rows, width, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def pair(tmp_path):
    """DNABERT-S a..e and ESM (hidden 16) for e..a: same IDs, other order."""
    ids = list("abcde")
    nucleotide, protein = random_block(5, 768, 1), random_block(5, 16, 2)
    dnabert = write_dnabert_s(tmp_path / "x_DNABERT_S.pt", ids, nucleotide)
    esm = write_esm(tmp_path / "x_ESM.pt", ids[::-1], protein.flip(0))
    return dnabert, esm, ids, nucleotide, protein


@pytest.mark.parametrize("name", SETS)
def test_merge_is_bitwise_equal_to_the_original_merged_file(virnucpro_fixtures, tmp_path, name):
    folder = virnucpro_fixtures / name
    original = torch.load(folder / "output_1_merged.pt", weights_only=True)
    result = merge_files(
        folder / "output_1_DNABERT_S.pt",
        folder / "output_1_ESM.pt",
        tmp_path / "m.pt",
        expect_dim=2560,
    )
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert sorted(saved) == sorted(original) == ["data", "ids"]
    assert saved["ids"] == original["ids"] == result.ids
    assert saved["data"].dtype == torch.float32 and saved["data"].shape == (4, 768 + 2560)
    assert torch.equal(saved["data"], original["data"])
    assert result.complete and result.hidden_size == 2560


def test_rows_follow_dnabert_s_order_and_concatenate_both_sides(pair):
    dnabert, esm, ids, nucleotide, protein = pair
    result = merge_embeddings(dnabert, esm)
    assert result.ids == ids
    assert torch.equal(result.data, torch.cat((nucleotide, protein), dim=1))
    reference = merge_data(
        torch.load(dnabert, weights_only=True), torch.load(esm, weights_only=True)
    )
    assert torch.equal(result.data, reference["data"]) and result.ids == reference["ids"]


def test_duplicate_ids_use_the_last_embedding_as_the_original(tmp_path, caplog):
    nucleotide, protein = random_block(4, 768, 3), random_block(4, 8, 4)
    dnabert = write_dnabert_s(tmp_path / "d.pt", ["a", "b", "a", "c"], nucleotide)
    esm = write_esm(tmp_path / "e.pt", ["c", "a", "b", "a"], protein)
    result = merge_embeddings(dnabert, esm)
    reference = merge_data(
        torch.load(dnabert, weights_only=True), torch.load(esm, weights_only=True)
    )
    assert result.ids == reference["ids"] == ["a", "b", "a", "c"]
    assert torch.equal(result.data, reference["data"])
    assert torch.equal(result.data[0], torch.cat((nucleotide[2], protein[3])))
    assert torch.equal(result.data[2], result.data[0])
    assert "duplicate IDs" in caplog.text


@pytest.mark.parametrize(("label", "expected"), [("viral", [1]), ("host", [0]), (None, None)])
def test_labels_are_a_single_element_list_as_in_the_original(pair, tmp_path, label, expected):
    dnabert, esm, *_ = pair
    result = merge_files(dnabert, esm, tmp_path / "m.pt", label=label)
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    assert result.labels == expected
    assert saved.get("labels") == expected
    assert sorted(saved) == (["data", "ids", "labels"] if label else ["data", "ids"])


def test_unknown_label_is_refused(pair):
    with pytest.raises(ValueError, match="viral"):
        merge_embeddings(pair[0], pair[1], label="bacteria")


def test_missing_ids_are_an_error_that_lists_them(tmp_path):
    nucleotide, protein = random_block(4, 768, 5), random_block(3, 8, 6)
    dnabert = write_dnabert_s(tmp_path / "d.pt", ["a", "b", "c", "d"], nucleotide)
    esm = write_esm(tmp_path / "e.pt", ["d", "b", "z"], protein)
    with pytest.raises(MergeError) as error:
        merge_embeddings(dnabert, esm)
    message = str(error.value)
    assert says(message, "2 IDs of") and "no ESM embedding" in message and "a, c" in message
    assert says(message, "1 IDs of") and "no DNABERT-S embedding" in message and "z" in message
    assert "--allow-missing" in message


def test_allow_missing_keeps_only_merged_rows_lined_up(tmp_path):
    nucleotide, protein = random_block(4, 768, 5), random_block(3, 8, 6)
    dnabert = write_dnabert_s(tmp_path / "d.pt", ["a", "b", "c", "d"], nucleotide)
    esm = write_esm(tmp_path / "e.pt", ["d", "b", "z"], protein)
    result = merge_files(dnabert, esm, tmp_path / "m.pt", allow_missing=True)
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    # The original would list a, b, c, d with only two rows of data.
    assert saved["ids"] == result.ids == ["b", "d"]
    assert saved["data"].shape == (2, 776)
    assert torch.equal(saved["data"][0], torch.cat((nucleotide[1], protein[1])))
    assert torch.equal(saved["data"][1], torch.cat((nucleotide[3], protein[0])))
    assert result.missing_in_esm == ["a", "c"] and result.missing_in_dnabert_s == ["z"]
    assert not result.complete


def test_no_ids_in_common_is_an_error_even_when_missing_is_allowed(tmp_path):
    dnabert = write_dnabert_s(tmp_path / "d.pt", ["a"], random_block(1, 768, 0))
    esm = write_esm(tmp_path / "e.pt", ["b"], random_block(1, 8, 0))
    with pytest.raises(MergeError, match="no IDs in common"):
        merge_embeddings(dnabert, esm, allow_missing=True)


def test_dimension_errors_are_clear(tmp_path, pair):
    dnabert, esm, ids, *_ = pair
    small = write_dnabert_s(tmp_path / "small.pt", ids, random_block(5, 512, 0))
    with pytest.raises(MergeError, match="must have 768 dimensions, a has 512"):
        merge_embeddings(small, esm)
    esm3b = write_esm(tmp_path / "3b_ESM.pt", ids, random_block(5, 2560, 0))
    with pytest.raises(MergeError) as error:
        merge_embeddings(dnabert, esm3b, expect_dim=1280)
    assert "has 2560-dim embeddings (ESM2-3B?), expected 1280" in str(error.value)
    assert merge_embeddings(dnabert, esm3b, expect_dim=2560).data.shape == (5, 768 + 2560)
    mixed = tmp_path / "mixed_ESM.pt"
    save_embeddings_atomic(mixed, ["a", "b"], [torch.zeros(8), torch.zeros(9)])
    with pytest.raises(MergeError, match="different sizes"):
        merge_embeddings(dnabert, mixed, allow_missing=True)


def test_wrong_files_are_named_in_the_error(tmp_path, pair):
    dnabert, esm, *_ = pair
    with pytest.raises(MergeError, match="give the DNABERT-S file first"):
        merge_embeddings(esm, dnabert)
    (tmp_path / "junk.pt").write_bytes(b"junk")  # torch.load raises struct.error on this
    with pytest.raises(MergeError, match="junk.pt cannot be loaded"):
        merge_embeddings(tmp_path / "junk.pt", esm)
    with pytest.raises(MergeError, match="not an _ESM.pt file"):
        merge_embeddings(dnabert, dnabert)
    torch.save(
        {"nucleotide": ["a"], "data": [{"label": "a", "mean_representation": ["x"] * 768}]},
        tmp_path / "text.pt",
    )
    with pytest.raises(MergeError, match="not numbers"):
        merge_embeddings(tmp_path / "text.pt", esm)
    nan = random_block(5, 768, 0)
    nan[2, 5] = float("nan")
    with pytest.raises(MergeError, match="NaN or infinite values: c"):
        merge_embeddings(write_dnabert_s(tmp_path / "nan.pt", list("abcde"), nan), esm)


def test_atomic_write_leaves_nothing_when_the_write_fails(tmp_path):
    def fail(handle):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "m.pt", fail)
    assert list(tmp_path.iterdir()) == []


def make_folder_inputs(tmp_path):
    """dna/ and prot/: pairs output_1 and sub/output_2, DNABERT-S-only output_3, ESM-only 4."""
    dna, prot = tmp_path / "dna", tmp_path / "prot"
    (dna / "sub").mkdir(parents=True)
    (prot / "sub").mkdir(parents=True)
    for index, stem in enumerate(["output_1", "sub/output_2"]):
        ids = [f"r{index}_{i}" for i in range(3)]
        write_dnabert_s(dna / f"{stem}_DNABERT_S.pt", ids, random_block(3, 768, index))
        write_esm(prot / f"{stem}_ESM.pt", ids[::-1], random_block(3, 8, 10 + index))
    write_dnabert_s(dna / "output_3_DNABERT_S.pt", ["x"], random_block(1, 768, 0))
    write_esm(prot / "output_4_ESM.pt", ["y"], random_block(1, 8, 0))
    return dna, prot


def test_folder_merge_pairs_by_name_and_keeps_layout(tmp_path):
    dna, prot = make_folder_inputs(tmp_path)
    outcomes = merge_folder(dna, prot, tmp_path / "out", label="host")
    status = {(o.dnabert_s or o.esm).name: o.status for o in outcomes}
    assert status == {
        "output_1_DNABERT_S.pt": "written",
        "output_2_DNABERT_S.pt": "written",
        "output_3_DNABERT_S.pt": "failed",
        "output_4_ESM.pt": "failed",
    }
    for stem in ["output_1", "sub/output_2"]:
        saved = torch.load(tmp_path / "out" / f"{stem}_merged.pt", weights_only=True)
        expected = merge_files(
            dna / f"{stem}_DNABERT_S.pt", prot / f"{stem}_ESM.pt", tmp_path / "ref.pt"
        )
        assert saved["ids"] == expected.ids and torch.equal(saved["data"], expected.data)
        assert saved["labels"] == [0]
    assert not (tmp_path / "out" / "output_3_merged.pt").exists()
    again = merge_folder(dna, prot, tmp_path / "out", label="host", allow_missing=True)
    assert sorted(o.status for o in again) == ["skipped"] * 4
    relabelled = merge_folder(dna, prot, tmp_path / "out", label="viral", allow_missing=True)
    assert sorted(o.status for o in relabelled) == ["skipped", "skipped", "written", "written"]


def test_folder_merge_defaults_to_one_folder_holding_both(tmp_path):
    write_dnabert_s(tmp_path / "output_1_DNABERT_S.pt", ["a"], random_block(1, 768, 0))
    write_esm(tmp_path / "output_1_ESM.pt", ["a"], random_block(1, 8, 0))
    outcomes = merge_folder(tmp_path, None, tmp_path / "merged")
    assert [o.status for o in outcomes] == ["written"]
    assert (tmp_path / "merged" / "output_1_merged.pt").is_file()
    with pytest.raises(MergeError, match="no \\*_DNABERT_S.pt files"):
        merge_folder(tmp_path / "merged", None, tmp_path / "x")


def test_cli_merge_files_exit_codes_and_messages(pair, tmp_path, capsys):
    dnabert, esm, *_ = pair
    out = tmp_path / "m.pt"
    assert main(["merge", str(dnabert), str(esm), "-o", str(out), "--label", "viral"]) == EXIT_OK
    assert torch.load(out, weights_only=True)["labels"] == [1]
    assert says(capsys.readouterr().err, "5 rows x 784")
    (tmp_path / "outdir").mkdir()
    assert main(["merge", str(dnabert), str(esm), "-o", str(tmp_path / "outdir")]) == EXIT_OK
    assert (tmp_path / "outdir" / "x_merged.pt").is_file()
    code = main(["merge", str(dnabert), str(esm), "-o", str(out), "--expect-dim", "1280"])
    err = capsys.readouterr().err
    assert code == EXIT_FAILURES
    assert says(err, "16-dim embeddings, expected 1280") and "Traceback" not in err
    assert main(["merge", str(tmp_path / "nope.pt"), str(esm), "-o", str(out)]) == EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
    assert main(["merge", str(dnabert), "-o", str(out)]) == EXIT_USAGE


def test_cli_merge_missing_ids_fail_unless_allowed(tmp_path, capsys):
    dnabert = write_dnabert_s(tmp_path / "d.pt", ["a", "b", "c"], random_block(3, 768, 0))
    esm = write_esm(tmp_path / "e.pt", ["c", "a"], random_block(2, 8, 0))
    out = tmp_path / "m.pt"
    assert main(["merge", str(dnabert), str(esm), "-o", str(out)]) == EXIT_FAILURES
    err = capsys.readouterr().err
    assert says(err, "1 IDs of") and ": b" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["merge", str(dnabert), str(esm), "-o", str(out), "--allow-missing"]) == EXIT_OK
    assert says(capsys.readouterr().err, "1 IDs on one side only left out")
    assert torch.load(out, weights_only=True)["ids"] == ["a", "c"]


def test_cli_merge_folders(tmp_path, capsys):
    dna, prot = make_folder_inputs(tmp_path)
    out = tmp_path / "out"
    assert main(["merge", str(dna), str(prot), "-o", str(out), "-q"]) == EXIT_FAILURES
    err = capsys.readouterr().err
    assert says(err, "2 written, 0 skipped, 2 failed")
    assert "output_3_DNABERT_S.pt has no ESM partner" in err
    assert "output_4_ESM.pt has no DNABERT-S partner" in err
    assert main(["merge", str(dna), str(prot), "-o", str(out), "--allow-missing"]) == EXIT_OK
    assert says(capsys.readouterr().err, "0 written, 4 skipped, 0 failed")
    assert main(["merge", str(dna), str(dna / "output_1_DNABERT_S.pt"), "-o", str(out)]) == 2


def test_dnabert_s_vectors_stored_as_tensors_are_accepted(pair, tmp_path):
    dnabert, esm, ids, nucleotide, protein = pair
    as_tensors = tmp_path / "t.pt"
    data = [{"label": i, "mean_representation": row} for i, row in zip(ids, nucleotide)]
    torch.save({"nucleotide": ids, "data": data}, as_tensors)
    assert torch.equal(merge_embeddings(as_tensors, esm).data, merge_embeddings(dnabert, esm).data)
