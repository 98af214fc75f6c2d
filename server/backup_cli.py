"""`lenstrack backup FILE` and `lenstrack restore FILE [--force]` (see server/backup.py)."""

import argparse
import sys
from pathlib import Path


def _backup(args: argparse.Namespace) -> int:
    from server.backup import BackupError, backup
    from server.settings import Settings

    try:
        backup(Settings().resolved_database_url, args.file)
    except BackupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"backed up the database to {args.file} (mode 0600)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from server.backup import BackupError, restore
    from server.crypto import DataKeysError
    from server.settings import Settings

    settings = Settings()
    try:
        revision = restore(
            settings.resolved_database_url,
            args.file,
            force=args.force,
            data_keys_file=settings.resolved_data_keys_file,
        )
    except BackupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except DataKeysError as error:
        print(f"error: {error}", file=sys.stderr)
        print(
            "the backup is restored but not migrated: put its data keys file in place, then run "
            "`lenstrack db upgrade`",
            file=sys.stderr,
        )
        return 2
    print(f"restored {args.file} (made at migration {revision}), migrated to this version")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    backup = subparsers.add_parser("backup", help="a consistent copy of the database (0600)")
    backup.add_argument("file", type=Path)
    backup.set_defaults(handler=_backup)
    restore = subparsers.add_parser("restore", help="replace the database with a backup")
    restore.add_argument("file", type=Path)
    restore.add_argument(
        "--force", action="store_true", help="replace a database that holds data or is in use"
    )
    restore.set_defaults(handler=_restore)
