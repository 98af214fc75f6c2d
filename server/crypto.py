"""Patient data at rest: Fernet-encrypted columns and the rotatable data keys.

Personal columns (patient references, prescriptions, raw DCS labels, change values, webhook
secrets) are stored as Fernet tokens (AES-128-CBC with HMAC-SHA256) of their JSON form.
MultiFernet encrypts with the first key and decrypts with any, so rotation can put a new key
first, re-encrypt row by row, and drop the old key once nothing needs it.

The cipher travels with the engine: `attach_cipher` sets it on the engine's dialect (each
engine has its own), where the `Encrypted` column type finds it. An engine made without one
(a plain `create_engine`, a migration without keys) cannot read or write these columns,
and says so instead of storing plaintext.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Dialect, Engine, Text, TypeDecorator

CIPHER_ATTRIBUTE = "lenstrack_data_cipher"


class MissingDataKey(RuntimeError):
    """An encrypted column was used through an engine that holds no data key."""


class UnknownDataKey(InvalidToken):
    """A value none of the keys decrypts: the key file is not the one it was written with."""


class DataCipher:
    """Encrypts with the first of `keys`, decrypts with any of them."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one data key is needed")
        self.keys = tuple(keys)
        self._fernet = MultiFernet([Fernet(key) for key in self.keys])
        self._current = Fernet(self.keys[0])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise UnknownDataKey(
                "no data key decrypts a stored value: is the data_keys file the one this "
                "database was encrypted with (or a server started before `keys rotate`)?"
            ) from error

    def is_current(self, token: str) -> bool:
        """Whether the current (first) key alone decrypts `token`."""
        try:
            self._current.decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def reencrypt(self, token: str) -> str:
        """`token` encrypted again with the current key (the plaintext is unchanged)."""
        return self._fernet.rotate(token.encode()).decode()


def new_key() -> str:
    return Fernet.generate_key().decode()


def read_keys(path: Path) -> list[str]:
    """The keys in `path` (one a line, current first); a first key is generated (mode 0600)
    when the file does not exist yet."""
    if not path.exists():
        write_keys(path, [new_key()])
    keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not keys:
        raise ValueError(f"{path} holds no data key")
    return keys


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
