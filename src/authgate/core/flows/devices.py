"""Device tokens (push notification addresses) kept on the session that uploaded them (seed 001)."""

from __future__ import annotations

from enum import IntEnum

from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.model import RequestContext
from authgate.core.service import Core

MAX_DEVICE_TOKEN = 255


class DeviceType(IntEnum):
    IOS = 0
    ANDROID = 1
    ANDROID_OTHER = 2


def check_device(
    device_token: str | None,
    device_type: int | None,
    *,
    token_field: str = "deviceToken",
    type_field: str = "deviceType",
) -> None:
    """1–255 characters of printable text; a device type, when given, is one of ``DeviceType``."""
    if device_token is not None and not (
        1 <= len(device_token) <= MAX_DEVICE_TOKEN and device_token.isprintable() and device_token.strip()
    ):
        raise invalid(token_field, f"must be 1-{MAX_DEVICE_TOKEN} printable characters")
    if device_type is not None and device_type not in DeviceType._value2member_map_:
        raise invalid(type_field, "must be 0 (iOS), 1 (Android) or 2 (Android other)")


async def set_device(
    core: Core,
    ctx: RequestContext,
    session_id: str,
    device_token: str,
    device_type: int | None = None,
) -> None:
    """Store the device token (and type, when given; else the earlier type stays) on the session."""
    check_device(device_token, device_type)
    async with core.store.transaction() as tx:
        session = await tx.sessions.get(session_id)
        if session is None or session.revoked_at is not None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
        session.device_token = device_token
        if device_type is not None:
            session.device_type = int(device_type)
        await tx.sessions.save(session)
