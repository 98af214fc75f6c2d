"""Station subcommands of `lenstrack`: `station`, the touch-screen app of one station."""

import argparse
from pathlib import Path

from station.settings import StationSettings


def _station(args: argparse.Namespace) -> int:
    from station.app import run

    overrides = {"port": args.port} if args.port else {}
    run(StationSettings.load(args.config, **overrides))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    station = subparsers.add_parser("station", help="run one station's touch-screen app")
    station.add_argument("--config", type=Path, required=True, help="config/stations/NAME.toml")
    station.add_argument("--port", type=int, help="override the config's port")
    station.set_defaults(handler=_station)
