"""Onboarding of federated users (seed 004): phone → preferences → profile → COMPLETED.

A step may be done once the user has reached it: doing it again later (a new phone, new
preferences, a new profile) is allowed and never moves the user back; a step ahead of the current
one is ``onboarding_out_of_order`` (409). A user with no onboarding step (created on another
surface) counts as COMPLETED.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.flows import codes
from authgate.core.identifiers import is_web_url, parse_phone, refuse_control
from authgate.core.model import Onboarding, RequestContext, User
from authgate.core.service import Core

PHONE_PURPOSE = "onboarding_phone"
LANGUAGES = ("en", "sw", "fr", "zh")  # seed 004's supported languages
DEFAULT_LANGUAGE = "en"
GENDERS = ("MALE", "FEMALE", "OTHER", "PREFER_NOT_TO_SAY")
MAX_INTERESTS = 50
MAX_INTEREST_CHARS = 64

ORDER = (
    Onboarding.PENDING_PHONE_VERIFICATION,
    Onboarding.PENDING_PREFERENCES,
    Onboarding.PENDING_PROFILE_COMPLETION,
    Onboarding.COMPLETED,
)


@dataclass(frozen=True)
class Status:
    is_complete: bool
    current_step: str


def step_of(user: User) -> Onboarding:
    if user.onboarding is not None and user.onboarding in Onboarding._value2member_map_:
        return Onboarding(user.onboarding)
    return Onboarding.COMPLETED


def status(user: User) -> Status:
    step = step_of(user)
    return Status(step is Onboarding.COMPLETED, step.value)


def language_of(user: User) -> str:
    """The user's preferred language among seed 004's codes (zh-Hant reads as zh)."""
    primary = (user.locale or "").split("-")[0].lower()
    return primary if primary in LANGUAGES else DEFAULT_LANGUAGE


def check_language(value: str, field: str = "preferredLanguage") -> str:
    code = value.strip().lower() if isinstance(value, str) else ""
    if code not in LANGUAGES:
        raise invalid(field, f"Preferred language must be one of {', '.join(LANGUAGES)}")
    return code


def _require(user: User, step: Onboarding) -> None:
    """The user may do ``step`` once they have reached it."""
    if ORDER.index(step_of(user)) < ORDER.index(step):
        raise AuthError(ErrorCode.ONBOARDING_OUT_OF_ORDER, detail=f"current step is {step_of(user).value}")


def _advance(user: User, done: Onboarding) -> None:
    following = ORDER[ORDER.index(done) + 1]
    if user.onboarding is not None and ORDER.index(step_of(user)) < ORDER.index(following):
        user.onboarding = following.value


async def _apply_step(
    core: Core,
    ctx: RequestContext,
    user_id: int,
    step: Onboarding,
    change: Callable[[User], None],
    audit_step: str,
) -> User:
    """Apply one onboarding step under the user's row lock: check it is due, change, advance, audit."""
    async with core.store.transaction() as tx:
        user = await tx.users.get(user_id, for_update=True)
        if user is None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
        _require(user, step)
        change(user)
        _advance(user, step)
        user.updated_at = datetime.now(UTC)
        await tx.users.save(user)
        await audit.record(tx, Event.USER_UPDATED, ctx, user.id, step=audit_step)
    return user


async def _load(core: Core, user_id: int) -> User:
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get(user_id)
    if user is None:
        raise AuthError(ErrorCode.TOKEN_INVALID)
    return user


def _phone(core: Core, raw: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise invalid("phoneNumber", "Phone number is required")
    return parse_phone(raw, core.settings.default_region, "phoneNumber")


async def _phone_taken(core: Core, phone: str, user_id: int) -> bool:
    async with core.store.transaction(write=False) as tx:
        owner = await tx.users.get_by_phone(phone)
    return owner is not None and owner.id != user_id


# --- step 1: phone ---------------------------------------------------------------------------------
async def send_phone_code(core: Core, ctx: RequestContext, user_id: int, phone_number: str) -> str:
    """Send an OTP by SMS to the phone the user wants to verify; returns it in E.164."""
    phone = _phone(core, phone_number)
    user = await _load(core, user_id)
    _require(user, Onboarding.PENDING_PHONE_VERIFICATION)
    if await _phone_taken(core, phone, user.id):
        raise AuthError(ErrorCode.IDENTIFIER_TAKEN, field="phoneNumber")
    await codes.send_code(
        core,
        ctx,
        purpose=PHONE_PURPOSE,
        identifier=phone,
        destinations=[codes.Destination("sms", phone)],
        user_id=user.id,
    )
    return phone


async def verify_phone(core: Core, ctx: RequestContext, user_id: int, phone_number: str, otp: str) -> User:
    """Check the OTP sent to the phone; the phone becomes the user's, verified → PENDING_PREFERENCES.
    ``otp`` is as codes.normalise_code gave it (the surface's own wording for a malformed one)."""
    phone = _phone(core, phone_number)
    user = await _load(core, user_id)
    _require(user, Onboarding.PENDING_PHONE_VERIFICATION)
    if await _phone_taken(core, phone, user.id):
        # Taken since the send (which said 409 too): the code is no longer what matters. Its code
        # may even be gone, replaced by the other account's send to the same phone.
        raise AuthError(ErrorCode.IDENTIFIER_TAKEN, field="phoneNumber")
    async with core.store.transaction(write=False) as tx:
        row = await tx.secrets.get_active(PHONE_PURPOSE, phone)
    # A code sent to this phone for another user proves nothing for this one.
    if row is None or row.user_id != user.id:
        raise AuthError(ErrorCode.OTP_INVALID)
    await codes.check_code(
        core, ctx, secret_id=row.id, code=otp, purpose=PHONE_PURPOSE, identifier=phone, user_id=user.id
    )
    async with core.store.transaction() as tx:
        fresh = await tx.users.get(user.id, for_update=True)
        if fresh is None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
        _require(fresh, Onboarding.PENDING_PHONE_VERIFICATION)
        fresh.phone, fresh.phone_verified = phone, True
        _advance(fresh, Onboarding.PENDING_PHONE_VERIFICATION)
        fresh.updated_at = datetime.now(UTC)
        try:
            await tx.users.save(fresh)
        except AuthError as exc:  # another account took the phone meanwhile (unique index)
            if exc.code is ErrorCode.IDENTIFIER_TAKEN:
                raise AuthError(ErrorCode.IDENTIFIER_TAKEN, field="phoneNumber") from None
            raise
        await audit.record(tx, Event.PHONE_VERIFIED, ctx, fresh.id, method="otp", step="onboarding")
    return fresh


# --- step 2: preferences -------------------------------------------------------------------------
def _interests(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    if not isinstance(values, list) or len(values) > MAX_INTERESTS:
        raise invalid("interests", f"At most {MAX_INTERESTS} interests")
    out: list[str] = []
    for value in values:
        item = value.strip() if isinstance(value, str) else ""
        if not item or len(item) > MAX_INTEREST_CHARS:
            raise invalid("interests", f"Each interest must be 1 to {MAX_INTEREST_CHARS} characters")
        refuse_control(item, "interests")
        if item not in out:
            out.append(item)
    return out


async def set_preferences(
    core: Core, ctx: RequestContext, user_id: int, preferred_language: str, interests: list[str] | None
) -> User:
    """Language (en, sw, fr, zh) and optional interests → PENDING_PROFILE_COMPLETION."""
    if preferred_language is None or (isinstance(preferred_language, str) and not preferred_language.strip()):
        raise invalid("preferredLanguage", "Preferred language is required")
    language = check_language(preferred_language)
    chosen = _interests(interests)
    def change(user: User) -> None:
        user.locale = language
        if chosen is not None:
            user.interests = chosen

    return await _apply_step(core, ctx, user_id, Onboarding.PENDING_PREFERENCES, change, "preferences")


# --- step 3: profile -----------------------------------------------------------------------------
def _birthday(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        shaped = isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value)
        born = date.fromisoformat(value) if shaped else None  # not an ISO week date (1990-W01-1)
    except ValueError:
        born = None
    if born is None:
        raise invalid("birthday", "Birthday must be a date as YYYY-MM-DD")
    if born >= datetime.now(UTC).date() or born.year < 1900:
        raise invalid("birthday", "Birthday must be a past date")
    return born.isoformat()


def _gender(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    code = value.strip().upper().replace(" ", "_").replace("-", "_") if isinstance(value, str) else ""
    if code not in GENDERS:
        raise invalid("gender", f"Gender must be one of {', '.join(GENDERS)}")
    return code


def _photo(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    url = value.strip() if isinstance(value, str) else ""
    if not is_web_url(url):
        raise invalid("profilePhotoUrl", "Profile photo URL must be an http(s) URL")
    return url


async def complete_profile(
    core: Core,
    ctx: RequestContext,
    user_id: int,
    *,
    full_name: str | None,
    profile_photo_url: str | None = None,
    birthday: str | None = None,
    gender: str | None = None,
) -> User:
    """Full name (required), photo, birthday and gender → COMPLETED."""
    name = full_name.strip() if isinstance(full_name, str) else ""
    if not name:
        raise invalid("fullName", "Full name is required")
    if len(name) > 200:
        raise invalid("fullName", "Full name must be at most 200 characters")
    refuse_control(name, "fullName")
    photo, born, sex = _photo(profile_photo_url), _birthday(birthday), _gender(gender)
    def change(user: User) -> None:
        user.full_name = name
        if photo is not None:
            user.avatar_url = photo
        if born is not None:
            user.birthday = born
        if sex is not None:
            user.gender = sex

    return await _apply_step(core, ctx, user_id, Onboarding.PENDING_PROFILE_COMPLETION, change, "profile")
