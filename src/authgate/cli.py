"""``authgate``: serve, migrate, keys rotate, users create, clients create, openapi."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer

from authgate.config import Settings

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

    async def go() -> str:
        from authgate.container import build

        container = await build(_settings())
        try:
            return await container.core.keys.rotate()
        finally:
            await container.close()

    typer.echo(json.dumps({"kid": asyncio.run(go())}))


@users_cli.command("create")
def users_create(
    username: Annotated[str, typer.Option()],
    email: Annotated[str | None, typer.Option()] = None,
    password: Annotated[str | None, typer.Option()] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    role: Annotated[list[str] | None, typer.Option(help="ROLE_USER, ROLE_MODERATOR, ROLE_ADMIN, ROLE_SUPER_ADMIN")] = None,
) -> None:
    """Create a user and print it as JSON."""
    from authgate.core.errors import AuthError
    from authgate.core.flows.admin import create_user_cli

    async def go() -> dict[str, object]:
        from authgate.container import build

        container = await build(_settings())
        try:
            return await create_user_cli(container.core, username, email, password, phone, role or [])
        finally:
            await container.close()

    try:
        typer.echo(json.dumps(asyncio.run(go())))
    except AuthError as exc:
        typer.echo(f"authgate: {exc.code.value}: {exc.field or ''} {exc.detail or ''}".strip(), err=True)
        raise typer.Exit(1) from None


@clients_cli.command("create")
def clients_create(
    name: Annotated[str, typer.Option()],
    platform: Annotated[list[str] | None, typer.Option(help="ios, android, web (repeatable)")] = None,
    min_version: Annotated[list[str] | None, typer.Option(help="PLATFORM=X.Y.Z (repeatable)")] = None,
) -> None:
    """Register a client app; prints clientId and clientSecret (shown only once)."""
    from authgate.core.errors import AuthError
    from authgate.core.flows.clients import register_client

    async def go() -> dict[str, object]:
        from authgate.container import build

        container = await build(_settings())
        try:
            return await register_client(container.core, name, platform or [], min_version or [])
        finally:
            await container.close()

    try:
        typer.echo(json.dumps(asyncio.run(go())))
    except AuthError as exc:
        typer.echo(f"authgate: {exc.code.value}: {exc.field or ''} {exc.detail or ''}".strip(), err=True)
        raise typer.Exit(1) from None


@cli.command()
def openapi() -> None:
    """Print the OpenAPI document of every surface."""
    from authgate.app import create_app

    app = create_app(_settings())
    sys.stdout.write(json.dumps(app.openapi(), indent=2) + "\n")


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
