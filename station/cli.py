"""Station subcommands of `lenstrack`: `station`, the touch-screen app of one station, and
`simulate-floor`, simulated operators at stations for demos."""

import argparse
import asyncio
import contextlib
import logging
from pathlib import Path

from station.settings import StationSettings


def _station(args: argparse.Namespace) -> int:
    from station.app import run

    overrides = {"port": args.port} if args.port else {}
    run(StationSettings.load(args.config, **overrides))
    return 0


def _simulate_floor(args: argparse.Namespace) -> int:
    from station.simulator import FloorSettings, FloorSimulator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the floor
    floor = FloorSettings.load(args.config, server_url=args.server_url, speed=args.speed)
    if args.stations:
        names = set(args.stations.split(","))
        floor.stations = [station for station in floor.stations if station.name in names]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(FloorSimulator(floor).run(args.duration))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    station = subparsers.add_parser("station", help="run one station's touch-screen app")
    station.add_argument("--config", type=Path, required=True, help="config/stations/NAME.toml")
    station.add_argument("--port", type=int, help="override the config's port")
    station.set_defaults(handler=_station)

    floor = subparsers.add_parser(
        "simulate-floor", help="simulated operators at stations (the demo's -2 stations)"
    )
    floor.add_argument("--config", type=Path, default=Path("config/floor.toml"))
    floor.add_argument("--stations", help="comma-separated names (default: all in the config)")
    floor.add_argument("--speed", type=float, help="standard minutes per real minute")
    floor.add_argument("--server-url", help="override the config's server URL")
    floor.add_argument("--duration", type=float, help="stop after this many seconds")
    floor.set_defaults(handler=_simulate_floor)
