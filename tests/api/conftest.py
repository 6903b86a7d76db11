"""Fixtures and helpers shared by several tests/api modules, defined once here.

Fixtures live here rather than being imported from another test module: a fixture imported by name
is shadowed by the test parameter that requests it, which ruff reports as F811 (redefinition).
The generic harness fixtures (``make_harness``, ``h``, ``hdb``) are in tests/conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from authgate.core.crypto import sha256_hex
from authgate.core.model import ClientApp
from tests.conftest import Harness
from tests.e2e.support import HttpSink
from tests.unit.test_firebase_verify import PROJECT, Minter

# --- SMS codes -------------------------------------------------------------------------------------


def last_sms_code(h: Harness) -> str:
    """The code in the last SMS sent (``Harness.last_code`` reads the last email)."""
    match = re.search(r"\b(\d{4,8})\b", h.sms_outbox[-1][1])
    assert match
    return match.group(1)


# --- sync surface (test_sync, test_sync_contract) --------------------------------------------------
FAST = {"argon2_memory_kib": 1024, "argon2_time_cost": 1}  # hashing is not under test here


async def seed_client(h: Harness, client_id: str = "client-app-id", secret: str = "client-app-secret") -> dict:
    """The seed's own client credentials, registered as an operator migrating them would have."""
    async with h.core.store.transaction() as tx:
        await tx.clients.create(
            ClientApp(
                id=h.core.snowflake.next(), client_id=client_id, name="seed 002", secret_hash=sha256_hex(secret),
                secret_enc=h.core.keyed.seal(secret), platforms=["web"], min_versions={},
                created_at=datetime.now(UTC),
            )
        )
    return {"clientId": client_id, "clientSecret": secret}


async def harness(make_harness: Any, internal: bool = True, **overrides: Any) -> Harness:
    """A harness with fast hashing and the seed's client registered (as ``h.seed_client``)."""
    h: Harness = await make_harness(internal=internal, **{**FAST, **overrides})
    h.seed_client = await seed_client(h)  # type: ignore[attr-defined]
    return h


@pytest.fixture
async def s(make_harness: Any) -> Harness:
    """The internal listener (x-user-ctx honoured)."""
    return await harness(make_harness, internal=True)


@pytest.fixture
async def pub(make_harness: Any) -> Harness:
    """The public listener (x-user-ctx ignored)."""
    return await harness(make_harness, internal=False)


# --- Firebase surface (test_firebase, test_firebase_contract, test_limits_ip) ----------------------
@pytest.fixture(scope="module")
def minter() -> Minter:
    return Minter()


@pytest.fixture(scope="module")
def certs(minter: Minter) -> Iterator[HttpSink]:
    with HttpSink(reply=minter.certs, headers={"Cache-Control": "public, max-age=3600"}) as sink:
        yield sink


@pytest.fixture
async def fh(make_harness: Any, certs: HttpSink) -> Harness:
    return await make_harness(firebase_project_id=PROJECT, firebase_certs_url=certs.url)  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "postgres"])
async def fhdb(request: pytest.FixtureRequest, make_harness: Any, certs: HttpSink) -> Harness:
    return await make_harness(request.param, firebase_project_id=PROJECT, firebase_certs_url=certs.url)  # type: ignore[no-any-return]
