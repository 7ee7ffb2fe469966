"""End to end through the CLI with both kinds of checkpoint tokenizer.

Strict (FastESM2_650's current FastEsmTokenizer, fair-esm): a record holding a letter outside
the vocabulary fails alone as invalid_character and the run goes on. Lenient (EsmTokenizer):
such letters become <unk> and every record is embedded.
"""

import shutil

import pytest
import torch
from fast_esm_checkpoint import build_fast_esm_checkpoint
from helpers import says

from fastesm_extract.cli.main import main
from fastesm_extract.errors import EXIT_FAILURES, EXIT_OK, EXIT_USAGE

RECORDS = (
    ">plain\nMKTAYIAKQR\n"
    ">x_is_known\nMKXBZUOLA\n"
    ">j_inside\nMKTJAYIA\n"
    ">j_lower\nmktjjayia\n"
    ">j_only\nJ\n"
    ">j_past_truncation\nMKTAYJ\n"
    ">gaps\nMK-T.AY\n"
)
REFUSED = ["j_inside", "j_lower", "j_only", "j_past_truncation"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """The same weights behind a strict and a lenient tokenizer."""
    root = tmp_path_factory.mktemp("kinds")
    strict = build_fast_esm_checkpoint(root / "strict", hidden_size=32, seed=4)
    lenient = build_fast_esm_checkpoint(
        root / "lenient", hidden_size=32, seed=4, strict_tokenizer=False
    )
    return strict, lenient


def run(checkpoint, tmp_path, name: str, *extra: str) -> int:
    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / "p.fa").write_text(RECORDS)
    out = tmp_path / name
    return main(
        [
            "extract",
            str(tmp_path / "in" / "p.fa"),
            "-o",
            str(out),
            "--model",
            str(checkpoint),
            "--device",
            "cpu",
            "-q",
            *extra,
        ]
    )


def test_strict_tokenizer_fails_exactly_the_records_it_refuses(checkpoints, tmp_path, capsys):
    strict, lenient = checkpoints
    # Truncation keeps 5 residues, yet a J after them is still refused: the whole record is
    # checked, as the strict tokenizer checks a record given to it untruncated.
    assert run(strict, tmp_path, "strict", "--truncation-seq-length", "5") == EXIT_FAILURES
    err = capsys.readouterr().err
    assert says(err, "3 records embedded, 4 failed") and "internal error" not in err
    saved = torch.load(tmp_path / "strict" / "p_ESM.pt", weights_only=True)
    assert saved["proteins"] == ["plain", "x_is_known", "gaps"]
    log = (tmp_path / "strict" / "extraction_failures.log").read_text().splitlines()
    assert [line.split("\t")[2] for line in log] == REFUSED
    assert {line.split("\t")[3] for line in log} == {"invalid_character"}
    assert all("'J'" in line and "refuses" in line for line in log)

    # Lenient, same weights: every record embedded, the shared ones equal.
    assert run(lenient, tmp_path, "lenient", "--truncation-seq-length", "5") == EXIT_OK
    assert says(capsys.readouterr().err, "7 records embedded, 0 failed")
    both = torch.load(tmp_path / "lenient" / "p_ESM.pt", weights_only=True)
    assert both["proteins"] == [line[1:] for line in RECORDS.splitlines()[::2]]
    by_id = dict(zip(both["proteins"], both["data"]))
    for record_id, embedding in zip(saved["proteins"], saved["data"]):
        assert torch.allclose(embedding, by_id[record_id], atol=1e-6), record_id

    # A rerun keeps the finished output (its exit status on a rerun is the resume tests' business).
    run(strict, tmp_path, "strict", "--truncation-seq-length", "5")
    assert says(capsys.readouterr().err, "0 written, 1 skipped")


def test_a_file_whose_every_record_is_refused_fails_as_a_file(checkpoints, tmp_path, capsys):
    strict, _ = checkpoints
    (tmp_path / "j.fa").write_text(">a\nJJ\n>b\nMJ\n")
    code = main(
        ["extract", str(tmp_path / "j.fa"), "-o", str(tmp_path / "o"), "--model", str(strict)]
        + ["--device", "cpu", "-q"]
    )
    assert code == EXIT_FAILURES
    assert not (tmp_path / "o" / "j_ESM.pt").exists()
    assert "no usable records" in capsys.readouterr().err


def test_checkpoint_code_failing_at_load_is_exit_2_naming_the_model(checkpoints, tmp_path, capsys):
    strict, _ = checkpoints
    broken = tmp_path / "broken-checkpoint"
    shutil.copytree(strict, broken)
    (broken / "vocab.txt").unlink()  # the tokenizer property cannot load its tokenizer
    assert run(broken, tmp_path, "out") == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert "broken-checkpoint" in err and "internal error" not in err
    assert len(err.splitlines()) == 1

    # Code that raises a long, many-line error while loading: still one line, exit 2.
    raising = tmp_path / "raising-checkpoint"
    shutil.copytree(strict, raising)
    with open(raising / "modeling_fast_esm.py", "a") as handle:
        handle.write(
            "\n\ndef _broken(self, config):\n"
            "    raise RuntimeError('no kernel for this GPU\\n  details\\n  more details')\n\n"
            "FastEsmModel.__init__ = _broken\n"
        )
    assert run(raising, tmp_path, "out") == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert "raising-checkpoint" in err and "RuntimeError: no kernel for this GPU" in err
    assert len(err.splitlines()) == 1
