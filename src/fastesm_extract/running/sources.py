"""Where jobs come from: files and folders, or one large FASTA split into parts.

Each source checks its inputs and refuses to write over them before anything is written,
and yields `FileJob`s for the one runner; a shard of either is taken by the runner.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fastesm_extract.disk.folders import files_under, selected
from fastesm_extract.disk.layout import (
    PART_OUTPUT_NAME,
    is_fasta_name,
    manifest_path,
    numbered,
    output_path_for,
    part_output_name,
    parts_folder,
)
from fastesm_extract.disk.manifest import ManifestError, load_manifest
from fastesm_extract.disk.same_file import refuse_writing_over_inputs
from fastesm_extract.disk.split import SplitPart, files_a_split_may_write, split_fasta
from fastesm_extract.errors import InputError
from fastesm_extract.results import FileJob

log = logging.getLogger("fastesm_extract")


def file_jobs(
    inputs: list[str | Path],
    output_dir: str | Path | None,
    failure_log: Path,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[FileJob]:
    """Files and folders -> jobs (see `plan_jobs`), none writing over an input."""
    jobs = plan_jobs(list(inputs), output_dir, include, exclude)
    refuse_writing_over_inputs(
        [job.fasta for job in jobs],
        [failure_log, *(path for job in jobs for path in (job.output, manifest_path(job.output)))],
        "choose another -o OUTDIR or --failure-log",
    )
    return jobs


class SplitSource:
    """One large FASTA -> `output_dir/parts/output_K.fa` -> jobs for `output_dir/output_K_ESM.pt`.

    Checked when made (nothing written); split when `jobs()` is called, so that a runner can
    load the model first. `parts` holds the parts once split.
    """

    def __init__(
        self, fasta: str | Path, output_dir: str | Path, records_per_part: int, failure_log: Path
    ) -> None:
        self.fasta, self.output_dir = Path(fasta), Path(output_dir)
        self.records_per_part = records_per_part
        self.parts: list[SplitPart] = []
        if not self.fasta.is_file():
            raise InputError(f"{self.fasta} is not a file (--split-every takes one FASTA file)")
        refuse_writing_over_inputs(
            [self.fasta],
            [failure_log, *files_a_split_may_write(self.output_dir)],
            f"split it into another folder than {self.output_dir}",
        )

    def jobs(self) -> list[FileJob]:
        """Split (unchanged part files are left alone) and return one job per part."""
        output_dir = self.output_dir
        self.parts = split_fasta(
            self.fasta, parts_folder(output_dir), self.records_per_part, self._drop_stale_output
        )
        leftovers = numbered(output_dir, PART_OUTPUT_NAME, len(self.parts))
        if leftovers:
            log.warning(
                "%s: %d outputs from an earlier split are not part of this one (remove them "
                "before merging): %s",
                output_dir,
                len(leftovers),
                ", ".join(leftovers[:5]),
            )
        rewritten = sum(part.rewritten for part in self.parts)
        log.info(
            "%s: %d records in %d parts of up to %d (%d part files written, %d unchanged)",
            self.fasta,
            sum(part.n_records for part in self.parts),
            len(self.parts),
            self.records_per_part,
            rewritten,
            len(self.parts) - rewritten,
        )
        return [
            FileJob(part.path, output_dir / part_output_name(part.index)) for part in self.parts
        ]

    def _drop_stale_output(self, index: int, sha256: str) -> None:
        """Part `index` is about to get content of hash `sha256`: an output made from other
        content is deleted (kept, it would be reported stale); one made from this very
        content (another shard run wrote the same part) is kept."""
        stale = self.output_dir / part_output_name(index)
        if not stale.exists():
            return
        try:
            manifest = load_manifest(stale)
        except ManifestError:
            manifest = None
        if manifest is not None and manifest.input.sha256 == sha256:
            return
        log.warning("%s: part %d changed; removing its old output %s", self.fasta, index, stale)
        stale.unlink(missing_ok=True)


def plan_jobs(
    inputs: list[str | Path],
    output_dir: str | Path | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[FileJob]:
    """Expand files and folders (searched recursively for .fa/.faa/.fasta[.gz], symlinked
    sub-folders followed) into jobs. The FASTA files found in a folder are filtered by the
    `include` and `exclude` globs (`folders.selected`); files given by name always count.

    Raises `InputError` for a missing path, a folder without FASTA files (or none left by
    the globs), or two inputs that would write the same output.
    """
    out = Path(output_dir) if output_dir is not None else None
    jobs: list[FileJob] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            fasta = [p for p in files_under(path) if is_fasta_name(p)]
            if not fasta:
                raise InputError(f"{path} is a folder with no .fa/.faa/.fasta(.gz) files")
            found = [p for p in fasta if selected(p, path, include, exclude)]
            if not found:
                raise InputError(
                    f"{path}: --include/--exclude leave out all its {len(fasta)} FASTA files"
                )
            if len(found) < len(fasta):
                log.info(
                    "%s: %d of %d FASTA files left out by --include/--exclude",
                    path,
                    len(fasta) - len(found),
                    len(fasta),
                )
            jobs.extend(FileJob(p, output_path_for(p, out, path)) for p in found)
        elif path.exists():
            jobs.append(FileJob(path, output_path_for(path, out, None)))
        else:
            raise InputError(f"{path} does not exist")
    seen: dict[Path, Path] = {}
    for job in jobs:
        key = job.output.resolve()
        if key in seen and seen[key] != job.fasta.resolve():
            raise InputError(
                f"{seen[key]} and {job.fasta} would both write {job.output}; rename one"
            )
        seen[key] = job.fasta.resolve()
    # The same file named twice (e.g. a file and its folder) is done once.
    unique = {job.output.resolve(): job for job in jobs}
    return list(unique.values())


def check_writable(jobs: list[FileJob]) -> None:
    """Fail early, before the model loads, when an output folder cannot be written.

    Creates each distinct output folder and a probe file in it; raises `InputError`.
    """
    for folder in sorted({job.output.parent for job in jobs}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise InputError(
                f"cannot write outputs to {folder}: {error.strerror or error}"
            ) from error


def check_failure_log(path: Path) -> None:
    """Fail early, before any work, when the failure log path is a folder."""
    if path.is_dir():
        raise InputError(
            f"--failure-log {path} is a folder: give a file path, e.g. {path / 'failures.log'}"
        )
