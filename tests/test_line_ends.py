"""Every record is counted, whatever the line ends: one reader for extract, split and verify.

Property-style: many generated files of many shapes (LF, CRLF, CR and mixed line ends, a
leading BOM, blank lines, wrapped and bad records, gzip), each checked against an oracle
that counts header lines independently of the package.
"""

import gzip
import hashlib
import json
import os
import random
import re
import threading

import pytest

from fastesm_extract import extract_files, read_fasta, verify_output
from fastesm_extract.disk.layout import FAILURE_LOG_NAME
from fastesm_extract.disk.split import iter_parts, split_fasta

LINE_ENDS = [b"\n", b"\r\n", b"\r"]
BOM = b"\xef\xbb\xbf"
WHOLE_FILE_KINDS = ("unreadable_file", "file_error", "write_error")


def oracle_lines(data: bytes) -> list[bytes]:
    """Lines as a person reading the file sees them: any of LF, CRLF, CR ends a line."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    return re.split(rb"\r\n|\r|\n", data)


def oracle_headers(data: bytes) -> list[bytes]:
    return [line for line in oracle_lines(data) if line.startswith(b">")]


def random_fasta(rng: random.Random, index: int) -> bytes:
    """One FASTA file of a random shape; at least one header line."""
    ends = rng.choice([[b"\n"], [b"\r\n"], [b"\r"], LINE_ENDS])
    lines = [b""] * rng.choice([0, 0, 1, 2])  # leading blank lines
    for record in range(rng.randint(1, 12)):
        kind = rng.random()
        if kind < 0.05:
            header = b">"  # no ID
        elif kind < 0.1:
            header = b">   "
        else:
            header = b">f%d_r%d desc %d" % (index, record, rng.randint(0, 9))
        lines.append(header)
        residues = "".join(
            rng.choice("ACDEFGHIKLMNPQRSTVWYacdx") for _ in range(rng.randint(0, 90))
        )
        if rng.random() < 0.1:
            residues += rng.choice(["*", "1", "#", " "])  # a stop, or characters that fail
        width = rng.choice([10, 60, 1000])
        lines += [residues[i : i + width].encode() for i in range(0, len(residues), width)]
        lines += [b""] * rng.choice([0, 0, 0, 1])
    data = b"".join(line + rng.choice(ends) for line in lines)
    if rng.random() < 0.2:
        data = data.rstrip(b"\r\n")  # no final line end
    if rng.random() < 0.2:
        data = BOM + data
    return data


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """80 generated files (every 5th gzipped), with their bytes."""
    folder = tmp_path_factory.mktemp("shapes")
    rng = random.Random(20261127)
    files = {}
    for index in range(80):
        data = random_fasta(rng, index)
        path = folder / f"s{index:02d}.fa"
        if index % 5 == 4:
            path = path.with_name(path.name + ".gz")
            path.write_bytes(gzip.compress(data))
        else:
            path.write_bytes(data)
        files[path] = data
    return files


def test_records_read_equal_header_lines_on_many_shapes(shapes):
    for path, data in shapes.items():
        contents = read_fasta(path)
        headers = oracle_headers(data)
        assert contents.n_read == len(headers), path
        ids = [r.id for r in contents.records]
        expected = [h[1:].split()[0].decode() for h in headers if h[1:].split()]
        assert set(ids) <= set(expected) and len(ids) + len(contents.failures) == len(headers)
        assert contents.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_split_parts_hold_every_record_on_many_shapes(shapes, tmp_path):
    for number, (path, data) in enumerate(shapes.items()):
        parts = split_fasta(path, tmp_path / str(number), 3)
        assert sum(p.n_records for p in parts) == len(oracle_headers(data)), path
        whole = read_fasta(path)
        in_parts = [read_fasta(p.path) for p in parts]
        assert [r for c in in_parts for r in c.records] == whole.records
        assert [f for c in in_parts for f in c.failures] == whole.failures


def test_extract_embeds_or_fails_every_record_and_verify_agrees(shapes, tiny_model, tmp_path):
    out = tmp_path / "out"
    summary = extract_files(list(shapes), out, model=tiny_model, show_progress=False)
    assert len(summary.results) == len(shapes)
    log_lines = (out / FAILURE_LOG_NAME).read_text().splitlines()
    for result in summary.results:
        headers = oracle_headers(shapes[result.job.fasta])
        assert result.n_read == len(headers), result.job.fasta
        assert result.n_read == result.n_embedded + result.n_failed, result.job.fasta
        logged = [
            line
            for line in log_lines
            if line.split("\t")[1] == str(result.job.fasta)
            and line.split("\t")[3] not in WHOLE_FILE_KINDS
        ]
        assert len(logged) == result.n_failed, result.job.fasta
        if result.status == "written":
            report = verify_output(result.job.output)
            assert report.ok, report.problems
            assert report.n_records == result.n_embedded


MIXED = b"".join(
    b">m%d\r" % i + b"MKTAYIAK" + (b"\n" if i % 2 else b"\r") for i in range(80)
)  # LF and CR-only line ends mixed: 80 records


@pytest.mark.parametrize(
    ("data", "ids"),
    [
        (MIXED, [f"m{i}" for i in range(80)]),
        (b">a\rMKT\rQQ\r>b\rLLL\r", ["a", "b"]),  # CR only (classic Mac)
        (BOM + b">first\nMKT\n>second\nQQ\n", ["first", "second"]),
        (BOM + b">first\r\nMKT\r\n", ["first"]),
        (b">a\r\nMK\r\r\n>b\rQQ", ["a", "b"]),  # mixed, no final line end
    ],
)
def test_line_end_and_bom_shapes(tmp_path, data, ids):
    path = tmp_path / "x.fa"
    path.write_bytes(data)
    assert [r.id for r in read_fasta(path).records] == ids
    assert [n for _, n in iter_parts(path, 1000)] == [len(ids)]
    gz = tmp_path / "x.fa.gz"
    gz.write_bytes(gzip.compress(data))
    assert [r.id for r in read_fasta(gz).records] == ids


def test_a_cr_line_end_split_across_read_blocks_is_one_line_end(tmp_path, monkeypatch):
    import fastesm_extract.disk.fasta as fasta

    monkeypatch.setattr(fasta, "_BLOCK", 3)  # every CRLF, BOM and header straddles a block
    path = tmp_path / "x.fa"
    path.write_bytes(BOM + b">a\r\nMK\r\n\r\n>b\r\rQQ\r>c\r\nL")
    contents = read_fasta(path)
    assert [(r.id, r.sequence) for r in contents.records] == [
        ("a", b"MK"),
        ("b", b"QQ"),
        ("c", b"L"),
    ]


def test_a_bom_does_not_shift_split_parts(tmp_path):
    data = BOM + b"".join(b">r%d\r\nMKT\r\n" % i for i in range(7))
    (tmp_path / "bom.fa").write_bytes(data)
    parts = split_fasta(tmp_path / "bom.fa", tmp_path / "parts", 3)
    ids = [[r.id for r in read_fasta(p.path).records] for p in parts]
    assert ids == [["r0", "r1", "r2"], ["r3", "r4", "r5"], ["r6"]]
    assert parts[0].path.read_bytes().startswith(b">r0\nMKT\n")


def test_multi_member_gzip_is_read_whole(tmp_path):
    path = tmp_path / "bgzip_like.fa.gz"
    path.write_bytes(gzip.compress(b">a\nMK\n") + gzip.compress(b">b\nQQ\n") + b"\0" * 10)
    assert [r.id for r in read_fasta(path).records] == ["a", "b"]


def feed_fifo(path, data):
    """Write `data` into the FIFO `path` from a thread, as `<(zcat x.gz)` would."""

    def write():
        with open(path, "wb") as handle:
            handle.write(data)

    threading.Thread(target=write, daemon=True).start()


def within(seconds, fifo, function):
    """`function()`, failing the test if it waits for a second writer of `fifo` (a reread)."""
    result = {}
    worker = threading.Thread(target=lambda: result.update(value=function()), daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # end of file for the reread
        worker.join(seconds)
        pytest.fail(f"{fifo} was opened again after it had been read")
    return result["value"]


@pytest.mark.parametrize("compress", [False, True])
def test_a_pipe_is_read_once_and_hashed_while_parsed(tiny_model, tmp_path, compress):
    data = b"".join(b">p%d\nMKTAYIAKQR\n" % i for i in range(50))
    payload = gzip.compress(data) if compress else data
    fifo = tmp_path / "piped.fa"
    os.mkfifo(fifo)
    feed_fifo(fifo, payload)
    summary = within(
        30,
        fifo,
        lambda: extract_files([fifo], tmp_path / "out", model=tiny_model, show_progress=False),
    )
    assert summary.ok and summary.records_embedded == 50
    manifest = json.loads((tmp_path / "out" / "piped_ESM.pt.json").read_text())
    assert manifest["input"]["sha256"] == hashlib.sha256(payload).hexdigest()
    assert manifest["records"]["read"] == 50


def test_a_file_whose_every_record_fails_counts_and_logs_each_record(tiny_model, tmp_path):
    (tmp_path / "bad.fa").write_bytes(b">a\r\r>b\r123\r")
    summary = extract_files([tmp_path / "bad.fa"], tmp_path / "out", model=tiny_model)
    result = summary.results[0]
    assert (result.status, result.n_read, result.n_embedded, result.n_failed) == ("failed", 2, 0, 2)
    lines = [line.split("\t") for line in (tmp_path / "out" / FAILURE_LOG_NAME).open()]
    assert sorted((f[2], f[3]) for f in lines) == [
        ("-", "unreadable_file"),
        ("a", "empty_sequence"),
        ("b", "invalid_character"),
    ]
