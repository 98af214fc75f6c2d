"""`lenstrack webhook add|list|remove`: an operator manages any store's webhooks."""

import argparse
import sys


def _webhook(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from sqlalchemy import select

    from server.db import Database
    from server.domain.errors import DomainError, NotFound
    from server.models import Store
    from server.notify import manage, outbound
    from server.notify.outbound import OutboundPolicy
    from server.notify.schemas import WebhookIn
    from server.settings import Settings

    settings = Settings()
    database = Database.from_settings(settings)
    try:
        webhook = None
        if args.webhook_command == "add":
            webhook = WebhookIn(url=args.url, secret=args.secret, kinds=args.kinds.split(","))
            # DNS before the transaction, as the API does.
            outbound.check(str(webhook.url), OutboundPolicy.from_settings(settings))
        with database.session() as session:
            store = session.scalar(select(Store).where(Store.code == args.store))
            if store is None:
                raise NotFound("store", f"unknown store {args.store!r}")
            if webhook is not None:
                hook, secret = manage.add_webhook(session, store, webhook)
                print(f"added webhook {hook.id} for {store.code}: {hook.url}")
                print(f"secret (shown once): {secret}")
            elif args.webhook_command == "remove":
                manage.remove_webhook(session, store, args.id)
                print(f"removed webhook {args.id} of {store.code}")
            else:
                for hook in manage.list_webhooks(session, store):
                    state = "active" if hook.active else "inactive"
                    print(f"{hook.id}\t{state}\t{','.join(hook.kinds)}\t{hook.url}")
    except DomainError as error:
        print(f"error: {error.field}: {error.message}", file=sys.stderr)
        return 1
    except ValidationError as error:
        for item in error.errors():
            field = ".".join(str(part) for part in item["loc"])
            print(f"error: {field}: {item['msg']}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    webhook = subparsers.add_parser("webhook", help="manage store webhooks")
    commands = webhook.add_subparsers(dest="webhook_command", required=True)
    add = commands.add_parser("add", help="add a webhook; prints its secret once")
    add.add_argument("--store", required=True, help="store code")
    add.add_argument("--url", required=True)
    add.add_argument("--secret", help="at least 16 characters (default: generated)")
    add.add_argument("--kinds", default="flag_raised,flag_cleared,job_ready")
    listing = commands.add_parser("list", help="a store's webhooks")
    listing.add_argument("--store", required=True)
    remove = commands.add_parser("remove", help="deactivate a webhook")
    remove.add_argument("--store", required=True)
    remove.add_argument("id", type=int)
    webhook.set_defaults(handler=_webhook)
