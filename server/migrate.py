"""Alembic driven from code, so `lenstrack db upgrade` needs no alembic.ini beside it."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from server.crypto import DataCipher

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str, cipher: DataCipher | None = None) -> Config:
    """`cipher` lets a migration convert personal columns of existing rows (see 0013)."""
    config = Config()
    config.attributes["data_cipher"] = cipher
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation treats % specially (URL-encoded passwords contain it).
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head", cipher: DataCipher | None = None) -> None:
    command.upgrade(alembic_config(database_url, cipher), revision)


def downgrade(database_url: str, revision: str, cipher: DataCipher | None = None) -> None:
    command.downgrade(alembic_config(database_url, cipher), revision)


def make_revision(database_url: str, message: str) -> None:
    """Autogenerate a revision by comparing the models with a database at head."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
