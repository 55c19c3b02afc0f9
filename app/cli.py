"""The ``kehu`` command line: migrate, create-admin, seed-demo, serve, openapi (SPEC L1)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from app.config import PROJECT_ROOT, get_settings

cli = typer.Typer(help="Kehu CRM administration.", no_args_is_help=True, add_completion=False)


def _alembic_config(database_url: str | None = None) -> object:
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.attributes["database_url"] = database_url or get_settings().database_url
    return cfg


def _ensure_sqlite_dir(url: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


@cli.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Bring the database schema to a revision (default: the newest)."""
    from alembic import command

    url = get_settings().database_url
    _ensure_sqlite_dir(url)
    command.upgrade(_alembic_config(url), revision)  # type: ignore[arg-type]


async def _create_admin(username: str, password: str, display_name: str) -> None:
    from sqlalchemy import select

    from app.db import create_engine, create_sessionmaker, transaction
    from app.models import User
    from app.security import hash_password
    from app.services.demo import ensure_default_roles

    engine = create_engine(get_settings().database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            roles = await ensure_default_roles(session)
            if await session.scalar(select(User.id).where(User.username == username.lower())):
                typer.echo(f"user {username!r} exists; nothing changed", err=True)
                raise typer.Exit(1)
            session.add(
                User(
                    username=username.lower(),
                    display_name=display_name,
                    password_hash=await hash_password(password),
                    roles=[roles["admin"]],
                )
            )
    finally:
        await engine.dispose()


@cli.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    display_name: Annotated[str, typer.Option()] = "Administrator",
) -> None:
    """Create an administrator account (and the built-in roles if missing)."""
    if len(password) < 8:
        typer.echo("the password needs at least 8 characters", err=True)
        raise typer.Exit(2)
    asyncio.run(_create_admin(username, password, display_name))
    typer.echo(f"administrator {username!r} created")


async def _seed(seed: int, customers: int) -> None:
    from app.db import create_engine, create_sessionmaker
    from app.services.demo import seed_demo

    engine = create_engine(get_settings().database_url)
    try:
        summary = await seed_demo(create_sessionmaker(engine), seed=seed, customers=customers)
    finally:
        await engine.dispose()
    if not summary.seeded:
        typer.echo("the database already has users; demo data not added")
        return
    typer.echo(f"demo data: {summary.customers} customers")


@cli.command("seed-demo")
def seed_demo(
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same data")
    ] = 2026,
    customers: Annotated[int, typer.Option(min=1, max=1_000_000)] = 2000,
) -> None:
    """Fill an empty database with realistic demo data."""
    asyncio.run(_seed(seed, customers))


@cli.command("demo-logins")
def demo_logins() -> None:
    """Print the demo accounts."""
    from app.services.demo import DEMO_LOGINS, DEMO_PASSWORD

    typer.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for username, display_name, role in DEMO_LOGINS:
        typer.echo(f"  {username:<8} {display_name}  ({role})")


@cli.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    reload: Annotated[bool, typer.Option()] = False,
) -> None:
    """Run the web app (API under /api/v1, SPA at /)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "app.main:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )


@cli.command()
def openapi() -> None:
    """Print the OpenAPI document (the SPA's client is generated from it)."""
    from app.main import create_app

    document = create_app().openapi()
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
