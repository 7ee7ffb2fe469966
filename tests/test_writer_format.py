"""The one-pass writer (`disk/esm_pickle.py`) writes torch.save's own file, byte for byte but
for torch's random `.data/serialization_id`; torch.save itself and torch.load are the oracles."""

import hashlib
import zipfile

import pytest
import torch

from fastesm_extract.disk.store import embeddings_from_block, save_embeddings_atomic

SERIALIZATION_ID = ".data/serialization_id"


def _entries(path) -> list[tuple[str, int, str]]:
    """(name, offset, sha256) of each zip record but torch's random serialization id."""
    with zipfile.ZipFile(path) as archive:
        return [
            (entry.filename, entry.header_offset, hashlib.sha256(archive.read(entry)).hexdigest())
            for entry in archive.infolist()
            if not entry.filename.endswith(SERIALIZATION_ID)
        ]


def _save_both(tmp_path, proteins, data):
    """Our file and torch.save's, each written to an open file (as `atomic_write` does)."""
    ours, theirs = tmp_path / "ours_ESM.pt", tmp_path / "theirs.pt"
    save_embeddings_atomic(ours, proteins, data)
    with open(theirs, "wb") as handle:
        torch.save({"proteins": proteins, "data": data}, handle)
    return ours, theirs


def _assert_as_torch_save(tmp_path, proteins, data):
    ours, theirs = _save_both(tmp_path, proteins, data)
    assert _entries(ours) == _entries(theirs)
    assert ours.stat().st_size == theirs.stat().st_size
    loaded, expected = (torch.load(p, weights_only=True) for p in (ours, theirs))
    assert list(loaded) == ["proteins", "data"]
    assert loaded["proteins"] == expected["proteins"] == list(proteins)
    assert len(loaded["data"]) == len(data)
    for got, want, original in zip(loaded["data"], expected["data"], data):
        assert got.dtype == want.dtype and got.shape == want.shape == original.shape
        assert torch.equal(got, want) and torch.equal(got, original)


def _block(rows: int, dims: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, dims, generator=torch.Generator().manual_seed(seed))


# 2,500 rows cross pickle's 1,000-item batches and the 256 one-byte memo indices;
# 1,001 leaves a batch of one.
@pytest.mark.parametrize("rows", [1, 2, 3, 255, 1001, 2500])
def test_block_views_are_written_as_torch_save_writes_them(tmp_path, rows):
    ids = [f"read_{i}_42_chunk_1R2" for i in range(rows)]
    _assert_as_torch_save(tmp_path, ids, embeddings_from_block(_block(rows, 1280)))


@pytest.mark.parametrize(
    "case",
    ["empty", "separate", "same tensor", "mixed sizes", "strided views", "many storages"],
)
def test_other_lists_of_rows_are_written_as_torch_save_writes_them(tmp_path, case):
    block = _block(300, 16)
    data = {
        "empty": [],
        "separate": [row.clone() for row in block[:5]],
        "same tensor": [block[0]] * 50,
        "mixed sizes": [torch.zeros(8), torch.ones(9)],
        "strided views": list(_block(3, 40)[:, ::2].unbind(0)),
        "many storages": [row.clone() for row in block],
    }[case]
    _assert_as_torch_save(tmp_path, [f"p{i}" for i in range(len(data))], data)


def test_odd_ids_are_written_as_torch_save_writes_them(tmp_path):
    # Unicode, an unpaired surrogate, a duplicate, and strings torch.save's own persistent ids
    # and keys hold ("0" is even the same object as its first storage key).
    ids = ["é_ü", "蛋白", "x\udcff", "dup", "dup", "0", "storage", "cpu", "proteins", "data", ""]
    _assert_as_torch_save(tmp_path, ids, embeddings_from_block(_block(len(ids), 1280)))


@pytest.mark.parametrize("case", ["2-D rows", "requires grad", "float64", "negative view"])
def test_rows_the_one_pass_does_not_cover_are_pickled_by_torch_save(tmp_path, case):
    data = {
        "2-D rows": [_block(2, 3), _block(2, 3, 1)],
        "requires grad": [_block(1, 4)[0].requires_grad_()],
        "float64": [_block(1, 4)[0].double()],
        "negative view": [torch._neg_view(_block(1, 4)[0])],
    }[case]
    ours, theirs = _save_both(tmp_path, [f"p{i}" for i in range(len(data))], data)
    assert _entries(ours) == _entries(theirs)


def test_rows_are_not_pickled_one_by_one(tmp_path, monkeypatch):
    def refuse(self, protocol):
        raise AssertionError("a tensor pickled through __reduce_ex__")

    monkeypatch.setattr(torch.Tensor, "__reduce_ex__", refuse)
    block = _block(3000, 32)
    save_embeddings_atomic(tmp_path / "x_ESM.pt", [str(i) for i in range(3000)], list(block))
    monkeypatch.undo()
    assert torch.equal(torch.stack(torch.load(tmp_path / "x_ESM.pt")["data"]), block)
