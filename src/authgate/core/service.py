"""The core's services, gathered once by container.py and handed to every flow and surface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authgate.core.crypto import Keyed
from authgate.core.guard import Guard
from authgate.core.ids import Snowflake
from authgate.core.messages import Messenger
from authgate.core.otp import OtpService
from authgate.core.passwords import PasswordHasher, PasswordPolicy
from authgate.core.ports import SharedCache, Store
from authgate.core.sessions import SessionService
from authgate.core.tokens import KeyRing, TokenService

if TYPE_CHECKING:
    from authgate.config import Settings


@dataclass
class Core:
    settings: Settings
    store: Store
    keyed: Keyed
    hasher: PasswordHasher
    policy: PasswordPolicy
    keys: KeyRing
    tokens: TokenService
    sessions: SessionService
    otp: OtpService
    messenger: Messenger
    guard: Guard
    cache: SharedCache
    snowflake: Snowflake
    idp: Any = None  # IdentityProvider for federated login, when configured
