"""The BENCHMARKS.md helpers every report shares: yes/no marks, a section's header, and the
replacement of one section between its markers (the other recorded numbers stay)."""

from __future__ import annotations

import re
from pathlib import Path

from machine import machine_line


def yes_no(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


def update_markdown(path: Path, mode: str, lines: list[str]) -> None:
    """Replace the section between this mode's markers (or append it)."""
    begin, end = f"<!-- BEGIN bench:{mode} -->", f"<!-- END bench:{mode} -->"
    section = "\n".join([begin, *lines, end])
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def header(title: str, environment: dict, settings: str) -> list[str]:
    return [
        f"### {title}",
        "",
        f"- Measured: {environment['date']}",
        f"- Machine: {machine_line(environment)}",
        f"- Settings: {settings}",
        "",
    ]
