"""Audit events counted per UTC day by the database (the admin dashboard's charts), the same on
SQLite and PostgreSQL whatever the PostgreSQL session's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import text

from authgate.core.audit import Event
from authgate.core.flows import ui_admin
from authgate.core.flows.users import new_user
from authgate.core.model import AuditEvent, Role
from tests.conftest import Harness

KIND, OTHER = "t.counted", "t.other"
HKT = timezone(timedelta(hours=8))


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


# (type, at): 1 March 4 events (one 3 s before UTC midnight, one written with a +08:00 offset that
# is still 1 March in UTC), 2 March 1 (3 s after midnight), 3 March none, 4 March 2.
EVENTS = [
    (KIND, at(1, 0, 0, 0)),  # the first instant of the day
    (KIND, at(1, 9)),
    (KIND, at(1, 23, 59, 57)),
    (KIND, datetime(2026, 3, 2, 7, 30, tzinfo=HKT)),  # 1 March 23:30 UTC
    (KIND, at(2, 0, 0, 3)),
    (KIND, at(4, 12)),
    (KIND, at(4, 23, 59, 59)),
    (KIND, datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)),  # before `since`
    (KIND, at(5, 0, 0, 1)),  # at or after `until` in the bounded queries
    (OTHER, at(1, 12)),  # other types are not counted
    (OTHER, at(3, 12)),
]


async def record(h: Harness, events: list[tuple[str, datetime]]) -> None:
    async with h.core.store.transaction() as tx:
        for kind, when in events:
            await tx.audit.add(AuditEvent(type=kind, at=when))


async def test_count_per_day_groups_by_utc_day(hdb: Harness) -> None:
    await record(hdb, EVENTS)
    since = at(1, 0)
    async with hdb.core.store.transaction(write=False) as tx:
        assert await tx.audit.count_per_day(KIND, since) == {
            date(2026, 3, 1): 4, date(2026, 3, 2): 1, date(2026, 3, 4): 2, date(2026, 3, 5): 1,
        }
        assert await tx.audit.count_per_day(KIND, since, at(5, 0)) == {
            date(2026, 3, 1): 4, date(2026, 3, 2): 1, date(2026, 3, 4): 2,
        }
        # `since` is an instant, not a day: only the events from it on count
        assert await tx.audit.count_per_day(KIND, at(1, 23), at(2, 0, 0, 3)) == {date(2026, 3, 1): 2}
        assert await tx.audit.count_per_day(OTHER, since, at(5, 0)) == {date(2026, 3, 1): 1, date(2026, 3, 3): 1}
        assert await tx.audit.count_per_day("t.none", since) == {}


async def test_count_per_day_ignores_the_postgresql_session_time_zone(hdb: Harness) -> None:
    """A plain ``date(at)`` on PostgreSQL would move 23:59:57 UTC to the next day at UTC+14 and
    00:00:03 UTC to the day before at UTC-10: the count must be the UTC day's either way."""
    await record(hdb, EVENTS)
    expected = {date(2026, 3, 1): 4, date(2026, 3, 2): 1, date(2026, 3, 4): 2}
    postgres = not hdb.core.store.is_sqlite
    for zone in ("Pacific/Kiritimati", "Pacific/Honolulu"):
        async with hdb.core.store.transaction() as tx:  # SET LOCAL lasts until this one ends
            if postgres:
                await tx.session.execute(text(f"SET LOCAL TIME ZONE '{zone}'"))
                assert (await tx.session.execute(text("SHOW TIME ZONE"))).scalar() == zone
            assert await tx.audit.count_per_day(KIND, at(1, 0), at(5, 0)) == expected, zone


async def test_dashboard_counts_exactly_per_utc_day(hdb: Harness) -> None:
    await record(hdb, [
        (Event.USER_CREATED.value, at(2, 23, 59, 58)),
        (Event.USER_CREATED.value, at(3, 0, 0, 2)),
        (Event.USER_CREATED.value, at(1, 23, 59, 59)),  # the day before the 3 days shown
        (Event.LOGIN_SUCCEEDED.value, at(2, 8)),
        (Event.LOGIN_SUCCEEDED.value, at(2, 9)),
        (Event.LOGIN_SUCCEEDED.value, at(4, 23, 59, 59)),
        (Event.LOGIN_SUCCEEDED.value, at(5, 0, 0, 0)),  # the day after "today"
        (Event.LOGIN_FAILED.value, datetime(2026, 3, 5, 7, 59, 59, tzinfo=HKT)),  # 4 March 23:59:59 UTC
        (Event.SESSION_REVOKED.value, at(3, 12)),  # not charted
    ])
    admin = new_user(hdb.core, "chart.admin", roles=[Role.ADMIN.value])
    series = await ui_admin.dashboard(hdb.core, admin, days=3, today=date(2026, 3, 4))
    days = [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    assert [(s.name, s.days, s.counts, s.total) for s in series] == [
        ("signups", days, [1, 1, 0], 2),
        ("logins", days, [2, 0, 1], 3),
        ("failed_logins", days, [0, 0, 1], 1),
    ]
