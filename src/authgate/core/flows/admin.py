"""Administrative user creation (the CLI's ``users create``)."""

from __future__ import annotations

from typing import Any

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.errors import invalid
from authgate.core.flows.users import new_user
from authgate.core.identifiers import clean_username, normalise_email, parse_phone
from authgate.core.model import Role
from authgate.core.service import Core


async def create_user_cli(
    core: Core,
    username: str,
    email: str | None,
    password: str | None,
    phone: str | None,
    roles: list[str],
) -> dict[str, Any]:
    for role in roles:
        if role not in Role._value2member_map_:
            raise invalid("role", f"unknown role {role}")
    name = clean_username(username)
    password_hash = None
    if password is not None:
        core.policy.check(password)
        password_hash = await core.hasher.hash(password)
    user = new_user(
        core,
        name,
        email=normalise_email(email) if email else None,
        email_verified=bool(email),
        phone=parse_phone(phone, core.settings.default_region) if phone else None,
        password_hash=password_hash,
        roles=sorted(set([Role.USER.value, *roles])),
        roles_set=bool(roles),
        created_by="__cli",
    )
    async with core.store.transaction() as tx:
        await tx.users.create(user)
        await audit.record(tx, Event.USER_CREATED, None, user.id, actor="__cli", method="cli")
    return {"id": str(user.id), "username": user.username, "email": user.email, "roles": user.roles}
