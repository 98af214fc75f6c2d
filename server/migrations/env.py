"""Alembic environment: the URL comes from LensTrack's settings via `server.migrate`."""

from alembic import context
from sqlalchemy import Connection

from server.db import make_engine
from server.models import Base

config = context.config


def run_migrations(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a table by copy, drop and rename, which a referenced table
        # cannot survive with foreign keys on. The pragma only works outside a transaction.
        connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left rows with broken foreign keys: {broken}")


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(
        config.get_main_option("sqlalchemy.url") or "", config.attributes.get("data_cipher")
    )
    with engine.connect() as connection:
        run_migrations(connection)
    engine.dispose()
