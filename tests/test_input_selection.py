"""A VirNucPro training folder as such folders are: the DNA FASTA of each pair
(`output_N_nucleotide.fa`) beside the protein one (`output_N.fa`). `--include`/`--exclude`
choose the files of a folder (CLI, Python, plan, shards, Snakemake); a DNA file that is not
left out is named `nucleotide` by `plan`, refused by `extract` under its own kind, and leaves
nothing named like an output beside it; README's migration recipe reaches exit 0 with the
flag it documents."""

import json
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import random_proteins, subprocess_environment, write_fasta
from test_migration import STEMS, esm2_3b_folder  # noqa: F401 - the fixture

from fastesm_extract.cli.main import main
from fastesm_extract.disk.failures import FailureKind
from fastesm_extract.disk.folders import selected
from fastesm_extract.errors import InputError
from fastesm_extract.running.sources import plan_jobs

ROOT = Path(__file__).resolve().parents[1]


def write_dna(path: Path, ids: list[str], seed: int) -> Path:
    generator = random.Random(seed)
    return write_fasta(path, [(i, "".join(generator.choices("ACGT", k=300))) for i in ids])


def pairs_folder(folder: Path, stems=("output_1", "output_2")) -> Path:
    """Protein FASTA and, beside it, the DNA FASTA of the same pair (VirNucPro's names)."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, stem in enumerate(stems):
        records = random_proteins(4, 10, 40, seed=seed)
        write_fasta(folder / f"{stem}.fa", records)
        write_dna(folder / f"{stem}_nucleotide.fa", [i for i, _ in records], seed)
    return folder


def names(jobs) -> list[str]:
    return sorted(job.fasta.name for job in jobs)


def test_globs_match_a_files_name_or_its_path_relative_to_the_folder(tmp_path):
    folder = tmp_path / "train"
    pairs_folder(folder / "viral", ["output_1"])
    pairs_folder(folder / "host", ["output_2"])

    assert names(plan_jobs([folder], exclude=["*_nucleotide.fa"])) == ["output_1.fa", "output_2.fa"]
    assert names(plan_jobs([folder], include=["host/*"])) == [
        "output_2.fa",
        "output_2_nucleotide.fa",
    ]
    both = plan_jobs([folder], include=["viral/*", "output_2.fa"], exclude=["*_nucleotide*"])
    assert names(both) == ["output_1.fa", "output_2.fa"]
    assert selected(folder / "host" / "output_2.fa", folder, [], ["host/output_2.fa"]) is False
    assert selected(folder / "host" / "output_2.fa", folder, [], ["OUTPUT_2.fa"]) is True
    # A file named as an input is always taken; a folder the globs empty is a usage error.
    named = plan_jobs([folder / "host" / "output_2_nucleotide.fa"], exclude=["*_nucleotide.fa"])
    assert names(named) == ["output_2_nucleotide.fa"]
    with pytest.raises(InputError, match="leave out all its 4 FASTA files"):
        plan_jobs([folder], include=["*.faa"])


def test_plan_names_a_dna_file_nucleotide_and_exits_as_the_run_would(
    tiny_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    folder = pairs_folder(tmp_path / "train")
    report = tmp_path / "plan.json"
    plan = ["plan", str(folder), "--model", str(tiny_checkpoint), "--device", "cpu", "-q"]

    assert main([*plan, "--summary-json", str(report)]) == 1
    planned = json.loads(report.read_text())["plan"]["files"]
    actions = {Path(f["input"]).name: f["action"] for f in planned}
    assert actions == {
        "output_1.fa": "write",
        "output_2.fa": "write",
        "output_1_nucleotide.fa": "nucleotide",
        "output_2_nucleotide.fa": "nucleotide",
    }
    assert main([*plan, "--exclude", "*_nucleotide.fa", "--summary-json", str(report)]) == 0
    files = json.loads(report.read_text())["plan"]["files"]
    assert sorted(Path(f["input"]).name for f in files) == ["output_1.fa", "output_2.fa"]
    # A shard (a Slurm array task) takes its share of the selected files only.
    for shard in ("1/2", "2/2"):
        argv = [*plan, "--exclude", "*_nucleotide.fa", "--shard", shard]
        assert main([*argv, "--summary-json", str(report)]) == 0
        files = json.loads(report.read_text())["plan"]["files"]
        assert [Path(f["input"]).name for f in files] == [f"output_{shard[0]}.fa"]


def failure_lines(log: Path) -> list[list[str]]:
    return [line.split("\t") for line in log.read_text().splitlines()]


def test_a_refused_dna_file_leaves_nothing_beside_it_and_is_logged_once_per_change(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # the failure log's folder (no -o): the current one
    folder = pairs_folder(tmp_path / "train", ["output_1"])
    extract = ["extract", str(folder), "--model", str(tiny_checkpoint), "--device", "cpu", "-q"]
    log = tmp_path / "extraction_failures.log"

    assert main([*extract, "--accept-invalid"]) == 1
    first = capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == [
        "output_1.fa",
        "output_1_ESM.pt",
        "output_1_ESM.pt.json",
        "output_1_nucleotide.fa",
    ]
    whole_file = [line for line in failure_lines(log) if line[2] == "-"]
    assert [line[3] for line in whole_file] == [FailureKind.NUCLEOTIDE_SEQUENCE.value]
    assert "unreadable_file" not in log.read_text()
    assert "nucleotide" in whole_file[0][4] and "DNA side of the pair" in whole_file[0][4]
    assert "holds nucleotide sequences" in first and "DNA side of the pair" in first
    logged = log.read_text()

    # The rerun reports it again, saying the same, without logging its records again.
    assert main(extract) == 1
    again = capsys.readouterr().err
    assert "holds nucleotide sequences" in again and "DNA side of the pair" in again
    assert log.read_text() == logged
    assert not [p for p in folder.iterdir() if "nucleotide_ESM" in p.name]

    # Its content changes (still DNA): its records are logged again, once.
    write_dna(folder / "output_1_nucleotide.fa", ["a", "b"], seed=7)
    assert main(extract) == 1
    added = log.read_text()[len(logged) :].splitlines()
    assert [line.split("\t")[2:4] for line in added] == [
        ["a", "nucleotide_sequence"],
        ["b", "nucleotide_sequence"],
        ["-", "nucleotide_sequence"],
    ]
    assert main(extract) == 1 and log.read_text() == logged + "\n".join(added) + "\n"


def test_a_failed_manifest_an_earlier_version_left_beside_the_input_is_removed(
    tiny_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    folder = pairs_folder(tmp_path / "train", ["output_1"])
    old = folder / "output_1_nucleotide_ESM.pt.json"
    old.write_text(json.dumps({"state": "failed", "input": {"sha256": "0" * 64}}))
    mine = folder / "output_1_ESM.pt.json.keep"  # any other file is not touched
    mine.write_text("{}")
    argv = ["extract", str(folder), "--model", str(tiny_checkpoint), "--device", "cpu", "-q"]
    assert main(argv) == 1
    assert not old.exists() and mine.read_text() == "{}"


def readme_migration_commands() -> list[tuple[list[str], int | None]]:
    """README's migration block: each command and the exit status its comment documents."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Migrating a VirNucPro training folder", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.strip().splitlines():
        command, _, comment = line.partition("#")
        documented = re.search(r"exit (\d)", comment)
        commands.append((shlex.split(command), int(documented[1]) if documented else None))
    return commands


def test_readme_migration_recipe_reaches_exit_0_with_dna_files_beside_the_proteins(
    esm2_3b_folder,  # noqa: F811 - the fixture imported above
    tiny_checkpoint,
    monkeypatch,
):
    folder = esm2_3b_folder
    for index, stem in enumerate(STEMS):  # the DNA side of each pair, as VirNucPro names it
        ids = [line[1:] for line in (folder / f"{stem}.fa").read_text().split() if line[0] == ">"]
        write_dna(folder / f"{stem}_nucleotide.fa", ids, index)
    monkeypatch.chdir(folder.parent)
    commands = readme_migration_commands()
    assert [argv[:2] for argv, _ in commands] == [
        ["fastesm-extract", "plan"],
        ["fastesm-extract", "extract"],
        ["fastesm-extract", "extract"],
        ["fastesm-extract", "merge"],
    ]
    statuses = []
    for argv, _ in commands:
        argv = argv[1:]
        if argv[0] in ("plan", "extract"):  # README's demo practice: CPU, the small model
            argv = [a for a in argv if a not in ("--toks-per-batch", "8192")]
            argv += ["--model", str(tiny_checkpoint), "--device", "cpu"]
        statuses.append(main([*argv, "-q"]))
    assert statuses == [documented or status for (_, documented), status in zip(commands, statuses)]
    assert statuses[-2:] == [0, 0]
    assert not [p.name for p in folder.iterdir() if "nucleotide_ESM" in p.name]
    assert not (folder.parent / "extraction_failures.log").exists()  # nothing failed


def test_the_snakemake_config_leaves_out_the_files_it_excludes(tmp_path):
    proteins = pairs_folder(tmp_path / "proteins")
    nucleotide = tmp_path / "nucleotide"
    nucleotide.mkdir()
    for stem in ("output_1", "output_2"):  # a dry run only checks that they exist
        (nucleotide / f"{stem}_DNABERT_S.pt").touch()
    config = yaml.safe_load((ROOT / "workflow" / "config.yaml").read_text())
    assert config["exclude"] == [] and config["include"] == []
    config.update(
        proteins=str(proteins),
        dnabert_s=str(nucleotide),
        esm_out=str(tmp_path / "esm"),
        merged_out=str(tmp_path / "merged"),
    )

    def dry_run(**changes):
        (tmp_path / "config.yaml").write_text(yaml.safe_dump({**config, **changes}))
        snakemake = Path(sys.executable).parent / "snakemake"
        return subprocess.run(
            [str(snakemake), "-s", str(ROOT / "workflow" / "Snakefile"), "--configfile"]
            + [str(tmp_path / "config.yaml"), "-n", "--cores", "1"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**environment, "PATH": f"{snakemake.parent}:{environment['PATH']}"},
            timeout=120,
        )

    environment = subprocess_environment()
    done = dry_run(exclude=["*_nucleotide.fa"])
    assert done.returncode == 0, done.stdout + done.stderr
    merged = set(re.findall(r"merged/(\w+)_merged\.pt\b", done.stdout))
    assert merged == {"output_1", "output_2"}, done.stdout
    only = dry_run(include=["output_2.fa"]).stdout
    assert set(re.findall(r"merged/(\w+)_merged\.pt\b", only)) == {"output_2"}, only
    # Without it, the DNA files are taken for protein parts (their DNABERT-S partner missing).
    taken = dry_run()
    assert taken.returncode != 0 and "_nucleotide_DNABERT_S.pt" in taken.stdout + taken.stderr
