"""Passwords (argon2id) and bearer tokens (random, stored as SHA-256 digests)."""

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

STATION_TOKEN_PREFIX = "lst_"
SESSION_TOKEN_PREFIX = "lss_"
LAB_TOKEN_PREFIX = "llt_"

_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps the timing the same. Made once
# with `_hasher`'s parameters from a random password nobody kept: hashing it at import cost
# every `lenstrack` command and server start ~0.1 s of CPU.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$qjN7DBkMm/6ymJODRG0JZA"
    "$ADh5HfzPayY5rd4N9M9iwgdy+gIgwbpPvZia2T12Wb0"
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    # Tokens carry 256 random bits, so a fast digest is enough (no brute force to slow down).
    return hashlib.sha256(token.encode()).hexdigest()
