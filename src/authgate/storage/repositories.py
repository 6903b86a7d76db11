"""Repositories implementing core.ports over one transaction's session (split.DbSession)."""

from __future__ import annotations

import builtins
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Date, Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flight import BatchFlight
from authgate.core.identifiers import normalise_username
from authgate.core.model import (
    AuditEvent,
    ClientApp,
    ExternalIdentity,
    LockState,
    OneTimeSecret,
    Session,
    SigningKey,
    User,
)
from authgate.storage.split import DbSession
from authgate.storage.tables import (
    AuditRow,
    ClientRow,
    IdentityRow,
    KeyRow,
    KvRow,
    RetiredRefreshRow,
    SecretRow,
    SessionRow,
    UserRow,
)

T = TypeVar("T")
K = TypeVar("K", int, str)

# Hot paths read and write through the tables (Core), not ORM entities: an ORM load or flush costs
# several times more per row (identity map, unit of work), and a login does four of them.
USERS = cast(Table, UserRow.__table__)
SESSIONS = cast(Table, SessionRow.__table__)
AUDIT = cast(Table, AuditRow.__table__)
CLIENTS = cast(Table, ClientRow.__table__)

# The hottest statements are built once, with bound parameters: building one per call (a bound
# parameter object and a cache key for every column of an INSERT) cost more than running it.
_LIVE_USERS = select(USERS).where(USERS.c.deleted_at.is_(None))
_USER_BY_ID = _LIVE_USERS.where(USERS.c.id == bindparam("p_id"))
_USER_BY_ID_FOR_UPDATE = _USER_BY_ID.with_for_update()
_USER_BY_USERNAME = _LIVE_USERS.where(USERS.c.username_norm == bindparam("p_norm"))
_USER_BY_EMAIL = _LIVE_USERS.where(USERS.c.email_norm == bindparam("p_email"))
_USER_BY_PHONE = _LIVE_USERS.where(USERS.c.phone == bindparam("p_phone"))
_INSERT_USER = insert(USERS)
_UPDATE_USER = update(USERS).where(USERS.c.id == bindparam("p_id"))
_ADD_FAILED_LOGIN = (
    update(USERS)
    .where(USERS.c.id == bindparam("p_id"))
    .values(failed_logins=USERS.c.failed_logins + 1)
    .returning(USERS.c.failed_logins, USERS.c.is_locked)
)
_LOCK_STATE = (
    select(USERS.c.is_active, USERS.c.is_locked, USERS.c.locked_at, USERS.c.failed_logins)
    .where(USERS.c.id == bindparam("p_id"), USERS.c.deleted_at.is_(None))
    .with_for_update()
)
_RESET_FAILED_LOGINS = update(USERS).where(USERS.c.id == bindparam("p_id")).values(failed_logins=0)
_INSERT_SESSION = insert(SESSIONS)
_SESSION_BY_ID = select(SESSIONS).where(SESSIONS.c.id == bindparam("p_id"))
_SESSION_BY_REFRESH = select(SESSIONS).where(
    or_(SESSIONS.c.refresh_hash == bindparam("p_digest"), SESSIONS.c.previous_refresh_hash == bindparam("p_digest"))
)
# A refresh's lock and its one change in one statement (UPDATE ... RETURNING takes the row lock):
# a round trip less per refresh on PostgreSQL (docs/performance.md, item 47).
_TOUCH_SESSION_BY_REFRESH = (
    update(SESSIONS)
    .where(
        or_(SESSIONS.c.refresh_hash == bindparam("p_digest"), SESSIONS.c.previous_refresh_hash == bindparam("p_digest"))
    )
    .values(last_used_at=bindparam("p_at"))
    .returning(*SESSIONS.c)
)
_UPDATE_SESSION = update(SESSIONS).where(SESSIONS.c.id == bindparam("p_id"))
_INSERT_AUDIT = insert(AUDIT)
_CLIENT_BY_ID = select(CLIENTS).where(CLIENTS.c.client_id == bindparam("p_id"))


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


_ABSENT = object()


def _to_model(cls: type[T], row: Any) -> T:
    """A model from an ORM entity or a Core row (attributes named like the model's fields)."""
    # A Core row's values by name come from one dict: an attribute of a Row is a lookup through
    # its key map each time (a user's 38 were half of the 20 µs this took).
    asdict = getattr(row, "_asdict", None)
    get = asdict().get if asdict is not None else functools.partial(getattr, row)
    values = {}
    for name in _field_names(cls):  # type: ignore[arg-type]  # a class is hashable (mypy: type[T] is not)
        value = get(name, _ABSENT)
        if value is _ABSENT:
            continue
        # Lists and dicts (JSON columns) are copied so that changing the model marks the column
        # dirty on save; every other column value is immutable.
        values[name] = value.copy() if type(value) in (list, dict) else value
    return cls(**values)


@functools.cache
def _model_columns(table: Any, cls: type) -> tuple[tuple[str, ...], frozenset[str]]:
    """The model's fields that are ``table`` columns, and those of them without a default."""
    fields = set(_field_names(cls))
    keys = tuple(c.key for c in table.columns if c.key in fields)
    plain = frozenset(c.key for c in table.columns if c.default is None and c.server_default is None)
    return keys, plain


def _column_values(table: Any, obj: Any) -> dict[str, Any]:
    """The model's values for the table's columns (an UPDATE of every column)."""
    return {key: getattr(obj, key) for key in _model_columns(table, type(obj))[0]}  # type: ignore[arg-type]


def _insert_values(table: Any, obj: Any) -> dict[str, Any]:
    """The model's values for a Core INSERT. A None of a column with no default is left out: the
    row gets NULL all the same, without the driver binding it (a new user has ~20 such columns,
    about half the cost of its INSERT)."""
    keys, plain = _model_columns(table, type(obj))  # type: ignore[arg-type]
    return {key: value for key in keys if (value := getattr(obj, key)) is not None or key not in plain}


def _copy_into(row: Any, obj: Any) -> None:
    for f in dataclasses.fields(obj):
        if hasattr(row, f.name):
            setattr(row, f.name, getattr(obj, f.name))


def _conflict_field(exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    for name in ("username", "email", "phone", "guid", "client_id"):
        if name in text:
            return name
    return "id"


class UserCache:
    """Live users by id (and username → id) for ``ttl`` seconds, filled only by read-only
    transactions and forgotten as soon as a transaction on this node that touched the user commits.

    Another node's change shows here within ``ttl`` (the same bound as session revocation:
    docs/architecture.md), which spares the database the read behind every authenticated request.
    Misses in one turn of the event loop share one query (core.flight.BatchFlight), by id and by
    normalised username.
    """

    def __init__(self, ttl: float, limit: int = 100_000) -> None:
        self.ttl = ttl
        self.limit = limit
        # Oldest first (an entry put again moves to the end): what has expired is at the front.
        self._by_id: dict[int, tuple[User, float, str]] = {}
        self._by_name: dict[str, int] = {}
        self.id_flights: BatchFlight[int, User] = BatchFlight()
        self.name_flights: BatchFlight[str, User] = BatchFlight()

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, user_id: int) -> User | None:
        hit = self._by_id.get(user_id)
        if hit is None or time.monotonic() - hit[1] > self.ttl:
            return None
        return _clone(hit[0])

    def by_username(self, username_norm: str) -> User | None:
        user_id = self._by_name.get(username_norm)
        user = self.get(user_id) if user_id is not None else None
        if user is None or normalise_username(user.username) != username_norm:
            return None
        return user

    def put(self, user: User) -> None:
        now = time.monotonic()
        self._expire(now)
        norm = normalise_username(user.username)
        old = self._by_id.pop(user.id, None)
        if old is not None and old[2] != norm and self._by_name.get(old[2]) == user.id:
            del self._by_name[old[2]]  # renamed
        self._by_id[user.id] = (_clone(user), now, norm)
        self._by_name[norm] = user.id

    def _expire(self, now: float) -> None:
        """Drop expired entries (and the oldest past ``limit``) from the front, so the cache holds
        about ``ttl`` seconds of misses, not every user ever read: with a million users, keeping
        100,000 dead entries cost memory and long pauses of the cyclic GC."""
        by_id = self._by_id
        while by_id:
            user_id = next(iter(by_id))
            _, stamp, norm = by_id[user_id]
            if now - stamp <= self.ttl and len(by_id) < self.limit:
                return
            del by_id[user_id]
            if self._by_name.get(norm) == user_id:
                del self._by_name[norm]

    def forget(self, user_ids: set[int]) -> None:
        for user_id in user_ids:
            hit = self._by_id.pop(user_id, None)
            if hit is not None and self._by_name.get(hit[2]) == user_id:
                del self._by_name[hit[2]]


@dataclasses.dataclass(frozen=True)
class _Many:
    """How a batch of cache misses is read: ``stmt`` selects the rows whose ``column`` is in the
    list bound to ``param``; each row becomes a ``model``."""

    stmt: Any
    param: str
    column: str
    model: type


_USERS_BY_IDS = _Many(_LIVE_USERS.where(USERS.c.id.in_(bindparam("p_ids", expanding=True))), "p_ids", "id", User)
_USERS_BY_USERNAMES = _Many(
    _LIVE_USERS.where(USERS.c.username_norm.in_(bindparam("p_norms", expanding=True))), "p_norms", "username_norm", User
)
_CLIENTS_BY_IDS = _Many(
    select(CLIENTS).where(CLIENTS.c.client_id.in_(bindparam("p_ids", expanding=True))), "p_ids", "client_id", ClientApp
)


async def _through_cache(
    cache: UserCache | ClientCache, s: DbSession, flight: BatchFlight[K, T], key: K,
    one: Callable[[], Awaitable[T | None]], many: _Many, clone: Callable[[T], T],
) -> T | None:
    """A cache miss, read with the other misses of this turn of the event loop in one query
    (core.flight.BatchFlight; ``one`` reads a lone key), each found row cached; callers that
    shared a row with another get their own copy.

    A transaction that already holds its connection (``s`` has run a statement) reads alone on it
    rather than wait for another request's query: that one may be queued for a connection this one
    holds, and the two would wait on each other until the pool's timeout (a pool of one answered 22
    concurrent requests with 503)."""

    async def alone() -> T | None:
        value = await one()
        if value is not None:
            cache.put(value)  # type: ignore[arg-type]
        return value

    async def load(keys: Sequence[K]) -> dict[K, T]:
        if len(keys) == 1:  # the leader's own key: the statement of one key is the cheaper one
            value = await alone()
            return {keys[0]: value} if value is not None else {}
        # Padded to a power of two with the last key again: PostgreSQL statements are prepared
        # per connection and text, and up to 64 list lengths would each be one more (asyncpg
        # keeps 100 per connection): six lengths, 2 to 64, besides the one-key statement.
        padded = list(keys) + [keys[-1]] * ((1 << (len(keys) - 1).bit_length()) - len(keys))
        found: dict[K, T] = {}
        for row in (await s.execute(many.stmt, {many.param: padded})).all():
            value = _to_model(many.model, row)
            cache.put(value)
            found[getattr(row, many.column)] = value
        return found

    if s.holds_connection:
        return await alone()
    value, shared = await flight.load(key, load)
    return clone(value) if shared and value is not None else value


def _shallow(obj: T) -> T:
    """A shallow copy of a model without running its __init__ (4x cheaper than dataclasses.replace,
    and done on every cache hit)."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    return new


def _clone(user: User) -> User:
    new = _shallow(user)
    new.roles = list(user.roles)
    if user.interests:
        new.interests = list(user.interests)
    return new


class Users:
    def __init__(self, s: DbSession, cache: UserCache | None = None, read_only: bool = False) -> None:
        self.s = s
        # The cache serves and learns only in read-only transactions; writes record what they touch.
        self.cache = cache if read_only else None
        self.touched: set[int] = set()

    def _live(self) -> Any:
        return select(USERS).where(UserRow.deleted_at.is_(None))

    async def _one(self, stmt: Any, params: dict[str, Any] | None = None) -> User | None:
        row = (await self.s.execute(stmt, params)).first()
        return _to_model(User, row) if row else None

    async def get(self, user_id: int, *, for_update: bool = False) -> User | None:
        params = {"p_id": user_id}
        if self.cache is None or for_update:
            return await self._one(_USER_BY_ID_FOR_UPDATE if for_update else _USER_BY_ID, params)
        cached = self.cache.get(user_id)
        if cached is not None:
            return cached
        return await _through_cache(
            self.cache, self.s, self.cache.id_flights, user_id, lambda: self._one(_USER_BY_ID, params), _USERS_BY_IDS,
            _clone,
        )

    async def get_by_username(self, username: str) -> User | None:
        norm = normalise_username(username)
        if self.cache is not None:
            cached = self.cache.by_username(norm)
            if cached is not None:
                return cached
        params = {"p_norm": norm}
        if self.cache is None:
            return await self._one(_USER_BY_USERNAME, params)
        return await _through_cache(
            self.cache, self.s, self.cache.name_flights, norm, lambda: self._one(_USER_BY_USERNAME, params),
            _USERS_BY_USERNAMES, _clone,
        )

    async def get_by_email(self, email: str) -> User | None:
        return await self._one(_USER_BY_EMAIL, {"p_email": email.lower()})

    async def get_by_phone(self, phone: str) -> User | None:
        return await self._one(_USER_BY_PHONE, {"p_phone": phone})

    async def get_any(self, user_id: int) -> User | None:
        """Including soft-deleted users (admin views)."""
        return await self._one(select(USERS).where(UserRow.id == user_id))

    async def username_taken(self, username: str) -> bool:
        stmt = select(func.count()).select_from(UserRow).where(
            UserRow.username_norm == normalise_username(username), UserRow.deleted_at.is_(None)
        )
        return bool((await self.s.execute(stmt)).scalar())

    @staticmethod
    def _values(user: User, insert: bool = False) -> dict[str, Any]:
        values = (_insert_values if insert else _column_values)(USERS, user)
        values["username_norm"] = normalise_username(user.username)
        values["email_norm"] = user.email.lower() if user.email else None
        return values

    async def create(self, user: User, *, savepoint: bool = True) -> User:
        """Insert ``user``; a taken username, email or phone is ``identifier_taken`` naming it.

        With ``savepoint`` a conflict undoes this insert only, so the transaction can go on (a
        retry under another username); without, the caller ends the transaction on a conflict,
        and the insert is one statement instead of three."""
        self.touched.add(user.id)
        try:
            if savepoint:
                async with self.s.begin_nested():
                    await self.s.execute(_INSERT_USER, self._values(user, insert=True))
            else:
                await self.s.execute(_INSERT_USER, self._values(user, insert=True))
        except IntegrityError as exc:
            raise AuthError(ErrorCode.IDENTIFIER_TAKEN, field=_conflict_field(exc)) from None
        return user

    async def save(self, user: User) -> User:
        """Write every column of ``user`` (read in this transaction, usually ``for_update``)."""
        self.touched.add(user.id)
        values = self._values(user)
        del values["id"]
        values["p_id"] = user.id
        try:
            async with self.s.begin_nested():
                result = await self.s.execute(_UPDATE_USER, values)
        except IntegrityError as exc:
            raise AuthError(ErrorCode.IDENTIFIER_TAKEN, field=_conflict_field(exc)) from None
        if not result.rowcount:
            raise AuthError(ErrorCode.USER_NOT_FOUND)
        return user

    # The failure count is read only under a row lock in a write transaction (the lockout), never
    # from a cached user, so counting one does not make this node forget the user: a burst of
    # wrong passwords would otherwise read the user row again for every guess.
    async def add_failed_login(self, user_id: int) -> tuple[int, bool] | None:
        """One more failure in one statement: (failures now, is_locked), None if no such row."""
        row = (await self.s.execute(_ADD_FAILED_LOGIN, {"p_id": user_id})).first()
        return (int(row[0]), bool(row[1])) if row else None

    async def lock_state(self, user_id: int) -> LockState | None:
        """A live user's lock columns, the row locked until the transaction ends."""
        row = (await self.s.execute(_LOCK_STATE, {"p_id": user_id})).first()
        return LockState(bool(row[0]), bool(row[1]), row[2], int(row[3])) if row else None

    async def reset_failed_logins(self, user_id: int) -> None:
        await self.s.execute(_RESET_FAILED_LOGINS, {"p_id": user_id})

    async def list(self, search: str | None, limit: int, after_id: int | None) -> Sequence[User]:
        stmt = self._live().order_by(UserRow.id).limit(limit)
        if after_id is not None:
            stmt = stmt.where(UserRow.id > after_id)
        if search:
            # A substring, with LIKE's own wildcards (and the escape) matched as themselves:
            # usernames hold underscores.
            escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            like = f"%{escaped}%"
            stmt = stmt.where(
                or_(
                    UserRow.username_norm.like(like, escape="\\"),
                    UserRow.email_norm.like(like, escape="\\"),
                    UserRow.phone.like(like, escape="\\"),
                )
            )
        rows = (await self.s.execute(stmt)).all()
        return [_to_model(User, r) for r in rows]

    async def find_by_customer(self, stripe_customer_id: str) -> User | None:
        return await self._one(self._live().where(UserRow.stripe_customer_id == stripe_customer_id))

    async def find_many(
        self, usernames: Sequence[str], emails: Sequence[str], phones: Sequence[str], *, for_update: bool = False
    ) -> builtins.list[User]:  # ``list`` here is Users.list
        """Live users holding any of these usernames, emails or phones, in one query (bulk import)."""
        conds = []
        if usernames:
            conds.append(UserRow.username_norm.in_([normalise_username(u) for u in usernames]))
        if emails:
            conds.append(UserRow.email_norm.in_([e.lower() for e in emails]))
        if phones:
            conds.append(UserRow.phone.in_(list(phones)))
        if not conds:
            return []
        stmt = self._live().where(or_(*conds))
        if for_update:
            stmt = stmt.with_for_update()
        return [_to_model(User, r) for r in (await self.s.execute(stmt)).all()]

    async def create_many(self, users: Sequence[User]) -> None:
        """Insert new users in one executemany; a clash on any unique index fails them all."""
        self.touched.update(u.id for u in users)
        columns = [c.key for c in UserRow.__table__.columns]
        values = []
        for user in users:
            row = {k: getattr(user, k) for k in columns if hasattr(user, k)}
            row["username_norm"] = normalise_username(user.username)
            row["email_norm"] = user.email.lower() if user.email else None
            values.append(row)
        try:
            async with self.s.begin_nested():
                await self.s.execute(insert(UserRow), values)
        except IntegrityError as exc:
            raise AuthError(ErrorCode.IDENTIFIER_TAKEN, field=_conflict_field(exc)) from None


class Sessions:
    def __init__(self, s: DbSession) -> None:
        self.s = s

    async def create(self, session: Session) -> None:
        await self.s.execute(_INSERT_SESSION, _insert_values(SESSIONS, session))

    async def get(self, session_id: str) -> Session | None:
        row = (await self.s.execute(_SESSION_BY_ID, {"p_id": session_id})).first()
        return _to_model(Session, row) if row else None

    async def get_by_refresh_hash(self, digest: str) -> Session | None:
        row = (await self.s.execute(_SESSION_BY_REFRESH, {"p_digest": digest})).first()
        return _to_model(Session, row) if row else None

    async def retire_refresh_hash(self, digest: str, session_id: str, expires_at: datetime) -> None:
        await self.s.execute(
            insert(RetiredRefreshRow).values(refresh_hash=digest, session_id=session_id, expires_at=expires_at)
        )

    async def purge_expired(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` sessions that expired before ``before``, and up to ``limit``
        retired refresh tokens (each expires with its session as it was when retired, so none
        outlives its session)."""
        ids = select(SessionRow.id).where(SessionRow.expires_at < before).limit(limit).scalar_subquery()
        gone = await self.s.execute(delete(SessionRow).where(SessionRow.id.in_(ids)))
        hashes = (
            select(RetiredRefreshRow.refresh_hash)
            .where(RetiredRefreshRow.expires_at < before)
            .limit(limit)
            .scalar_subquery()
        )
        retired = await self.s.execute(delete(RetiredRefreshRow).where(RetiredRefreshRow.refresh_hash.in_(hashes)))
        return int(gone.rowcount or 0) + int(retired.rowcount or 0)

    async def session_of_retired(self, digest: str) -> str | None:
        found = await self.s.execute(
            select(RetiredRefreshRow.session_id).where(RetiredRefreshRow.refresh_hash == digest)
        )
        value = found.scalar_one_or_none()
        return str(value) if value is not None else None

    async def touch_by_refresh_hash(self, digest: str, at: datetime) -> Session | None:
        row = (await self.s.execute(_TOUCH_SESSION_BY_REFRESH, {"p_digest": digest, "p_at": at})).first()
        return _to_model(Session, row) if row else None

    async def save(self, session: Session) -> None:
        values = _column_values(SESSIONS, session)
        del values["id"]
        values["p_id"] = session.id
        result = await self.s.execute(_UPDATE_SESSION, values)
        assert result.rowcount == 1

    async def revoke(self, session_id: str, reason: str, at: datetime) -> bool:
        result = await self.s.execute(
            update(SessionRow)
            .where(SessionRow.id == session_id, SessionRow.revoked_at.is_(None))
            .values(revoked_at=at, revoked_reason=reason)
        )
        return bool(result.rowcount)

    async def revoke_user(
        self, user_id: int, reason: str, at: datetime, except_id: str | None = None
    ) -> list[str]:
        cond = [SessionRow.user_id == user_id, SessionRow.revoked_at.is_(None)]
        if except_id:
            cond.append(SessionRow.id != except_id)
        ids = list((await self.s.execute(select(SessionRow.id).where(*cond))).scalars().all())
        if ids:
            await self.s.execute(
                update(SessionRow).where(SessionRow.id.in_(ids)).values(revoked_at=at, revoked_reason=reason)
            )
        return ids

    async def list_active(self, user_id: int, now: datetime) -> Sequence[Session]:
        rows = (
            await self.s.execute(
                select(SessionRow)
                .where(
                    SessionRow.user_id == user_id,
                    SessionRow.revoked_at.is_(None),
                    SessionRow.expires_at > now,
                )
                .order_by(SessionRow.created_at.desc())
            )
        ).scalars().all()
        return [_to_model(Session, r) for r in rows]


class Secrets:
    def __init__(self, s: DbSession) -> None:
        self.s = s

    async def create(self, secret: OneTimeSecret) -> None:
        row = SecretRow()
        _copy_into(row, secret)
        self.s.add(row)
        await self.s.flush()

    async def get(self, secret_id: str, *, for_update: bool = False) -> OneTimeSecret | None:
        stmt = select(SecretRow).where(SecretRow.id == secret_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.s.execute(stmt)).scalars().first()
        return _to_model(OneTimeSecret, row) if row else None

    async def get_active(self, purpose: str, identifier: str) -> OneTimeSecret | None:
        row = (
            await self.s.execute(
                select(SecretRow)
                .where(
                    SecretRow.purpose == purpose,
                    SecretRow.identifier == identifier,
                    SecretRow.used_at.is_(None),
                )
                .order_by(SecretRow.created_at.desc())
            )
        ).scalars().first()
        return _to_model(OneTimeSecret, row) if row else None

    async def save(self, secret: OneTimeSecret) -> None:
        row = await self.s.get(SecretRow, secret.id)
        assert row is not None
        _copy_into(row, secret)
        await self.s.flush()

    async def invalidate(self, purpose: str, identifier: str, at: datetime) -> None:
        await self.s.execute(
            update(SecretRow)
            .where(SecretRow.purpose == purpose, SecretRow.identifier == identifier, SecretRow.used_at.is_(None))
            .values(used_at=at)
        )

    async def purge_expired(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` secrets that expired before ``before`` (used or not)."""
        ids = select(SecretRow.id).where(SecretRow.expires_at < before).limit(limit).scalar_subquery()
        result = await self.s.execute(delete(SecretRow).where(SecretRow.id.in_(ids)))
        return int(result.rowcount or 0)


class Keys:
    def __init__(self, s: DbSession) -> None:
        self.s = s

    async def all(self) -> Sequence[SigningKey]:
        rows = (await self.s.execute(select(KeyRow))).scalars().all()
        return [_to_model(SigningKey, r) for r in rows]

    async def add(self, key: SigningKey) -> None:
        row = KeyRow()
        _copy_into(row, key)
        self.s.add(row)
        await self.s.flush()

    async def deactivate_others(self, kid: str, at: datetime) -> None:
        await self.s.execute(
            update(KeyRow).where(KeyRow.kid != kid, KeyRow.active.is_(True)).values(active=False, retired_at=at)
        )


class Identities:
    def __init__(self, s: DbSession) -> None:
        self.s = s

    async def get(self, provider: str, subject: str) -> ExternalIdentity | None:
        row = await self.s.get(IdentityRow, (provider, subject))
        return _to_model(ExternalIdentity, row) if row else None

    async def create(self, identity: ExternalIdentity) -> None:
        row = IdentityRow()
        _copy_into(row, identity)
        row.created_at = identity.created_at or datetime.now(UTC)
        try:
            async with self.s.begin_nested():
                self.s.add(row)
                await self.s.flush()
        except IntegrityError:
            raise AuthError(ErrorCode.IDENTIFIER_TAKEN, field="identity") from None

    async def for_user(self, user_id: int) -> Sequence[ExternalIdentity]:
        rows = (await self.s.execute(select(IdentityRow).where(IdentityRow.user_id == user_id))).scalars().all()
        return [_to_model(ExternalIdentity, r) for r in rows]

    async def unlink_others(self, user_id: int, provider: str, subject: str) -> int:
        result = await self.s.execute(
            delete(IdentityRow).where(
                IdentityRow.user_id == user_id,
                or_(IdentityRow.provider != provider, IdentityRow.subject != subject),
            )
        )
        return int(result.rowcount or 0)


class ClientCache:
    """Client apps by client id for ``ttl`` seconds (every app-signed request needs its client);
    same rules as UserCache: filled by reads, forgotten when this node changes the client."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._by_id: dict[str, tuple[ClientApp, float]] = {}
        self.flights: BatchFlight[str, ClientApp] = BatchFlight()

    def get(self, client_id: str) -> ClientApp | None:
        hit = self._by_id.get(client_id)
        if hit is None or time.monotonic() - hit[1] > self.ttl:
            return None
        return _clone_client(hit[0])

    def put(self, client: ClientApp) -> None:
        if len(self._by_id) > 10_000:
            self._by_id.clear()
        self._by_id[client.client_id] = (_clone_client(client), time.monotonic())  # the caller keeps its own

    def forget(self, client_ids: set[str]) -> None:
        for client_id in client_ids:
            self._by_id.pop(client_id, None)


def _clone_client(client: ClientApp) -> ClientApp:
    new = _shallow(client)
    new.platforms = list(client.platforms)
    new.min_versions = dict(client.min_versions)
    return new


class Clients:
    def __init__(self, s: DbSession, cache: ClientCache | None = None, read_only: bool = False) -> None:
        self.s = s
        self.cache = cache if read_only else None
        self.touched: set[str] = set()

    async def _fetch(self, client_id: str) -> ClientApp | None:
        row = (await self.s.execute(_CLIENT_BY_ID, {"p_id": client_id})).first()
        return _to_model(ClientApp, row) if row else None

    async def get(self, client_id: str) -> ClientApp | None:
        if self.cache is None:
            return await self._fetch(client_id)
        cached = self.cache.get(client_id)
        if cached is not None:
            return cached
        return await _through_cache(
            self.cache, self.s, self.cache.flights, client_id, lambda: self._fetch(client_id), _CLIENTS_BY_IDS,
            _clone_client,
        )

    async def create(self, client: ClientApp) -> None:
        row = ClientRow()
        _copy_into(row, client)
        self.s.add(row)
        await self.s.flush()

    async def save(self, client: ClientApp) -> None:
        self.touched.add(client.client_id)
        row = (await self.s.execute(select(ClientRow).where(ClientRow.id == client.id))).scalars().first()
        assert row is not None
        _copy_into(row, client)
        await self.s.flush()


def _audit_values(e: AuditEvent) -> dict[str, Any]:
    return {"type": e.type, "at": e.at, "user_id": e.user_id, "actor": e.actor, "ip": e.ip,
            "user_agent": e.user_agent, "detail": e.detail}


class _UtcDay(FunctionElement[Any]):
    """The UTC calendar day of a ``UtcDateTime`` column, computed by the database. The SQL differs
    per dialect and is chosen when the statement is compiled (the sessions here do not expose
    their dialect): PostgreSQL's ``date`` of a ``timestamptz`` follows the session's time zone, so
    the value is shifted to UTC first; SQLite holds naive UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``,
    see ``UtcDateTime``), whose ``date()`` is the UTC day."""

    name = "utc_day"
    inherit_cache = True
    type = Date()


@compiles(_UtcDay, "postgresql")
def _utc_day_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    return f"CAST(timezone('UTC', {compiler.process(element.clauses, **kw)}) AS DATE)"


@compiles(_UtcDay, "sqlite")
def _utc_day_sqlite(element: Any, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


class Audit:
    """Events are written when the transaction commits, all in one statement (a signup records
    two: one INSERT fewer on the event loop), or before this transaction lists events."""

    def __init__(self, s: DbSession) -> None:
        self.s = s
        self._pending: list[dict[str, Any]] = []

    async def add(self, event: AuditEvent) -> None:
        self._pending.append(_audit_values(event))

    async def add_many(self, events: Sequence[AuditEvent]) -> None:
        """Many events in one executemany (bulk import)."""
        self._pending.extend(_audit_values(e) for e in events)
        await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        if len(pending) == 1:
            await self.s.execute(_INSERT_AUDIT, pending[0])
        elif pending:
            await self.s.execute(_INSERT_AUDIT, pending)

    async def list(
        self,
        *,
        user_id: int | None = None,
        type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> Sequence[AuditEvent]:
        await self.flush()
        stmt = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if user_id is not None:
            stmt = stmt.where(AuditRow.user_id == user_id)
        if type:
            stmt = stmt.where(AuditRow.type == type)
        if since:
            stmt = stmt.where(AuditRow.at >= since)
        if until:
            stmt = stmt.where(AuditRow.at < until)
        if before_id is not None:
            stmt = stmt.where(AuditRow.id < before_id)
        rows = (await self.s.execute(stmt)).scalars().all()
        return [_to_model(AuditEvent, r) for r in rows]

    async def count_per_day(self, type: str, since: datetime, until: datetime | None = None) -> dict[date, int]:
        """How many events of ``type`` at or after ``since`` (and before ``until``) fell on each UTC
        day, counted by the database (one row per day that has any: days with none are absent)."""
        await self.flush()
        day = _UtcDay(AuditRow.at)
        stmt = select(day, func.count()).where(AuditRow.type == type, AuditRow.at >= since).group_by(day)
        if until is not None:
            stmt = stmt.where(AuditRow.at < until)
        return {
            d if isinstance(d, date) else date.fromisoformat(d): n for d, n in (await self.s.execute(stmt)).all()
        }


class Kv:
    def __init__(self, s: DbSession) -> None:
        self.s = s

    async def get(self, name: str) -> str | None:
        row = await self.s.get(KvRow, name)
        return row.value if row else None

    async def put_if_absent(self, name: str, value: str) -> str:
        existing = await self.s.get(KvRow, name) or await self._insert(name, value)
        return existing.value if existing else value

    async def put(self, name: str, value: str) -> None:
        """Set ``name`` to ``value``, inserting or updating it. Portable (no dialect upsert): callers
        serialise writers of one name themselves, e.g. under a row lock they hold."""
        row = await self.s.get(KvRow, name) or await self._insert(name, value)
        if row is not None:
            row.value = value
            await self.s.flush()

    async def _insert(self, name: str, value: str) -> KvRow | None:
        """Insert ``name`` (None), or the row another writer inserted meanwhile (in a savepoint, so
        the conflict leaves the transaction usable)."""
        try:
            async with self.s.begin_nested():
                self.s.add(KvRow(name=name, value=value, created_at=datetime.now(UTC)))
                await self.s.flush()
        except IntegrityError:
            row = await self.s.get(KvRow, name, populate_existing=True)
            assert row is not None
            return row
        return None
