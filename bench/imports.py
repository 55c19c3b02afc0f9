"""Benchmark: importing 100,000 customers from a CSV file (SPEC I1: "100k rows in seconds").

Drops and re-creates the scratch database ``kehu_bench_imports`` on the local PostgreSQL server
(trust auth, user ``postgres``), migrates it with Alembic and adds an admin, two tag groups and a
custom field. Then, with the real app in-process (httpx ``ASGITransport``):

1. a generated CSV (UTF-8, 10 columns: name, phone, e-mail, province, city, industry, source,
   level, tags, a custom field; 2 % of the rows broken: a bad phone or e-mail) is sent as a dry
   run — parse, clean and plan, nothing written;
2. the same file is uploaded (202) and the import job (``process_queued_imports``, as the
   scheduler runs it) imports it into the empty database: the whole job is timed, and its phases
   (parsing, cleaning, planning incl. the duplicate check, writing the chunks) from wrappers;
3. the file's rows again, shuffled (so another file, not the no-op of the same file), with the
   ``skip`` policy into the now full database: every good row is a duplicate — the set-based
   duplicate check against 100,000 customers, timed the same way.

The result is checked: customers, phone-index rows, ownership and timeline events, tag spans and
the import's counts must be what the file says.

    .venv/bin/python bench/imports.py                    # 100,000 rows, chunks of 2000
    .venv/bin/python bench/imports.py --rows 20000 --chunk-rows 5000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from app.config import PROJECT_ROOT, Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.models import (
    AuditEvent,
    Customer,
    CustomerPhone,
    CustomerTag,
    CustomFieldDefinition,
    Import,
    OwnershipEvent,
    Role,
    Tag,
    TagGroup,
    User,
)
from app.security import create_access_token, hash_password_sync
from app.services.importer import runs
from app.services.importer.contacts import ContactImporter
from app.services.importer.customers import CustomerImporter
from app.services.importer.orders import OrderImporter

SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
DATABASE = "kehu_bench_imports"

CITIES = [
    ("浙江", "杭州"),
    ("浙江", "宁波"),
    ("上海", "上海"),
    ("北京", "北京"),
    ("广东", "深圳"),
    ("广东", "广州"),
    ("江苏", "南京"),
    ("江苏", "苏州"),
    ("四川", "成都"),
    ("湖北", "武汉"),
]
WORDS = list("华星恒瑞博达信远腾泰安盛宏鑫源丰嘉正德兴锦优联创科新智海云晨")
TRADES = ["科技", "贸易", "电子", "建材", "食品", "物流", "医药", "机械", "服装", "文化"]
INDUSTRIES = ["制造业", "零售", "互联网", "医疗", "教育", "物流"]
SOURCES = ["电话营销", "展会", "转介绍", "官网", "地推"]
TAGS = {"购买需求": ["高意向", "中意向", "低意向"], "业务特征": ["连锁", "线上", "外贸", "本地"]}
HEADER = "客户名称,手机,邮箱,省份,城市,行业,客户来源,客户级别,标签,年预算"


def generate_csv(rows: int, seed: int) -> tuple[bytes, int]:
    """The file and how many of its rows are broken."""
    rng = random.Random(seed)  # noqa: S311 (test data)
    out = io.StringIO()
    out.write(HEADER + "\r\n")
    broken = 0
    for i in range(rows):
        province, city = CITIES[i % len(CITIES)]
        # Unique names: a city, two words, a serial and a trade.
        name = f"{city}{rng.choice(WORDS)}{rng.choice(WORDS)}{i:06d}{rng.choice(TRADES)}有限公司"
        phone = f"1{rng.choice('3589')}{i:09d}"
        email = f"contact{i}@example{i % 97}.cn"
        if i % 50 == 7:
            phone, broken = "12", broken + 1
        elif i % 50 == 31:
            email, broken = "not-an-email", broken + 1
        tags = "、".join(
            [rng.choice(TAGS["购买需求"]), *rng.sample(TAGS["业务特征"], rng.randint(0, 2))]
        )
        out.write(
            f"{name},{phone},{email},{province},{city},{rng.choice(INDUSTRIES)},"
            f"{rng.choice(SOURCES)},{rng.choice('ABC')}级,{tags},{rng.randint(1, 500) * 1000}\r\n"
        )
    return out.getvalue().encode("utf-8"), broken


def shuffled(data: bytes, seed: int) -> bytes:
    head, *body = data.decode("utf-8").split("\r\n")
    rows = [r for r in body if r]
    random.Random(seed).shuffle(rows)  # noqa: S311 (test data)
    return ("\r\n".join([head, *rows]) + "\r\n").encode("utf-8")


async def recreate_database() -> str:
    engine = create_engine(f"{SERVER}/postgres")
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        await autocommit.execute(text(f"CREATE DATABASE {DATABASE}"))
    await engine.dispose()
    url = f"{SERVER}/{DATABASE}"
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logging"] = False
    await asyncio.to_thread(command.upgrade, cfg, "head")
    return url


async def setup_org(url: str) -> int:
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    async with maker() as session, session.begin():
        role = Role(
            name="admin",
            permissions=["customer.create", "customer.update", "org.manage", "config.manage"],
            scopes={"customer": "all"},
        )
        session.add(role)
        await session.flush()
        admin = User(
            username="admin",
            display_name="管理员",
            password_hash=hash_password_sync("bench-password"),
            roles=[role],
        )
        session.add(admin)
        for position, (group_name, names) in enumerate(TAGS.items()):
            group = TagGroup(name=group_name, position=position, exclusive=group_name == "购买需求")
            session.add(group)
            await session.flush()
            session.add_all(Tag(group_id=group.id, name=n) for n in names)
        session.add(CustomFieldDefinition(key="budget", label="年预算", type="number"))
        await session.flush()
        user_id = admin.id
    await engine.dispose()
    return user_id


class Phases:
    """Wall time of the job's phases, from wrappers around its steps."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original: Callable[..., Awaitable[Any]] = getattr(owner, name)

        async def timed(*args: Any, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kw)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        setattr(owner, name, timed)

    def wrap_sync(self, owner: Any, name: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kw)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        setattr(owner, name, timed)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


async def upload(client: AsyncClient, headers: dict[str, str], data: bytes, **form: str) -> Any:
    response = await client.post(
        "/api/v1/imports",
        data={"entity": "customers", **form},
        files={"file": ("客户.csv", data, "text/csv")},
        headers=headers,
    )
    if response.status_code not in (200, 202):
        raise SystemExit(f"upload answered {response.status_code}: {response.text[:500]}")
    return response


async def server_cpu(app: Any, before: dict[int, float] | None = None) -> Any:
    """CPU seconds of the database's backend processes (same machine: read from /proc); with
    ``before``, the seconds spent since."""
    async with app.state.sessionmaker() as session:
        pids = (
            await session.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND backend_type = 'client backend'"
                )
            )
        ).all()
    now: dict[int, float] = {}
    for pid in pids:
        try:
            now[pid] = _proc_cpu(pid)
        except OSError:
            continue
    if before is None:
        return now
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items())


FLOOR = [
    # The rows the first import writes, by hand-written INSERT ... SELECT (no app, no driver
    # traffic): what the database itself needs for them, with every index and foreign key.
    """INSERT INTO customers (name, name_normalized, kind, phones, email, email_normalized,
        province, city, industry, source, level, custom_fields, owner_id, owner_assigned_at,
        created_by_id, deal_status, created_at, updated_at, version)
    SELECT '杭州华星' || g || '科技有限公司', '杭州华星' || g || '科技', 'company',
        jsonb_build_array('139' || lpad(g::text, 8, '0')), 'c' || g || '@example.cn',
        'c' || g || '@example.cn', '浙江', '杭州', '制造业', '展会', 'A',
        jsonb_build_object('budget', g), 1, now(), 1, 'none', now(), now(), 1
    FROM generate_series(1, :n) AS g""",
    """INSERT INTO customer_phones (customer_id, number)
    SELECT id, phones->>0 FROM customers WHERE id > :top""",
    """INSERT INTO customer_ownership_events (customer_id, at, action, to_owner_id, actor_id)
    SELECT id, now(), 'created', 1, 1 FROM customers WHERE id > :top""",
    """INSERT INTO customer_tags (customer_id, tag_id, added_at, added_by_id)
    SELECT c.id, t.id, now(), 1 FROM customers c
    JOIN tags t ON t.id <= :tags_per_customer WHERE c.id > :top""",
    """INSERT INTO audit_events (at, actor_id, entity, entity_id, customer_id, action, changes)
    SELECT now(), 1, 'customer', id, id, 'created', jsonb_build_object(
        'name', jsonb_build_object('before', null, 'after', name),
        'phones', jsonb_build_object('before', null, 'after', phones),
        'email', jsonb_build_object('before', null, 'after', email),
        'province', jsonb_build_object('before', null, 'after', province),
        'city', jsonb_build_object('before', null, 'after', city),
        'industry', jsonb_build_object('before', null, 'after', industry),
        'source', jsonb_build_object('before', null, 'after', source),
        'level', jsonb_build_object('before', null, 'after', level),
        'owner_id', jsonb_build_object('before', null, 'after', owner_id))
    FROM customers WHERE id > :top""",
    """INSERT INTO webhook_events (event_id, type, occurred_at, data, dispatched)
    SELECT gen_random_uuid()::text, 'customer.created', now(),
        jsonb_build_object('customer_id', customer_id, 'changes', changes), false
    FROM audit_events WHERE customer_id > :top AND action = 'created'""",
]


async def floor(url: str, rows: int, tags_per_customer: int) -> tuple[float, float]:
    """Wall and backend CPU seconds of FLOOR for ``rows`` customers (rolled back)."""
    engine = create_engine(url)
    async with engine.connect() as conn:
        pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        top = await conn.scalar(text("SELECT coalesce(max(id), 0) FROM customers"))
        before = _proc_cpu(int(pid or 0))
        started = time.perf_counter()
        params = {"n": rows, "top": top, "tags_per_customer": tags_per_customer}
        for statement in FLOOR:
            await conn.execute(text(statement), params)
        wall = time.perf_counter() - started
        cpu = _proc_cpu(int(pid or 0)) - before
        await conn.rollback()
    await engine.dispose()
    return wall, cpu


def _proc_cpu(pid: int) -> float:
    """utime + stime of a local process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def counts(maker: Any) -> dict[str, int]:
    result = {}
    async with maker() as session:
        for label, model in (
            ("customers", Customer),
            ("phone index", CustomerPhone),
            ("ownership events", OwnershipEvent),
            ("timeline events", AuditEvent),
            ("tag spans", CustomerTag),
        ):
            result[label] = int(await session.scalar(select(func.count()).select_from(model)) or 0)
    return result


async def run_import(
    app: Any, client: AsyncClient, headers: dict[str, str], data: bytes, phases: Phases, policy: str
) -> tuple[float, float, dict[str, Any]]:
    started = time.perf_counter()
    preview = await upload(client, headers, data, dry_run="true", duplicate_policy=policy)
    dry = time.perf_counter() - started
    queued = await upload(client, headers, data, duplicate_policy=policy)
    phases.reset()
    server_before = await server_cpu(app)
    started, cpu_started = time.perf_counter(), time.process_time()
    ran = await runs.process_queued_imports(app.state.sessionmaker, app.state.settings)
    job = time.perf_counter() - started
    python_cpu = time.process_time() - cpu_started
    server = await server_cpu(app, server_before)
    assert ran == 1, ran
    record = (await client.get(queued.headers["Location"], headers=headers)).json()
    print(
        f"  dry run (parse, clean, plan; in-process HTTP): {dry:6.2f} s   "
        f"counts {preview.json()['counts']}"
    )
    print(
        f"  import job, whole:                                {job:6.2f} s   "
        f"({record['rows_total'] / job:,.0f} rows/s)"
    )
    print(
        f"    CPU: this process {python_cpu:6.2f} s, PostgreSQL backends {server:6.2f} s "
        f"(load average before: {os.getloadavg()[0]:.2f})"
    )
    for label in ("parse", "plan", "write chunks"):
        print(f"    {label:<22} {phases.seconds[label]:6.2f} s  ({phases.calls[label]} calls)")
    print(
        f"  import: status {record['status']}, created {record['created']}, updated "
        f"{record['updated']}, skipped {record['skipped']}, failed {record['failed']}"
    )
    return dry, job, record


async def main_async(args: argparse.Namespace) -> None:
    if make_url(SERVER).get_backend_name() != "postgresql":
        raise SystemExit("PostgreSQL only")
    url = await recreate_database()
    user_id = await setup_org(url)
    data, broken = generate_csv(args.rows, args.seed)
    print(
        f"{args.rows:,} rows, {len(data) / 1048576:.1f} MiB, {broken} broken; "
        f"chunks of {args.chunk_rows}, {args.writers} writers, {args.clean_processes} "
        f"cleaning processes; database {DATABASE}"
    )
    settings = Settings(
        database_url=url,
        secret_key="b" * 48,
        spa_dir=Path("/none"),
        log_level="WARNING",
        scheduler_enabled=False,
        rate_limit_user_per_minute=0,
        import_chunk_rows=args.chunk_rows,
        import_writers=args.writers,
        import_clean_processes=args.clean_processes,
        analytics_cache_dir=None,
    )
    app = create_app(settings)
    phases = Phases()
    phases.wrap_sync(runs.source, "read_upload", "parse")
    for importer in (CustomerImporter, ContactImporter, OrderImporter):
        phases.wrap(importer, "plan", "plan")
    phases.wrap(runs, "_write_chunk", "write chunks")
    async with app.router.lifespan_context(app):
        headers = {
            "Authorization": f"Bearer {create_access_token(app.state.token_settings, user_id)}"
        }
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            print("1) into an empty database (policy skip)")
            _, job, record = await run_import(app, client, headers, data, phases, "skip")
            expected = args.rows - broken
            have = await counts(app.state.sessionmaker)
            print(f"  rows: {have}")
            assert record["created"] == expected and record["failed"] == broken, record
            assert (
                have["customers"] == expected == have["phone index"] == have["ownership events"]
            ), have
            print(f"\n2) the same rows shuffled, into {expected:,} customers (all duplicates)")
            _, job2, record2 = await run_import(
                app, client, headers, shuffled(data, args.seed), phases, "skip"
            )
            assert record2["created"] == 0 and record2["skipped"] == expected, record2
            async with app.state.sessionmaker() as session:
                await session.execute(text("ANALYZE"))
                stored = await session.scalar(select(func.count()).select_from(Import))
            print(
                f"\nimports stored: {stored}; job 1 {job:.2f} s, job 2 {job2:.2f} s "
                f"(target ≤ 30 s each)"
            )
            spans = round(have["tag spans"] / max(1, have["customers"]))
            wall, cpu = await floor(url, expected, spans)
            print(
                f"\n3) the database alone: job 1's rows by hand-written INSERT ... SELECT "
                f"({expected:,} customers, {spans} tag spans each), rolled back: {wall:.2f} s "
                f"wall, {cpu:.2f} s backend CPU"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=2000)
    parser.add_argument("--writers", type=int, default=2, help="chunks written at once")
    parser.add_argument(
        "--clean-processes", type=int, default=1, help="worker processes cleaning rows (0: thread)"
    )
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
