"""Client apps (CONTRACT §1 app signature, §5 client credentials): registration and checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from authgate.core import ids
from authgate.core.crypto import sha256_hex
from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.model import ClientApp
from authgate.core.service import Core

PLATFORMS = ("ios", "android", "web")
# Each part at most 9 digits: Python refuses int() past 4,300 digits, and no app version has more.
_VERSION = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9}){0,3}$")


def parse_version(value: str) -> tuple[int, ...] | None:
    """``2.1.0`` → (2, 1, 0); None for anything but one to four dot-separated parts of digits."""
    value = value.strip()
    if not _VERSION.fullmatch(value):
        return None
    return tuple(int(p) for p in value.split("."))


async def register_client(
    core: Core, name: str, platforms: list[str], min_versions: list[str]
) -> dict[str, Any]:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise invalid("name", "1-100 characters")
    chosen = sorted(set(p.lower() for p in platforms)) or list(PLATFORMS)
    for p in chosen:
        if p not in PLATFORMS:
            raise invalid("platform", f"unknown platform {p}")
    minimums: dict[str, str] = {}
    for item in min_versions:
        platform, _, version = item.partition("=")
        if platform.lower() not in PLATFORMS or parse_version(version) is None:
            raise invalid("min-version", f"expected PLATFORM=X.Y.Z, got {item}")
        minimums[platform.lower()] = version.strip()
    client_id = "cl_" + ids.token(12)
    secret = ids.token(32)
    client = ClientApp(
        id=core.snowflake.next(),
        client_id=client_id,
        name=name,
        secret_hash=sha256_hex(secret),
        secret_enc=core.keyed.seal(secret),
        platforms=chosen,
        min_versions=minimums,
        enabled=True,
        created_at=datetime.now(UTC),
    )
    async with core.store.transaction() as tx:
        await tx.clients.create(client)
    return {
        "clientId": client_id,
        "clientSecret": secret,
        "name": name,
        "platforms": chosen,
        "minVersions": minimums,
    }


async def authenticate_client(core: Core, client_id: str | None, client_secret: str | None) -> ClientApp:
    """A registered, enabled client whose secret matches (constant time), or ``client_invalid``."""
    if not client_id or not client_secret or len(client_id) > 128 or len(client_secret) > 256:
        raise AuthError(ErrorCode.CLIENT_INVALID)
    async with core.store.transaction(write=False) as tx:
        client = await tx.clients.get(client_id)
    expected = client.secret_hash if client else sha256_hex("absent-client")
    if not core.keyed.same(expected, sha256_hex(client_secret)) or client is None or not client.enabled:
        raise AuthError(ErrorCode.CLIENT_INVALID)
    return client


async def disable_client(core: Core, client_id: str) -> dict[str, Any]:
    """Stop a client: its secret, signatures and client-credential logins are refused from now on."""
    async with core.store.transaction() as tx:
        client = await tx.clients.get(client_id)
        if client is None:
            raise AuthError(ErrorCode.NOT_FOUND, field="client-id", detail=f"no client {client_id}")
        client.enabled = False
        await tx.clients.save(client)
    return {"clientId": client.client_id, "name": client.name, "enabled": False}


async def rotate_client_secret(core: Core, client_id: str) -> dict[str, Any]:
    """Replace a client's secret; the old one stops working at once. The new one is shown only here."""
    secret = ids.token(32)
    async with core.store.transaction() as tx:
        client = await tx.clients.get(client_id)
        if client is None:
            raise AuthError(ErrorCode.NOT_FOUND, field="client-id", detail=f"no client {client_id}")
        client.secret_hash = sha256_hex(secret)
        client.secret_enc = core.keyed.seal(secret)
        await tx.clients.save(client)
    return {"clientId": client.client_id, "clientSecret": secret, "enabled": client.enabled}
