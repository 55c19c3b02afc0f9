"""The ``kehu`` command line: migrate, create-admin, seed-demo, serve, scheduler, backup,
restore, openapi (SPEC L1, L4)."""

from __future__ import annotations

import asyncio
import datetime
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
    import os
    import tempfile

    import uvicorn

    settings = get_settings()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics on any worker answers for all of them: each counts into files there.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="kehu-metrics-")
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


async def _run_scheduler() -> None:
    import signal

    from app.db import create_engine, create_sessionmaker
    from app.jobs.scheduler import KehuScheduler
    from app.main import http_client

    settings = get_settings()
    engine = create_engine(settings.database_url)
    http = http_client()
    scheduler = KehuScheduler(engine, create_sessionmaker(engine), settings, http)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await scheduler.start()
    typer.echo(f"scheduler running ({', '.join(scheduler.job_ids)}); Ctrl+C stops it")
    try:
        await stop.wait()
    finally:
        await scheduler.stop()
        await http.aclose()
        await engine.dispose()


@cli.command()
def scheduler() -> None:
    """Run the job scheduler as its own process (KEHU_SCHEDULER_ENABLED=false on web workers)."""
    from app.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    asyncio.run(_run_scheduler())


async def _dispatch_once(now: datetime.datetime | None) -> None:
    from app.db import create_engine, create_sessionmaker
    from app.main import http_client
    from app.services.notifications import dispatch

    settings = get_settings()
    engine = create_engine(settings.database_url)
    http = http_client()
    try:
        stats = await dispatch(create_sessionmaker(engine), settings, http, now=now)
    finally:
        await http.aclose()
        await engine.dispose()
    typer.echo(
        f"notified {stats.notified}, missed {stats.missed}, pushed {stats.pushed}, "
        f"retrying {stats.retried}, gone {stats.gone}, failed {stats.failed}"
    )


@cli.command("dispatch-reminders")
def dispatch_reminders(
    now: Annotated[
        datetime.datetime | None,
        typer.Option(help="Act as if it were this time (ISO 8601 with offset); default: now."),
    ] = None,
) -> None:
    """Run one pass of the reminder dispatcher (what the scheduler does every minute)."""
    if now is not None and now.tzinfo is None:
        typer.echo("--now needs a time zone offset, e.g. 2026-11-23T09:00:00+08:00", err=True)
        raise typer.Exit(2)
    asyncio.run(_dispatch_once(now))


@cli.command("backup")
def backup_command(
    target: Annotated[Path, typer.Argument(help="File to write the backup to")],
) -> None:
    """Back up the SQLite database while the app runs (online backup API; PostgreSQL: pg_dump)."""
    from app.services import backup

    try:
        info = backup.backup(backup.sqlite_file(get_settings().database_url), target)
    except backup.BackupError as exc:
        typer.echo(f"backup failed: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"backed up to {info.path} ({info.size_bytes:,} bytes, {info.tables} tables, "
        f"schema revision {info.revision})"
    )


@cli.command("restore")
def restore_command(
    source: Annotated[Path, typer.Argument(help="Backup file written by `kehu backup`")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    keep_current: Annotated[
        bool,
        typer.Option(help="First save the current database as <file>.before-restore-<time>"),
    ] = True,
) -> None:
    """Replace the SQLite database by a backup (checked first), then bring its schema up to
    date with `kehu migrate` if the backup is older than this version."""
    from app.services import backup

    try:
        database = backup.sqlite_file(get_settings().database_url)
        checked = backup.inspect(source)
        if not yes:
            typer.confirm(
                f"Replace {database} by {source} (schema revision {checked.revision})?",
                abort=True,
            )
        info = backup.restore(source, database, keep_current=keep_current)
    except backup.BackupError as exc:
        typer.echo(f"restore failed: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"restored {info.path} from {source} (schema revision {info.revision})")
    typer.echo("run `kehu migrate` if this backup came from an older Kehu version")


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
