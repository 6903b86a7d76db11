"""The hosted pages in a real browser: Debian's headless Chromium driven by Playwright, against a
real ``authgate serve`` process and a real SMTP server. Each test leaves a screenshot in
tests/artifacts/. Outside CI the suite skips when /usr/bin/chromium is missing; under CI=true it
fails instead (``apt-get install -y chromium``)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.support import ServerProcess, SmtpSink

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PASSWORD = "Corr3ct-Horse"
NEW_PASSWORD = "N3w-Battery-Staple"


def _need_chromium() -> None:
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -e '.[test]')"
    if problem:
        if CI:
            pytest.fail(f"{problem}; the browser tests are required under CI=true")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[tuple[ServerProcess, SmtpSink]]:
    workdir = tmp_path_factory.mktemp("browser")
    with SmtpSink() as smtp, ServerProcess(workdir, {"AUTHGATE_SMTP_URL": smtp.url}) as server:
        yield server, smtp


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(locale="en-US", viewport={"width": 1000, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


def api_signup(server: ServerProcess, email: str) -> None:
    r = httpx.post(f"{server.url}/api/auth/v1/signup", timeout=10, json={
        "email": email, "name": "Browser Test", "username": email, "password": PASSWORD, "dont-login": True,
    })
    assert r.status_code == 201, r.text


def log_in(page: Any, server: ServerProcess, login_id: str, password: str) -> None:
    """Keyboard only: type into the labelled fields, Tab between them, Enter to submit."""
    page.goto(f"{server.url}/ui/login")
    page.get_by_label("Email, phone or username", exact=True).focus()
    page.keyboard.type(login_id)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_load_state()


def test_sign_up_verify_by_email_code_and_log_in(stack: tuple[ServerProcess, SmtpSink], new_page: Any) -> None:
    server, smtp = stack
    email = f"{unique('signup')}@example.com"
    page = new_page()
    page.goto(f"{server.url}/ui/signup")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Name (optional)", exact=True).fill("Ada Lovelace")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/ui/channel/email**")
    code = smtp.code_in(smtp.wait_for(email))
    page.get_by_label("Code", exact=True).fill(code)
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/account?done=email_verified")
    assert page.locator("#channel-email-status").inner_text().strip() == "Verified"
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/ui/login?done=logout")
    assert page.get_by_role("status").inner_text().strip() == "You have been logged out."

    log_in(page, server, email, "not-the-password-1")
    alert = page.locator("#error-summary")
    assert "Invalid username or password" in alert.inner_text()
    assert page.evaluate("document.activeElement.id") == "error-summary"  # focus moved to the errors
    assert page.get_by_label("Password", exact=True).get_attribute("aria-invalid") == "true"
    log_in(page, server, email, PASSWORD)
    page.wait_for_url("**/ui/account")
    assert page.get_by_role("heading", name="Your account").is_visible()
    shot(page, "signup_verify_login")


def test_revoking_a_session_logs_the_other_tab_out(stack: tuple[ServerProcess, SmtpSink], new_page: Any) -> None:
    server, _ = stack
    email = f"{unique('tabs')}@example.com"
    api_signup(server, email)
    mine, other = new_page(), new_page()  # two browser contexts: two devices
    log_in(other, server, email, PASSWORD)
    other.wait_for_url("**/ui/account")
    log_in(mine, server, email, PASSWORD)
    mine.wait_for_url("**/ui/account")
    rows = mine.locator("tr[data-session]")
    assert rows.count() == 2
    theirs = mine.locator("tr[data-session]", has_not_text="This device")
    theirs.get_by_role("button").click()
    mine.wait_for_url("**/ui/account?done=session")
    assert mine.locator("tr[data-session]").count() == 1
    shot(mine, "revoke_session_account")
    other.reload()
    other.wait_for_url("**/ui/login?next=/ui/account")
    assert other.get_by_role("heading", name="Log in").is_visible()
    shot(other, "revoke_session_other_tab")


def test_forgot_password_by_email_code(stack: tuple[ServerProcess, SmtpSink], new_page: Any) -> None:
    server, smtp = stack
    email = f"{unique('reset')}@example.com"
    api_signup(server, email)
    page = new_page()
    page.goto(f"{server.url}/ui/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email, phone or username", exact=True).fill(email)
    seen = len(smtp.messages)
    page.get_by_role("button", name="Send me a code").click()
    assert "We sent a code to" in page.get_by_role("status").inner_text()
    code = smtp.code_in(smtp.wait_for(email, after=seen))
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/ui/forgot/password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save the new password").click()
    page.wait_for_url("**/ui/login?done=reset")
    log_in(page, server, email, PASSWORD)
    assert "Invalid username or password" in page.locator("#error-summary").inner_text()
    log_in(page, server, email, NEW_PASSWORD)
    page.wait_for_url("**/ui/account")
    shot(page, "forgot_password")


def test_admin_locks_a_user_who_then_cannot_log_in(stack: tuple[ServerProcess, SmtpSink], new_page: Any) -> None:
    server, _ = stack
    admin_name = unique("admin")
    server.cli("users", "create", "--username", admin_name, "--password", PASSWORD, "--role", "ROLE_ADMIN")
    email = f"{unique('victim')}@example.com"
    api_signup(server, email)
    victim = new_page()
    log_in(victim, server, email, PASSWORD)
    victim.wait_for_url("**/ui/account")

    admin = new_page()
    admin.on("dialog", lambda dialog: dialog.accept())  # "Are you sure?"
    log_in(admin, server, admin_name, PASSWORD)
    admin.get_by_role("link", name="Admin").click()
    admin.wait_for_url("**/ui/admin")
    assert admin.locator("#chart-signups svg rect.bar").count() == 14
    shot(admin, "admin_dashboard")
    admin.get_by_role("link", name="Users").click()
    admin.get_by_label("Search by username, email or phone", exact=True).fill(email)
    admin.keyboard.press("Enter")
    admin.get_by_role("link", name=email.split("@")[0]).click()
    admin.get_by_role("button", name="Lock").click()
    admin.wait_for_url("**?done=lock")
    assert admin.locator("#user-status").inner_text().strip() == "Locked"
    shot(admin, "admin_locked_user")

    victim.reload()  # signed out everywhere
    victim.wait_for_url("**/ui/login?next=/ui/account")
    log_in(victim, server, email, PASSWORD)
    assert "The account is locked" in victim.locator("#error-summary").inner_text()
    shot(victim, "locked_user_login")
