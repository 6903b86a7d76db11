"""Structured JSON logs (structlog). Values under secret-looking keys are redacted before output."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SECRET_KEYS = ("password", "otp", "token", "secret", "authorization", "cookie", "pin", "code")


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        low = key.lower()
        if any(s in low for s in _SECRET_KEYS) and key not in ("event",):
            event[key] = "[redacted]"
    return event


def configure(
    level: str = "info", json_output: bool = True, dev_console: bool = False, to_stderr: bool = False
) -> None:
    """``to_stderr``: for the one-shot CLI commands, whose stdout is the one JSON object they print."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(format="%(message)s", stream=sys.stderr if to_stderr else sys.stdout, level=numeric, force=True)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not dev_console:
        processors.append(_redact)
    processors.append(structlog.processors.format_exc_info)
    processors.append(
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # Without a file: the current sys.stdout at each write (tests capture it).
        logger_factory=structlog.PrintLoggerFactory(sys.stderr) if to_stderr else structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=True,
    )
