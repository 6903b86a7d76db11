"""Property tests (issue 7): blurring, app-signature payload decoding and token parsing never
crash and never leak, whatever the input."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authgate.core.appsig import decode_payload
from authgate.core.blur import blur_email, blur_phone
from authgate.core.errors import AuthError
from authgate.core.model import TokenType
from tests.conftest import Harness


@settings(max_examples=300, deadline=None)
@given(st.emails())
def test_blurred_email_keeps_two_chars_and_the_tld_only(email: str) -> None:
    out = blur_email(email)
    assert out is not None
    local, domain = email.rsplit("@", 1)
    shown = 2 if len(local) > 2 else len(local) - 1  # never the whole local part
    assert out.startswith(local[:shown] + "*****@*****")
    if "." in domain:
        assert out.endswith("." + domain.rsplit(".", 1)[1])
    tld = "." + domain.rsplit(".", 1)[1] if "." in domain else ""
    assert len(out) == shown + 11 + len(tld)  # nothing else shows


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\+852[5-9][0-9]{7}", fullmatch=True))
def test_blurred_phone_shows_only_the_last_two_digits(phone: str) -> None:
    out = blur_phone(phone)
    assert out == "*" * 6 + phone[-2:]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(
    lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode())))
def test_payload_decoding_refuses_garbage_with_403(raw: str) -> None:
    try:
        decode_payload(raw)
    except AuthError as exc:
        assert exc.status == 403


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["clientId", "ts", "nonce", "method", "path", "bodySha256", "x"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=80), st.floats()),
                       max_size=7))
def test_payload_fields_of_the_wrong_type_are_refused(obj: dict) -> None:
    raw = base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    try:
        payload = decode_payload(raw)
    except AuthError as exc:
        assert exc.status == 403
        return
    assert isinstance(payload.ts, int) and len(payload.nonce) >= 16 and payload.path.startswith("/")


@pytest.fixture
async def hh(make_harness) -> Harness:  # type: ignore[no-untyped-def]
    return await make_harness()  # type: ignore[no-any-return]


async def test_token_parsing_never_crashes(hh: Harness) -> None:
    good, _ = await hh.core.tokens.sign(TokenType.ACCESS, "1", 60, sid="s")
    seen: list[str] = []

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(
        st.text(max_size=200),
        # any change before the signature changes the signed input (the signature's own last
        # base64 character has spare bits, so it is left out)
        st.integers(min_value=0, max_value=good.rindex(".") - 1).flatmap(
            lambda i: st.characters(codec="ascii").map(lambda ch: good[:i] + ch + good[i + 1:])),
    ))
    def probe(token: str) -> None:
        seen.append(token)

    probe()
    for token in seen:
        if token == good:
            continue
        with pytest.raises(AuthError):
            await hh.core.tokens.verify(token, TokenType.ACCESS)
