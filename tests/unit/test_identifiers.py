"""Identifier classification and normalisation (CONTRACT §1), with property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authgate.core.errors import AuthError
from authgate.core.identifiers import (
    classify,
    clean_username,
    normalise_email,
    normalise_username,
    parse_phone,
    username_base,
)
from authgate.core.model import AccountType


@pytest.mark.parametrize(
    ("raw", "kind", "value"),
    [
        ("test@aritaone.com", AccountType.EMAIL, "test@aritaone.com"),
        ("Test@AritaOne.com", AccountType.EMAIL, "test@aritaone.com"),
        ("68098227", AccountType.PHONE, "+85268098227"),
        ("+923185456266", AccountType.PHONE, "+923185456266"),
        ("+255712345678", AccountType.PHONE, "+255712345678"),
        ("OZFQkAz5", AccountType.USERNAME, "ozfqkaz5"),
        ("bmp_kfayy_6526", AccountType.USERNAME, "bmp_kfayy_6526"),
        ("12", AccountType.USERNAME, "12"),
    ],
)
def test_classify(raw: str, kind: AccountType, value: str) -> None:
    got = classify(raw, "HK")
    assert (got.kind, got.value) == (kind, value)


def test_usernames_fold_case_and_width() -> None:
    assert normalise_username("ＡＢＣ") == normalise_username("abc") == "abc"
    assert clean_username("John.Doe") == "John.Doe"
    for bad in ("ab", "a" * 33, "has space", "semi;colon", "emoji😀x"):
        with pytest.raises(AuthError):
            clean_username(bad)


def test_email_validation() -> None:
    assert normalise_email(" A@Example.COM ") == "a@example.com"
    for bad in ("cersei-lannister@gmail.com'", "no-at", "a@", "@b.com", "a@b"):
        with pytest.raises(AuthError):
            normalise_email(bad)


def test_phone_e164() -> None:
    assert parse_phone("6809 8227", "HK") == "+85268098227"
    for bad in ("12", "+1", "abc", "+9999999999999999"):
        with pytest.raises(AuthError):
            parse_phone(bad, "HK")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=64))
def test_classify_never_crashes(raw: str) -> None:
    try:
        got = classify(raw, "HK")
    except AuthError as exc:
        assert exc.status == 422
        return
    if "@" in raw:
        assert got.kind is AccountType.EMAIL
    if got.kind is AccountType.PHONE:
        assert got.value.startswith("+") and got.value[1:].isdigit()


@settings(max_examples=200, deadline=None)
@given(st.emails())
def test_every_email_classifies_as_email(email: str) -> None:
    try:
        got = classify(email, "HK")
    except AuthError:
        return  # hypothesis makes some addresses email-validator rightly refuses
    assert got.kind is AccountType.EMAIL and got.value == got.value.lower()


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=80))
def test_username_base_is_always_a_valid_username(seed: str) -> None:
    stem = username_base(seed + "@x.com")
    assert clean_username(stem + "123") == stem + "123"


@pytest.mark.parametrize("raw", ["a\x00b", "\x00", "ann\x00@example.com", "a\x1bb", "a\x7fb", "a\x85b", "6809\x008227",
                                 "a\ud800b", " a\x00 "])
def test_classify_refuses_control_characters_naming_the_field(raw: str) -> None:
    """PostgreSQL refuses a NUL even in a lookup: such a login ID must never reach the database."""
    with pytest.raises(AuthError) as caught:
        classify(raw, "HK", "withPassword.emailOrUsername")
    assert caught.value.status == 422 and caught.value.field == "withPassword.emailOrUsername"
    assert caught.value.detail == "must not contain control characters"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=64))
def test_nothing_classified_holds_a_control_character(raw: str) -> None:
    import unicodedata

    try:
        got = classify(raw, "HK")
    except AuthError:
        return
    assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in got.value)


def test_whitespace_around_a_login_id_is_still_trimmed() -> None:
    assert classify("\tOZFQkAz5\r\n", "HK").value == "ozfqkaz5"


@pytest.mark.parametrize("raw", ["+85291112222", "+447700900123", "＋85291112222", "+abc"])
def test_a_plus_that_is_not_a_valid_phone_is_422_on_the_login_id(raw: str) -> None:
    """No username may hold a "+", so a "+…" that does not parse as a phone was a mistyped number:
    refused naming the login field, not taken for a username (an app OTP then blamed sendType)."""
    with pytest.raises(AuthError) as err:
        classify(raw, "HK", "loginID")
    assert err.value.field == "loginID" and "phone" in (err.value.detail or "")


@pytest.mark.parametrize(("url", "ok"), [
    ("https://lh3.googleusercontent.com/a/ACg8ocK=s96-c", True), ("http://cdn.example.com:8080/p.png?s=1#x", True),
    ("https://example.com", True), ("https://example.com/a%20b", True),
    ('https://"><script>/x', False), ("https://user:pw@evil.com/x", False), ("https://ex.com/<b>", False),
    ("https://a b.com", False), ("javascript:alert(1)", False), ("https://", False), ("ftp://x.com/a", False),
    ("https://ex.com/" + "a" * 2048, False),
])
def test_web_urls_are_absolute_http_urls_with_nothing_that_breaks_out(url: str, ok: bool) -> None:
    from authgate.core.identifiers import is_web_url

    assert is_web_url(url) is ok
