"""One logger name: every message of the package comes from the logger `fastesm_extract`, so
one `logging.getLogger("fastesm_extract")` line sets its level or handler for all of it."""

import re
from pathlib import Path

import fastesm_extract

PACKAGE = Path(fastesm_extract.__file__).parent
LOGGER = re.compile(r"getLogger\((.*?)\)")
ROOT_LOGGER_CALLS = re.compile(r"\blogging\.(debug|info|warning|error|exception|critical|log)\(")


def logger_names() -> dict[str, list[str]]:
    """The arguments of every getLogger call in the package, by module."""
    found = {}
    for module in sorted(PACKAGE.rglob("*.py")):
        names = LOGGER.findall(module.read_text())
        if names:
            found[str(module.relative_to(PACKAGE))] = names
    return found


def test_every_module_logs_as_fastesm_extract():
    names = logger_names()
    assert len(names) >= 10  # the scan sees the package's modules
    others = {module: found for module, found in names.items() if found != ['"fastesm_extract"']}
    assert others == {}


def test_no_module_logs_through_the_root_logger():
    calls = {
        str(module.relative_to(PACKAGE)): ROOT_LOGGER_CALLS.findall(module.read_text())
        for module in sorted(PACKAGE.rglob("*.py"))
    }
    assert {module: found for module, found in calls.items() if found} == {}
