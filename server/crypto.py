"""Patient data at rest: Fernet-encrypted columns and the rotatable data keys.

Personal columns (patient references, prescriptions, raw DCS labels, change values, webhook
secrets) are stored as Fernet tokens (AES-128-CBC with HMAC-SHA256) of their JSON form.
MultiFernet encrypts with the first key and decrypts with any, so rotation can put a new key
first, re-encrypt row by row, and drop the old key once nothing needs it.

The cipher travels with the engine: `attach_cipher` sets it on the engine's dialect (each
engine has its own), where the `Encrypted` column type finds it. An engine made without one
(a plain `create_engine`, a migration without keys) cannot read or write these columns,
and says so instead of storing plaintext.

The key file is checked against the database before anything opens it (`open_cipher`): a
lost or wrong file must stop the start, not be replaced by a new key silently. A running
process follows a rotation made by another one (see DataCipher).
"""

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Dialect, Engine, Text, TypeDecorator, column, inspect, select, table
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

CIPHER_ATTRIBUTE = "lenstrack_data_cipher"
# How every Fernet token starts (version byte 0x80, then a timestamp's leading zero bytes):
# a stored value without it is plaintext from before migration 0013.
FERNET_PREFIX = "gAAAAA"


class MissingDataKey(RuntimeError):
    """An encrypted column was used through an engine that holds no data key."""


class UnknownDataKey(InvalidToken):
    """A value none of the keys decrypts: the key file is not the one it was written with."""


class DataKeysError(RuntimeError):
    """The data keys file cannot read the database's patient data: nothing may start on it."""


def key_id(key: str) -> str:
    """A key's name for people and the audit trail: the start of its SHA-256, never the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _KeyRing:
    """The keys in use, swapped as one object: a thread never sees half of a reload."""

    keys: tuple[str, ...]
    fernets: tuple[Fernet, ...]  # one per key, the current one first
    fernet: MultiFernet

    @property
    def current(self) -> Fernet:
        return self.fernets[0]

    @classmethod
    def of(cls, keys: Sequence[str]) -> "_KeyRing":
        if not keys:
            raise ValueError("at least one data key is needed")
        fernets = tuple(Fernet(key) for key in keys)
        return cls(tuple(keys), fernets, MultiFernet(fernets))


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    """Changes whenever `write_keys` replaces the file (a new inode), None when it is gone."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


class DataCipher:
    """Encrypts with the first of `keys`, decrypts with any of them.

    With `key_file`, it follows `keys rotate` run by another process while this one serves:
    before encrypting it checks whether the file was replaced (a stat), so new values get the
    new key from then on; and a token no known key opens makes it read the file again before
    giving up. Keys it knew stay known for decrypting (a value written just before the old
    key was dropped is still read here).
    """

    def __init__(self, keys: Sequence[str], key_file: Path | None = None) -> None:
        self.key_file = key_file
        self._identity = _file_identity(key_file) if key_file else None
        self._ring = _KeyRing.of(keys)

    @property
    def keys(self) -> tuple[str, ...]:
        return self._ring.keys

    def _follow_key_file(self) -> bool:
        """Takes up the key file's keys if it was replaced since read; whether it was."""
        if self.key_file is None:
            return False
        identity = _file_identity(self.key_file)
        if identity is None or identity == self._identity:
            return False
        keys = read_keys(self.key_file)
        self._ring = _KeyRing.of([*keys, *(key for key in self._ring.keys if key not in keys)])
        self._identity = identity
        return True

    def encrypt(self, plaintext: str) -> str:
        self._follow_key_file()
        return self._ring.fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._ring.fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            if self._follow_key_file():
                return self.decrypt(token)
            raise UnknownDataKey(
                "no data key decrypts a stored value: is the data_keys file the one this "
                "database was encrypted with?"
            ) from error

    def reencrypted_if_stale(self, token: str) -> str | None:
        """`token` encrypted with the current key, or None if that key wrote it already.
        Each key's HMAC is checked once, and only a stale token is decrypted (once)."""
        ring = self._ring
        data = token.encode()
        try:
            ring.current.extract_timestamp(data)  # verifies the HMAC, decrypts nothing
            return None
        except InvalidToken:
            pass
        for older in ring.fernets[1:]:
            try:
                plaintext = older.decrypt(data)
            except InvalidToken:
                continue
            return ring.current.encrypt(plaintext).decode()
        raise UnknownDataKey("no data key decrypts a stored value")


def new_key() -> str:
    return Fernet.generate_key().decode()


def read_keys(path: Path) -> list[str]:
    """The keys in `path`, one a line, current first."""
    keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not keys:
        raise DataKeysError(f"the data keys file {path} holds no key")
    return keys


def stored_token_samples(database_url: str) -> dict[str, str]:
    """The newest encrypted value of each encrypted column ("table.column": token), read as
    text through a keyless engine; tables and columns an older schema lacks are skipped,
    and so are values stored before they were encrypted (migration 0013).

    One reflection query and one SELECT of a scalar subquery per column: every server start
    (and every test's context) runs this on a new engine, whose statement cache is empty."""
    from server.db import READ_ONLY, make_engine  # both import this module
    from server.models import Base

    engine = make_engine(database_url)
    try:
        with engine.execution_options(**{READ_ONLY: True}).connect() as connection:
            encrypted = {
                model_table.name: names
                for model_table in Base.metadata.sorted_tables
                if (names := [c.name for c in model_table.columns if isinstance(c.type, Encrypted)])
            }
            schema = inspect(connection)
            existing = [name for name in encrypted if schema.has_table(name)]
            # (An empty filter would reflect every table.)
            stored = schema.get_multi_columns(filter_names=existing) if existing else {}
            newest = [
                select(raw.c[name])
                .where(raw.c[name].is_not(None))
                .order_by(raw.c.id.desc())
                .limit(1)
                .scalar_subquery()
                .label(f"{table_name}.{name}")
                for (_, table_name), columns in stored.items()
                for name in encrypted[table_name]
                if name in {column["name"] for column in columns}
                for raw in [table(table_name, column("id"), column(name, Text))]
            ]
            row = connection.execute(select(*newest)).mappings().one() if newest else {}
    finally:
        engine.dispose()
    return {
        where: token
        for where, token in row.items()
        if token is not None and token.startswith(FERNET_PREFIX)
    }


def open_cipher(key_file: Path, database_url: str) -> DataCipher:
    """The cipher of `key_file`, checked against the database first. A key is generated only
    for a database holding no encrypted value yet: generated beside a database that does
    (the file lost, or misnamed in the settings), it would read none of it, and the values
    written with it would be unreadable with the right file."""
    try:
        samples = stored_token_samples(database_url)
    except DBAPIError as error:  # the server still starts, for /api/health to say so
        log.warning("data keys not checked: the database cannot be read (%s)", error.orig)
        samples = {}
    restore = "restore the file the database was encrypted with (keep a copy apart from backups)"
    if not key_file.exists():
        if samples:
            raise DataKeysError(
                f"the data keys file {key_file} does not exist, but the database holds "
                f"encrypted patient data ({', '.join(samples)}): {restore}"
            )
        write_keys(key_file, [new_key()])
    cipher = DataCipher(read_keys(key_file), key_file)
    for where, token in samples.items():
        try:
            cipher.decrypt(token)
        except UnknownDataKey:
            raise DataKeysError(
                f"no key in the data keys file {key_file} decrypts the patient data in "
                f"the database ({where}): it is not this database's file; {restore}"
            ) from None
    return cipher


def write_keys(path: Path, keys: Sequence[str]) -> None:
    """Replaces the key file at once (a crash leaves the old or the new file, never half)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(path.name + ".new")
    draft.unlink(missing_ok=True)
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write("".join(f"{key}\n" for key in keys))
        file.flush()
        os.fsync(file.fileno())
    draft.replace(path)


def attach_cipher(engine: Engine, cipher: DataCipher | None) -> None:
    setattr(engine.dialect, CIPHER_ATTRIBUTE, cipher)


def dialect_cipher(dialect: Dialect) -> DataCipher:
    cipher: DataCipher | None = getattr(dialect, CIPHER_ATTRIBUTE, None)
    if cipher is None:
        raise MissingDataKey(
            "this database connection has no data key for personal data "
            "(open it with the settings' keys: Database.from_settings)"
        )
    return cipher


class Encrypted(TypeDecorator[Any]):
    """A JSON value stored as a Fernet token; read back as `kind` (float, int, str), or as
    the JSON value itself for `object`. Encrypted values cannot be searched in SQL."""

    impl = Text
    cache_ok = True

    def __init__(self, kind: type = object) -> None:
        super().__init__()
        self.kind = kind

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return dialect_cipher(dialect).encrypt(json.dumps(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        plain = json.loads(dialect_cipher(dialect).decrypt(value))
        return plain if self.kind is object else self.kind(plain)
