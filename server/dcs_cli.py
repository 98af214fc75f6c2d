"""`lenstrack import-dcs`, `export-dcs` and `lab-token`: DCS job files in and out, and the
tokens other systems use to send them (`POST /api/jobs/import`).

The commands act for the lab itself (a `LabPrincipal` without a token): whoever can run them
on the server can read its database anyway. Exit status: 0 done, 1 the input was refused
(every problem on stderr as FILE:LINE: message, nothing created), 2 a file cannot be read.
"""

import argparse
import json
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.domain.auth import LabPrincipal
from server.models import LensDesign
from server.settings import Settings

EXIT_OK, EXIT_REFUSED, EXIT_UNREADABLE = 0, 1, 2


def _lab_principal(session: Session, command: str) -> LabPrincipal:
    from server.domain.errors import NotFound
    from server.models import Lab

    lab = session.scalars(select(Lab).order_by(Lab.id)).first()
    if lab is None:
        raise NotFound("lab", "no lab yet: run `lenstrack config load` first")
    return LabPrincipal(lab.id, f"lenstrack {command}")


def _import(args: argparse.Namespace) -> int:
    from server.db import Database
    from server.domain.dcs_jobs import DcsFile, import_jobs
    from server.domain.errors import DomainError

    try:
        files = [DcsFile(path, Path(path).read_bytes()) for path in args.files]
    except OSError as error:
        print(f"error: cannot read {error.filename}: {error.strerror}", file=sys.stderr)
        return EXIT_UNREADABLE
    database = Database.from_settings(Settings())
    try:
        with database.session() as session:
            principal = _lab_principal(session, "import-dcs")
            options = {"store": args.store, "design": args.design, "dry_run": args.dry_run}
            imported = import_jobs(session, principal, files, **options)
    except DomainError as error:
        for where, message in error.problems:
            print(f"error: {where}: {message}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        database.engine.dispose()
    for job in imported:
        print(json.dumps(job.summary(), ensure_ascii=False))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from drivers.dcs import write
    from server.db import Database
    from server.domain.dcs_jobs import job_record
    from server.domain.errors import DomainError
    from server.domain.jobs import lookup_job

    database = Database.from_settings(Settings())
    try:
        with database.session() as session:
            job = lookup_job(session, _lab_principal(session, "export-dcs"), args.job)
            text = write(job_record(job))
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        database.engine.dispose()
    if args.output:
        Path(args.output).write_bytes(text.encode())
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _lab_token(args: argparse.Namespace) -> int:
    from server.db import Database
    from server.domain import auth
    from server.domain.errors import DomainError

    database = Database.from_settings(Settings())
    try:
        with database.session() as session:
            if args.token_command == "create":
                print(auth.create_lab_token(session, args.name))
            else:
                auth.revoke_lab_token(session, args.name)
                print(f"revoked lab token {args.name}")
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        database.engine.dispose()
    return EXIT_OK


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    imports = subparsers.add_parser(
        "import-dcs",
        help="create jobs from DCS job files (all or none)",
        description="Create a job from every record of the DCS files, or none if any record "
        "is refused. Prints one JSON line per job.",
    )
    imports.add_argument("files", nargs="+", metavar="FILE")
    imports.add_argument("--store", help="store code for records without _LT_STORE")
    imports.add_argument(
        "--design", choices=list(LensDesign), type=LensDesign, help="for an ADD without _LT_DESIGN"
    )
    imports.add_argument("--dry-run", action="store_true", help="check and print; create none")
    imports.set_defaults(handler=_import)

    export = subparsers.add_parser("export-dcs", help="write one job as a DCS record")
    export.add_argument("job", metavar="JOB", help="job number (or tray number)")
    export.add_argument("-o", "--output", metavar="FILE", help="write here, not to stdout")
    export.set_defaults(handler=_export)

    token = subparsers.add_parser(
        "lab-token", help="tokens another system uses to import DCS files for the lab"
    )
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="print a new lab token (shown once)")
    create.add_argument("name", metavar="NAME")
    revoke = token_commands.add_parser("revoke", help="revoke the live lab token of that name")
    revoke.add_argument("name", metavar="NAME")
    token.set_defaults(handler=_lab_token)
