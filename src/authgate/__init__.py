"""authgate: a self-hosted authentication service."""

import sys as _sys

__version__ = "0.1.0"


def _import_structlog_without_rich() -> None:
    """structlog's dev module imports ``rich`` when it is installed (typer pulls it in) only to
    pretty-print tracebacks on a developer's console, which authgate does not use: ~100 ms of every
    start-up. Hide rich while structlog loads; anything imported later still sees it."""
    if "structlog" in _sys.modules or "rich" in _sys.modules:
        return
    _sys.modules["rich"] = None  # type: ignore[assignment]  # makes ``import rich`` fail fast
    try:
        import structlog  # noqa: F401
    finally:
        del _sys.modules["rich"]


_import_structlog_without_rich()
