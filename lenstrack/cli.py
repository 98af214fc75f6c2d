"""The `lenstrack` command: one entry point that dispatches to each app's own subcommands.

Each package registers its subcommands in modules of its own, so `drivers` commands work
without the server or station being importable.
"""

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType

# Modules that expose `register(subparsers)`, with the commands each registers (each sets
# `handler` via set_defaults). A run imports only the module of its command: importing every
# app costs about a second of CPU, paid by each call a script or a test makes.
COMMAND_MODULES = {
    "server.cli": (
        *("serve", "db", "config", "seed-demo", "station-token", "user", "webhook"),
        *("import-dcs", "export-dcs", "lab-token", "backup", "restore", "audit", "keys"),
        *("purge-personal-data", "serve-group"),
    ),
    "station.cli": ("station", "simulate-floor"),
    "drivers.cli": ("parse-lensmeter",),
    "drivers.decode_cli": ("decode",),
    "lenstrack.demo": ("demo",),
    "lenstrack.optics_cli": ("check-lens",),
}

Handler = Callable[[argparse.Namespace], int]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser that runs `command`, importing only the module that registers it; for any
    other (None, --help, a mistyped name) every module's, so that help lists them all."""
    parser = argparse.ArgumentParser(prog="lenstrack", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    owners = [name for name, commands in COMMAND_MODULES.items() if command in commands]
    for module in _importable(owners or COMMAND_MODULES):
        module.register(subparsers)
    return parser


def _importable(module_names: Iterable[str]) -> list[ModuleType]:
    """The modules that import; one whose package is not installed is left out."""
    modules = []
    for module_name in module_names:
        try:
            modules.append(importlib.import_module(module_name))
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
    return modules


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(arguments[0] if arguments else None).parse_args(arguments)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
