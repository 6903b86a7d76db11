"""Settings: every knob is an ``AUTHGATE_*`` environment variable (or a line of ``.env``).

Nothing reads settings at import time: ``create_app(settings)`` and the CLI take a ``Settings``
object, so tests build their own instead of patching globals.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]

# The seeds' defaults (seed 001: 4-digit OTPs, 6–40 character passwords). docs/security.md shows
# the hardened profile (6-digit OTPs, 8–64 printable characters) that every default can switch to.
WEAK_SECRETS = {"", "changeme", "secret", "dev", "development", "test"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AUTHGATE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # --- process -------------------------------------------------------------------------------
    env: Literal["dev", "production"] = "dev"
    host: str = "127.0.0.1"
    port: int = 8000
    internal_port: int | None = None
    workers: int = 1
    log_level: str = "info"
    log_json: bool = True

    # --- storage -------------------------------------------------------------------------------
    database_url: str = "sqlite+aiosqlite:///./authgate.db"
    database_pool_size: int = 10
    database_timeout: float = 5.0
    redis_url: str | None = None
    redis_timeout: float = 1.0
    node_id: int | None = None

    # --- secrets and tokens --------------------------------------------------------------------
    secret_key: SecretStr | None = None
    issuer: str = "http://127.0.0.1:8000"
    audience: str = "authgate"
    public_url: str = "http://127.0.0.1:8000"
    access_ttl: int = 3600
    refresh_ttl: int = 30 * 24 * 3600
    refresh_rotation: bool = False
    refresh_grace_seconds: int = 10
    reset_token_ttl: int = 600
    verification_ttl: int = 24 * 3600
    csrf_ttl: int = 3600
    jwt_leeway: int = 30
    key_refresh_seconds: float = 30.0
    revocation_cache_seconds: float = 0.5
    # Housekeeping (core/maintenance.py): rows past their expiry by more than purge_after seconds
    # are deleted every purge_interval seconds by one node of the cluster; 0 turns the schedule
    # off (run `authgate purge` from cron instead).
    purge_interval: int = Field(default=3600, ge=0)
    purge_after: int = Field(default=7 * 24 * 3600, ge=0)

    # --- passwords -----------------------------------------------------------------------------
    password_min_length: int = 6
    password_max_length: int = 40
    password_any_printable: bool = False
    password_check_common: bool = True
    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    hash_workers: int = 0  # 0: one per core
    hash_queue_limit: int = 0  # 0: 64 per hashing thread
    hash_max_wait_seconds: float = Field(default=5.0, ge=0)  # shed a login queued longer (0: no limit)
    # Firebase's "Password Hash Parameters" (base64 signer key and salt separator, rounds,
    # mem_cost): accounts imported with ``firebase_scrypt$<salt>$<hash>`` are checked with them.
    firebase_scrypt_signer_key: SecretStr | None = None
    firebase_scrypt_salt_separator: str = "Bw=="
    firebase_scrypt_rounds: int = Field(default=8, ge=1, le=16)
    firebase_scrypt_memory_cost: int = Field(default=14, ge=1, le=20)

    # --- OTPs and lockout ----------------------------------------------------------------------
    otp_length: int = Field(default=4, ge=4, le=8)
    otp_ttl: int = 300
    otp_max_tries: int = 5
    otp_daily_failures: int = 100
    lockout_threshold: int = 10
    lockout_minutes: int = 15
    pin_max_tries: int = 5

    # --- rate limits (``off`` only outside production, for benchmarks) -------------------------
    rate_limits: Literal["on", "off"] = "on"
    limit_account_check: str = "60/minute"
    limit_failed_login: str = "100/hour"
    limit_otp_send_purpose: str = "1/minute"
    limit_otp_send_hourly: str = "10/hour"
    limit_otp_send_ip: str = "30/hour"  # every code or link sent, per client IP (docs/security.md)
    limit_customer_check: str = "600/minute"
    trusted_proxies: CommaList = Field(default_factory=list)

    # --- identity ------------------------------------------------------------------------------
    default_region: str = "HK"
    redirect_allowlist: CommaList = Field(default_factory=list)

    # --- cookies -------------------------------------------------------------------------------
    cookie_name: str = "qt-auth"
    cookie_secure: bool | None = None  # None: Secure unless dev mode
    cookie_domain: str | None = None

    # --- messages ------------------------------------------------------------------------------
    email_provider: Literal["console", "smtp", "sendgrid", "mandrill", "none"] | None = None
    sms_provider: Literal["console", "twilio", "gupshup", "webhook", "none"] | None = None
    form_otp_channels: Literal["email", "sms", "both"] = "email"
    mail_from: str = "authgate <no-reply@authgate.local>"
    smtp_url: str | None = None
    smtp_timeout: float = 10.0
    sendgrid_api_key: SecretStr | None = None
    sendgrid_base_url: str = "https://api.sendgrid.com"
    mandrill_api_key: SecretStr | None = None
    mandrill_base_url: str = "https://mandrillapp.com/api/1.0"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    gupshup_user_id: str | None = None
    gupshup_password: SecretStr | None = None
    gupshup_base_url: str = "https://enterprise.smsgupshup.com"
    sms_webhook_url: str | None = None
    provider_timeout: float = 10.0
    provider_retries: int = 3
    provider_backoff: float = 0.2

    # --- Firebase ------------------------------------------------------------------------------
    firebase_project_id: str | None = None
    firebase_certs_url: str = (
        "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
    )

    # --- billing -------------------------------------------------------------------------------
    stripe_webhook_secret: SecretStr | None = None

    # --- limits --------------------------------------------------------------------------------
    max_body_bytes: int = 64 * 1024

    @field_validator("trusted_proxies", "redirect_allowlist", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("redirect_allowlist", mode="after")
    @classmethod
    def _origins_only(cls, value: list[str]) -> list[str]:
        """Each entry an http(s) origin: a JSON list or a path would be taken as one origin that
        matches nothing, and every redirect refused without a word."""
        from urllib.parse import urlsplit

        for item in value:
            try:
                parts = urlsplit(item)
                parts.port  # noqa: B018 - raises for a bad port
            except ValueError:
                parts = None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError(f"{item!r} is not an origin such as https://app.example.com (comma-separated)")
        return value

    @model_validator(mode="after")
    def _firebase_scrypt_is_base64(self) -> Settings:
        import base64
        import binascii

        key = self.firebase_scrypt_signer_key.get_secret_value() if self.firebase_scrypt_signer_key else ""
        try:
            base64.b64decode(key, validate=True)
            base64.b64decode(self.firebase_scrypt_salt_separator, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("AUTHGATE_FIREBASE_SCRYPT_SIGNER_KEY and _SALT_SEPARATOR must be base64") from None
        return self

    @model_validator(mode="after")
    def _urls_follow_the_listener(self) -> Settings:
        """Unset, the issuer and the base of verification links are where this server listens
        (``AUTHGATE_PORT=9000`` alone must not mail links to :8000). Never taken from a request's
        Host header, which a client chooses."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        here = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        if "issuer" not in self.model_fields_set:
            self.issuer = here
        if "public_url" not in self.model_fields_set:
            self.public_url = here
        return self

    @model_validator(mode="after")
    def _production_is_strict(self) -> Settings:
        if self.env != "production":
            return self
        problems = []
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if key.lower() in WEAK_SECRETS or len(key.encode()) < 32 or len(set(key)) < 10:
            problems.append("AUTHGATE_SECRET_KEY must be set to at least 32 random bytes")
        if self.cookie_secure is False:
            problems.append("AUTHGATE_COOKIE_SECURE cannot be false in production")
        if self.rate_limits == "off":
            problems.append("AUTHGATE_RATE_LIMITS=off is refused in production")
        if self.resolved_email_provider == "console" or self.resolved_sms_provider == "console":
            problems.append("the console message provider is refused in production")
        if self.issuer.startswith("http://") or self.public_url.startswith("http://"):
            problems.append("AUTHGATE_ISSUER and AUTHGATE_PUBLIC_URL must be https:// in production")
        if problems:
            raise ValueError("production mode: " + "; ".join(problems))
        return self

    @property
    def dev(self) -> bool:
        return self.env == "dev"

    @property
    def secure_cookies(self) -> bool:
        return (not self.dev) if self.cookie_secure is None else self.cookie_secure

    @property
    def resolved_email_provider(self) -> str:
        if self.email_provider:
            return self.email_provider
        if self.smtp_url:
            return "smtp"
        if self.sendgrid_api_key:
            return "sendgrid"
        if self.mandrill_api_key:
            return "mandrill"
        return "console" if self.dev else "none"

    @property
    def resolved_sms_provider(self) -> str:
        if self.sms_provider:
            return self.sms_provider
        if self.sms_webhook_url:
            return "webhook"
        if self.twilio_account_sid:
            return "twilio"
        if self.gupshup_user_id:
            return "gupshup"
        return "console" if self.dev else "none"

    @property
    def firebase_scrypt(self) -> Any:
        """The Firebase scrypt parameters (core.passwords.FirebaseScrypt), or None when unset."""
        if self.firebase_scrypt_signer_key is None or not self.firebase_scrypt_signer_key.get_secret_value():
            return None
        from authgate.core.passwords import FirebaseScrypt

        return FirebaseScrypt.from_base64(
            self.firebase_scrypt_signer_key.get_secret_value(),
            self.firebase_scrypt_salt_separator,
            self.firebase_scrypt_rounds,
            self.firebase_scrypt_memory_cost,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
