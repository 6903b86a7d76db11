"""The blurring rules of CONTRACT §4 (core/blur.py), shared with the customer surface."""

from __future__ import annotations

import pytest

from authgate.core.blur import blur_email, blur_phone, owner_phone


@pytest.mark.parametrize(
    ("email", "blurred"),
    [
        ("billy@aritaone.com", "bi*****@*****.com"),
        ("test@aritaone.com", "te*****@*****.com"),
        ("bi@x.io", "b*****@*****.io"),  # 2 characters: showing both would show it all
        ("b@x.io", "*****@*****.io"),  # 1 character: none shown (the audit saw it whole)
        ("first.last@mail.example.co.uk", "fi*****@*****.uk"),
        ("user@localhost", "us*****@*****"),
        (None, None),
        ("", None),
    ],
)
def test_blur_email(email: str | None, blurred: str | None) -> None:
    assert blur_email(email) == blurred


@pytest.mark.parametrize(
    ("phone", "blurred"),
    [
        ("+85268098227", "******27"),  # the seed's 8-digit Hong Kong number
        ("+447911123456", "********56"),
        ("+8613812345678", "*********78"),
        (None, None),
    ],
)
def test_blur_phone(phone: str | None, blurred: str | None) -> None:
    assert blur_phone(phone) == blurred


def test_owner_phone_is_national_in_the_default_region_else_e164() -> None:
    assert owner_phone("+85268098227", "HK") == "68098227"
    assert owner_phone("+85268098227", "GB") == "+85268098227"
    assert owner_phone("+447911123456", "HK") == "+447911123456"
    assert owner_phone(None, "HK") is None
