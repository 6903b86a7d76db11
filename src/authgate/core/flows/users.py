"""Finding and creating users; shared by signup, federated login, sync and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime

from authgate.core import ids
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.identifiers import LoginId, normalise_username, username_candidates
from authgate.core.model import AccountType, User
from authgate.core.ports import Tx
from authgate.core.service import Core


async def find_user(tx: Tx, login: LoginId) -> User | None:
    if login.kind is AccountType.EMAIL:
        return await tx.users.get_by_email(login.value)
    if login.kind is AccountType.PHONE:
        return await tx.users.get_by_phone(login.value)
    return await tx.users.get_by_username(normalise_username(login.value))


def new_user(core: Core, username: str, **fields: object) -> User:
    now = datetime.now(UTC)
    user = User(id=core.snowflake.next(), guid=ids.guid("user"), username=username)
    for name, value in fields.items():
        if not hasattr(user, name):
            raise TypeError(name)
        setattr(user, name, value)
    user.created_at = user.created_at or now
    user.updated_at = user.updated_at or now
    return user


async def insert_with_free_username(tx: Tx, user: User, seed: str) -> User:
    """Insert ``user`` under the first free username derived from ``seed`` (an email or a name).

    The database's unique index settles races; a clash on the username moves to the next candidate,
    a clash on email or phone is the caller's conflict.
    """
    last: AuthError | None = None
    for candidate in username_candidates(seed):
        if await tx.users.username_taken(normalise_username(candidate)):
            continue
        user.username = candidate
        try:
            return await tx.users.create(user)
        except AuthError as exc:
            if exc.field != "username":
                raise
            last = exc
    raise last or AuthError(ErrorCode.IDENTIFIER_TAKEN, field="username")
