"""Server subcommands of `lenstrack`: serve, db, config, seed-demo, station-token, user; the
DCS ones (import-dcs, export-dcs, lab-token) are in dcs_cli.py, the patient data ones (keys
rotate, purge-personal-data) in personal_data_cli.py."""

import argparse
import getpass
import sys
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from server.audit_cli import register as register_audit
from server.backup_cli import register as register_backup
from server.crypto import DataKeysError
from server.dcs_cli import register as register_dcs
from server.group_cli import register as register_group
from server.notify.cli import register as register_webhook
from server.personal_data_cli import register as register_personal_data
from server.settings import CONFIG_DIR, Settings

EXIT_DATA_KEYS = 2
Handler = Callable[[argparse.Namespace], int]
# Another system's DCS job files that `seed-demo` imports as the demo's new work.
DEMO_DCS = CONFIG_DIR / "demo-dcs"


def _settings() -> Settings:
    return Settings()


def _serve(_args: argparse.Namespace) -> int:
    from server.app import serve

    serve(_settings())
    return 0


def _db(args: argparse.Namespace) -> int:
    from server import migrate

    settings = _settings()
    url = settings.resolved_database_url
    if args.db_command == "upgrade":
        migrate.upgrade(url, args.revision, settings.data_cipher)
    elif args.db_command == "downgrade":
        migrate.downgrade(url, args.revision, settings.data_cipher)
    else:
        migrate.make_revision(url, args.message)
    return 0


def _known_profiles(settings: Settings) -> set[str]:
    from core.optics.profiles import load_profiles

    return set(load_profiles(settings.tolerance_profiles).profiles)


def _config_load(_args: argparse.Namespace) -> int:
    from server.db import Database
    from server.domain.labsetup import apply_lab_config
    from server.labconfig import load_lab_config

    settings = _settings()
    config = load_lab_config(settings.lab_config, _known_profiles(settings))
    database = Database.from_settings(settings)
    with database.session() as session:
        apply_lab_config(session, config)
    print(f"applied {settings.lab_config} to lab {config.lab.code}")
    return 0


class _SeedProgress:
    """Progress on stderr, a line per tenth of the jobs, so a person (and `lenstrack demo`,
    which relays it) sees the seeding move."""

    def __init__(self) -> None:
        self.reported = 0

    def __call__(self, done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth > self.reported or done == total:
            self.reported = tenth
            print(f"seeding the demo lab: {done} of {total} jobs", file=sys.stderr, flush=True)


def _seed_demo(args: argparse.Namespace) -> int:
    from server import migrate
    from server.db import Database
    from server.domain.bulk_seed import bulk_seed
    from server.domain.dcs_jobs import DcsFile
    from server.domain.seed import DEMO_PEOPLE, seed_demo, seed_new_orders
    from server.labconfig import load_lab_config
    from server.models import Lab, utcnow

    settings = _settings()
    migrate.upgrade(settings.resolved_database_url, cipher=settings.data_cipher)
    database = Database.from_settings(settings)
    with database.session() as session:
        config = load_lab_config(settings.lab_config, _known_profiles(settings))
        if args.bulk is None:  # jobs moved by station events, one at a time
            seeded = seed_demo(session, config, args.jobs, args.seed, _SeedProgress())
        elif seeded := seed_demo(session, config, 0, args.seed):
            lab = session.scalars(select(Lab).where(Lab.code == config.lab.code)).one()
            history = timedelta(days=args.bulk)
            bulk_seed(
                session,
                lab.id,
                args.jobs,
                seed=args.seed,
                as_of=utcnow(),
                history=history,
                progress=_SeedProgress(),
            )
        if seeded:
            files = [DcsFile(path.name, path.read_bytes()) for path in sorted(DEMO_DCS.glob("*"))]
            new = seed_new_orders(session, files)
    print("seeded the demo lab" if seeded else "the demo lab has jobs already; left as it is")
    if seeded:
        print(f"new today (tickets not printed yet): {', '.join(job.job_number for job in new)}")
    print("demo log-ins (user / password / role / store / badge):")
    for login in DEMO_PEOPLE:
        print(
            f"  {login.username:8} {login.password:18} {login.role.value:13} "
            f"{login.store or '-':6} {login.badge or '-'}"
        )
    return 0


def _station_token(args: argparse.Namespace) -> int:
    from server.db import Database
    from server.domain import auth
    from server.domain.errors import NotFound

    database = Database.from_settings(_settings())
    try:
        with database.session() as session:
            if args.token_command == "create":
                print(auth.create_station_token(session, args.station, args.label))
            else:
                count = auth.revoke_station_tokens(session, args.station)
                print(f"revoked {count} token(s) of station {args.station}")
    except NotFound as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    return 0


def _email(text: str | None) -> str | None:
    """`--email` checked as a mail server's envelope takes it; "" (or none) is no address."""
    from pydantic import TypeAdapter, ValidationError

    from core.contract import EmailAddress

    if not text:
        return None
    try:
        return TypeAdapter(EmailAddress).validate_python(text)
    except ValidationError as error:
        raise ValueError(f"--email {text!r} is no e-mail address") from error


def _user(args: argparse.Namespace) -> int:
    return _user_email(args) if args.user_command == "email" else _user_create(args)


def _user_email(args: argparse.Namespace) -> int:
    from server.db import Database
    from server.models import Person

    try:
        email = _email(args.email)
        with Database.from_settings(_settings()).session() as session:
            person = session.scalar(select(Person).where(Person.username == args.username))
            if person is None:
                raise ValueError(f"unknown user {args.username!r}")
            person.email = email
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{args.username}: {email or 'no e-mail address'}")
    return 0


def _user_create(args: argparse.Namespace) -> int:
    from server.db import Database
    from server.domain.auth import set_password
    from server.models import Lab, Person, Role, Store

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
    database = Database.from_settings(_settings())
    try:
        email = _email(args.email)
        with database.session() as session:
            lab = session.scalars(select(Lab).order_by(Lab.id)).first()
            if lab is None:
                raise ValueError("no lab yet: run `lenstrack config load` first")
            store_id = None
            if args.store:
                store = session.scalar(select(Store).where(Store.code == args.store))
                if store is None:
                    raise ValueError(f"unknown store {args.store!r}")
                store_id = store.id
            person = Person(
                lab_id=lab.id,
                username=args.username,
                name=args.name,
                role=Role(args.role),
                badge_code=args.badge,
                store_id=store_id,
                store_manager=args.store_manager,
                email=email,
            )
            if args.store_manager and person.role != Role.store_staff:
                raise ValueError("--store-manager is for store_staff (they set store messages)")
            set_password(person, password)
            session.add(person)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"created {args.role} {args.username}")
    return 0


def _refusing_wrong_data_keys(handler: Handler) -> Handler:
    """`handler`, ending with the keys file's problem in one line instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except DataKeysError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_DATA_KEYS

    return run


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    others = set(subparsers.choices)
    serve = subparsers.add_parser("serve", help="run the server (API and pages)")
    serve.set_defaults(handler=_serve)

    db = subparsers.add_parser("db", help="database migrations")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="migrate to a revision (default: head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = db_commands.add_parser("downgrade", help="migrate back to a revision")
    downgrade.add_argument("revision")
    revision = db_commands.add_parser("revision", help="autogenerate a migration (developers)")
    revision.add_argument("-m", "--message", required=True)
    db.set_defaults(handler=_db)

    config = subparsers.add_parser("config", help="lab configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    config_commands.add_parser("load", help="apply the lab config file to the database")
    config.set_defaults(handler=_config_load)

    seed = subparsers.add_parser("seed-demo", help="create the demo lab with jobs")
    seed.add_argument("--jobs", type=int, default=200)
    seed.add_argument("--seed", type=int, default=7, help="random seed")
    seed.add_argument(
        "--bulk",
        type=float,
        metavar="DAYS",
        help="write the jobs straight to the tables as DAYS days of history (a big lab: "
        "--jobs 1000000 --bulk 365), instead of moving each by station events",
    )
    seed.set_defaults(handler=_seed_demo)

    token = subparsers.add_parser("station-token", help="create or revoke station tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="print a new token (shown once)")
    create.add_argument("--station", required=True)
    create.add_argument("--label", default="")
    revoke = token_commands.add_parser("revoke", help="revoke all tokens of a station")
    revoke.add_argument("--station", required=True)
    token.set_defaults(handler=_station_token)

    user = subparsers.add_parser("user", help="manage people")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    user_create = user_commands.add_parser("create", help="create a person who can log in")
    user_create.add_argument("--username", required=True)
    user_create.add_argument("--name", required=True)
    user_create.add_argument(
        "--role",
        required=True,
        choices=["technician", "qc_inspector", "lab_manager", "store_staff", "admin"],
    )
    user_create.add_argument("--store", help="store code (required for store_staff)")
    user_create.add_argument("--badge")
    user_create.add_argument(
        "--store-manager", action="store_true", help="store staff who set the store's messages"
    )
    user_create.add_argument("--email", help="a lab manager gets the lab's SPC alerts there")
    user_create.add_argument("--password-stdin", action="store_true")
    user_email = user_commands.add_parser("email", help="set or clear a person's e-mail address")
    user_email.add_argument("--username", required=True)
    user_email.add_argument("--email", required=True, help='the address; "" clears it')
    user.set_defaults(handler=_user)

    register_webhook(subparsers)
    register_dcs(subparsers)  # import-dcs, export-dcs, lab-token
    register_backup(subparsers)  # backup, restore
    register_audit(subparsers)  # audit verify, audit show
    register_personal_data(subparsers)  # keys rotate, purge-personal-data
    register_group(subparsers)  # serve-group
    for name, command in subparsers.choices.items():  # they open the database with its keys
        if name not in others:
            command.set_defaults(handler=_refusing_wrong_data_keys(command.get_default("handler")))
