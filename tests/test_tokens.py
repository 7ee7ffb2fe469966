import random

import numpy as np
import pytest
from transformers import EsmTokenizer

from fastesm_extract.demo import ESM_VOCAB
from fastesm_extract.disk.fasta import clean_sequence
from fastesm_extract.model.tokens import (
    UNKNOWN_LETTER_AS_UNK,
    UNKNOWN_REFUSED,
    UNKNOWN_RUN_AS_ONE_UNK,
    EsmAlphabet,
    TokenizerMismatchError,
)


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


# ---------------------------------------------------------------- how unknown letters are treated


@pytest.fixture(scope="module")
def strict_tokenizer():
    """FastESM2_650's current tokenizer (the stand-in's copy of its behaviour): refuses J."""
    from fast_esm_checkpoint import load_modeling_module

    modeling = load_modeling_module()
    return modeling.build_esm_tokenizer(modeling.FastEsmTokenizer)


class OneUnkPerLetter:
    """A tokenizer that gives every unknown letter its own <unk> (no run collapsing)."""

    def __init__(self, inner, drop_unknown: bool = False):
        self.inner, self.drop_unknown = inner, drop_unknown
        self.cls_token_id, self.eos_token_id = inner.cls_token_id, inner.eos_token_id
        self.pad_token_id, self.unk_token_id = inner.pad_token_id, inner.unk_token_id

    def get_vocab(self):
        return self.inner.get_vocab()

    def __call__(self, text):
        vocab = self.get_vocab()
        ids = [vocab.get(letter, self.unk_token_id) for letter in text]
        if self.drop_unknown:
            ids = [i for i in ids if i != self.unk_token_id]
        return {"input_ids": [self.cls_token_id, *ids, self.eos_token_id]}


def random_sequences(letters: str, count: int = 300, seed: int = 11) -> list[bytes]:
    rng = random.Random(seed)
    return [
        "".join(rng.choice(letters) for _ in range(rng.randint(1, 40))).encode()
        for _ in range(count)
    ]


def test_lenient_tokenizer_is_recognised(alphabet):
    assert alphabet.unknown == UNKNOWN_RUN_AS_ONE_UNK
    assert alphabet.refused_letters(b"MJK") == b""


def test_strict_tokenizer_is_probed_without_failing(strict_tokenizer):
    alphabet = EsmAlphabet.from_tokenizer(strict_tokenizer)
    assert alphabet.unknown == UNKNOWN_REFUSED
    # Same ids as the tokenizer for everything it accepts.
    for sequence in random_sequences("ACDEFGHIKLMNPQRSTVWYXBUZO-."):
        assert alphabet.encode([sequence])[0].tolist() == reference_ids(strict_tokenizer, sequence)
    # Refused: exactly the characters the tokenizer raises on, whatever they are.
    for code in range(33, 127):
        text = chr(code).upper()
        try:
            strict_tokenizer(text)
            raises = False
        except KeyError:
            raises = True
        if text.isalpha() or text in "-.":
            assert bool(alphabet.refused_letters(text.encode())) == raises, text
    assert alphabet.refused_letters(b"MJKJJ") == b"JJJ"
    assert alphabet.refused_letters(b"MKT") == b""


def test_one_unk_per_letter_is_recognised(tokenizer):
    per_letter = OneUnkPerLetter(tokenizer)
    alphabet = EsmAlphabet.from_tokenizer(per_letter)
    assert alphabet.unknown == UNKNOWN_LETTER_AS_UNK
    assert alphabet.encode([b"MJJK"])[0].tolist() == [20, 3, 3, 15]
    for sequence in random_sequences("ACDEFGHIKLMNPQRSTVWYJ-."):
        assert (
            alphabet.encode([sequence])[0].tolist()
            == per_letter(sequence.decode())["input_ids"][1:-1]
        )


def test_a_tokenizer_failing_on_residues_or_unknowns_otherwise_is_a_mismatch(tokenizer):
    class Broken(OneUnkPerLetter):
        def __call__(self, text):
            raise KeyError(text)

    with pytest.raises(TokenizerMismatchError, match="fails on standard residues.*KeyError"):
        EsmAlphabet.from_tokenizer(Broken(tokenizer))
    with pytest.raises(TokenizerMismatchError, match="'JJMJ'"):
        EsmAlphabet.from_tokenizer(OneUnkPerLetter(tokenizer, drop_unknown=True))
