"""Nucleotide FASTA given as protein input is refused, record by record, with its own kind.

The false-positive rate is measured on what VirNucPro really embeds (stop-free six-frame
translations of DNA chunks, translated by Biopython) and on proteins drawn with UniProt's
amino-acid frequencies: none of them may be taken for DNA.
"""

import random

from Bio.Seq import Seq
from helpers import says, write_fasta

from fastesm_extract.cli.main import main
from fastesm_extract.disk.fasta import read_fasta
from fastesm_extract.disk.store import load_embeddings
from fastesm_extract.extract.prepare import MIN_LENGTH, looks_like_nucleotides

# UniProtKB/Swiss-Prot amino-acid composition (percent), release 2024.
UNIPROT_FREQUENCIES = {
    "A": 8.25, "R": 5.53, "N": 4.06, "D": 5.45, "C": 1.37, "Q": 3.93, "E": 6.75,
    "G": 7.07, "H": 2.27, "I": 5.96, "L": 9.66, "K": 5.84, "M": 2.42, "F": 3.86,
    "P": 4.70, "S": 6.56, "T": 5.34, "W": 1.08, "Y": 2.92, "V": 6.87,
}  # fmt: skip


def six_frame_proteins(dna: str) -> list[str]:
    """Stop-free translations of the six frames, as VirNucPro's preparation keeps them."""
    proteins = []
    for strand in (Seq(dna), Seq(dna).reverse_complement()):
        for frame in range(3):
            usable = (len(dna) - frame) // 3 * 3
            protein = str(strand[frame : frame + usable].translate())
            if "*" not in protein:
                proteins.append(protein)
    return proteins


def test_no_realistic_protein_is_taken_for_dna():
    generator = random.Random(0)
    # DNA chunks of 300/500 bp carrying an open reading frame (sense codons only), as
    # VirNucPro's training chunks do; their other frames are random.
    sense = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT"]
    sense = [codon for codon in sense if str(Seq(codon).translate()) != "*"]
    chunks = [
        "".join(generator.choice(sense) for _ in range(length // 3)) + "A" * (length % 3)
        for length in (generator.choice((300, 500)) for _ in range(5000))
    ]
    translated = [protein for chunk in chunks for protein in six_frame_proteins(chunk)]
    letters, weights = zip(*UNIPROT_FREQUENCIES.items())
    sampled = [
        "".join(generator.choices(letters, weights, k=generator.randint(99, 166)))
        for _ in range(20000)
    ]
    proteins = translated + sampled
    assert len(translated) >= 5000  # every chunk's open frame, and a few more
    flagged = [p for p in proteins if looks_like_nucleotides(p.encode())]
    assert flagged == []  # false-positive rate 0 of ~25,000 (expected ~2e-12 per protein)


def test_dna_rna_and_masked_chunks_are_recognised_short_peptides_are_not():
    assert looks_like_nucleotides(b"ACGT" * 5)
    assert looks_like_nucleotides(b"ACGUNNACGUACGUACGUAC")  # RNA with Ns
    assert not looks_like_nucleotides(b"ACGT" * 4)  # 16 letters: a peptide may be that
    assert not looks_like_nucleotides(b"ACGT" * 10 + b"E")  # E: an amino acid, no base code
    assert MIN_LENGTH == 20


def test_the_dna_side_of_the_pair_fails_as_a_file_saying_so(
    virnucpro_fixtures, tiny_checkpoint, tmp_path, capsys
):
    nucleotide = virnucpro_fixtures / "test_with_orfs" / "output_1_nucleotide.fa"
    out = tmp_path / "out"
    argv = ["extract", str(nucleotide), "-o", str(out), "--model", str(tiny_checkpoint)]
    assert main([*argv, "--device", "cpu", "-q"]) == 1
    err = capsys.readouterr().err
    assert "holds nucleotide sequences, not proteins" in err and "DNA side of the pair" in err
    assert not (out / "output_1_nucleotide_ESM.pt").exists()
    log_lines = (out / "extraction_failures.log").read_text().splitlines()
    n_records = read_fasta(nucleotide).n_read
    kinds = [line.split("\t")[3] for line in log_lines]
    # Each record, then the whole file (`-`), under the kind that says what it is.
    assert kinds == ["nucleotide_sequence"] * (n_records + 1) and n_records >= 4
    assert log_lines[-1].split("\t")[2] == "-" and "DNA side of the pair" in log_lines[-1]
    assert not list(out.glob("output_1_nucleotide*"))  # nothing named like its output


def test_a_dna_record_among_proteins_fails_alone(tiny_checkpoint, tmp_path, capsys):
    fasta = write_fasta(
        tmp_path / "mixed.fa",
        [("p1", "MKTAYIAKQRQISFVKSHFSRQ"), ("chunk", "ACGTTGCA" * 6), ("p2", "GATTACA")],
    )
    out = tmp_path / "out"
    argv = ["extract", str(fasta), "-o", str(out), "--model", str(tiny_checkpoint), "-q"]
    assert main([*argv, "--device", "cpu"]) == 1
    proteins, _ = load_embeddings(out / "mixed_ESM.pt")
    assert proteins == ["p1", "p2"]  # GATTACA: 7 letters, a peptide
    line = (out / "extraction_failures.log").read_text().strip().split("\t")
    assert line[2:4] == ["chunk", "nucleotide_sequence"] and "looks like DNA/RNA" in line[4]
    # An input reason: reported again on a rerun, not retried; accepted with --accept-invalid.
    assert main([*argv, "--device", "cpu", "--accept-invalid"]) == 0
    assert says(capsys.readouterr().err, "1 failed (1 invalid input (accepted))")


def test_dna_with_a_few_ambiguity_codes_gaps_or_an_x_is_recognised():
    chunk = "ATGGCGTTACCGGATTACAGGCTTAACGGATCCATG"  # 36 bases
    assert looks_like_nucleotides(chunk.replace("G", "R", 1).replace("T", "Y", 1).encode())
    assert looks_like_nucleotides((chunk[:10] + "KM" + chunk[12:]).encode())  # 2 in 36
    assert looks_like_nucleotides((chunk[:12] + "---" + chunk[12:] + "..").encode())  # gaps
    assert looks_like_nucleotides((chunk[:20] + "X" + chunk[21:]).encode())
    assert looks_like_nucleotides(b"ACGT" * 10 + b"K")  # K: G or T
    assert looks_like_nucleotides(("ACGTRYKMSW" + "ACGT" * 20).encode())  # 6 codes in 90
    assert not looks_like_nucleotides(("ACGTRYKMSW" * 8).encode())  # 48 in 80: too many
    assert not looks_like_nucleotides(("ACGT" * 4 + "----" * 3).encode())  # 16 letters
    assert not looks_like_nucleotides(chunk.replace("A", "E", 1).encode())  # E: no base code


# Proteins and protein repeats rich in A, C, G and T: winter flounder's type I antifreeze
# protein (HPLC-6), the silk fibroin repeat, a collagen repeat, the antifreeze glycoprotein
# backbone (Ala-Ala-Thr with Pro), a glycine-rich repeat (as in plant GRPs).
RICH_IN_ACGT = [
    "DTASDAAAAAALTAANAKAAAELTAANAAAAAAATAR",
    "GAGAGSGAGAGSGAGAGSGAGAGSGAGAGS",
    "GPAGPPGPAGPAGPPGAPGAPGAPGCAGPAG",
    "AATAAPAATAATAAPAATAATAAPAAT",
    "GGGGYGGGGRGGGGGYGGGGRGGGGGYGGGSGGGGRGG",
]


def test_proteins_rich_in_acgt_letters_pass_as_protein():
    for protein in RICH_IN_ACGT:
        assert not looks_like_nucleotides(protein.encode()), protein
