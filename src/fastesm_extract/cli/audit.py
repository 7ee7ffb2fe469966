"""`fastesm-extract audit`: re-embed a sample of each output's records one at a time and
say, per file, how close the stored rows are (see `running/audit.py`)."""

from __future__ import annotations

import argparse
import json
import sys

from fastesm_extract.disk.failures import escape
from fastesm_extract.disk.same_file import refuse_writing_over_inputs
from fastesm_extract.disk.store import atomic_write
from fastesm_extract.errors import EXIT_FAILURES, ExtractError
from fastesm_extract.running.audit import MODEL, AuditReport, FileAudit, audit_outputs
from fastesm_extract.running.audit_inputs import files_read

AUDIT = "fastesm-extract audit"


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def print_file(audit: FileAudit, reference: str | None) -> None:
    status = "OK" if audit.ok else "FAILED"
    print(
        f"{status:7} {audit.n_checked:>7} {_number(audit.min_cosine(), '.7f'):>11} "
        f"{_number(audit.max_abs_diff(), '.2e'):>9}  {escape(str(audit.output))}"
    )
    if reference and audit.checks:
        print(
            f"{'':8}{reference} reference: min cosine {_number(audit.min_cosine(reference), '.7f')}"
            f", max abs diff {_number(audit.max_abs_diff(reference), '.2e')}"
        )
    for problem in audit.problems:
        print(f"{'':8}problem: {escape(problem)}")
    by_row: dict[tuple[int, str], list[str]] = {}
    for check in audit.beyond:  # one line per record, each comparison beyond tolerance on it
        against = "the model alone" if check.against == MODEL else f"the {check.against} reference"
        by_row.setdefault((check.row, check.record_id), []).append(
            f"cosine {check.cosine:.7f}, max abs diff {check.max_abs_diff:.2e} against {against}"
        )
    for (row, record_id), found in by_row.items():
        print(f"{'':8}record {escape(record_id)} (row {row}): {'; '.join(found)}")


def print_report(report: AuditReport) -> None:
    print(f"{'status':7} {'records':>7} {'min cosine':>11} {'max |diff|':>9}  output")
    for audit in report.files:
        print_file(audit, report.reference)
    good = sum(audit.ok for audit in report.files)
    print(
        f"{AUDIT}: {good} of {len(report.files)} outputs within tolerance (cosine >= "
        f"{report.min_cosine}, {report.model_id}"
        + (f", and the {report.reference} reference" if report.reference else "")
        + ")",
        file=sys.stderr,
    )


def run_audit(args: argparse.Namespace) -> int:
    if args.summary_json:  # never written over an output, a manifest or an input
        advice = "choose another --summary-json path"
        try:
            refuse_writing_over_inputs(files_read(args.paths), [args.summary_json], advice)
        except ExtractError as error:
            print(f"{AUDIT}: error: {error}", file=sys.stderr)
            return error.exit_status
    try:
        report = audit_outputs(
            args.paths,
            sample=args.sample,
            seed=args.seed,
            model=args.model,
            device=args.device,
            min_cosine=args.min_cosine,
            reference=args.reference,
        )
    except ExtractError as error:  # usage (2): nothing to compare with, another model, ...
        print(f"{AUDIT}: error: {error}", file=sys.stderr)
        return _with_summary(args, error.exit_status, {"ok": False, "error": str(error)})
    print_report(report)
    return _with_summary(args, report.exit_status, report.to_dict())


def _with_summary(args: argparse.Namespace, status: int, data: dict) -> int:
    """`status`, after writing `data` to `--summary-json` when asked (atomically)."""
    if not args.summary_json:
        return status
    text = json.dumps({**data, "exit_status": status}, indent=2).encode() + b"\n"
    try:
        atomic_write(args.summary_json, lambda handle: handle.write(text))
    except OSError as error:
        print(f"{AUDIT}: error: cannot write --summary-json: {error}", file=sys.stderr)
        return status or EXIT_FAILURES
    return status
