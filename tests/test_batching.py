import random

import numpy as np
import torch

from fastesm_extract.extract.batching import collate, make_batches
from fastesm_extract.model.tokens import EsmAlphabet

ALPHABET = EsmAlphabet(cls_id=0, eos_id=2, pad_id=1, unk_id=3, byte_to_id=np.zeros(256, np.int64))


def padded_tokens(counts, batch):
    return max(counts[i] for i in batch) * len(batch)


def test_every_batch_respects_the_padded_token_budget():
    rng = random.Random(0)
    counts = [rng.randint(3, 400) for _ in range(1000)]
    batches = make_batches(counts, 2048)
    assert sorted(i for b in batches for i in b) == list(range(1000))  # each index once
    assert all(padded_tokens(counts, b) <= 2048 for b in batches)
    # Greedy: adding the next sequence (the next batch's first) would break the budget.
    for batch, following in zip(batches, batches[1:]):
        assert padded_tokens(counts, batch + following[:1]) > 2048


def test_sequences_are_grouped_shortest_first_with_ties_in_file_order():
    counts = [10, 5, 10, 5, 7]
    assert make_batches(counts, 20) == [[1, 3], [4, 0], [2]]
    assert make_batches(counts, 1000) == [[1, 3, 4, 0, 2]]


def test_a_sequence_longer_than_the_budget_goes_alone():
    counts = [100, 5000, 100, 3000]
    batches = make_batches(counts, 2048)
    assert batches == [[0, 2], [3], [1]]


def test_collate_builds_cls_residues_eos_padding():
    tokens = [np.array([20, 15]), np.array([4]), np.array([5, 6, 7])]
    batch = collate(ALPHABET, tokens, [2, 0])
    assert batch.rows == [2, 0]
    assert batch.row_index.tolist() == [2, 0]
    assert batch.input_ids.dtype == torch.int64
    assert batch.input_ids.tolist() == [[0, 5, 6, 7, 2], [0, 20, 15, 2, 1]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert batch.residue_mask.shape == (2, 1, 5) and batch.residue_mask.dtype == torch.float32
    assert batch.residue_mask.squeeze(1).tolist() == [[0, 1, 1, 1, 0], [0, 1, 1, 0, 0]]
    assert batch.residue_counts.tolist() == [[3.0], [2.0]]
