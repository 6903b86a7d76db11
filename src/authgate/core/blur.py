"""Blurring contact details for anyone but their owner (CONTRACT §4, reused by §6).

Email: the first 2 characters of the local part, 5 stars, ``@``, 5 stars and the top-level domain
(``billy@example.com`` → ``bi*****@*****.com``). The star counts are fixed, so the blurred form
says nothing about the lengths. Phone: one ``*`` per digit of the national number except the last
two (``+85268098227`` → ``******27``).
"""

from __future__ import annotations

import phonenumbers

STARS = "*****"


def blur_email(email: str | None) -> str | None:
    """``bi*****@*****.com``; a local part of two characters keeps its first, one of a single
    character keeps none: a local part is never shown whole."""
    if not email:
        return None
    local, _, domain = email.rpartition("@")
    if not local:  # not an address: reveal nothing
        return f"{STARS}@{STARS}"
    keep = local[: shown_of(local)]
    tld = domain.rsplit(".", 1)[1] if "." in domain else ""
    return f"{keep}{STARS}@{STARS}" + (f".{tld}" if tld else "")


def shown_of(local: str) -> int:
    """How many leading characters of an email's local part a blurred address shows."""
    return 2 if len(local) > 2 else len(local) - 1


def national_digits(phone: str) -> str:
    """The national significant number of an E.164 phone (``+85268098227`` → ``68098227``)."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return "".join(ch for ch in phone if ch.isdigit())
    return str(phonenumbers.national_significant_number(number))


def blur_phone(phone: str | None) -> str | None:
    """One ``*`` per national digit except the last two: ``******27``."""
    if not phone:
        return None
    digits = national_digits(phone)
    if len(digits) <= 2:
        return "*" * len(digits)
    return "*" * (len(digits) - 2) + digits[-2:]


def owner_phone(phone: str | None, default_region: str) -> str | None:
    """The phone as its owner sees it: national digits (``68098227``, as seed 001 shows) when the
    number belongs to the default region, E.164 otherwise. Either form is accepted back as a loginID
    (national numbers parse in the default region), so nothing is lost."""
    if not phone:
        return None
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return phone
    if phonenumbers.region_code_for_number(number) == default_region.upper():
        return str(phonenumbers.national_significant_number(number))
    return phone
