import os

import pytest
import torch

import fastesm_extract.disk.store as store
from fastesm_extract.disk.store import (
    embeddings_from_block,
    finite_rows,
    load_embeddings,
    save_embeddings_atomic,
    validate_block,
    validate_embeddings,
)
from fastesm_extract.errors import OutputError


def test_saved_output_has_exactly_two_keys_and_loads_with_weights_only(tmp_path):
    block = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    path = tmp_path / "x_ESM.pt"
    save_embeddings_atomic(path, ["a", "b", "c"], embeddings_from_block(block))
    content = torch.load(path, weights_only=True)
    assert set(content) == {"proteins", "data"}
    assert content["proteins"] == ["a", "b", "c"]
    assert [t.shape for t in content["data"]] == [torch.Size([4])] * 3
    assert all(t.dtype == torch.float32 for t in content["data"])
    assert torch.equal(torch.stack(content["data"]), block)
    assert load_embeddings(path, hidden_size=4)[0] == ["a", "b", "c"]
    assert [p.name for p in tmp_path.iterdir()] == ["x_ESM.pt"]  # no temporary left


def test_block_views_save_one_storage(tmp_path):
    block = torch.randn(1000, 64)
    views, separate = tmp_path / "views.pt", tmp_path / "separate.pt"
    save_embeddings_atomic(views, [str(i) for i in range(1000)], embeddings_from_block(block))
    save_embeddings_atomic(separate, [str(i) for i in range(1000)], [row.clone() for row in block])
    assert views.stat().st_size < separate.stat().st_size
    loaded = load_embeddings(views)[1]
    assert torch.equal(torch.stack(loaded), block)


def test_a_crash_while_writing_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "x_ESM.pt"
    save_embeddings_atomic(path, ["old"], [torch.zeros(4)])
    before = path.read_bytes()

    def crash(obj, handle, **options):
        handle.write(b"partial bytes")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.torch, "save", crash)
    with pytest.raises(OSError):
        save_embeddings_atomic(path, ["new"], [torch.ones(4)])
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["x_ESM.pt"]


def test_validation_names_each_problem():
    good = [torch.zeros(4), torch.ones(4)]
    assert validate_embeddings(["a", "b"], good, 4) == []
    assert validate_embeddings(["a"], good, 4) == ["1 proteins but 2 embeddings"]
    assert validate_embeddings(["a", "b"], good, 8) == [
        "a: 4 dimensions, expected 8",
        "b: 4 dimensions, expected 8",
    ]
    nan = [torch.zeros(4), torch.tensor([0.0, float("nan"), 0, 0])]
    assert validate_embeddings(["a", "b"], nan) == ["b: embedding has NaN or infinite values"]
    assert "not 1-D float32" in validate_embeddings(["a"], [torch.zeros(4, dtype=torch.half)])[0]
    assert validate_embeddings("a", good) == ["'proteins' is not a list of strings"]
    mixed = [torch.zeros(4), torch.zeros(5)]
    assert validate_embeddings(["a", "b"], mixed) == ["embeddings have different sizes: [4, 5]"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "cannot be loaded"), (b"not a zip", "cannot be loaded"), (b"junk", "cannot be loaded")],
)
def test_unloadable_outputs_raise_output_error(tmp_path, content, message):
    path = tmp_path / "x_ESM.pt"
    path.write_bytes(content)
    with pytest.raises(OutputError, match=message):
        load_embeddings(path)


def test_truncated_output_raises_output_error(tmp_path):
    path = tmp_path / "x_ESM.pt"
    save_embeddings_atomic(path, ["a"] * 50, [torch.zeros(64)] * 50)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(OutputError, match="cannot be loaded"):
        load_embeddings(path)


def test_wrong_keys_are_reported(tmp_path):
    path = tmp_path / "x_ESM.pt"
    torch.save({"ids": [], "data": []}, path)
    with pytest.raises(OutputError, match="expected keys proteins, data"):
        load_embeddings(path)


def test_a_malicious_pickle_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "x_ESM.pt"
    torch.save({"proteins": ["a"], "data": [Evil()]}, path)
    with pytest.raises(OutputError, match="cannot be loaded"):
        load_embeddings(path)
    assert not marker.exists()


def test_finite_rows_screen_is_exact():
    block = torch.zeros(5, 4)
    block[1, 2] = float("nan")
    block[3, 0] = float("-inf")
    block[4] = torch.tensor([3e38, 3e38, -1.0, 0.0])  # the sum overflows, the values are finite
    assert finite_rows(block).tolist() == [True, False, True, False, True]


def test_validate_block_checks_shape_dtype_count_and_values():
    block = torch.zeros(2, 4)
    assert validate_block(["a", "b"], block, 4) == []
    assert validate_block(["a", "b"], block, 8) == ["4 dimensions, expected 8"]
    assert validate_block(["a"], block, 4) == ["1 proteins but 2 embeddings"]
    assert "not (n, d) float32" in validate_block(["a", "b"], block.half(), 4)[0]
    block[1, 0] = float("inf")
    assert validate_block(["a", "b"], block, 4) == ["b: embedding has NaN or infinite values"]


def test_saving_pauses_garbage_collection_and_restores_it(tmp_path, monkeypatch):
    import gc

    seen = []
    real_save = store.torch.save

    def spy(obj, handle, **options):
        seen.append(gc.isenabled())
        real_save(obj, handle, **options)

    monkeypatch.setattr(store.torch, "save", spy)
    assert gc.isenabled()
    save_embeddings_atomic(tmp_path / "a_ESM.pt", ["a"], [torch.zeros(4)])
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        save_embeddings_atomic(tmp_path / "b_ESM.pt", ["a"], [torch.zeros(4)])
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
