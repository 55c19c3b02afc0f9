"""Importing contacts: each row names its customer (id, phone or name, among the customers the
importer may change) and becomes a contact of it.

A contact is a duplicate when its customer already has a live contact of the same name (trimmed,
case-folded) or with one of its phones — or an earlier row of the file is one. The duplicate
policy applies as for customers: skip, update the existing contact (non-empty cells only, phones
added in front), or create anyway.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.access import Principal
from app.db import chunks
from app.models import Contact, CustomerPhone
from app.services import audit
from app.services.contacts import AUDITED_FIELDS
from app.services.importer import bulk
from app.services.importer.plan import (
    IN_CHUNK,
    ChunkOutcome,
    Policy,
    RowPlan,
    WriteContext,
    note,
    plans_for,
    update_targets,
)
from app.services.importer.references import resolve_customers
from app.services.importer.source import CleanRow
from app.services.imports.clean import MAX_PHONES

FIELDS = ("name", "title", "email", "wechat", "is_primary", "birth_date", "notes")
UPDATED_COLUMNS = (*FIELDS, "phones")


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _keys(customer_id: int, values: Mapping[str, Any]) -> list[tuple[int, str, str]]:
    keys = [(customer_id, "name", _name_key(values["name"]))]
    keys += [(customer_id, "phone", n) for n in values.get("phones", ())]
    return keys


class ContactImporter:
    def __init__(self, policy: Policy, columns: Mapping[str, int]) -> None:
        self.policy = policy
        self.columns = columns
        self.earlier: dict[tuple[int, str, str], RowPlan] = {}
        # Contacts this import made: its earlier rows, matched through ``earlier``.
        self.made: set[int] = set()

    def group_of(self, index: int, cells: Sequence[str]) -> Hashable | None:
        return None

    def written(self, outcome: ChunkOutcome) -> None:
        self.made.update(outcome.created_ids.values())

    async def plan(
        self, session: AsyncSession, principal: Principal, rows: list[CleanRow]
    ) -> list[RowPlan]:
        plans = plans_for(rows)
        await resolve_customers(session, principal, plans, self.columns)
        if self.policy == "create":
            return plans
        live = [p for p in plans if p.action != "fail"]
        existing: dict[tuple[int, str, str], int] = {}
        for chunk in chunks(sorted({p.data["customer_id"] for p in live}), IN_CHUNK):
            rows_ = await session.execute(
                select(Contact.id, Contact.customer_id, Contact.name, Contact.phones)
                .where(Contact.customer_id.in_(chunk), Contact.deleted_at.is_(None))
                .order_by(Contact.id)
            )
            for contact_id, customer_id, name, phones in rows_.all():
                if contact_id in self.made:
                    continue
                for key in _keys(customer_id, {"name": name, "phones": phones or []}):
                    existing.setdefault(key, contact_id)
        earlier = self.earlier
        for p in live:
            keys = _keys(p.data["customer_id"], p.row.values)
            hit = next((k for k in keys if k in existing), None)
            field = "name"
            if hit is not None:
                field = "phone" if hit[1] == "phone" else "name"
                p.duplicate_of = {"matched_on": [hit[1]], "contact_id": existing[hit], "row": None}
                if self.policy == "update":
                    p.action, p.target = "update", existing[hit]
                else:
                    p.action = "skip"
                    p.notes.append(
                        note(
                            p,
                            self.columns,
                            field,
                            f"skipped: the customer has this contact already (contact "
                            f"{existing[hit]}, same {hit[1]})",
                            "duplicate",
                        )
                    )
            elif (hit := next((k for k in keys if k in earlier), None)) is not None:
                first = earlier[hit]
                field = "phone" if hit[1] == "phone" else "name"
                p.duplicate_of = {"matched_on": [hit[1]], "row": first.row.number}
                if self.policy == "update":
                    p.action = "update"
                    p.target = first.target
                    p.ref = first.row.index if first.target is None else None
                else:
                    p.action = "skip"
                    p.notes.append(
                        note(
                            p,
                            self.columns,
                            field,
                            f"skipped: repeats row {first.row.number} (same {hit[1]})",
                            "duplicate",
                        )
                    )
            if p.action in ("create", "update"):
                for key in keys:
                    earlier.setdefault(key, p)
        return plans

    async def write(
        self, session: AsyncSession, ctx: WriteContext, plans: Sequence[RowPlan]
    ) -> ChunkOutcome:
        out = ChunkOutcome()
        await self._create(session, ctx, [p for p in plans if p.action == "create"], out)
        await self._update(session, ctx, [p for p in plans if p.action == "update"], out)
        return out

    async def _create(
        self, session: AsyncSession, ctx: WriteContext, plans: list[RowPlan], out: ChunkOutcome
    ) -> None:
        if not plans:
            return
        uid, now = ctx.principal.user_id, ctx.now
        rows: list[dict[str, Any]] = [
            {f: p.row.values.get(f) for f in FIELDS}
            | {
                "customer_id": p.data["customer_id"],
                "phones": list(p.row.values.get("phones", [])),
                "is_primary": bool(p.row.values.get("is_primary", False)),
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
            for p in plans
        ]
        ids = await bulk.insert_with_ids(session, Contact, rows)
        await bulk.insert_rows(
            session,
            CustomerPhone,
            [
                {"customer_id": row["customer_id"], "contact_id": cid, "number": n}
                for cid, row in zip(ids, rows, strict=True)
                for n in row["phones"]
            ],
        )
        await bulk.record_timeline(
            session,
            [
                audit.customer_event_row(
                    uid,
                    row["customer_id"],
                    "contact_created",
                    audit.diff({}, {f: audit.jsonable(row.get(f)) for f in AUDITED_FIELDS}),
                    now,
                    entity="contact",
                    entity_id=cid,
                )
                for cid, row in zip(ids, rows, strict=True)
            ],
        )
        for cid, p in zip(ids, plans, strict=True):
            out.created_ids[p.row.index] = cid
        out.created += len(ids)

    async def _update(
        self, session: AsyncSession, ctx: WriteContext, plans: list[RowPlan], out: ChunkOutcome
    ) -> None:
        if not plans:
            return
        uid, now = ctx.principal.user_id, ctx.now
        pairs = update_targets(plans, self.columns, ctx, out)
        state: dict[int, dict[str, Any]] = {}
        columns = [getattr(Contact, c) for c in UPDATED_COLUMNS]
        for chunk in chunks(sorted({t for _, t in pairs}), IN_CHUNK):
            rows = await session.execute(
                select(Contact.id, Contact.customer_id, *columns).where(
                    Contact.id.in_(chunk), Contact.deleted_at.is_(None)
                )
            )
            for row in rows.all():
                state[row[0]] = {
                    "customer_id": row[1],
                    **dict(zip(UPDATED_COLUMNS, row[2:], strict=True)),
                }
        before = {
            cid: {f: audit.jsonable(s[f]) for f in AUDITED_FIELDS} for cid, s in state.items()
        }
        old_phones = {cid: list(s["phones"] or []) for cid, s in state.items()}
        for p, cid in pairs:
            s = state.get(cid)
            if s is None:
                out.skipped += 1
                out.notes.append(
                    (
                        p.row,
                        note(
                            p, self.columns, "name", "skipped: the contact was deleted", "duplicate"
                        ),
                    )
                )
                continue
            v = p.row.values
            for f in FIELDS:
                if f in v:
                    s[f] = v[f]
            if "phones" in v:
                extra = [n for n in (s["phones"] or []) if n not in v["phones"]]
                s["phones"] = (list(v["phones"]) + extra)[:MAX_PHONES]
            out.updated += 1
        events: list[dict[str, Any]] = []
        changed: list[int] = []
        for cid, s in state.items():
            changes = audit.diff(before[cid], {f: audit.jsonable(s[f]) for f in AUDITED_FIELDS})
            if changes:
                changed.append(cid)
                events.append(
                    audit.customer_event_row(
                        uid,
                        s["customer_id"],
                        "contact_updated",
                        changes,
                        now,
                        entity="contact",
                        entity_id=cid,
                    )
                )
        if not changed:
            return
        table = cast(Table, Contact.__table__)
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                {c: bindparam(f"b_{c}") for c in UPDATED_COLUMNS}
                | {"version": table.c.version + 1, "updated_at": bindparam("b_now")}
            )
        )
        await session.execute(
            stmt,
            [
                {"b_id": cid, "b_now": now} | {f"b_{c}": state[cid][c] for c in UPDATED_COLUMNS}
                for cid in sorted(changed)
            ],
        )
        moved = sorted(cid for cid in changed if state[cid]["phones"] != old_phones[cid])
        for chunk in chunks(moved, IN_CHUNK):
            await session.execute(delete(CustomerPhone).where(CustomerPhone.contact_id.in_(chunk)))
        phone_rows = [
            {"customer_id": state[cid]["customer_id"], "contact_id": cid, "number": n}
            for cid in moved
            for n in state[cid]["phones"] or []
        ]
        if phone_rows:
            await session.execute(insert(CustomerPhone), phone_rows)
        await bulk.record_timeline(session, events)
