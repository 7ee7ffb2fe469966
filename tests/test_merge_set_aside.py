"""A failing pair's old merged file is not left looking current, and nothing is written over:
a merged file the tool cannot rebuild (no manifest of its own) is moved to
`X_merged.pt.outdated` once; an existing `.outdated` (set aside earlier, or the user's) is
kept as it is; the tool's own merged file (its manifest describes it) is removed, being a
merge of recorded inputs. Checked by content (hashlib), not by the package's own helpers."""

import torch
from helpers import sha256_hex
from test_merge import random_block, write_dnabert_s, write_esm

from fastesm_extract.cli.main import main
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK

IDS = [f"p{i}" for i in range(4)]


def contents(folder):
    return {p.name: sha256_hex(p) for p in sorted(folder.iterdir())}


def good_pair(folder, stem):
    folder.mkdir(exist_ok=True)
    write_dnabert_s(folder / f"{stem}_DNABERT_S.pt", IDS, random_block(4, 768, 1))
    write_esm(folder / f"{stem}_ESM.pt", IDS, random_block(4, 16, 2))


def break_pair(folder, stem):
    """The ESM file loses a record: the pair no longer merges (an ID on one side only)."""
    write_esm(folder / f"{stem}_ESM.pt", IDS[:3], random_block(3, 16, 3))


def old_merged(path, fill=1.0):
    """A merged file as the original pipeline wrote it (ESM2-3B: 3328 wide, no manifest)."""
    torch.save({"ids": IDS, "data": torch.full((4, 3328), fill)}, path)


def merge(folder, out):
    return main(["merge", str(folder), "-o", str(out)])


def test_an_unrebuildable_merged_file_is_set_aside_once_and_the_first_is_kept(tmp_path, capsys):
    folder, out = tmp_path / "f", tmp_path / "m"
    good_pair(folder, "output_1")
    out.mkdir()
    old_merged(out / "output_1_merged.pt")
    original = sha256_hex(out / "output_1_merged.pt")
    break_pair(folder, "output_1")
    assert merge(folder, out) == EXIT_FAILURES
    err = capsys.readouterr().err
    assert "the old output_1_merged.pt was moved to output_1_merged.pt.outdated" in err
    assert contents(out) == {"output_1_merged.pt.outdated": original}

    # Fixed, merged with a manifest, then broken again: the tool's own merged file is
    # removed (a merge of recorded inputs), the first set-aside file stays as it was.
    good_pair(folder, "output_1")
    assert merge(folder, out) == EXIT_OK
    assert sorted(contents(out)) == [
        "output_1_merged.pt",
        "output_1_merged.pt.json",
        "output_1_merged.pt.outdated",
    ]
    break_pair(folder, "output_1")
    for _ in range(2):  # and a rerun adds nothing
        assert merge(folder, out) == EXIT_FAILURES
        assert contents(out) == {"output_1_merged.pt.outdated": original}
    err = capsys.readouterr().err
    assert "the old output_1_merged.pt (this tool's merge of earlier inputs) was removed" in err
    assert err.count("output_1_merged.pt.outdated") == 0


def test_an_existing_outdated_file_is_never_written_over(tmp_path, capsys):
    """The user's own `.outdated` (or one set aside earlier) and a merged file without
    manifest: both kept byte for byte, and the message says which is where."""
    folder, out = tmp_path / "f", tmp_path / "m"
    good_pair(folder, "output_2")
    out.mkdir()
    (out / "output_2_merged.pt.outdated").write_bytes(b"the user's own file")
    old_merged(out / "output_2_merged.pt", fill=2.0)
    before = contents(out)
    break_pair(folder, "output_2")
    for _ in range(2):
        assert merge(folder, out) == EXIT_FAILURES
        assert contents(out) == before
    err = capsys.readouterr().err
    assert (
        "the old output_2_merged.pt was left in place: output_2_merged.pt.outdated already "
        "exists and is kept, never written over"
    ) in err


def test_the_tools_own_merged_file_is_removed_and_a_users_outdated_kept(tmp_path, capsys):
    folder, out = tmp_path / "f", tmp_path / "m"
    good_pair(folder, "output_3")
    assert merge(folder, out) == EXIT_OK
    (out / "output_3_merged.pt.outdated").write_bytes(b"kept")
    mine = sha256_hex(out / "output_3_merged.pt.outdated")
    break_pair(folder, "output_3")
    assert merge(folder, out) == EXIT_FAILURES
    assert contents(out) == {"output_3_merged.pt.outdated": mine}
    assert "(this tool's merge of earlier inputs) was removed" in capsys.readouterr().err


def test_a_merged_file_edited_after_the_tool_wrote_it_is_set_aside_not_removed(tmp_path):
    """Its manifest no longer describes it: not the tool's to remove."""
    folder, out = tmp_path / "f", tmp_path / "m"
    good_pair(folder, "output_4")
    assert merge(folder, out) == EXIT_OK
    old_merged(out / "output_4_merged.pt", fill=4.0)  # written over by someone else
    edited = sha256_hex(out / "output_4_merged.pt")
    break_pair(folder, "output_4")
    assert merge(folder, out) == EXIT_FAILURES
    assert contents(out) == {"output_4_merged.pt.outdated": edited}
