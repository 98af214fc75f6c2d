"""The `lenstrack` command: one entry point that dispatches to each app's own subcommands.

Each package registers its subcommands in modules of its own, so `drivers` commands work
without the server or station being importable.
"""

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# Modules that expose `register(subparsers)`; each subcommand sets `handler` via set_defaults.
COMMAND_MODULES = (
    "server.cli",
    "station.cli",
    "drivers.cli",
    "drivers.decode_cli",
    "lenstrack.demo",
    "lenstrack.optics_cli",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lenstrack", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
