"""HTTP message providers (SendGrid, Mandrill, Twilio, Gupshup) against loopback emulators.

Each emulator is an ``HttpSink`` answering like the provider; the tests check the request field by
field against the provider's public API documentation (cited in each adapter's docstring), then the
failures: HTTP 500, a hang longer than the timeout, and errors reported inside a 200 answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import structlog
from structlog.testing import capture_logs

from authgate.adapters.email import http as email_http
from authgate.adapters.email.http import MandrillMailer, ProviderError, SendGridMailer
from authgate.adapters.sms import http as sms_http
from authgate.adapters.sms.http import GupshupSms, TwilioSms
from authgate.config import Settings
from authgate.container import build_mailer, build_sms
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.messages import Messenger
from tests.e2e.support import HttpSink

API_KEY = "SG.sekrit-api-key"
MANDRILL_KEY = "md-sekrit-key"
SID = "AC" + "0" * 32
TOKEN = "twilio-sekrit-token"
GUPSHUP_PASSWORD = "gupshup-sekrit-pw"
FROM = "authgate <no-reply@example.com>"
TEXT = "Your verification code is 4821. It expires in 5 minutes."

SENDGRID_OK = {}
MANDRILL_OK = [{"email": "ann@example.com", "status": "sent", "reject_reason": None, "_id": "abc123"}]
TWILIO_OK = {"sid": "SM" + "1" * 32, "status": "queued", "error_code": None}
GUPSHUP_OK = {
    "response": {"id": "3562707498794989059", "phone": "85268098227", "details": "", "status": "success"}
}


@pytest.fixture
def sink() -> Iterator[Callable[..., HttpSink]]:
    """Start loopback emulators: ``sink(status=..., delay=..., reply=...)``; all stopped afterwards."""
    started: list[HttpSink] = []

    def start(status: int = 200, delay: float = 0.0, reply: Any = None) -> HttpSink:
        s = HttpSink(status=status, delay=delay, reply=reply)
        # a short poll interval so that stopping the sink does not wait half a second
        s.thread = threading.Thread(
            target=s.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        # a hanging sink answers after the client gave up: that broken pipe is expected, not news
        s.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        s.__enter__()
        started.append(s)
        return s

    yield start
    for s in started:
        s.__exit__(None, None, None)


def form(request: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(request["body"].decode(), keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in parsed.values()), parsed
    return {k: v[0] for k, v in parsed.items()}


def header(request: dict[str, Any], name: str) -> str:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    return str(headers.get(name.lower(), ""))


# --- what each provider is sent ------------------------------------------------------------------
async def test_sendgrid_request_matches_the_v3_mail_send_api(sink: Callable[..., HttpSink]) -> None:
    s = sink(status=202, reply=SENDGRID_OK)
    mailer = SendGridMailer(API_KEY, FROM, s.url + "/", timeout=5)
    await mailer.send("ann@example.com", "Your verification code", TEXT)
    await mailer.aclose()
    [req] = s.requests
    assert (req["method"], req["path"]) == ("POST", "/v3/mail/send")
    assert header(req, "authorization") == f"Bearer {API_KEY}"
    assert header(req, "content-type").startswith("application/json")
    assert json.loads(req["body"]) == {
        "personalizations": [{"to": [{"email": "ann@example.com"}]}],
        "from": {"email": "no-reply@example.com", "name": "authgate"},
        "subject": "Your verification code",
        "content": [{"type": "text/plain", "value": TEXT}],
    }


async def test_sendgrid_from_without_a_display_name_sends_only_the_address(
    sink: Callable[..., HttpSink],
) -> None:
    s = sink(status=202, reply=SENDGRID_OK)
    mailer = SendGridMailer(API_KEY, "no-reply@example.com", s.url, timeout=5)
    await mailer.send("ann@example.com", "s", "t")
    await mailer.aclose()
    assert json.loads(s.requests[0]["body"])["from"] == {"email": "no-reply@example.com"}


async def test_sendgrid_other_2xx_than_accepted_is_a_failure(sink: Callable[..., HttpSink]) -> None:
    s = sink(status=204, reply=SENDGRID_OK)
    mailer = SendGridMailer(API_KEY, FROM, s.url, timeout=5)
    with pytest.raises(ProviderError, match="204"):
        await mailer.send("ann@example.com", "s", "t")
    await mailer.aclose()


async def test_mandrill_request_matches_messages_send(sink: Callable[..., HttpSink]) -> None:
    s = sink(status=200, reply=MANDRILL_OK)
    mailer = MandrillMailer(MANDRILL_KEY, FROM, s.url, timeout=5)
    await mailer.send("ann@example.com", "Your verification code", TEXT)
    await mailer.aclose()
    [req] = s.requests
    assert (req["method"], req["path"]) == ("POST", "/messages/send.json")
    assert header(req, "content-type").startswith("application/json")
    assert json.loads(req["body"]) == {
        "key": MANDRILL_KEY,
        "message": {
            "text": TEXT,
            "subject": "Your verification code",
            "from_email": "no-reply@example.com",
            "from_name": "authgate",
            "to": [{"email": "ann@example.com", "type": "to"}],
        },
    }


@pytest.mark.parametrize("status", ["queued", "scheduled"])
async def test_mandrill_queued_or_scheduled_is_delivered(sink: Callable[..., HttpSink], status: str) -> None:
    s = sink(status=200, reply=[{**MANDRILL_OK[0], "status": status}])
    mailer = MandrillMailer(MANDRILL_KEY, FROM, s.url, timeout=5)
    await mailer.send("ann@example.com", "s", "t")
    await mailer.aclose()


@pytest.mark.parametrize(
    ("status", "reason"), [("rejected", "hard-bounce"), ("invalid", None), ("rejected", "unsub")]
)
async def test_mandrill_rejected_or_invalid_recipient_raises(
    sink: Callable[..., HttpSink], status: str, reason: str | None
) -> None:
    s = sink(status=200, reply=[{**MANDRILL_OK[0], "status": status, "reject_reason": reason}])
    mailer = MandrillMailer(MANDRILL_KEY, FROM, s.url, timeout=5)
    with pytest.raises(ProviderError, match=status):
        await mailer.send("ann@example.com", "s", "t")
    await mailer.aclose()


@pytest.mark.parametrize("reply", [[], {"status": "error", "code": -1, "name": "Invalid_Key"}, "oops"])
async def test_mandrill_answer_without_recipient_status_raises(
    sink: Callable[..., HttpSink], reply: Any
) -> None:
    s = sink(status=200, reply=reply)
    mailer = MandrillMailer(MANDRILL_KEY, FROM, s.url, timeout=5)
    with pytest.raises(ProviderError):
        await mailer.send("ann@example.com", "s", "t")
    await mailer.aclose()


async def test_twilio_request_matches_the_messages_resource(sink: Callable[..., HttpSink]) -> None:
    s = sink(status=201, reply=TWILIO_OK)
    sms = TwilioSms(SID, TOKEN, "+15005550006", s.url, timeout=5)
    await sms.send("+85268098227", TEXT)
    await sms.aclose()
    [req] = s.requests
    assert (req["method"], req["path"]) == ("POST", f"/2010-04-01/Accounts/{SID}/Messages.json")
    assert header(req, "authorization") == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert header(req, "content-type") == "application/x-www-form-urlencoded"
    assert form(req) == {"To": "+85268098227", "From": "+15005550006", "Body": TEXT}


async def test_twilio_messaging_service_sender_uses_messaging_service_sid(
    sink: Callable[..., HttpSink],
) -> None:
    s = sink(status=201, reply=TWILIO_OK)
    service = "MG" + "a" * 32
    sms = TwilioSms(SID, TOKEN, service, s.url, timeout=5)
    await sms.send("+85268098227", TEXT)
    await sms.aclose()
    assert form(s.requests[0]) == {"To": "+85268098227", "MessagingServiceSid": service, "Body": TEXT}


async def test_twilio_4xx_raises(sink: Callable[..., HttpSink]) -> None:
    s = sink(status=400, reply={"code": 21211, "message": "The 'To' number is not valid.", "status": 400})
    sms = TwilioSms(SID, TOKEN, "+15005550006", s.url, timeout=5)
    with pytest.raises(ProviderError, match="400"):
        await sms.send("+85268098227", TEXT)
    await sms.aclose()


async def test_gupshup_request_matches_the_enterprise_sms_api(sink: Callable[..., HttpSink]) -> None:
    s = sink(status=200, reply=GUPSHUP_OK)
    sms = GupshupSms("2000123456", GUPSHUP_PASSWORD, s.url, timeout=5)
    await sms.send("+85268098227", TEXT)
    await sms.aclose()
    [req] = s.requests
    assert (req["method"], req["path"]) == ("POST", "/GatewayAPI/rest")
    assert header(req, "content-type") == "application/x-www-form-urlencoded"
    assert form(req) == {
        "method": "SendMessage",
        "send_to": "85268098227",
        "msg": TEXT,
        "msg_type": "TEXT",
        "userid": "2000123456",
        "auth_scheme": "plain",
        "password": GUPSHUP_PASSWORD,
        "v": "1.1",
        "format": "json",
    }
    assert GUPSHUP_PASSWORD not in req["path"]  # never in a URL


async def test_gupshup_non_latin_text_is_sent_as_unicode(sink: Callable[..., HttpSink]) -> None:
    s = sink(status=200, reply=GUPSHUP_OK)
    sms = GupshupSms("2000123456", GUPSHUP_PASSWORD, s.url, timeout=5)
    await sms.send("+85268098227", "您的驗證碼是 4821")
    await sms.aclose()
    sent = form(s.requests[0])
    assert (sent["msg_type"], sent["msg"]) == ("Unicode_text", "您的驗證碼是 4821")


@pytest.mark.parametrize(
    "reply",
    [
        {"response": {"id": "105", "phone": "", "details": "Authentication failed", "status": "error"}},
        {"response": {"status": "ERROR", "id": "175"}},
        {"unexpected": True},
        "success | 85268098227 | 1",
    ],
)
async def test_gupshup_error_status_inside_http_200_raises(sink: Callable[..., HttpSink], reply: Any) -> None:
    s = sink(status=200, reply=reply)
    sms = GupshupSms("2000123456", GUPSHUP_PASSWORD, s.url, timeout=5)
    with pytest.raises(ProviderError):
        await sms.send("+85268098227", TEXT)
    await sms.aclose()


# --- failures every provider shares ------------------------------------------------------------
def make(kind: str, url: str, timeout: float = 5.0) -> Any:
    if kind == "sendgrid":
        return SendGridMailer(API_KEY, FROM, url, timeout)
    if kind == "mandrill":
        return MandrillMailer(MANDRILL_KEY, FROM, url, timeout)
    if kind == "twilio":
        return TwilioSms(SID, TOKEN, "+15005550006", url, timeout)
    return GupshupSms("2000123456", GUPSHUP_PASSWORD, url, timeout)


async def send(provider: Any) -> None:
    if isinstance(provider, (SendGridMailer, MandrillMailer)):
        await provider.send("ann@example.com", "Your verification code", TEXT)
    else:
        await provider.send("+85268098227", TEXT)


OK_REPLY = {
    "sendgrid": (202, SENDGRID_OK),
    "mandrill": (200, MANDRILL_OK),
    "twilio": (201, TWILIO_OK),
    "gupshup": (200, GUPSHUP_OK),
}
KINDS = list(OK_REPLY)


@pytest.mark.parametrize("kind", KINDS)
async def test_http_500_raises(sink: Callable[..., HttpSink], kind: str) -> None:
    s = sink(status=500, reply={"errors": [{"message": "internal"}]})
    provider = make(kind, s.url)
    with pytest.raises(ProviderError, match="500"):
        await send(provider)
    await provider.aclose()
    assert len(s.requests) == 1  # retrying is the Messenger's job, not the adapter's


@pytest.mark.parametrize("kind", KINDS)
async def test_a_hang_longer_than_the_timeout_raises_within_it(
    sink: Callable[..., HttpSink], kind: str
) -> None:
    status, reply = OK_REPLY[kind]
    s = sink(status=status, reply=reply, delay=3.0)
    provider = make(kind, s.url, timeout=0.2)
    # The outer bound is generous; a provider without its own deadline would hit it (TimeoutError,
    # not ProviderError) or, after the sink's delay, succeed.
    with pytest.raises(ProviderError, match="no answer"):
        await asyncio.wait_for(send(provider), 2.5)
    await provider.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_unreachable_provider_raises(kind: str) -> None:
    from tests.e2e.support import free_port

    provider = make(kind, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderError):
        await send(provider)
    await provider.aclose()


async def test_no_secret_or_code_is_logged(
    sink: Callable[..., HttpSink], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    failing = sink(status=500, reply={"errors": [{"message": f"bad key {API_KEY}"}]})
    gupshup_error = sink(status=200, reply={"response": {"id": "105", "status": "error", "details": "x"}})
    mandrill_rejected = sink(
        status=200, reply=[{**MANDRILL_OK[0], "status": "rejected", "reject_reason": "spam"}]
    )
    hanging = sink(status=201, reply=TWILIO_OK, delay=3.0)
    with capture_logs() as events:
        # module loggers may have been cached by an earlier configure(); give them fresh ones
        monkeypatch.setattr(email_http, "log", structlog.get_logger("authgate.providers"))
        import authgate.core.messages as messages_mod

        monkeypatch.setattr(messages_mod, "log", structlog.get_logger("authgate.messages"))
        providers = [
            make("sendgrid", failing.url),
            make("mandrill", mandrill_rejected.url),
            make("twilio", hanging.url, timeout=0.2),
            make("gupshup", gupshup_error.url),
        ]
        messenger = Messenger(providers[0], providers[2], retries=2, backoff=0.01)
        with pytest.raises(AuthError):
            await messenger.email("ann@example.com", "s", TEXT)
        with pytest.raises(AuthError):
            await messenger.sms("+85268098227", TEXT)
        for provider in (providers[1], providers[3]):
            with pytest.raises(ProviderError):
                await send(provider)
        for provider in providers:
            await provider.aclose()
    logged = json.dumps(events, default=str) + "\n".join(r.getMessage() for r in caplog.records)
    assert {"sendgrid", "mandrill", "twilio", "gupshup"} <= {e.get("provider") for e in events}
    for secret in (API_KEY, MANDRILL_KEY, TOKEN, GUPSHUP_PASSWORD, "4821", "ann@example.com", "68098227"):
        assert secret not in logged, secret
    assert all(
        secret not in repr(p)
        for p in providers
        for secret in (API_KEY, MANDRILL_KEY, TOKEN, GUPSHUP_PASSWORD)
    )


# --- retries, through the core ------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
async def test_messenger_retries_a_failing_provider_then_reports_message_not_sent(
    sink: Callable[..., HttpSink], kind: str
) -> None:
    s = sink(status=500, reply={})
    provider = make(kind, s.url)
    is_mail = kind in ("sendgrid", "mandrill")
    messenger = Messenger(
        provider if is_mail else None, None if is_mail else provider, retries=3, backoff=0.01
    )
    with pytest.raises(AuthError) as err:
        if is_mail:
            await messenger.email("ann@example.com", "s", TEXT)
        else:
            await messenger.sms("+85268098227", TEXT)
    await provider.aclose()
    assert err.value.code is ErrorCode.MESSAGE_NOT_SENT
    assert len(s.requests) == 3


async def test_messenger_succeeds_when_a_retry_gets_through(sink: Callable[..., HttpSink]) -> None:
    s = sink(status=500, reply={})
    provider = make("twilio", s.url)
    messenger = Messenger(None, provider, retries=3, backoff=0.01)

    async def heal() -> None:
        while not s.requests:
            await asyncio.sleep(0.005)
        s.status = 201  # the second try is answered 201

    healer = asyncio.create_task(heal())
    await messenger.sms("+85268098227", TEXT)
    await healer
    await provider.aclose()
    assert 2 <= len(s.requests) <= 3


# --- choice and credentials from settings --------------------------------------------------------
def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_build_from_settings_uses_base_url_timeout_and_credentials() -> None:
    mailer = build_mailer(
        settings(
            email_provider="sendgrid",
            sendgrid_api_key=API_KEY,
            sendgrid_base_url="http://sg.test/",
            provider_timeout=3.5,
        )
    )
    assert isinstance(mailer, SendGridMailer)
    assert (mailer.base_url, mailer.timeout, mailer.from_email) == (
        "http://sg.test",
        3.5,
        "no-reply@authgate.local",
    )
    mailer = build_mailer(
        settings(email_provider="mandrill", mandrill_api_key=MANDRILL_KEY, mandrill_base_url="http://md.test")
    )
    assert isinstance(mailer, MandrillMailer) and mailer.base_url == "http://md.test"
    sms = build_sms(
        settings(
            sms_provider="twilio",
            twilio_account_sid=SID,
            twilio_auth_token=TOKEN,
            twilio_from="+15005550006",
            twilio_base_url="http://tw.test",
        )
    )
    assert isinstance(sms, TwilioSms) and sms.base_url == "http://tw.test"
    sms = build_sms(
        settings(sms_provider="gupshup", gupshup_user_id="2000123456", gupshup_password=GUPSHUP_PASSWORD)
    )
    assert isinstance(sms, GupshupSms) and sms.base_url == "https://enterprise.smsgupshup.com"
    # chosen from the credentials when no provider is named
    assert isinstance(build_mailer(settings(sendgrid_api_key=API_KEY)), SendGridMailer)
    assert isinstance(
        build_sms(settings(twilio_account_sid=SID, twilio_auth_token=TOKEN, twilio_from="+1500")), TwilioSms
    )


@pytest.mark.parametrize(
    ("builder", "values", "message"),
    [
        (
            build_mailer,
            {"email_provider": "sendgrid"},
            "AUTHGATE_SENDGRID_API_KEY is required for the sendgrid email provider",
        ),
        (
            build_mailer,
            {"email_provider": "mandrill"},
            "AUTHGATE_MANDRILL_API_KEY is required for the mandrill email provider",
        ),
        (
            build_mailer,
            {"email_provider": "sendgrid", "sendgrid_api_key": API_KEY, "mail_from": "nobody"},
            "AUTHGATE_MAIL_FROM is not an email address",
        ),
        (
            build_sms,
            {"sms_provider": "twilio"},
            (
                "AUTHGATE_TWILIO_ACCOUNT_SID, AUTHGATE_TWILIO_AUTH_TOKEN and AUTHGATE_TWILIO_FROM "
                "are required for the twilio sms provider"
            ),
        ),
        (
            build_sms,
            {"sms_provider": "twilio", "twilio_account_sid": SID, "twilio_from": "+1500"},
            "AUTHGATE_TWILIO_AUTH_TOKEN is required for the twilio sms provider",
        ),
        (
            build_sms,
            {"sms_provider": "gupshup", "gupshup_user_id": "1"},
            "AUTHGATE_GUPSHUP_PASSWORD is required for the gupshup sms provider",
        ),
        (
            build_sms,
            {"sms_provider": "gupshup"},
            (
                "AUTHGATE_GUPSHUP_USER_ID and AUTHGATE_GUPSHUP_PASSWORD are required for the gupshup sms "
                "provider"
            ),
        ),
    ],
)
def test_missing_credential_fails_at_start_up(
    builder: Callable[[Settings], Any], values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        builder(settings(**values))


def test_module_builders_refuse_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown"):
        email_http.build("postmark", settings())
    with pytest.raises(ValueError, match="unknown"):
        sms_http.build("nexmo", settings())


# --- through the API: a provider failure leaves no usable OTP ------------------------------------
SIGNUP = {
    "email": "ann@example.com",
    "name": "Ann",
    "username": "ann",
    "metadata": {"phone-number": "68098227"},
    "password": "S3cure-pass",
    "dont-login": False,
}
CODE = re.compile(r"\b(\d{4,8})\b")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("kind", ["sendgrid", "twilio"])
async def test_send_otp_provider_failure_is_500_and_burns_the_otp(
    make_harness: Any, sink: Callable[..., HttpSink], kind: str, backend: str
) -> None:
    s = sink(status=500, reply={})
    if kind == "sendgrid":
        overrides = {"email_provider": "sendgrid", "sendgrid_api_key": API_KEY, "sendgrid_base_url": s.url}
    else:
        overrides = {
            "email_provider": "none",
            "sms_provider": "twilio",
            "form_otp_channels": "sms",
            "twilio_account_sid": SID,
            "twilio_auth_token": TOKEN,
            "twilio_from": "+15005550006",
            "twilio_base_url": s.url,
        }
    h = await make_harness(backend, provider_retries=2, **overrides)
    r = await h.client.post("/api/auth/v1/signup", json=SIGNUP)
    assert r.status_code == 201, r.text
    token, user_id = r.headers["x-qt-auth"], r.json()["user"]["id"]

    r = await h.client.post("/api/auth/v1/users/send-otp", json={"email": SIGNUP["email"]})
    assert (r.status_code, r.json()) == (
        500,
        {"message": "Something went wrong. OTP was not sent through email or sms."},
    )
    assert len(s.requests) == 2  # provider_retries tries, then the error
    async with h.core.store.transaction(write=False) as tx:
        assert await tx.secrets.get_active("verify_channel", f"user:{user_id}") is None

    # The code the provider was handed (and might yet deliver) is refused.
    raw = s.requests[0]["body"].decode()
    sent = json.loads(raw)["content"][0]["value"] if kind == "sendgrid" else form(s.requests[0])["Body"]
    match = CODE.search(sent)
    assert match, sent
    channel = "email" if kind == "sendgrid" else "phone"
    r = await h.client.post(
        "/api/auth/v1/users/update-with-otp",
        json={"otp": match.group(1), "user": {"verification-status": channel}},
        headers={"x-qt-auth": token},
    )
    assert r.status_code == 401
    if kind == "twilio":
        assert form(s.requests[0])["To"] == "+85268098227"  # the stored E.164 number


async def test_the_send_time_a_pretended_send_waits_is_measured_and_guessed_before() -> None:
    """Before this node has timed a send, a network provider is guessed at NETWORK_GUESS (a node
    fresh from a restart answered an unknown address at once); the first real send replaces it."""
    import asyncio

    from authgate.core.messages import NETWORK_GUESS, Messenger

    class SlowMailer:
        name = "smtp"

        async def send(self, to: str, subject: str, text: str) -> None:
            await asyncio.sleep(0.05)

    class Console:
        name = "console"

        async def send(self, to: str, body: str) -> None:
            return None

    m = Messenger(SlowMailer(), Console())  # type: ignore[arg-type]
    assert m.typical == {"email": NETWORK_GUESS, "sms": 0.0}
    await m.email("a@example.com", "s", "t")
    assert 0.05 <= m.typical["email"] < NETWORK_GUESS
