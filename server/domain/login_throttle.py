"""Log-in throttling: after too many failed log-ins for one user name, or from one client
address, further attempts are refused for a while, before any password is hashed.

The counts live in the database (`LoginSubject`, `LoginAttempt`), so every server process on
it counts together. Each step is a short write transaction of its own, never one around the
password hash: one reserves the attempt before hashing, one settles it after.
"""

import hashlib
import ipaddress
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Insert, delete, func, select, tuple_
from sqlalchemy.orm import Session

from server.db import Database, conflict_insert
from server.domain.errors import TooManyAttempts, Unauthorized
from server.models import LoginAttempt, LoginSubject, utcnow

# An attempt being checked counts until it settles, or this long if its process died first.
IN_FLIGHT_TIMEOUT = timedelta(minutes=1)
# Expired rows one attempt prunes at most: the work a log-in does stays bounded.
PRUNE_BATCH = 1000


@dataclass(frozen=True)
class ThrottleRules:
    max_failures_per_account: int
    max_failures_per_address: int
    window_seconds: float
    lockout_seconds: float

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)

    @property
    def lockout(self) -> timedelta:
        return timedelta(seconds=self.lockout_seconds)


@dataclass(frozen=True)
class _Subject:
    scope: str  # the field a refusal names: "username" or "address"
    value: str
    limit: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.value.encode()).hexdigest()

    def attempts(self) -> ColumnElement[bool]:
        """The condition selecting this subject's attempts."""
        return (LoginAttempt.scope == self.scope) & (LoginAttempt.subject_digest == self.digest)


def address_key(host: str | None) -> str:
    """An IPv6 host usually owns a whole /64, so that is what counts as one address."""
    if host is None:
        return ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _upsert_subject(dialect: str) -> Insert:
    """Inserts a subject's row, or touches the one there: either way the row is this
    transaction's until it ends, so attempts on one subject count in turn."""
    insert = conflict_insert(dialect, LoginSubject)
    return insert.on_conflict_do_update(
        index_elements=["scope", "subject_digest"], set_={"scope": insert.excluded.scope}
    )


class LoginThrottle:
    """`clock` is injectable so tests move time without waiting."""

    def __init__(self, rules: ThrottleRules, clock: Callable[[], datetime] = utcnow) -> None:
        self.rules = rules
        self.clock = clock

    @contextmanager
    def attempt(self, db: Database, username: str, host: str | None) -> Iterator[None]:
        """Refuses (TooManyAttempts) while the user name or the address is locked out or has
        as many attempts failed and in flight as it may; else runs the block. An Unauthorized
        from the block counts as a failure; success clears the user name's failures."""
        subjects = (
            _Subject("username", username, self.rules.max_failures_per_account),
            _Subject("address", address_key(host), self.rules.max_failures_per_address),
        )
        with db.read_session() as session:
            # A flood of locked-out attempts is refused here, never taking the write lock.
            rows = [session.get(LoginSubject, (one.scope, one.digest)) for one in subjects]
            self._refuse_if_locked(subjects, rows)
        with db.session() as session:
            attempt_ids = self._reserve(session, subjects)
        try:
            yield
        except Unauthorized:
            self._settled(db, subjects, attempt_ids, failed=True)
            raise
        except BaseException:
            self._settled(db, subjects, attempt_ids, failed=False)
            raise
        self._settled(db, subjects, attempt_ids, failed=False, succeeded=True)

    def _settled(
        self,
        db: Database,
        subjects: tuple[_Subject, ...],
        attempt_ids: list[int],
        *,
        failed: bool,
        succeeded: bool = False,
    ) -> None:
        with db.session() as session:
            self._settle(session, subjects, attempt_ids, failed=failed, succeeded=succeeded)
        # Its own transaction: pruning locks rows no attempt waits for (SKIP LOCKED), and
        # holds none an attempt's transaction could be waiting on.
        with db.session() as session:
            self._prune(session)

    def _lock(self, session: Session, subjects: tuple[_Subject, ...]) -> list[LoginSubject]:
        """The subjects' rows, locked, always in the same order (no two attempts deadlock)."""
        dialect = session.get_bind().dialect.name
        rows = []
        for subject in subjects:
            session.execute(
                _upsert_subject(dialect).values(
                    scope=subject.scope,
                    subject_digest=subject.digest,
                    locked_until=None,
                    expires_at=self.clock(),
                )
            )
            rows.append(session.get_one(LoginSubject, (subject.scope, subject.digest)))
        return rows

    def _refuse_if_locked(
        self, subjects: tuple[_Subject, ...], rows: Sequence[LoginSubject | None]
    ) -> None:
        now = self.clock()
        for subject, row in zip(subjects, rows, strict=True):
            if row is not None and row.locked_until is not None and row.locked_until > now:
                raise self._refusal(subject, row.locked_until - now)

    def _reserve(self, session: Session, subjects: tuple[_Subject, ...]) -> list[int]:
        rows = self._lock(session, subjects)
        self._refuse_if_locked(subjects, rows)
        now = self.clock()
        for subject in subjects:
            counted = select(func.count()).where(subject.attempts(), LoginAttempt.expires_at > now)
            if (session.scalar(counted) or 0) >= subject.limit:
                # Only attempts still being checked fill it: they settle within a second.
                raise self._refusal(subject, timedelta(seconds=1))
        attempts = [
            LoginAttempt(
                scope=subject.scope,
                subject_digest=subject.digest,
                failed=False,
                expires_at=now + IN_FLIGHT_TIMEOUT,
            )
            for subject in subjects
        ]
        session.add_all(attempts)
        session.flush()
        return [attempt.id for attempt in attempts]

    def _settle(
        self,
        session: Session,
        subjects: tuple[_Subject, ...],
        attempt_ids: list[int],
        *,
        failed: bool,
        succeeded: bool,
    ) -> None:
        rows = self._lock(session, subjects)
        now = self.clock()
        # Deleted and added anew rather than updated: a reservation pruned meanwhile (its
        # process stalled past IN_FLIGHT_TIMEOUT) still leaves its failure counted.
        session.execute(delete(LoginAttempt).where(LoginAttempt.id.in_(attempt_ids)))
        for subject, row in zip(subjects, rows, strict=True):
            if succeeded and subject.scope == "username":
                session.execute(delete(LoginAttempt).where(subject.attempts(), LoginAttempt.failed))
            if not failed:
                continue
            session.add(
                LoginAttempt(
                    scope=subject.scope,
                    subject_digest=subject.digest,
                    failed=True,
                    expires_at=now + self.rules.window,
                )
            )
            session.flush()
            failures = select(func.count()).where(
                subject.attempts(), LoginAttempt.failed, LoginAttempt.expires_at > now
            )
            if (session.scalar(failures) or 0) >= subject.limit:
                row.locked_until = row.expires_at = now + self.rules.lockout
                session.execute(delete(LoginAttempt).where(subject.attempts(), LoginAttempt.failed))

    def _prune(self, session: Session) -> None:
        """Drops expired attempts and lockouts, a batch at a time, skipping rows an attempt
        holds: the tables hold what the window and lockouts still count, no more."""
        now = self.clock()
        expired_attempts = (
            select(LoginAttempt.id)
            .where(LoginAttempt.expires_at <= now)
            .limit(PRUNE_BATCH)
            .with_for_update(skip_locked=True)
        )
        session.execute(delete(LoginAttempt).where(LoginAttempt.id.in_(expired_attempts)))
        expired_subjects = (
            select(LoginSubject.scope, LoginSubject.subject_digest)
            .where(LoginSubject.expires_at <= now)
            .limit(PRUNE_BATCH)
            .with_for_update(skip_locked=True)
        )
        session.execute(
            delete(LoginSubject).where(
                tuple_(LoginSubject.scope, LoginSubject.subject_digest).in_(expired_subjects)
            )
        )

    @staticmethod
    def _refusal(subject: _Subject, wait: timedelta) -> TooManyAttempts:
        retry_after = max(math.ceil(wait.total_seconds()), 1)
        scope = "for this user name" if subject.scope == "username" else "from this address"
        return TooManyAttempts(
            subject.scope,
            f"too many failed log-ins {scope}; try again in {retry_after} s",
            retry_after,
        )
