"""`lenstrack audit verify` and `lenstrack audit show` (see server/domain/audit.py).

`verify` exits 0 when the chain is intact, 1 naming the first entry that was edited or that
follows a deleted one.
"""

import argparse
import json
import sys
from datetime import UTC, datetime

EXIT_INTACT, EXIT_TAMPERED = 0, 1


def _moment(text: str) -> datetime:
    """An ISO date or time; without a zone, UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _audit(args: argparse.Namespace) -> int:
    from server.db import Database
    from server.domain import audit
    from server.settings import Settings

    database = Database.from_settings(Settings())
    try:
        with database.read_session() as session:
            if args.audit_command == "show":
                for entry in audit.entries(session, since=args.since, subject=args.subject):
                    print(json.dumps(audit.as_json(entry), ensure_ascii=False))
                return EXIT_INTACT
            verdict = audit.verify(session)
    finally:
        database.dispose()
    if verdict.bad_id is not None:
        print(
            f"audit trail broken at entry {verdict.bad_id}: {verdict.problem} "
            f"({verdict.checked} entries before it are intact)",
            file=sys.stderr,
        )
        return EXIT_TAMPERED
    print(f"audit trail intact: {verdict.checked} entries, head {verdict.head}")
    return EXIT_INTACT


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    audit = subparsers.add_parser("audit", help="the audit trail of changes and views")
    commands = audit.add_subparsers(dest="audit_command", required=True)
    commands.add_parser("verify", help="check the hash chain; exit 1 naming the first bad entry")
    show = commands.add_parser("show", help="entries as JSON lines, oldest first")
    show.add_argument("--since", type=_moment, help="from this ISO date or time (UTC if no zone)")
    show.add_argument("--subject", help="one record, e.g. job:42 or person:7")
    audit.set_defaults(handler=_audit)
