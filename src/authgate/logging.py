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


_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F)}


def _escape_controls(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """For the console renderer (JSON escapes them itself): a NUL or an escape sequence from a
    request path or header is written as ``\\x00``, not as the byte (it made the log binary, and
    a terminal would obey an escape sequence). Newlines and tabs stay (messages, tracebacks)."""
    for key, value in event.items():
        if isinstance(value, str) and not value.isprintable():
            event[key] = value.translate(_CONTROLS)
    return event


class _Current:
    """``sys.stdout`` or ``sys.stderr`` as it is at each write, not as it was when logging was set
    up (a test runner swaps and closes its capture files between tests)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)  # type: ignore[no-any-return]

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def configure(
    level: str = "info", json_output: bool = True, dev_console: bool = False, to_stderr: bool = False
) -> None:
    """``to_stderr``: for the one-shot CLI commands, whose stdout is the one JSON object they print."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    stream = _Current("stderr" if to_stderr else "stdout")
    logging.basicConfig(format="%(message)s", stream=stream, level=numeric, force=True)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not dev_console:
        processors.append(_redact)
    processors.append(structlog.processors.format_exc_info)
    if not json_output:
        processors.append(_escape_controls)
    processors.append(
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
