"""The frame cache: a frame that catches up with the changed rows equals the table read again;
snapshots on disk are reused by a new process, checked against the database, and caught up."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import update

from app.models import Customer, CustomerTag
from app.models.base import utcnow
from app.services.analytics.frames import AnalyticsStore
from tests.analytics.conftest import add_order, at, make_products, make_tags, tag_span
from tests.factories import auth, make_customer

LARGE = ["customers", "customer_tags", "orders", "order_lines"]


class Reads:
    """Records what a store reads from the database."""

    def __init__(self, store: AnalyticsStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.selects: list[str] = []
        original = store._read

        def read(select: str, columns: Any) -> pl.DataFrame:
            self.selects.append(select)
            return original(select, columns)

        monkeypatch.setattr(store, "_read", read)

    def whole(self) -> list[str]:
        """The full table reads (neither a catch-up nor a snapshot check)."""
        return [s for s in self.selects if " AS live" not in s and " AS latest " not in s]

    def catch_ups(self) -> list[str]:
        return [s for s in self.selects if " AS live" in s]


@pytest.fixture
def stores(database_url: str) -> Iterator[list[AnalyticsStore]]:
    made: list[AnalyticsStore] = []
    yield made
    for store in made:
        store.close()


@pytest.fixture
def new_store(database_url: str, stores: list[AnalyticsStore]) -> Any:
    def make(**options: Any) -> AnalyticsStore:
        store = AnalyticsStore(database_url, **options)
        stores.append(store)
        return store

    return make


async def load(store: AnalyticsStore, maker: Any) -> dict[str, pl.DataFrame]:
    async with maker() as session:
        return await store.frames(session, LARGE)


async def written(store: AnalyticsStore) -> None:
    """Wait for what the loader queued (snapshots are written after the load they follow)."""
    await asyncio.to_thread(lambda: store._loader.submit(lambda: None).result())


def snapshot_files(directory: Path) -> dict[str, Path]:
    return {p.name: p for p in directory.rglob("*.arrow")}


def assert_as_read_whole(store: AnalyticsStore, frames: dict[str, pl.DataFrame]) -> None:
    """Each frame holds exactly the rows (and types) a whole read of its table gives now."""
    for name, frame in frames.items():
        spec = store.spec(name)
        assert spec.changes is not None
        key = spec.changes.key
        whole = AnalyticsStore._read(store, spec.select, spec.columns)
        assert frame.schema == whole.schema, name
        assert frame.sort(key).equals(whole.sort(key)), name


@pytest.fixture
async def ledger(maker: Any, org: Any) -> dict[str, Any]:
    """Three customers with tags, orders and lines."""
    products = await make_products(maker, 2)
    _group, tags = await make_tags(maker, "兴趣", ["茶", "酒"])
    people = [await make_customer(maker, org.rep_a, name=f"客户{i}") for i in range(3)]
    for i, person in enumerate(people):
        await tag_span(maker, person, tags["茶"], at("2026-01-0" + str(i + 1)))
        await add_order(
            maker, person, at("2026-02-01"), 100 * (i + 1), lines=[(products[0], 1, 100, 40)]
        )
    return {"people": people, "tags": tags, "products": products}


async def test_a_frame_that_catches_up_equals_the_table_read_again(
    app, client, maker, org, ledger, new_store, monkeypatch
):
    first, second, third = ledger["people"]
    tags, products = ledger["tags"], ledger["products"]
    # Customers nothing else touches: only the tag or order branch of a catch-up sees them.
    untagged = await make_customer(maker, org.rep_b, name="甲")
    ordering = await make_customer(maker, org.rep_b, name="乙")
    await tag_span(maker, untagged, tags["酒"], at("2026-01-05"))
    store = new_store()
    await load(store, maker)
    # As if read long ago: the look-back would re-read the customers just made.
    for entry in store._cache.values():
        entry.since = utcnow()
    reads = Reads(store, monkeypatch)
    now = utcnow()
    async with maker() as session, session.begin():
        # An edit, a soft delete, a tag taken away; a tag given with a back-dated start.
        person = await session.get(Customer, first.id)
        assert person is not None
        person.level = "A"
        gone = await session.get(Customer, third.id)
        assert gone is not None
        gone.deleted_at = now
        await session.execute(
            update(CustomerTag)
            .where(CustomerTag.customer_id == untagged.id)
            .values(removed_at=now)
            .execution_options(synchronize_session=False)
        )
    await tag_span(maker, ordering, tags["酒"], at("2025-12-01"))
    await add_order(maker, ordering, at("2026-03-01"), 700, lines=[(products[1], 7, 100, 30)])
    # A merge moves the duplicate's tag history and orders to the kept customer.
    kept = await make_customer(maker, org.rep_a, name="保留")
    response = await client.post(
        f"/api/v1/customers/{kept.id}/merge",
        json={"other_id": second.id},
        headers={**auth(app, org.admin), "If-Match": f'"{kept.version}"'},
    )
    assert response.status_code == 200, response.text

    frames = await load(store, maker)

    assert reads.whole() == []
    assert len(reads.catch_ups()) == len(LARGE)
    assert_as_read_whole(store, frames)
    assert third.id not in frames["customers"]["id"].to_list()
    moved = frames["orders"].filter(pl.col("customer_id") == kept.id)["amount_cents"]
    assert moved.to_list() == [200]


async def test_an_unchanged_version_reads_nothing(maker, ledger, new_store, monkeypatch):
    store = new_store()
    await load(store, maker)
    reads = Reads(store, monkeypatch)
    await load(store, maker)
    assert reads.selects == []


async def test_a_frame_is_read_whole_again_when_due(maker, ledger, new_store, monkeypatch):
    store = new_store()
    await load(store, maker)
    # Long enough ago: the next request starts a whole read in the background and is answered
    # from the caught-up frame meanwhile.
    for entry in store._cache.values():
        entry.full_at = utcnow() - dt.timedelta(hours=2)
    reads = Reads(store, monkeypatch)
    before = await load(store, maker)
    for _ in range(500):
        if not store._loading:
            break
        await asyncio.sleep(0.01)
    after = await load(store, maker)
    assert sorted(reads.whole()) == sorted(store.spec(n).select for n in LARGE)
    assert all(after[n] is not before[n] for n in LARGE)
    assert all(utcnow() - store._cache[n].full_at < dt.timedelta(minutes=1) for n in LARGE)
    assert_as_read_whole(store, after)


async def test_a_new_process_maps_the_snapshot_and_catches_up(
    maker, org, ledger, new_store, monkeypatch, tmp_path: Path
):
    first = new_store(cache_dir=tmp_path)
    await load(first, maker)
    await written(first)
    assert sorted(snapshot_files(tmp_path)) == sorted(f"{n}.arrow" for n in LARGE)
    await add_order(maker, ledger["people"][0], at("2026-04-01"), 900)
    async with maker() as session, session.begin():
        person = await session.get(Customer, ledger["people"][1].id)
        assert person is not None
        person.name = "改名客户"

    store = new_store(cache_dir=tmp_path)
    reads = Reads(store, monkeypatch)
    frames = await load(store, maker)

    assert reads.whole() == []
    assert len(reads.catch_ups()) == len(LARGE)
    assert_as_read_whole(store, frames)
    assert "改名客户" in frames["customers"]["name"].to_list()


async def test_a_snapshot_of_other_data_or_a_broken_one_is_not_used(
    maker, ledger, new_store, monkeypatch, tmp_path: Path
):
    first = new_store(cache_dir=tmp_path)
    await load(first, maker)
    await written(first)
    # Customers from a larger (or later) database; a damaged order file.
    entry = first._cache["customers"]
    entry.frame = pl.concat([entry.frame, entry.frame.with_columns(id=pl.col("id") + 10**9)])
    first._write_snapshot(first.spec("customers"), entry)
    damaged = snapshot_files(tmp_path)["orders.arrow"]
    await asyncio.to_thread(damaged.write_bytes, damaged.read_bytes()[:100])

    store = new_store(cache_dir=tmp_path)
    reads = Reads(store, monkeypatch)
    frames = await load(store, maker)

    assert sorted(reads.whole()) == sorted(store.spec(n).select for n in ("customers", "orders"))
    assert_as_read_whole(store, frames)


async def test_a_load_that_finishes_after_a_clear_is_discarded(maker, ledger, new_store):
    store = new_store()
    spec = store.spec("customers")
    async with maker() as session:
        versions = await store._versions(session, [spec])
    pending = store._submit(spec, versions["customers"], None)
    store.clear()
    assert (await pending).frame.height == len(ledger["people"])
    assert store._cache == {}
