"""What both backends' transactions share: Core statements on the connection, an ORM Session only
from the first ORM use on.

Repositories run Core statements over the tables on the hot paths (a login, a refresh, a token
check); a Session and its unit of work cost more than the statements they would carry. ORM use (a
statement over mapped classes, ``get``, ``add``, a savepoint) opens a Session joined to the same
connection and transaction, and from then on every statement goes through it, so that its pending
objects are flushed before a query as ever. ``sqlite.LoopSession`` runs the statements on the
loop's thread, ``postgres.ConnectionSession`` awaits them.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

C = TypeVar("C")  # the connection
S = TypeVar("S")  # the Session joined to it
E = TypeVar("E")  # a mapped class


class DbSession(Protocol):
    """What the repositories call on their transaction's session: AsyncSession's names and
    meanings, which LoopSession, ConnectionSession and the read sessions provide over one
    connection (a read session refuses the writes)."""

    # A Result: a CursorResult (rowcount) for a Core statement on the connection; typed Any
    # because which one depends on the statement, as AsyncSession's overloads say only in part.
    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def get(self, entity: type[E], ident: Any, **kwargs: Any) -> E | None: ...

    async def flush(self) -> None: ...

    def add(self, instance: Any) -> None: ...

    def begin_nested(self) -> Any: ...  # an async context manager: a SAVEPOINT

    @property
    def holds_connection(self) -> bool: ...


def is_orm(statement: Any) -> bool:
    """A statement over mapped classes (select(UserRow)), which needs a Session; one over tables
    or text runs on the connection (what Session.execute itself looks at to choose)."""
    return getattr(statement, "_propagate_attrs", {}).get("compile_state_plugin") == "orm"


class CoreFirst(Generic[C, S]):
    """The routing: ``_for(statement)`` is the connection until a Session is needed."""

    def __init__(self, conn: C | None = None) -> None:
        self._conn = conn
        self._session: S | None = None

    def _c(self) -> C:
        assert self._conn is not None
        return self._conn

    @property
    def holds_connection(self) -> bool:
        """This transaction has its connection (a read takes one at its first statement)."""
        return self._conn is not None

    def _new_session(self, conn: C) -> S:
        raise NotImplementedError

    def _s(self) -> S:
        if self._session is None:
            self._session = self._new_session(self._c())
        return self._session

    def _for(self, statement: Any) -> Any:
        return self._s() if self._session is not None or is_orm(statement) else self._c()


class ReadOnly:
    """First base of a read session: what only a write may do is refused, naming the call (a
    read-only transaction that wrote would fail later, or silently lose the write)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"{name}() in a read-only transaction: use transaction(write=True)")

    async def flush(self) -> None:
        raise RuntimeError("flush() in a read-only transaction: use transaction(write=True)")

    def add(self, instance: Any) -> None:
        raise RuntimeError("add() in a read-only transaction: use transaction(write=True)")

    def begin_nested(self) -> Any:
        raise RuntimeError("begin_nested() in a read-only transaction: use transaction(write=True)")
