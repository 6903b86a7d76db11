"""``authgate``: serve, migrate, keys rotate, users create/import, clients create/disable/rotate-secret,
openapi."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from authgate.config import Settings

if TYPE_CHECKING:
    from authgate.core.service import Core

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="authgate authentication service")
keys_cli = typer.Typer(no_args_is_help=True, help="Signing keys")
users_cli = typer.Typer(no_args_is_help=True, help="Users")
clients_cli = typer.Typer(no_args_is_help=True, help="Client apps")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(users_cli, name="users")
cli.add_typer(clients_cli, name="clients")


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - a clear message, not a traceback
        typer.echo(f"authgate: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (AUTHGATE_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Public port (AUTHGATE_PORT)")] = None,
    internal_port: Annotated[int | None, typer.Option(help="Internal listener: honours x-user-ctx")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes")] = None,
) -> None:
    """Run the server (public listener, and the internal one with --internal-port)."""
    # Imports allocate millions of long-lived objects: collecting them while they load is wasted
    # work (~10% of start-up). The app's lifespan freezes what start-up built and re-enables it.
    gc.disable()
    from authgate.server import run

    settings = _settings(host=host, port=port, internal_port=internal_port, workers=workers)
    run(settings)


@cli.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic)."""
    from authgate.storage.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    typer.echo(json.dumps({"migrated": True, "database": _redact(settings.database_url)}))


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key; tokens signed by older keys stay valid until they expire."""

    typer.echo(json.dumps({"kid": _with_core(lambda core: core.keys.rotate())}))


@users_cli.command("create")
def users_create(
    username: Annotated[str, typer.Option()],
    email: Annotated[str | None, typer.Option()] = None,
    password: Annotated[str | None, typer.Option()] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    role: Annotated[list[str] | None, typer.Option(help="ROLE_USER, ROLE_MODERATOR, ROLE_ADMIN, ROLE_SUPER_ADMIN")] = None,
) -> None:
    """Create a user and print it as JSON."""
    from authgate.core.flows.admin import create_user_cli

    made = _with_core(lambda core: create_user_cli(core, username, email, password, phone, role or []))
    typer.echo(json.dumps(made))


@clients_cli.command("create")
def clients_create(
    name: Annotated[str, typer.Option()],
    platform: Annotated[list[str] | None, typer.Option(help="ios, android, web (repeatable)")] = None,
    min_version: Annotated[list[str] | None, typer.Option(help="PLATFORM=X.Y.Z (repeatable)")] = None,
) -> None:
    """Register a client app; prints clientId and clientSecret (shown only once)."""
    from authgate.core.flows.clients import register_client

    typer.echo(json.dumps(_with_core(lambda core: register_client(core, name, platform or [], min_version or []))))


def _client_change(action: str, client_id: str) -> None:
    from authgate.core.flows import clients

    change = clients.disable_client if action == "disable" else clients.rotate_client_secret
    typer.echo(json.dumps(_with_core(lambda core: change(core, client_id))))


@clients_cli.command("disable")
def clients_disable(client_id: Annotated[str, typer.Option("--client-id")]) -> None:
    """Disable a client app: its logins and app signatures are refused from now on."""
    _client_change("disable", client_id)


@clients_cli.command("rotate-secret")
def clients_rotate_secret(client_id: Annotated[str, typer.Option("--client-id")]) -> None:
    """Replace a client app's secret; prints the new clientSecret (shown only once)."""
    _client_change("rotate", client_id)


@users_cli.command("import")
def users_import(
    file: Annotated[str, typer.Argument(help="JSON lines in the PUT /api/users shape; - for stdin")],
    batch_size: Annotated[int, typer.Option(min=1, max=5000, help="Users per transaction")] = 500,
) -> None:
    """Create or update users from JSON lines; prints {created, updated, failed: [{line, code, error}]}.
    Bad lines are reported and skipped; the exit status is 1 when any line was rejected."""
    from authgate import logging as applog
    from authgate.core.flows.sync import import_lines

    settings = _settings()
    # Every user's audit event is in the database; one log line each would bury the summary.
    applog.configure("warning", settings.log_json, to_stderr=True)
    if file == "-":
        total, stream = None, sys.stdin
    else:
        try:
            with open(file, "rb") as fh:
                total = sum(1 for _ in fh)
            stream = open(file, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
        except OSError as exc:
            typer.echo(f"authgate: cannot read {file}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None

    async def go() -> dict[str, object]:
        from authgate.container import build

        container = await build(settings)
        try:
            with typer.progressbar(length=total or 0, label="importing", file=sys.stderr) as bar:
                summary = await import_lines(container.core, stream, batch_size=batch_size, progress=bar.update)
            return summary.as_dict()
        finally:
            await container.close()
            if stream is not sys.stdin:
                stream.close()

    summary = asyncio.run(go())
    typer.echo(json.dumps(summary))
    if summary["failed"]:
        raise typer.Exit(1)


@cli.command()
def purge() -> None:
    """Delete sessions, retired refresh tokens and one-time secrets expired for longer than
    AUTHGATE_PURGE_AFTER (the server does it every AUTHGATE_PURGE_INTERVAL seconds; this is for
    cron when that is 0). Prints the counts deleted."""
    from authgate.core.maintenance import purge as purge_expired

    typer.echo(json.dumps(_with_core(purge_expired)))


@cli.command()
def openapi() -> None:
    """Print the OpenAPI document of every surface."""
    from authgate.app import create_app

    app = create_app(_settings())
    sys.stdout.write(json.dumps(app.openapi(), indent=2) + "\n")


def _with_core(action: Callable[[Core], Awaitable[Any]], settings: Settings | None = None) -> Any:
    """Build the core, run ``action`` on it, close it; an AuthError becomes a one-line message.

    Logs (the audit line of a created user, say) go to stderr: stdout is the one JSON object the
    command prints (CONTRACT §8), for scripts to parse."""
    from authgate import logging as applog
    from authgate.container import build
    from authgate.core.errors import AuthError

    settings = settings or _settings()
    applog.configure(settings.log_level, settings.log_json, to_stderr=True)

    async def go() -> Any:
        container = await build(settings)
        try:
            return await action(container.core)
        finally:
            await container.close()

    try:
        return asyncio.run(go())
    except AuthError as exc:
        typer.echo(f"authgate: {exc.code.value}: {exc.field or ''} {exc.detail or ''}".strip(), err=True)
        raise typer.Exit(1) from None


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
