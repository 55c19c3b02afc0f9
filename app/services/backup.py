"""Backup and restore of the embedded SQLite database (SPEC L4).

``backup`` copies a live database with SQLite's online backup API: one step over all pages
inside one read transaction, so the copy is a consistent snapshot even while the app writes
(in WAL mode readers never block the writer, and the writer never disturbs a reader's
snapshot). The copy goes to a ``.part`` file, is checked (``PRAGMA integrity_check`` and the
schema revision), and only then renamed into place — a crash or a full disk never leaves a
half-written file under the backup's name.

``restore`` checks a backup the same way, keeps a copy of the current database next to it
(unless told not to), and copies the backup into the database with the same API: the
destination is replaced page by page under its write lock, so a running app waits for the
restore (busy timeout) and then sees the restored data — nothing in between.

PostgreSQL has its own tools (``pg_dump``/``pg_restore``, base backups and WAL archiving);
``docs/operations.md`` describes them. These functions refuse any other database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

BUSY_TIMEOUT_SECONDS = 30.0


class BackupError(Exception):
    """The database or the backup cannot be used; the message says why."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    size_bytes: int
    revision: str | None
    tables: int


def sqlite_file(database_url: str) -> Path:
    """The file of an SQLite database URL; BackupError for anything else."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupError(
            f"{url.get_backend_name()} databases are backed up with their own tools "
            "(PostgreSQL: pg_dump -Fc, see docs/operations.md); this command is for SQLite"
        )
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory database has nothing to back up")
    return Path(url.database)


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    uri = f"file:{path}?mode=ro" if read_only else f"file:{path}"
    connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        yield connection
    finally:
        connection.close()


def inspect(path: Path) -> BackupInfo:
    """Check that ``path`` is a sound Kehu database: SQLite, intact, with a schema revision."""
    if not path.is_file():
        raise BackupError(f"{path} does not exist")
    try:
        with _connect(path, read_only=True) as connection:
            verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise BackupError(f"{path} is damaged: {verdict}")
            tables = connection.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
            try:
                row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError as exc:
                raise BackupError(f"{path} is not a Kehu database (no schema revision)") from exc
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a usable SQLite database: {exc}") from exc
    return BackupInfo(path, path.stat().st_size, row[0] if row else None, tables)


def backup(source: Path, target: Path) -> BackupInfo:
    """Copy the live database ``source`` to ``target`` (replaced if it exists)."""
    if not source.is_file():
        raise BackupError(f"{source} does not exist")
    if target.resolve() == source.resolve():
        raise BackupError("the backup must go to another file than the database")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    part.unlink(missing_ok=True)
    try:
        with _connect(source) as src, _connect(part) as dst:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            # One self-contained file (a copy of a WAL database would otherwise be one too).
            dst.execute("PRAGMA journal_mode=DELETE")
        info = inspect(part)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return BackupInfo(target, info.size_bytes, info.revision, info.tables)


def restore(backup_file: Path, target: Path, *, keep_current: bool = True) -> BackupInfo:
    """Replace the database ``target`` by ``backup_file``; with ``keep_current`` the current
    database is first backed up next to it (``<name>.before-restore-<UTC time>``)."""
    info = inspect(backup_file)
    if target.exists() and backup_file.resolve() == target.resolve():
        raise BackupError("the backup is the database itself")
    if keep_current and target.exists():
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        backup(target, target.with_name(f"{target.name}.before-restore-{stamp}"))
    target.parent.mkdir(parents=True, exist_ok=True)
    with _connect(backup_file, read_only=True) as src, _connect(target) as dst:
        previous = _access_stamp(dst)
        src.backup(dst)
        if previous is not None:
            _move_access_stamp_past(dst, previous)
    return BackupInfo(target, target.stat().st_size, info.revision, info.tables)


def _access_stamp(connection: sqlite3.Connection) -> int | None:
    try:
        row = connection.execute("SELECT version FROM access_stamp WHERE id = 1").fetchone()
    except sqlite3.OperationalError:  # no such table: a new file, or one from before 0016
        return None
    return int(row[0]) if row else None


def _move_access_stamp_past(connection: sqlite3.Connection, previous: int) -> None:
    """A running app keeps principals built under the stamp it last read: give the restored
    data a stamp no process has seen, so each builds them again (ADR 0012)."""
    try:
        with connection:
            connection.execute(
                "UPDATE access_stamp SET version = max(version, ?) + 1 WHERE id = 1", (previous,)
            )
    except sqlite3.OperationalError:  # the backup predates the stamp; migrate creates it
        return
