"""The `lenstrack` command: a run imports the module of its command only, help lists all."""

import argparse
import importlib
import subprocess
import sys

import pytest

from lenstrack.cli import COMMAND_MODULES, main
from tests.liveserver import PROJECT_ROOT


def test_each_module_registers_the_commands_listed_for_it() -> None:
    for module_name, commands in COMMAND_MODULES.items():
        subparsers = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module_name).register(subparsers)
        assert tuple(subparsers.choices) == commands, module_name


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {command for commands in COMMAND_MODULES.values() for command in commands} <= listed


def _packages_imported(command: str) -> set[str]:
    """The top-level packages a fresh interpreter imports to build `command`'s parser."""
    script = (
        "import sys\nfrom lenstrack.cli import build_parser\n"
        f"build_parser({command!r})\nprint(*{{name.split('.')[0] for name in sys.modules}})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


@pytest.mark.parametrize(
    ("command", "not_imported"),
    [
        ("parse-lensmeter", {"server", "station", "cv2", "nicegui"}),
        ("station", {"server"}),
        ("station-token", {"station", "cv2", "nicegui"}),
    ],
)
def test_a_command_imports_only_its_own_app(command: str, not_imported: set[str]) -> None:
    assert _packages_imported(command) & not_imported == set()
