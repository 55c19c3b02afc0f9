"""Importing orders into the ledger, through the bulk-orders service (idempotent per order number).

Rows with the same order number (外部订单号) are the lines of one order, wherever they are in
the file; each row names its customer (id, phone or name, among the customers the importer may
change) and its product by SKU or name. A line's unit price is the row's, else its amount ÷
quantity, else the product's; likewise its cost. An order of rows without a product is recorded
with its amount only (one row per such order). Orders whose number is recorded already are
skipped, whatever the duplicate policy (orders are facts: never updated, never repeated); rows
without an order number are recorded each time they are imported.

Counts are of rows: an order of three lines created is three rows created.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import Principal
from app.db import chunks
from app.models import Order
from app.schemas.opportunity import from_cents
from app.schemas.order import OrderIn, OrderLineIn
from app.services import orders as orders_service
from app.services.importer.plan import (
    IN_CHUNK,
    ChunkOutcome,
    Policy,
    RowPlan,
    WriteContext,
    note,
    plans_for,
)
from app.services.importer.references import products, resolve_customers
from app.services.importer.source import CleanRow
from app.services.imports.clean import clean_text, is_empty

MAX_LINES = 200  # OrderIn.lines
SOURCE = "import"


def _unit(total_cents: int | None, quantity: int) -> Decimal | None:
    if total_cents is None:
        return None
    return (Decimal(total_cents) / quantity / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)


class OrderImporter:
    def __init__(self, policy: Policy, columns: Mapping[str, int]) -> None:
        self.policy = policy
        self.columns = columns

    def group_of(self, index: int, cells: Sequence[str]) -> Hashable | None:
        """The rows of one order number (as cleaning reads the cell) are one order."""
        column = self.columns.get("external_id")
        raw = cells[column] if column is not None and column < len(cells) else ""
        return None if is_empty(raw) else ("order", clean_text(raw))

    def written(self, outcome: ChunkOutcome) -> None:
        pass

    async def plan(
        self, session: AsyncSession, principal: Principal, rows: list[CleanRow]
    ) -> list[RowPlan]:
        plans = plans_for(rows)
        for p in plans:
            p.group = self.group_of(p.row.index, p.row.cells) or ("row", p.row.index)
        await resolve_customers(session, principal, plans, self.columns)
        await self._products(session, plans)
        known: dict[str, int] = {}
        external = sorted(
            {p.row.values["external_id"] for p in plans if "external_id" in p.row.values}
        )
        for chunk in chunks(external, IN_CHUNK):
            rows_ = await session.execute(
                select(Order.external_id, Order.customer_id).where(Order.external_id.in_(chunk))
            )
            known.update({ext: cid for ext, cid in rows_.all() if ext is not None})

        by_group: dict[Hashable, list[RowPlan]] = defaultdict(list)
        for p in plans:
            by_group[p.group].append(p)
        for members in by_group.values():
            self._check_order(members, known)
        return plans

    async def _products(self, session: AsyncSession, plans: list[RowPlan]) -> None:
        live = [p for p in plans if p.action != "fail"]
        skus = {p.row.values["sku"] for p in live if "sku" in p.row.values}
        names = {
            p.row.values["product_name"]
            for p in live
            if "sku" not in p.row.values and "product_name" in p.row.values
        }
        by_sku, by_name = await products(session, skus, names)
        for p in live:
            v = p.row.values
            if "sku" in v:
                if v["sku"] in by_sku:
                    p.data["product_id"] = by_sku[v["sku"]]
                else:
                    p.fail(note(p, self.columns, "sku", "no product with this SKU", "not_found"))
            elif "product_name" in v:
                found = by_name.get(v["product_name"], [])
                if len(found) == 1:
                    p.data["product_id"] = found[0]
                elif not found:
                    p.fail(
                        note(p, self.columns, "product", "no product with this name", "not_found")
                    )
                else:
                    p.fail(
                        note(
                            p,
                            self.columns,
                            "product",
                            f"{len(found)} products have this name; give the SKU",
                            "ambiguous",
                        )
                    )

    def _check_order(self, members: list[RowPlan], known: Mapping[str, int]) -> None:
        """The rows of one order stand or fall together."""
        first = members[0]
        ext = first.row.values.get("external_id")

        def fail_all(field: str, message: str, code: str = "invalid") -> None:
            for p in members:
                if p.action != "fail":
                    p.fail(note(p, self.columns, field, message, code))

        broken = [p for p in members if p.action == "fail"]
        if broken:
            rows = ", ".join(str(p.row.number) for p in broken[:5])
            fail_all("external_id", f"order {ext}: row {rows} of this order cannot be imported")
            return
        customers = {p.data["customer_id"] for p in members}
        if len(customers) > 1:
            fail_all("external_id", f"the rows of order {ext} name different customers")
            return
        with_product = [p for p in members if "product_id" in p.data]
        if with_product and len(with_product) != len(members):
            fail_all("product", f"every row of order {ext} needs a product, or none does")
            return
        if not with_product and len(members) > 1:
            fail_all("external_id", f"order {ext} without products must be a single row")
            return
        if len(members) > MAX_LINES:
            fail_all("external_id", f"order {ext} has more than {MAX_LINES} lines")
            return
        if ext is not None and ext in known:
            if known[ext] != first.data["customer_id"]:
                fail_all("external_id", "this order number is recorded for another customer")
                return
            for p in members:
                p.action = "skip"
                p.duplicate_of = {"matched_on": ["external_id"], "row": None}
                p.notes.append(
                    note(
                        p,
                        self.columns,
                        "external_id",
                        "skipped: this order number is recorded already",
                        "duplicate",
                    )
                )

    async def write(
        self, session: AsyncSession, ctx: WriteContext, plans: Sequence[RowPlan]
    ) -> ChunkOutcome:
        out = ChunkOutcome()
        groups: dict[Hashable, list[RowPlan]] = {}
        for p in plans:
            groups.setdefault(p.group, []).append(p)
        with_lines: list[tuple[list[RowPlan], OrderIn]] = []
        amounts: list[tuple[RowPlan, dict[str, Any]]] = []
        for members in groups.values():
            first = members[0].row.values
            channel = next(
                (p.row.values["channel"] for p in members if "channel" in p.row.values), None
            )
            customer_id = members[0].data["customer_id"]
            if "product_id" not in members[0].data:
                amounts.append(
                    (
                        members[0],
                        {
                            "customer_id": customer_id,
                            "contract_id": None,
                            "external_id": first.get("external_id"),
                            "source": SOURCE,
                            "channel": channel,
                            "ordered_at": first["ordered_at"],
                            "amount_cents": first.get("amount_cents", 0),
                            "cost_cents": first.get("cost_cents", 0),
                            "created_at": ctx.now,
                        },
                    )
                )
                continue
            try:
                order = OrderIn(
                    customer_id=customer_id,
                    external_id=first.get("external_id"),
                    ordered_at=first["ordered_at"],
                    channel=channel,
                    lines=[self._line(p) for p in members],
                )
            except ValidationError as error:
                message = "; ".join(e["msg"] for e in error.errors())[:400]
                for p in members:
                    out.failed += 1
                    out.notes.append(
                        (p.row, note(p, self.columns, "external_id", message, "invalid"))
                    )
                continue
            with_lines.append((members, order))

        if with_lines:
            recorded = await orders_service.record_orders(
                session, ctx.principal, [order for _, order in with_lines], source=SOURCE
            )
            for (members, _), result in zip(with_lines, recorded, strict=True):
                if result.status == "created":
                    out.created += len(members)
                    for p in members:
                        out.created_ids[p.row.index] = result.id
                else:
                    out.skipped += len(members)
                    for p in members:
                        out.notes.append(
                            (
                                p.row,
                                note(
                                    p,
                                    self.columns,
                                    "external_id",
                                    "skipped: this order number is recorded already",
                                    "duplicate",
                                ),
                            )
                        )
        for batch in chunks(amounts, 1000):
            ids = (
                await session.scalars(
                    insert(Order).returning(Order.id, sort_by_parameter_order=True),
                    [row for _, row in batch],
                )
            ).all()
            for (p, _), oid in zip(batch, ids, strict=True):
                out.created_ids[p.row.index] = oid
            out.created += len(ids)
        return out

    @staticmethod
    def _line(p: RowPlan) -> OrderLineIn:
        v = p.row.values
        quantity = v.get("quantity", 1)
        price = (
            from_cents(v["unit_price_cents"])
            if "unit_price_cents" in v
            else _unit(v.get("amount_cents"), quantity)
        )
        cost = (
            from_cents(v["unit_cost_cents"])
            if "unit_cost_cents" in v
            else _unit(v.get("cost_cents"), quantity)
        )
        return OrderLineIn(
            product_id=p.data["product_id"], quantity=quantity, unit_price=price, unit_cost=cost
        )
