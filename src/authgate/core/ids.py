"""Identifiers: 64-bit snowflake ids (rendered as decimal strings) and ``user_`` guids."""

from __future__ import annotations

import secrets
import string
import threading
import time

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
EPOCH_MS = 1_672_531_200_000  # 2023-01-01T00:00:00Z


class Snowflake:
    """41 bits of milliseconds since EPOCH_MS, 10 bits of node, 12 bits of sequence.

    Nodes pick their id from settings or at random; the primary key still settles any clash.
    """

    def __init__(self, node_id: int | None = None) -> None:
        self.node = (node_id if node_id is not None else secrets.randbelow(1024)) & 0x3FF
        self._lock = threading.Lock()
        self._last = 0
        self._seq = 0

    def next(self) -> int:
        with self._lock:
            now = int(time.time() * 1000) - EPOCH_MS
            if now <= self._last:
                now = self._last
                self._seq = (self._seq + 1) & 0xFFF
                if self._seq == 0:
                    now += 1
            else:
                self._seq = secrets.randbelow(16)
            self._last = now
            return (now << 22) | (self.node << 12) | self._seq


_GUID_SPACE = 62**26


def guid(prefix: str = "user") -> str:
    """``prefix_`` and 26 base-62 characters, uniform (one draw of ~155 bits, not 26 draws)."""
    n = secrets.randbelow(_GUID_SPACE)
    chars = []
    for _ in range(26):
        n, digit = divmod(n, 62)
        chars.append(_BASE62[digit])
    return prefix + "_" + "".join(chars)


def token(nbytes: int = 32) -> str:
    """URL-safe random string with ``nbytes`` of entropy (32 bytes = 256 bits)."""
    return secrets.token_urlsafe(nbytes)


def short_id() -> str:
    return secrets.token_urlsafe(16)


MAX_ID = 2**63 - 1  # ids are 64-bit signed integers in every database


def parse_id(raw: str | None) -> int | None:
    """An id as a client may send it (decimal ASCII digits within 64 bits), or None. ``str.isdigit``
    alone lets through "²" (which ``int`` refuses) and 20-digit numbers (which the database does)."""
    if not raw or len(raw) > 19 or not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if value <= MAX_ID else None
