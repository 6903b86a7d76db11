"""Login identifiers: classification (CONTRACT §1) and normalisation of usernames, emails, phones."""

from __future__ import annotations

import re
import secrets
import string
import unicodedata
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from authgate.core.errors import invalid
from authgate.core.model import AccountType

USERNAME_RE = re.compile(r"^[\w.\-]{3,32}$")
_PHONE_CHARS = re.compile(r"^\+?[\d\s\-().]{4,24}$")


@dataclass(frozen=True)
class LoginId:
    kind: AccountType
    value: str  # normalised: casefolded username, lower-cased email, E.164 phone


def normalise_username(raw: str) -> str:
    """NFKC then casefold: usernames are unique regardless of letter case and width forms."""
    return unicodedata.normalize("NFKC", raw).casefold()


def clean_username(raw: str, field: str = "username") -> str:
    """The display form of a valid username (NFKC), or a 422 naming the field."""
    value = unicodedata.normalize("NFKC", raw.strip())
    if not USERNAME_RE.fullmatch(value) or not all(
        ch.isalnum() or ch in "._-" for ch in value
    ):
        raise invalid(field, "3-32 letters, digits, '.', '_' or '-'")
    return value


def normalise_email(raw: str, field: str = "email") -> str:
    """Validated, lower-cased email (no DNS lookups: deliverability is the mail provider's job)."""
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise invalid(field, str(exc)) from None
    return result.normalized.lower()


def parse_phone(raw: str, region: str, field: str = "phone") -> str:
    """E.164 form of a phone number; national numbers are read in the default region."""
    value = raw.strip()
    if not _PHONE_CHARS.fullmatch(value):
        raise invalid(field, "not a phone number")
    try:
        number = phonenumbers.parse(value, None if value.startswith("+") else region)
    except phonenumbers.NumberParseException:
        raise invalid(field, "not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise invalid(field, "not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def try_phone(raw: str, region: str) -> str | None:
    try:
        return parse_phone(raw, region)
    except Exception:
        return None


def has_control(value: str) -> bool:
    """Control characters (NUL among them) or lone surrogates: no name, address or number has
    them, and PostgreSQL refuses a NUL even in a lookup (a 500, not a 4xx)."""
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def refuse_control(value: str, field: str) -> None:
    """422 naming ``field`` for text with ``has_control``."""
    if has_control(value):
        raise invalid(field, "must not contain control characters")


def classify(login_id: str, region: str, field: str = "loginID") -> LoginId:
    """Contains ``@`` → email (2); parses as a phone → phone (3); otherwise username (1).

    Every surface's login, account lookup and code send goes through here, so input that could
    never name an account (control characters, NUL) is refused once, before any lookup.
    """
    raw = login_id.strip()
    if not raw:
        raise invalid(field, "must not be empty")
    if len(raw) > 320:
        raise invalid(field, "too long")
    refuse_control(raw, field)
    if "@" in raw:
        return LoginId(AccountType.EMAIL, normalise_email(raw, field))
    phone = try_phone(raw, region)
    if phone:
        return LoginId(AccountType.PHONE, phone)
    if unicodedata.normalize("NFKC", raw).startswith("+"):
        # No username holds a "+": this was meant as a phone number, and is not a valid one.
        raise invalid(field, "not a valid phone number")
    return LoginId(AccountType.USERNAME, normalise_username(raw))






def username_base(seed: str) -> str:
    """A username stem from an email local part or a name: allowed characters only, 3–24 chars."""
    local = seed.split("@", 1)[0]
    stem = "".join(ch for ch in unicodedata.normalize("NFKC", local) if ch.isalnum() or ch in "._-")
    stem = stem.strip("._-")[:24]
    if len(stem) < 3:
        stem = (stem + "user")[:24]
    return stem


def username_candidates(seed: str) -> list[str]:
    """The stem itself, then the stem with random digits: callers try them until one is free."""
    stem = username_base(seed)
    out = [stem]
    for width in (3, 3, 4, 4, 6, 6, 8):
        out.append(f"{stem}{''.join(secrets.choice(string.digits) for _ in range(width))}")
    return out


# An http(s) URL as RFC 3986 writes it: a host name or IPv4 address with an optional port, no
# user:password@ part, and only characters a URL may hold (no quotes, angle brackets, backslashes
# or spaces, which would break out of an attribute in a client that renders it unescaped).
_WEB_URL = re.compile(
    r"https?://[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?"
    r"(?:[/?#][A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*)?"
)


def is_web_url(value: str, *, https_only: bool = False, max_length: int = 2048) -> bool:
    """Whether ``value`` is an absolute http(s) URL fit to store and hand to clients (avatars,
    profile photos): see ``_WEB_URL``."""
    if len(value) > max_length or (https_only and not value.startswith("https://")):
        return False
    return _WEB_URL.fullmatch(value) is not None

