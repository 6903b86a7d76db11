"""Users synced from other systems (seed 002, CONTRACT §5): who may call, upsert, list, delete,
unlock, the audit log, the token endpoint, and bulk import. Surfaces and the CLI only map these.

Authorisation. ``x-user-ctx`` (base64 of JSON ``{"id": "__system", "user": "__system"}``) is
trusted only when the caller says the request came through the internal listener; otherwise an
access token of an active ``ROLE_ADMIN`` or above is needed (roles read from the database, not
the token, so a demotion holds at once). Role rules: only ``ROLE_SUPER_ADMIN`` (or the system)
grants, removes or manages the admin roles; nobody changes their own roles.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError

from authgate.core import audit, ids
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.flows import login
from authgate.core.flows.clients import authenticate_client
from authgate.core.flows.users import insert_with_free_username, new_user
from authgate.core.i18n import LOCALES
from authgate.core.identifiers import (
    clean_username,
    is_web_url,
    normalise_email,
    normalise_username,
    parse_phone,
    refuse_control,
)
from authgate.core.model import ROLE_RANK, AuditEvent, RequestContext, Role, TokenType, User
from authgate.core.passwords import (
    ARGON2_PREFIXES,
    BCRYPT_PREFIXES,
    FIREBASE_PREFIX,
    PBKDF2_PREFIX,
    is_accepted_prehash,
)
from authgate.core.ports import Tx
from authgate.core.service import Core

SYSTEM = "__system"
IMPORTER = "__import"
ELEVATED = {Role.ADMIN.value, Role.SUPER_ADMIN.value}
MAX_LIST = 200
MAX_PASSWORD = 1024
# Imported hashes are checked at every login: refuse work factors that would make a login a DoS.
MAX_BCRYPT_COST = 15
MAX_ARGON2_MEMORY_KIB = 256 * 1024
MAX_ARGON2_TIME = 10
MAX_PBKDF2_ITERATIONS = 5_000_000


# --- who is calling ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Actor:
    """The caller of an admin operation; ``label`` is what createdBy/updatedBy/deletedBy record."""

    label: str
    user_id: int | None = None
    roles: tuple[str, ...] = ()
    system: bool = False

    @property
    def super_admin(self) -> bool:
        return self.system or Role.SUPER_ADMIN.value in self.roles


def parse_user_ctx(raw: str) -> dict[str, Any]:
    """Decode ``x-user-ctx``: base64 (standard or URL-safe, padding optional) of a JSON object."""
    text = raw.strip()
    if not text or len(text) > 4096:
        raise AuthError(ErrorCode.MISSING_HEADER, field="x-user-ctx", detail="empty or too long")
    padded = text + "=" * (-len(text) % 4)
    try:
        decoded = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        data = json.loads(decoded)
    except (binascii.Error, ValueError):
        raise AuthError(ErrorCode.MISSING_HEADER, field="x-user-ctx", detail="not base64 of a JSON object") from None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise AuthError(ErrorCode.MISSING_HEADER, field="x-user-ctx", detail="expected {\"id\", \"user\"}")
    return data


async def resolve_actor(core: Core, *, user_ctx: str | None, bearer: str | None, internal: bool) -> Actor:
    """The admin (or the system) behind a request; 401 without credentials, 403 for non-admins.

    ``user_ctx`` is considered only when ``internal`` is true: on the public listener an API gateway
    strips it, and we ignore it as if it were absent.
    """
    if internal and user_ctx is not None:
        ident = parse_user_ctx(user_ctx)["id"]
        if ident == SYSTEM:
            return Actor(SYSTEM, system=True)
        user = None
        user_id = ids.parse_id(ident)
        if user_id is not None:
            async with core.store.transaction(write=False) as tx:
                user = await tx.users.get(user_id)
        if user is None:
            raise AuthError(ErrorCode.FORBIDDEN, detail="unknown user in x-user-ctx")
        return _admin(user)
    if not bearer:
        raise AuthError(ErrorCode.TOKEN_MISSING)
    principal = await core.sessions.authenticate(bearer, (TokenType.ACCESS, TokenType.APP))
    if principal.user_id is None:  # a client app token: authenticated, but no admin behind it
        raise AuthError(ErrorCode.FORBIDDEN, detail="an admin user is required")
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get(principal.user_id)
    if user is None:
        raise AuthError(ErrorCode.TOKEN_INVALID)
    return _admin(user)


def _admin(user: User) -> Actor:
    if not user.is_active or not user.has_role_at_least(Role.ADMIN):
        raise AuthError(ErrorCode.FORBIDDEN, detail="ROLE_ADMIN or above is required")
    return Actor(str(user.id), user.id, tuple(user.roles))


def _rank(roles: Iterable[str]) -> int:
    return max((ROLE_RANK[Role(r)] for r in roles if r in Role._value2member_map_), default=0)


def check_manage(actor: Actor, target: User) -> None:
    """Admins manage users below the admin roles (and themselves); super admins manage everyone."""
    if actor.super_admin or target.id == actor.user_id:
        return
    if _rank(target.roles) >= ROLE_RANK[Role.ADMIN]:
        raise AuthError(ErrorCode.FORBIDDEN, detail="only a super admin may manage an admin")


def check_roles(actor: Actor, target: User | None, roles: list[str]) -> None:
    """Only a super admin grants or removes admin roles; nobody changes their own roles."""
    old = set(target.roles) if target is not None else set()
    if target is not None and set(roles) == old:
        return
    if target is not None and target.id == actor.user_id:
        raise AuthError(ErrorCode.FORBIDDEN, detail="nobody may change their own roles")
    if (set(roles) | old) & ELEVATED and not actor.super_admin:
        raise AuthError(ErrorCode.FORBIDDEN, detail="only a super admin may grant or remove admin roles")


# --- the PUT /api/users payload ------------------------------------------------------------------
# camelCase field → User attribute
FIELDS = {
    "username": "username",
    "email": "email",
    "emailVerified": "email_verified",
    "phoneNumber": "phone",
    "firstName": "first_name",
    "lastName": "last_name",
    "locale": "locale",
    "roles": "roles",
    "isActive": "is_active",
    "avatar": "avatar_url",
    "birthday": "birthday",
    "gender": "gender",
}
_DB_FIELD = {"username": "username", "email": "email", "phone": "phoneNumber"}


@dataclass
class SyncInput:
    """A validated, normalised user record; ``values`` holds only the fields that were sent."""

    values: dict[str, Any] = field(default_factory=dict)
    password: str | None = None
    password_is_hash: bool = False

    @property
    def username(self) -> str | None:
        value = self.values.get("username")
        return str(value) if value else None

    @property
    def email(self) -> str | None:
        value = self.values.get("email")
        return str(value) if value else None


def _text(data: Mapping[str, Any], key: str, max_len: int) -> str | None:
    value = data[key]
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(key, "must be a string")
    value = value.strip()
    refuse_control(value, key)  # PostgreSQL cannot store a NUL: a 500, not a 422, otherwise
    if len(value) > max_len:
        raise invalid(key, f"at most {max_len} characters")
    return value or None


def _bool(data: Mapping[str, Any], key: str) -> bool:
    value = data[key]
    if not isinstance(value, bool):
        raise invalid(key, "must be true or false")
    return value


def parse_payload(core: Core, data: Any, *, seed_quotes: bool = False) -> SyncInput:
    """Validate a user record in the PUT /api/users shape; 422 naming the first bad field.
    ``seed_quotes`` (PUT /api/users) drops stray quotes around an email, as seed 002 sends one."""
    if not isinstance(data, Mapping):
        raise invalid("body", "must be a JSON object")
    out = SyncInput()
    v = out.values
    region = core.settings.default_region
    if data.get("username") is not None:
        v["username"] = clean_username(_text(data, "username", 64) or "", "username")
    if "email" in data:
        email = _text(data, "email", 320)
        v["email"] = (_sync_email(email) if seed_quotes else normalise_email(email, "email")) if email else None
    if "phoneNumber" in data:
        phone = _text(data, "phoneNumber", 32)
        v["phone"] = parse_phone(phone, region, "phoneNumber") if phone else None
    for key in ("emailVerified", "isActive"):
        if key in data and data[key] is not None:
            v[FIELDS[key]] = _bool(data, key)
    for key in ("firstName", "lastName"):
        if key in data:
            v[FIELDS[key]] = _text(data, key, 100)
    if "gender" in data:
        v["gender"] = _text(data, "gender", 32)
    if "locale" in data:
        locale = _text(data, "locale", 16)
        if locale is not None and locale not in LOCALES:
            raise invalid("locale", "one of " + ", ".join(LOCALES))
        v["locale"] = locale
    if "avatar" in data:
        avatar = _text(data, "avatar", 2048)
        if avatar is not None and not is_web_url(avatar):
            raise invalid("avatar", "must be an http(s) URL")
        v["avatar_url"] = avatar
    if "birthday" in data:
        v["birthday"] = _birthday(_text(data, "birthday", 10))
    if data.get("roles") is not None:
        roles = data["roles"]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise invalid("roles", "must be a list of role names")
        unknown = [r for r in roles if r not in Role._value2member_map_]
        if unknown:
            raise invalid("roles", f"unknown role {unknown[0]}")
        v["roles"] = list(dict.fromkeys(roles))
    if not v.get("username") and not v.get("email"):
        raise invalid("username", "username or email is required")
    if data.get("password") is not None:
        password = data["password"]
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            raise invalid("password", "must be a string")
        out.password, out.password_is_hash = password, _classify_password(core, password)
    return out


_QUOTES = "'\"`"


def _sync_email(value: str) -> str:
    """Validate an email sent to PUT /api/users. Seed 002's request sends
    ``"cersei-lannister@gmail.com'"`` (a stray quote) and its 200 response shows the account as
    ``cersei-lannister@gmail.com``: quotes around an address that is invalid with them are
    dropped. An address valid as sent is kept as sent; one invalid without its quotes is 422.
    (``authgate users import`` stays strict: a file with such lines is reported, not guessed at.)"""
    try:
        return normalise_email(value, "email")
    except AuthError:
        bare = value.strip(_QUOTES).strip()
        if not bare or bare == value:
            raise
        return normalise_email(bare, "email")


def _birthday(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise invalid("birthday", "expected YYYY-MM-DD") from None
    if len(value) != 10 or day > datetime.now(UTC).date():
        raise invalid("birthday", "expected a past date as YYYY-MM-DD")
    return value


def _classify_password(core: Core, value: str) -> bool:
    """True for an accepted pre-hash (kept, re-hashed at next login); False for a plain password
    (policy-checked here). A string that looks like a hash but is not a usable one is refused."""
    looks_hashed = value.startswith((*BCRYPT_PREFIXES, *ARGON2_PREFIXES, PBKDF2_PREFIX, FIREBASE_PREFIX))
    if not looks_hashed:
        core.policy.check(value, "password")
        return False
    if not is_accepted_prehash(value):
        raise invalid("password", "malformed password hash")
    if value.startswith(BCRYPT_PREFIXES) and int(value[4:6]) > MAX_BCRYPT_COST:
        raise invalid("password", f"bcrypt cost above {MAX_BCRYPT_COST}")
    if value.startswith(ARGON2_PREFIXES):
        try:
            params = extract_parameters(value)
        except (InvalidHashError, ValueError):
            raise invalid("password", "malformed argon2 hash") from None
        if params.memory_cost > MAX_ARGON2_MEMORY_KIB or params.time_cost > MAX_ARGON2_TIME:
            raise invalid("password", "argon2 parameters too costly")
    if value.startswith(PBKDF2_PREFIX):
        iterations = value.split("$")[1]
        if not iterations.isdigit() or not 1 <= int(iterations) <= MAX_PBKDF2_ITERATIONS:
            raise invalid("password", "pbkdf2 iterations out of range")
    if value.startswith(FIREBASE_PREFIX) and core.hasher.firebase is None:
        raise invalid("password", "Firebase scrypt hashes need AUTHGATE_FIREBASE_SCRYPT_SIGNER_KEY")
    return True


# --- upsert --------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A plain password, hashed (or found unchanged) before the write transaction opens."""

    new_hash: str | None = None
    unchanged_if: str | None = None  # the stored hash the plain password already matches


class _Dirty(Exception):
    """A write failed half-way inside a shared transaction: the whole transaction must go."""

    def __init__(self, cause: AuthError) -> None:
        super().__init__(str(cause))
        self.cause = cause


async def _find(tx: Tx, inp: SyncInput, *, for_update: bool = False) -> User | None:
    """The user a record refers to: by username when it has one, else by email."""
    if inp.username:
        found = await tx.users.get_by_username(normalise_username(inp.username))
    else:
        found = await tx.users.get_by_email(inp.email or "")
    if found is not None and for_update:
        return await tx.users.get(found.id, for_update=True)
    return found


async def prepare_password(core: Core, inp: SyncInput, existing: User | None) -> Prepared | None:
    if inp.password is None or inp.password_is_hash:
        return None
    stored = existing.password_hash if existing else None
    if stored and (await core.hasher.verify(stored, inp.password))[0]:
        return Prepared(unchanged_if=stored)
    return Prepared(new_hash=await core.hasher.hash(inp.password))


async def _take_free(tx: Tx, user_id: int | None, email: str | None, phone: str | None) -> None:
    """409 when another live user holds the email or phone (the unique indexes remain the backstop)."""
    if email:
        other = await tx.users.get_by_email(email)
        if other is not None and other.id != user_id:
            raise AuthError(ErrorCode.IDENTIFIER_TAKEN, field="email")
    if phone:
        other = await tx.users.get_by_phone(phone)
        if other is not None and other.id != user_id:
            raise AuthError(ErrorCode.IDENTIFIER_TAKEN, field="phoneNumber")


def _taken(exc: AuthError) -> AuthError:
    if exc.code is ErrorCode.IDENTIFIER_TAKEN and exc.field in _DB_FIELD:
        return AuthError(ErrorCode.IDENTIFIER_TAKEN, field=_DB_FIELD[exc.field])
    return exc


_LOOK_UP: Any = object()


async def apply(
    core: Core,
    tx: Tx,
    ctx: RequestContext | None,
    actor: Actor,
    inp: SyncInput,
    prepared: Prepared | None,
    existing: User | None = _LOOK_UP,
) -> tuple[User, bool]:
    """Create or update one user inside ``tx``; (user, created). Every check comes before any write.
    ``existing`` skips the lookup when the caller already holds the (locked) row."""
    if existing is _LOOK_UP:
        existing = await _find(tx, inp, for_update=True)
    if existing is None:
        return await _create(core, tx, ctx, actor, inp, prepared), True
    return await _update(core, tx, ctx, actor, existing, inp, prepared), False


def _new_user(core: Core, actor: Actor, inp: SyncInput, prepared: Prepared | None) -> User:
    values = dict(inp.values)
    if "roles" in values:
        check_roles(actor, None, values["roles"])
        values["roles_set"] = True
    if inp.password is not None:
        values["password_hash"] = inp.password if inp.password_is_hash else (prepared.new_hash if prepared else None)
    values.pop("username", None)
    return new_user(core, inp.username or "", created_by=actor.label, **values)


async def _create(
    core: Core, tx: Tx, ctx: RequestContext | None, actor: Actor, inp: SyncInput, prepared: Prepared | None
) -> User:
    user = _new_user(core, actor, inp, prepared)
    await _take_free(tx, None, user.email, user.phone)
    try:
        if inp.username:
            await tx.users.create(user)
        else:
            await insert_with_free_username(tx, user, inp.email or "")
    except AuthError as exc:
        raise _taken(exc) from None
    await audit.record(
        tx, Event.USER_SYNCED, ctx, user.id, actor=actor.label, created=True, fields=sorted(inp.values)
    )
    return user


async def _update(
    core: Core,
    tx: Tx,
    ctx: RequestContext | None,
    actor: Actor,
    user: User,
    inp: SyncInput,
    prepared: Prepared | None,
) -> User:
    check_manage(actor, user)
    values = dict(inp.values)
    values.pop("username", None)  # the key the record was found by: same account, same name
    if "roles" in values:
        check_roles(actor, user, values["roles"])
    email_changed = "email" in values and values["email"] != user.email
    phone_changed = "phone" in values and values["phone"] != user.phone
    await _take_free(tx, user.id, values.get("email") if email_changed else None,
                     values.get("phone") if phone_changed else None)
    changed: list[str] = []
    for name, value in values.items():
        if getattr(user, name) != value or (name == "roles" and not user.roles_set):
            setattr(user, name, value)
            changed.append(name)
    if "roles" in values:
        user.roles_set = True
    if email_changed and "email_verified" not in values and user.email_verified:
        user.email_verified = False  # a new address is unverified unless the caller says otherwise
        changed.append("email_verified")
    if phone_changed and user.phone_verified:
        user.phone_verified = False
        changed.append("phone_verified")
    password_changed = False
    if inp.password is not None:
        new_hash: str | None
        if inp.password_is_hash:
            new_hash = inp.password
        elif prepared is not None and prepared.unchanged_if is not None and prepared.unchanged_if == user.password_hash:
            new_hash = user.password_hash
        else:
            new_hash = prepared.new_hash if prepared and prepared.new_hash else user.password_hash
        if new_hash != user.password_hash:
            user.password_hash = new_hash
            password_changed = True
            changed.append("password")
    deactivated = "is_active" in changed and not user.is_active
    if not changed:
        return user
    user.updated_at = datetime.now(UTC)
    user.updated_by = actor.label
    try:
        await tx.users.save(user)
    except AuthError as exc:
        raise _Dirty(_taken(exc)) from None
    await audit.record(
        tx, Event.USER_UPDATED, ctx, user.id, actor=actor.label, method="sync", fields=sorted(changed)
    )
    if password_changed:
        await audit.record(tx, Event.PASSWORD_SET, ctx, user.id, actor=actor.label, method="sync")
    if password_changed or deactivated:
        reason = "deactivated" if deactivated else "password_set"
        revoked = await core.sessions.revoke_user(tx, user.id, reason)
        if revoked:
            await audit.record(tx, Event.SESSION_REVOKED, ctx, user.id, actor=actor.label,
                               count=len(revoked), reason=reason)
    return user


async def upsert(core: Core, ctx: RequestContext, actor: Actor, data: Any) -> tuple[User, bool]:
    """PUT /api/users: validate, hash a plain password off the transaction, then write in ONE
    transaction (lookup, create or update, audit, session revocation); nothing is written on error."""
    inp = parse_payload(core, data, seed_quotes=True)
    prepared = None
    if inp.password is not None and not inp.password_is_hash:
        async with core.store.transaction(write=False) as tx:
            existing = await _find(tx, inp)
        prepared = await prepare_password(core, inp, existing)
    try:
        async with core.store.transaction() as tx:
            return await apply(core, tx, ctx, actor, inp, prepared)
    except _Dirty as exc:
        raise exc.cause from None


# --- reading, deleting, unlocking ------------------------------------------------------------------
def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        raw = ""
    value = ids.parse_id(raw)
    if value is None:
        raise invalid("cursor", "malformed cursor")
    return value


def _user_id(raw: str) -> int:
    value = ids.parse_id(raw)
    if value is None:
        raise AuthError(ErrorCode.NOT_FOUND, detail="user")
    return value


async def get_user(core: Core, actor: Actor, user_id: str) -> User:
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get(_user_id(user_id))
    if user is None:
        raise AuthError(ErrorCode.NOT_FOUND, detail="user")
    return user


async def list_users(
    core: Core, actor: Actor, search: str | None, limit: int, cursor: str | None
) -> tuple[list[User], str | None]:
    if not 1 <= limit <= MAX_LIST:
        raise invalid("limit", f"1-{MAX_LIST}")
    after = decode_cursor(cursor)
    needle = (search or "").strip().lower()[:320] or None
    if needle:
        refuse_control(needle, "search")  # PostgreSQL refuses a NUL even in a LIKE
    async with core.store.transaction(write=False) as tx:
        rows = list(await tx.users.list(needle, limit + 1, after))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].id) if more and rows else None)


async def delete_user(core: Core, ctx: RequestContext, actor: Actor, user_id: str) -> User:
    """Soft delete: the row stays (audit), the user can no longer log in, every session dies."""
    async with core.store.transaction() as tx:
        user = await tx.users.get(_user_id(user_id), for_update=True)
        if user is None:
            raise AuthError(ErrorCode.NOT_FOUND, detail="user")
        check_manage(actor, user)
        now = datetime.now(UTC)
        user.deleted_at, user.deleted_by = now, actor.label
        user.updated_at, user.updated_by = now, actor.label
        await tx.users.save(user)
        revoked = await core.sessions.revoke_user(tx, user.id, "user_deleted")
        await audit.record(tx, Event.USER_DELETED, ctx, user.id, actor=actor.label, sessions=len(revoked))
    return user


async def unlock_user(core: Core, ctx: RequestContext, actor: Actor, user_id: str) -> User:
    async with core.store.transaction() as tx:
        user = await tx.users.get(_user_id(user_id), for_update=True)
        if user is None:
            raise AuthError(ErrorCode.NOT_FOUND, detail="user")
        check_manage(actor, user)
        user.is_locked, user.locked_at, user.failed_logins = False, None, 0
        user.updated_at, user.updated_by = datetime.now(UTC), actor.label
        await tx.users.save(user)
        await audit.record(tx, Event.ACCOUNT_UNLOCKED, ctx, user.id, actor=actor.label, reason="admin")
    return user


async def list_audit(
    core: Core,
    actor: Actor,
    *,
    user_id: str | None,
    type: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[AuditEvent], str | None]:
    """Newest first; ``cursor`` continues below the last event returned."""
    if not 1 <= limit <= MAX_LIST:
        raise invalid("limit", f"1-{MAX_LIST}")
    uid = None
    if user_id:
        uid = ids.parse_id(user_id)
        if uid is None:
            raise invalid("userId", "a user id")
    before = decode_cursor(cursor)
    if type:
        refuse_control(type, "type")
    async with core.store.transaction(write=False) as tx:
        rows = list(
            await tx.audit.list(
                user_id=uid, type=type or None, since=since, until=until, limit=limit + 1, before_id=before
            )
        )
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1].id if rows else None
    return rows, (encode_cursor(last) if more and last is not None else None)


# --- the token endpoint (POST /api/auth/login) ----------------------------------------------------
GRANTS = ("password", "refreshToken", "clientCredentials")


@dataclass
class Grant:
    access_token: str
    expires_in: int
    refresh_token: str | None = None
    user: User | None = None


async def token(
    core: Core,
    ctx: RequestContext,
    *,
    grant: str,
    client_id: str | None,
    client_secret: str | None,
    login_id: str | None = None,
    password: str | None = None,
    refresh_token: str | None = None,
) -> Grant:
    """Seed 002's login: the request's shape first (422), then the client (401 ``client_invalid``),
    then the credentials of the grant."""
    if grant not in GRANTS:
        raise invalid("type", "one of " + ", ".join(GRANTS))
    if grant == "password" and (login_id is None or password is None):
        raise invalid("withPassword", "emailOrUsername and password are required")
    if grant == "refreshToken" and not refresh_token:
        raise invalid("refreshToken", "is required")
    budget = core.guard.budget("failed_login_ip", ctx.ip or "", core.settings.limit_failed_login)
    await budget.check()
    try:
        client = await authenticate_client(core, client_id, client_secret)
    except AuthError:
        await budget.fail()
        async with core.store.transaction() as tx:
            await audit.record(tx, Event.LOGIN_FAILED, ctx, None, reason="bad_client", grant=grant)
        raise
    if grant == "password":
        assert login_id is not None and password is not None
        result = await login.password_login(core, ctx, login_id, password, field="withPassword.emailOrUsername")
        assert result.issued is not None
        issued = result.issued
        return Grant(issued.access_token, issued.expires_in, issued.refresh_token, result.user)
    if grant == "refreshToken":
        assert refresh_token is not None
        user, issued = await core.sessions.refresh(refresh_token, ctx)
        async with core.store.transaction() as tx:
            await audit.record(tx, Event.TOKEN_REFRESHED, ctx, user.id, session=issued.session.id)
        return Grant(issued.access_token, issued.expires_in, issued.refresh_token, user)
    ttl = core.settings.access_ttl
    access, _ = await core.tokens.sign(TokenType.APP, client.client_id, ttl, name=client.name)
    async with core.store.transaction() as tx:
        await audit.record(tx, Event.LOGIN_SUCCEEDED, ctx, None, actor=client.client_id, method="client_credentials")
    return Grant(access, ttl)


# --- bulk import (``authgate users import``) --------------------------------------------------------
@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "updated": self.updated, "failed": self.failed}


def _failure(line: int, exc: AuthError) -> dict[str, Any]:
    parts = [p for p in (exc.field, exc.detail) if p]
    return {"line": line, "code": exc.code.value, "error": ": ".join([exc.code.value, *parts])}


async def import_lines(
    core: Core,
    lines: Iterable[str],
    *,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Upsert JSON lines (the PUT /api/users shape) as the system, one transaction per batch.

    A bad line is reported (line number and reason) and skipped; the rest go on. Should a batch's
    transaction break half-way (a concurrent writer took an email between check and write), that
    batch is redone one line per transaction.
    """
    summary = ImportSummary()
    actor = Actor(IMPORTER, system=True)
    ctx = RequestContext(surface="cli")
    batch: list[tuple[int, SyncInput]] = []

    async def flush() -> None:
        if batch:
            await _import_batch(core, ctx, actor, batch, summary)
            if progress:
                progress(len(batch))
            batch.clear()

    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            batch.append((number, parse_payload(core, _json_line(line))))
        except AuthError as exc:
            summary.failed.append(_failure(number, exc))
            if progress:
                progress(1)
        if len(batch) >= batch_size:
            await flush()
    await flush()
    summary.failed.sort(key=lambda item: int(item["line"]))
    return summary


def _json_line(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        raise AuthError(ErrorCode.MALFORMED_JSON) from None


async def _prepare_batch(core: Core, batch: list[tuple[int, SyncInput]]) -> dict[int, Prepared | None]:
    plain = [(n, inp) for n, inp in batch if inp.password is not None and not inp.password_is_hash]
    if not plain:
        return {}
    async with core.store.transaction(write=False) as tx:
        existing = {n: await _find(tx, inp) for n, inp in plain}
    out: dict[int, Prepared | None] = {}
    step = max(1, core.settings.hash_queue_limit // 2)  # stay under the hasher's queue limit
    for i in range(0, len(plain), step):
        chunk = plain[i : i + step]
        results = await asyncio.gather(*(prepare_password(core, inp, existing[n]) for n, inp in chunk))
        out.update({n: r for (n, _), r in zip(chunk, results, strict=True)})
    return out


class BulkUsers(Protocol):
    """The bulk methods of storage's user repository that imports use."""

    async def find_many(
        self, usernames: Sequence[str], emails: Sequence[str], phones: Sequence[str], *, for_update: bool = False
    ) -> list[User]: ...
    async def create_many(self, users: Sequence[User]) -> None: ...


class BulkAudit(Protocol):
    async def add_many(self, events: Sequence[AuditEvent]) -> None: ...


def _keys(inp: SyncInput) -> list[str]:
    """What a record claims in the batch: its name, email and phone (namespaced)."""
    out = []
    if inp.username:
        out.append("u:" + normalise_username(inp.username))
    if inp.values.get("email"):
        out.append("e:" + str(inp.values["email"]).lower())
    if inp.values.get("phone"):
        out.append("p:" + str(inp.values["phone"]))
    return out


async def _apply_batch(
    core: Core, tx: Tx, ctx: RequestContext, actor: Actor, batch: list[tuple[int, SyncInput]],
    prepared: dict[int, Prepared | None],
) -> list[tuple[int, bool | AuthError]]:
    """One transaction for the batch. Records that touch nothing already in the database or earlier
    in the batch are inserted together; the rest go through ``apply`` one by one, in file order, so
    the outcome is the one of applying every line in turn."""
    bulk: BulkUsers = tx.users  # type: ignore[assignment]
    known = await bulk.find_many(
        [inp.username for _, inp in batch if inp.username],
        [str(inp.values["email"]) for _, inp in batch if inp.values.get("email")],
        [str(inp.values["phone"]) for _, inp in batch if inp.values.get("phone")],
        for_update=True,
    )
    held: dict[str, User] = {}
    for user in known:
        held["u:" + normalise_username(user.username)] = user
        if user.email:
            held["e:" + user.email.lower()] = user
        if user.phone:
            held["p:" + user.phone] = user
    claimed: set[str] = set()
    fresh: list[tuple[int, SyncInput, User]] = []
    slow: list[tuple[int, SyncInput, Any]] = []  # the held user, or _LOOK_UP to read it again
    outcome: dict[int, bool | AuthError] = {}
    for number, inp in batch:
        keys = _keys(inp)
        target = held.get(keys[0]) if keys else None  # what ``_find`` would return: by name, else email
        touched = any(k in claimed for k in keys) or (target is not None and f"id:{target.id}" in claimed)
        claimed.update(keys)
        if target is not None:
            claimed.add(f"id:{target.id}")
        try:
            if inp.username and not touched and not any(k in held for k in keys):
                fresh.append((number, inp, _new_user(core, actor, inp, prepared.get(number))))
            else:
                slow.append((number, inp, target if target is not None and not touched else _LOOK_UP))
        except AuthError as exc:
            outcome[number] = exc
    if fresh:
        try:
            await bulk.create_many([user for _, _, user in fresh])
        except AuthError as exc:  # a concurrent writer got there first: redo line by line
            raise _Dirty(exc) from None
        now = datetime.now(UTC)
        events: BulkAudit = tx.audit  # type: ignore[assignment]
        await events.add_many([
            AuditEvent(type=Event.USER_SYNCED.value, at=now, user_id=user.id, actor=actor.label,
                       detail={"created": True, "fields": sorted(inp.values), "bulk": True})
            for _, inp, user in fresh
        ])
        outcome.update({number: True for number, _, _ in fresh})
    for number, inp, existing in slow:
        try:
            _, created = await apply(core, tx, ctx, actor, inp, prepared.get(number), existing)
            outcome[number] = created
        except AuthError as exc:
            outcome[number] = exc
    return [(number, outcome[number]) for number, _ in batch]


async def _import_batch(
    core: Core, ctx: RequestContext, actor: Actor, batch: list[tuple[int, SyncInput]], summary: ImportSummary
) -> None:
    prepared = await _prepare_batch(core, batch)
    outcome: list[tuple[int, bool | AuthError]]
    try:
        async with core.store.transaction() as tx:
            outcome = await _apply_batch(core, tx, ctx, actor, batch, prepared)
    except _Dirty:
        outcome = []
        for number, inp in batch:
            try:
                async with core.store.transaction() as tx:
                    _, created = await apply(core, tx, ctx, actor, inp, prepared.get(number))
                outcome.append((number, created))
            except _Dirty as exc:
                outcome.append((number, exc.cause))
            except AuthError as exc:
                outcome.append((number, exc))
    for number, result in outcome:
        if isinstance(result, AuthError):
            summary.failed.append(_failure(number, result))
        elif result:
            summary.created += 1
        else:
            summary.updated += 1
