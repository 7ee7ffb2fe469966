import random

import numpy as np
import pytest
from transformers import EsmTokenizer

from fastesm_extract.demo import ESM_VOCAB
from fastesm_extract.fasta import clean_sequence
from fastesm_extract.tokens import EsmAlphabet, TokenizerMismatchError


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(ESM_VOCAB) + "\n")
    return EsmTokenizer(str(vocab))


@pytest.fixture(scope="module")
def alphabet(tokenizer):
    return EsmAlphabet.from_tokenizer(tokenizer)


def reference_ids(tokenizer, sequence: bytes) -> list[int]:
    return tokenizer(sequence.decode())["input_ids"][1:-1]


SPECIAL_CASES = [
    b"MKTL",
    b"mktlaag",
    b"MxbuzoK",
    b"XBUZO",
    b"J",
    b"JJ",
    b"JJJJ",
    b"MJJK",
    b"JMJ",
    b"J-J",
    b"M-.K",
    b"--..",
    b"MJ.J",
    b"jjKjj",
    b"ACDEFGHIKLMNPQRSTVWY",
    b"M*",
]


@pytest.mark.parametrize("raw", SPECIAL_CASES)
def test_same_ids_as_esm_tokenizer_for_accepted_sequences(tokenizer, alphabet, raw):
    sequence = clean_sequence(raw)
    ours = alphabet.encode([sequence])[0]
    assert ours.dtype == np.int64
    assert ours.tolist() == reference_ids(tokenizer, sequence)


def test_runs_of_unknown_letters_collapse_like_esm_tokenizer(alphabet):
    unk = alphabet.unk_id
    assert alphabet.encode([b"MJJJK"])[0].tolist() == [20, unk, 15]
    # Runs never cross a sequence boundary in a vectorized call.
    assert [ids.tolist() for ids in alphabet.encode([b"MJ", b"JK", b"J"])] == [
        [20, unk],
        [unk, 15],
        [unk],
    ]


def test_random_sequences_match_esm_tokenizer_in_one_vectorized_call(tokenizer, alphabet):
    rng = random.Random(7)
    letters = "ACDEFGHIKLMNPQRSTVWYXBUZOJ-.acdejxz"
    raw = [
        "".join(rng.choice(letters) for _ in range(rng.randint(1, 60))).encode() for _ in range(400)
    ]
    sequences = [clean_sequence(s) for s in raw]
    ours = alphabet.encode(sequences)
    assert len(ours) == len(sequences)
    for sequence, ids in zip(sequences, ours):
        assert ids.tolist() == reference_ids(tokenizer, sequence), sequence


def test_truncation_keeps_the_first_residues(alphabet):
    ids = alphabet.encode([b"MKTLA", b"MK"], truncation_seq_length=3)
    assert [x.tolist() for x in ids] == [[20, 15, 11], [20, 15]]


def test_special_token_ids_come_from_the_tokenizer(alphabet):
    assert (alphabet.cls_id, alphabet.pad_id, alphabet.eos_id, alphabet.unk_id) == (0, 1, 2, 3)


def test_a_tokenizer_that_is_not_one_character_per_residue_is_refused(tmp_path):
    vocab = [t for t in ESM_VOCAB if t != "K"] + ["K"]  # K moved: ids differ from ours
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    odd = EsmTokenizer(str(tmp_path / "vocab.txt"))
    alphabet = EsmAlphabet.from_tokenizer(odd)  # still consistent: built from its vocab
    assert alphabet.encode([b"K"])[0].tolist() == [odd.convert_tokens_to_ids("K")]

    class Mangled:
        def __init__(self, inner):
            self.inner = inner
            self.cls_token_id, self.eos_token_id = inner.cls_token_id, inner.eos_token_id
            self.pad_token_id, self.unk_token_id = inner.pad_token_id, inner.unk_token_id

        def get_vocab(self):
            return self.inner.get_vocab()

        def __call__(self, text):
            return {"input_ids": self.inner(text.lower())["input_ids"]}

    with pytest.raises(TokenizerMismatchError, match="not a one-character"):
        EsmAlphabet.from_tokenizer(Mangled(odd))
