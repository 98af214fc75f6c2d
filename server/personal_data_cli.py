"""`lenstrack keys rotate` and `lenstrack purge-personal-data`: patient data at rest."""

import argparse


def _keys_rotate(_args: argparse.Namespace) -> int:
    from server.domain.personal_data import rotate_data_keys
    from server.settings import Settings

    settings = Settings()
    key_file = settings.resolved_data_keys_file
    rotation = rotate_data_keys(key_file, settings.resolved_database_url)
    print(f"re-encrypted {rotation.rewritten} value(s) with a new key in {key_file}")
    if not rotation.old_keys_dropped:
        print("old keys kept: values under them were still being written (a server that had")
        print("not read the new key file yet); run `lenstrack keys rotate` again")
        return 1
    print("old keys dropped: nothing uses them any more")
    return 0


def _purge(args: argparse.Namespace) -> int:
    from server.db import Database
    from server.domain.personal_data import purge_expired
    from server.models import utcnow
    from server.settings import Settings

    settings = Settings()
    days = settings.personal_data_retention_days
    if days == 0:
        print("personal_data_retention_days is 0: personal data is kept forever")
        return 0
    database = Database.from_settings(settings)
    try:
        jobs = purge_expired(
            database.session, database.read_session, utcnow(), days, dry_run=args.dry_run
        )
    finally:
        database.dispose()
    verb = "would purge" if args.dry_run else "purged"
    print(f"{verb} the personal data of {jobs} job(s) finished more than {days} days ago")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = subparsers.add_parser("keys", help="the keys encrypting patient data")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    keys_commands.add_parser(
        "rotate", help="add a new key, re-encrypt everything with it, drop the old keys"
    )
    keys.set_defaults(handler=_keys_rotate)

    purge = subparsers.add_parser(
        "purge-personal-data",
        help="forget patient data of jobs finished longer ago than the retention period",
    )
    purge.add_argument("--dry-run", action="store_true", help="count the jobs, change nothing")
    purge.set_defaults(handler=_purge)
