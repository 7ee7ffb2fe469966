"""Regenerate the bundled example FASTA files (deterministic, synthetic VirNucPro-like proteins).

Run: python examples/generate.py   (the files are committed; this documents where they came from)
"""

import gzip
import random
from pathlib import Path

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
HERE = Path(__file__).parent


def records(rng: random.Random, part: int, count: int) -> str:
    lines = []
    for index in range(count):
        length = rng.randint(99, 166)  # six-frame translations of 300/500 bp chunks
        sequence = "".join(rng.choice(AMINO_ACIDS) for _ in range(length))
        frame = rng.choice(["F1", "F2", "F3", "R1", "R2", "R3"])
        lines.append(f">example_seq_{part}_{index}_chunk_1{frame}")
        lines += [sequence[i : i + 60] for i in range(0, length, 60)]
    return "\n".join(lines) + "\n"


def main() -> None:
    rng = random.Random(2026)
    (HERE / "output_1.fa").write_text(records(rng, 1, 120))
    (HERE / "output_2.fa").write_text(records(rng, 2, 80))
    (HERE / "more").mkdir(exist_ok=True)
    with gzip.GzipFile(HERE / "more" / "output_3.fa.gz", "wb", mtime=0) as handle:
        handle.write(records(rng, 3, 50).encode())


if __name__ == "__main__":
    main()
