"""Backup and restore of the embedded SQLite database (SPEC L4): ``kehu backup`` / ``kehu restore``.

These run on their own SQLite files whatever database the suite uses: the commands are for the
embedded database (PostgreSQL has pg_dump, which they point to)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.services import backup


def kehu(db: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEHU_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    return subprocess.run(  # noqa: S603 (our own CLI, arguments from the tests)
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("backup") / "kehu.db"
    done = kehu(db, "migrate")
    assert done.returncode == 0, done.stderr
    return db


@pytest.fixture
def live(migrated: Path, tmp_path: Path) -> Path:
    """A copy of a migrated database in WAL mode, as the app runs it, with a ledger table."""
    db = tmp_path / "live.db"
    backup.backup(migrated, db)
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER)")
    return db


def ledger(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as connection:
        row = connection.execute("SELECT count(*), coalesce(sum(amount), 0) FROM ledger").fetchone()
    return int(row[0]), int(row[1])


def test_a_backup_taken_while_the_app_writes_is_a_consistent_snapshot(live, tmp_path):
    # A writer moves money in pairs (+5, -5) in one transaction each: any consistent snapshot
    # has an even number of rows summing to 0; a torn copy would not.
    stop = threading.Event()
    written = 0

    def write() -> None:
        nonlocal written
        connection = sqlite3.connect(live, timeout=30)
        while not stop.is_set():
            with connection:
                connection.execute("INSERT INTO ledger (amount) VALUES (5)")
                connection.execute("INSERT INTO ledger (amount) VALUES (-5)")
            written += 1
        connection.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while written < 200:
            stop.wait(0.01)
        copies = [backup.backup(live, tmp_path / f"copy{i}.db") for i in range(3)]
        during = written
    finally:
        stop.set()
        writer.join()

    assert during > 200  # the writer kept going while the copies were taken
    for info in copies:
        assert info.revision is not None and info.tables > 30
        count, total = ledger(info.path)
        assert count % 2 == 0 and total == 0 and count >= 400
        assert not info.path.with_name(info.path.name + ".part").exists()


def test_restore_brings_the_data_back_and_keeps_the_replaced_database(live, tmp_path):
    with sqlite3.connect(live) as connection:
        connection.execute("INSERT INTO ledger (amount) VALUES (100)")
    saved = backup.backup(live, tmp_path / "saved.db")
    with sqlite3.connect(live) as connection:
        connection.execute("INSERT INTO ledger (amount) VALUES (7)")
    # A connection the app holds open sees the restored data afterwards.
    app_connection = sqlite3.connect(live, timeout=30)
    assert app_connection.execute("SELECT count(*) FROM ledger").fetchone()[0] == 2

    info = backup.restore(saved.path, live)

    assert info.revision == saved.revision
    assert app_connection.execute("SELECT sum(amount) FROM ledger").fetchone()[0] == 100
    app_connection.close()
    kept = list(tmp_path.glob("live.db.before-restore-*"))
    assert len(kept) == 1 and ledger(kept[0]) == (2, 107)


def test_a_restore_gives_the_data_an_access_stamp_no_running_app_has_seen(live, tmp_path):
    def stamp(db: Path) -> int:
        with sqlite3.connect(db) as connection:
            return int(connection.execute("SELECT version FROM access_stamp").fetchone()[0])

    saved = backup.backup(live, tmp_path / "saved.db")
    with sqlite3.connect(live) as connection:  # roles change after the backup, twice
        connection.execute(
            "INSERT INTO roles (name, description, permissions, scopes, is_system,"
            " created_at, updated_at, version) VALUES ('r', '', '[]', '{}', 0,"
            " '2026-12-02', '2026-12-02', 1)"
        )
        connection.execute("UPDATE roles SET description = 'x'")
    before = stamp(live)
    assert before == stamp(saved.path) + 2

    backup.restore(saved.path, live)

    assert stamp(live) > before


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"name,phone\nnot,a database\n", "not a usable SQLite database"),
        (None, "not a Kehu database"),
    ],
)
def test_restore_refuses_what_is_not_a_kehu_backup_and_changes_nothing(
    live, tmp_path, content, reason
):
    bad = tmp_path / "bad.db"
    if content is None:
        with sqlite3.connect(bad) as connection:
            connection.execute("CREATE TABLE other (id INTEGER)")
    else:
        bad.write_bytes(content)
    with sqlite3.connect(live) as connection:
        connection.execute("INSERT INTO ledger (amount) VALUES (3)")

    with pytest.raises(backup.BackupError, match=reason):
        backup.restore(bad, live)

    assert ledger(live) == (1, 3)
    assert not list(tmp_path.glob("live.db.before-restore-*"))


def test_only_sqlite_databases_are_handled_here():
    with pytest.raises(backup.BackupError, match="pg_dump"):
        backup.sqlite_file("postgresql+asyncpg://postgres@127.0.0.1/kehu")
    with pytest.raises(backup.BackupError, match="in-memory"):
        backup.sqlite_file("sqlite+aiosqlite:///:memory:")
    assert backup.sqlite_file("sqlite+aiosqlite:////srv/kehu/kehu.db") == Path("/srv/kehu/kehu.db")


def test_the_commands_back_up_and_restore(live, tmp_path):
    with sqlite3.connect(live) as connection:
        connection.execute("INSERT INTO ledger (amount) VALUES (42)")
    target = tmp_path / "backups" / "kehu-1.db"

    made = kehu(live, "backup", str(target))

    assert made.returncode == 0, made.stderr
    assert f"backed up to {target}" in made.stdout and "schema revision 0" in made.stdout
    with sqlite3.connect(live) as connection:
        connection.execute("DELETE FROM ledger")

    declined = kehu(live, "restore", str(target), input="n\n")
    assert declined.returncode != 0 and ledger(live) == (0, 0)

    restored = kehu(live, "restore", str(target), "--yes", "--no-keep-current")

    assert restored.returncode == 0, restored.stderr
    assert ledger(live) == (1, 42)
    assert not list(tmp_path.glob("live.db.before-restore-*"))

    missing = kehu(live, "restore", str(tmp_path / "nope.db"), "--yes")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    on_postgres = subprocess.run(  # noqa: S603 (our own CLI, fixed arguments)
        [sys.executable, "-m", "app.cli", "backup", str(target)],
        env={**os.environ, "KEHU_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1/x"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert on_postgres.returncode == 2 and "pg_dump" in on_postgres.stderr
