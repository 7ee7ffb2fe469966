"""Worker processes and the caller's script: `extract_files(..., devices=[...])` called at the
top level of a script without `if __name__ == "__main__":`.

A spawned worker imports the parent's main script before it runs (so that what the script
defines exists there too). Without the guard, that import ran the extraction again in every
worker, and multiprocessing stopped each one with a bootstrapping RuntimeError: the run
reported every file "not processed". Such a call is recognised here (the calling line of the
main script is not under the guard), and its workers then start without importing the
script, which they do not need (their code and `RunConfig` are this package's). A guarded
script is imported by its workers as before.
"""

from __future__ import annotations

import ast
import contextlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path


def _is_main_guard(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":` (either side first)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    sides = [node.test.left, *node.test.comparators]
    names = {s.id for s in sides if isinstance(s, ast.Name)}
    texts = {s.value for s in sides if isinstance(s, ast.Constant)}
    return (
        len(node.test.ops) == 1
        and isinstance(node.test.ops[0], ast.Eq)
        and names == {"__name__"}
        and texts == {"__main__"}
    )


def _line_is_guarded(source_file: Path, line: int) -> bool:
    try:
        tree = ast.parse(source_file.read_text(), str(source_file))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return True  # cannot tell: leave the usual behaviour alone
    return any(
        _is_main_guard(node) and node.lineno <= line <= (node.end_lineno or node.lineno)
        for node in tree.body
    )


def called_from_unguarded_script() -> bool:
    """True when this call comes from top-level code of the main script that is not under
    `if __name__ == "__main__":`, so that importing the script would make the call again."""
    main = sys.modules.get("__main__")
    source_file = getattr(main, "__file__", None)
    if main is None or not source_file:
        return False  # interactive, notebook, `python -c`: nothing a worker would import
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            return not _line_is_guarded(Path(source_file), frame.f_lineno)
        frame = frame.f_back
    return False


@contextlib.contextmanager
def script_not_imported_by_workers() -> Iterator[None]:
    """While workers start, `__main__` is a bare module: no file or module name to import."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main
