"""Importing customers: plan (owners, tags, duplicates) and set-based writes.

Created customers belong to the importer, or to the user an owner column names — by username
(or a display name only one user has), and only a user the importer may give customers to (as
``owner_id`` on create: themselves or someone inside their data scope). Tags are named; a name
that exists in several groups, or two tags of one exclusive group, fail the row.

Duplicates (SPEC B4, ``duplicates``) are handled by the policy: ``skip`` leaves the row out,
``update`` writes the row's non-empty cells into the best match — when the importer may change
it, otherwise the row is skipped — and ``create`` creates the row anyway. Rows repeating an
earlier row of the file (same phone, e-mail or normalised name) count as duplicates of the
record that row creates or updates. An update never blanks a field (empty cells are not
values), adds the file's phones in front of the customer's own (at most ``MAX_PHONES``), merges
custom fields, adds tags (ending another tag of an exclusive group) and leaves the owner alone:
ownership changes only through its own endpoints.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import access
from app.access import Principal
from app.db import chunks
from app.models import Customer, CustomerPhone, CustomerTag, Tag
from app.services import audit
from app.services.customers import AUDITED_FIELDS
from app.services.importer import bulk, duplicates
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
from app.services.importer.references import TagInfo, resolve_owners, tags_by_name
from app.services.importer.source import CleanRow
from app.services.imports.clean import MAX_PHONES
from app.services.normalize import mask_name

# Columns a row sets as they are (phones, custom fields and tags are merged).
PLAIN_FIELDS = (
    "name",
    "name_normalized",
    "kind",
    "email",
    "email_normalized",
    "province",
    "city",
    "address",
    "lat",
    "lng",
    "industry",
    "source",
    "level",
    "gender",
    "birth_date",
    "notes",
)
UPDATED_COLUMNS = (*PLAIN_FIELDS, "phones", "custom_fields")
_REASON_FIELD = {"phone": "phone", "email": "email", "name": "name"}
# The keys of a new customer's timeline entry, in the order audit.diff gives them.
_CREATED_KEYS = tuple(sorted((*AUDITED_FIELDS, "tags")))
_DATE_FIELDS = frozenset({"birth_date", "signed_at", "next_follow_up_at"})


def _keys(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    keys = [("phone", n) for n in values.get("phones", ())]
    if values.get("email"):
        keys.append(("email", values["email"]))
    if values.get("name_normalized"):
        keys.append(("name", values["name_normalized"]))
    return keys


class CustomerImporter:
    def __init__(self, policy: Policy, columns: Mapping[str, int]) -> None:
        self.policy = policy
        self.columns = columns
        # What earlier chunks resolved, kept for the later ones.
        self.tags: dict[int, TagInfo] = {}
        self.tags_by_name: dict[str, list[TagInfo]] = {}
        self.owners: dict[str, int | None] = {}
        self.names = duplicates.NameCandidates()
        self.earlier: dict[tuple[str, str], RowPlan] = {}
        # Customers this import created: no duplicates of its later rows (the earlier rows of
        # the file are, through ``earlier``), so a dry run and the import agree.
        self.made: set[int] = set()

    def group_of(self, index: int, cells: Sequence[str]) -> Hashable | None:
        return None

    def written(self, outcome: ChunkOutcome) -> None:
        self.made.update(outcome.created_ids.values())

    # --- plan ---------------------------------------------------------------------------------

    async def plan(
        self, session: AsyncSession, principal: Principal, rows: list[CleanRow]
    ) -> list[RowPlan]:
        plans = plans_for(rows)
        await self._owners(session, principal, plans)
        await self._tags(session, plans)
        if self.policy != "create":
            await self._duplicates(session, principal, plans)
        return plans

    async def _owners(
        self, session: AsyncSession, principal: Principal, plans: list[RowPlan]
    ) -> None:
        names = {p.row.values["owner_username"] for p in plans if "owner_username" in p.row.values}
        new = names - self.owners.keys()
        if new:
            found = await resolve_owners(session, principal, new)
            self.owners.update({name: found.get(name) for name in new})
        owners = {name: user_id for name, user_id in self.owners.items() if user_id is not None}
        for p in plans:
            name = p.row.values.get("owner_username")
            if name is None:
                p.data["owner_id"] = principal.user_id
            elif name in owners:
                p.data["owner_id"] = owners[name]
            elif p.action != "fail":
                p.fail(
                    note(
                        p,
                        self.columns,
                        "owner",
                        "no active user with this username in your data scope",
                        "not_found",
                    )
                )

    async def _tags(self, session: AsyncSession, plans: list[RowPlan]) -> None:
        names = {n for p in plans for n in p.row.values.get("tag_names", ())}
        new = names - self.tags_by_name.keys()
        if new:
            found = await tags_by_name(session, new)
            for name in new:
                self.tags_by_name[name] = found.get(name, [])
                self.tags.update({t.id: t for t in self.tags_by_name[name]})
        known = self.tags_by_name
        for p in plans:
            wanted = p.row.values.get("tag_names")
            if not wanted or p.action == "fail":
                continue
            problems: list[str] = []
            chosen: list[TagInfo] = []
            for name in wanted:
                infos = known.get(name, [])
                if not infos:
                    problems.append(f"no tag named {name}")
                elif len(infos) > 1:
                    groups = "、".join(t.group_name for t in infos)
                    problems.append(f"{name} is a tag of several groups ({groups})")
                else:
                    chosen.append(infos[0])
            groups_seen: dict[int, str] = {}
            for tag in chosen:
                if tag.exclusive and tag.group_id in groups_seen:
                    problems.append(
                        f"{groups_seen[tag.group_id]} and {tag.name} are both of the exclusive "
                        f"group {tag.group_name}"
                    )
                groups_seen.setdefault(tag.group_id, tag.name)
            if problems:
                p.fail(note(p, self.columns, "tags", "; ".join(problems), "not_found"))
            else:
                p.data["tag_ids"] = [t.id for t in chosen]

    async def _duplicates(
        self, session: AsyncSession, principal: Principal, plans: list[RowPlan]
    ) -> None:
        live = [p for p in plans if p.action != "fail"]
        keys = [
            duplicates.DuplicateKeys(
                tuple(p.row.values.get("phones", ())),
                p.row.values.get("email"),
                p.row.values.get("name_normalized"),
            )
            for p in live
        ]
        matches = await duplicates.match_existing(session, keys, names=self.names, ignore=self.made)
        best_ids = sorted({m[0].customer_id for m in matches if m})
        names: dict[int, str] = {}
        visible: set[int] = set()
        changeable: set[int] = set()
        for chunk in chunks(best_ids, IN_CHUNK):
            rows = await session.execute(
                select(
                    Customer.id,
                    Customer.name,
                    Customer.deleted_at.is_(None) & access.readable(principal, Customer),
                    Customer.deleted_at.is_(None)
                    & access.readable(principal, Customer)
                    & access.writable(principal, Customer),
                ).where(bulk.one_of(session, Customer.id, chunk))
            )
            for cid, name, can_read, can_write in rows.all():
                names[cid] = name
                if can_read:
                    visible.add(cid)
                if can_write:
                    changeable.add(cid)

        earlier = self.earlier
        for p, found in zip(live, matches, strict=True):
            if found:
                best = found[0]
                cid = best.customer_id
                shown = cid in visible
                p.duplicate_of = {
                    "matched_on": list(best.matched_on),
                    "similarity": round(best.similarity, 3),
                    "customer_id": cid if shown else None,
                    "customer_name": names[cid] if shown else mask_name(names[cid]),
                    "row": None,
                }
                what = f"customer {cid} ({names[cid]})" if shown else "a customer outside your view"
                reason = _REASON_FIELD[best.matched_on[0]]
                if self.policy == "update" and cid in changeable:
                    p.action, p.target = "update", cid
                else:
                    why = (
                        "which you may not change"
                        if self.policy == "update"
                        else "by " + ", ".join(best.matched_on)
                    )
                    p.action = "skip"
                    p.notes.append(
                        note(
                            p,
                            self.columns,
                            reason,
                            f"skipped: a duplicate of {what}, {why}",
                            "duplicate",
                        )
                    )
            else:
                first = next((earlier[k] for k in _keys(p.row.values) if k in earlier), None)
                if first is not None:
                    hit = next(k for k in _keys(p.row.values) if k in earlier)
                    p.duplicate_of = {
                        "matched_on": [hit[0]],
                        "similarity": 1.0,
                        "customer_id": None,
                        "customer_name": None,
                        "row": first.row.number,
                    }
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
                                _REASON_FIELD[hit[0]],
                                f"skipped: repeats row {first.row.number} (same {hit[0]})",
                                "duplicate",
                            )
                        )
            if p.action in ("create", "update"):
                for key in _keys(p.row.values):
                    earlier.setdefault(key, p)

    # --- write --------------------------------------------------------------------------------

    async def write(
        self, session: AsyncSession, ctx: WriteContext, plans: Sequence[RowPlan]
    ) -> ChunkOutcome:
        outcome = ChunkOutcome()
        await self._create(session, ctx, [p for p in plans if p.action == "create"], outcome)
        await self._update(session, ctx, [p for p in plans if p.action == "update"], outcome)
        return outcome

    async def _create(
        self, session: AsyncSession, ctx: WriteContext, plans: list[RowPlan], out: ChunkOutcome
    ) -> None:
        if not plans:
            return
        uid, now = ctx.principal.user_id, ctx.now
        rows: list[dict[str, Any]] = []
        for p in plans:
            v = p.row.values
            row = {f: v.get(f) for f in PLAIN_FIELDS}
            row.update(
                kind=v.get("kind", "company"),
                phones=list(v.get("phones", [])),
                custom_fields=dict(v.get("custom_fields", {})),
                owner_id=p.data["owner_id"],
                owner_assigned_at=now,
                created_by_id=uid,
                deal_status="none",
                created_at=now,
                updated_at=now,
                version=1,
            )
            rows.append(row)
        ids = await bulk.insert_with_ids(session, Customer, rows)
        await bulk.insert_rows(
            session,
            CustomerPhone,
            [
                {"customer_id": cid, "contact_id": None, "number": n}
                for cid, row in zip(ids, rows, strict=True)
                for n in row["phones"]
            ],
        )
        await bulk.record_ownership(
            session,
            [
                {
                    "customer_id": cid,
                    "at": now,
                    "action": "created",
                    "from_owner_id": None,
                    "to_owner_id": row["owner_id"],
                    "pool_id": None,
                    "actor_id": uid,
                    "reason": None,
                }
                for cid, row in zip(ids, rows, strict=True)
            ],
        )
        events = []
        tag_rows: list[dict[str, Any]] = []
        for cid, row, p in zip(ids, rows, plans, strict=True):
            tag_ids = p.data.get("tag_ids", ())
            events.append(
                audit.customer_event_row(uid, cid, "created", self._created(row, tag_ids), now)
            )
            tag_rows += [
                {
                    "customer_id": cid,
                    "tag_id": t,
                    "added_at": now,
                    "added_by_id": uid,
                    "removed_at": None,
                    "removed_by_id": None,
                }
                for t in tag_ids
            ]
        await bulk.insert_rows(session, CustomerTag, tag_rows)
        await bulk.record_timeline(session, events)
        for cid, p in zip(ids, plans, strict=True):
            out.created_ids[p.row.index] = cid
            if p.data["owner_id"] != uid:
                out.assigned[p.data["owner_id"]] += 1
        out.created += len(ids)

    def _created(self, row: Mapping[str, Any], tag_ids: Sequence[int]) -> dict[str, Any]:
        """``audit.diff({}, audit.snapshot(...))`` of a new customer, without the generic
        conversions (the cleaned values are JSON already, dates aside); its tags included —
        one timeline entry per new customer, not one per tag as well."""
        changes: dict[str, Any] = {}
        for key in _CREATED_KEYS:
            if key == "tags":
                if tag_ids:
                    changes["tags"] = {
                        "before": None,
                        "after": [self.tags[t].label for t in tag_ids],
                    }
                continue
            value = row.get(key)
            if value is not None:
                if key in _DATE_FIELDS:
                    value = value.isoformat()
                changes[key] = {"before": None, "after": value}
        return changes

    async def _update(
        self, session: AsyncSession, ctx: WriteContext, plans: list[RowPlan], out: ChunkOutcome
    ) -> None:
        if not plans:
            return
        uid, now = ctx.principal.user_id, ctx.now
        pairs = update_targets(plans, self.columns, ctx, out)
        ids = sorted({cid for _, cid in pairs})
        state: dict[int, dict[str, Any]] = {}
        columns = [getattr(Customer, c) for c in UPDATED_COLUMNS]
        for chunk in chunks(ids, IN_CHUNK):
            rows = await session.execute(
                select(Customer.id, Customer.owner_id, *columns).where(
                    Customer.id.in_(chunk), Customer.deleted_at.is_(None)
                )
            )
            for row in rows.all():
                state[row[0]] = {
                    "owner_id": row[1],
                    **dict(zip(UPDATED_COLUMNS, row[2:], strict=True)),
                }
        before = {
            cid: {f: audit.jsonable(s[f]) for f in AUDITED_FIELDS if f in s}
            for cid, s in state.items()
        }
        old_phones = {cid: list(s["phones"] or []) for cid, s in state.items()}
        new_tags: dict[int, list[int]] = defaultdict(list)
        for p, cid in pairs:
            s = state.get(cid)
            if s is None:  # deleted meanwhile
                out.skipped += 1
                out.notes.append(
                    (
                        p.row,
                        note(
                            p,
                            self.columns,
                            "name",
                            "skipped: the customer was deleted",
                            "duplicate",
                        ),
                    )
                )
                continue
            v = p.row.values
            for f in PLAIN_FIELDS:
                if f in v:
                    s[f] = v[f]
            if "phones" in v:
                merged = list(v["phones"]) + [
                    n for n in (s["phones"] or []) if n not in v["phones"]
                ]
                s["phones"] = merged[:MAX_PHONES]
            if "custom_fields" in v:
                s["custom_fields"] = {**(s["custom_fields"] or {}), **v["custom_fields"]}
            for tag_id in p.data.get("tag_ids", ()):
                if tag_id not in new_tags[cid]:
                    new_tags[cid].append(tag_id)
            out.updated += 1

        events: list[dict[str, Any]] = []
        touched: set[int] = set()
        for cid, s in state.items():
            after = {f: audit.jsonable(s[f]) for f in AUDITED_FIELDS if f in s}
            changes = audit.diff(before[cid], after)
            if changes:
                touched.add(cid)
                events.append(audit.customer_event_row(uid, cid, "updated", changes, now))
        touched |= await self._add_tags(session, ctx, new_tags, events)
        if touched:
            table = cast(Table, Customer.__table__)
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
                    for cid in sorted(touched)
                ],
            )
            moved = sorted(cid for cid in touched if state[cid]["phones"] != old_phones[cid])
            for chunk in chunks(moved, IN_CHUNK):
                await session.execute(
                    delete(CustomerPhone).where(
                        CustomerPhone.customer_id.in_(chunk), CustomerPhone.contact_id.is_(None)
                    )
                )
            phone_rows = [
                {"customer_id": cid, "contact_id": None, "number": n}
                for cid in moved
                for n in state[cid]["phones"] or []
            ]
            if phone_rows:
                await session.execute(insert(CustomerPhone), phone_rows)
            for cid in touched:
                owner = state[cid]["owner_id"]
                if owner is not None and owner != uid:
                    out.changed[owner] += 1
        await bulk.record_timeline(session, events)

    async def _add_tags(
        self,
        session: AsyncSession,
        ctx: WriteContext,
        wanted: Mapping[int, list[int]],
        events: list[dict[str, Any]],
    ) -> set[int]:
        """Give the customers their new tags; a tag of an exclusive group ends the customer's
        other tag of that group. Returns the customers whose tags changed."""
        wanted = {cid: tags for cid, tags in wanted.items() if tags}
        if not wanted:
            return set()
        uid, now = ctx.principal.user_id, ctx.now
        # customer id -> its tags now: (span id, tag id, group id, tag name)
        current: dict[int, list[tuple[int, int, int, str]]] = defaultdict(list)
        for chunk in chunks(sorted(wanted), IN_CHUNK):
            rows = await session.execute(
                select(
                    CustomerTag.customer_id,
                    CustomerTag.id,
                    CustomerTag.tag_id,
                    Tag.group_id,
                    Tag.name,
                )
                .join(Tag, Tag.id == CustomerTag.tag_id)
                .where(CustomerTag.customer_id.in_(chunk), CustomerTag.removed_at.is_(None))
            )
            for cid, span_id, tag_id, group_id, name in rows.all():
                current[cid].append((span_id, tag_id, group_id, name))
        ending: list[int] = []
        adding: list[dict[str, Any]] = []
        changed: set[int] = set()
        for cid, tags in wanted.items():
            held = {tag_id for _, tag_id, _, _ in current[cid]}
            for tag_id in tags:
                if tag_id in held:
                    continue
                tag = self.tags[tag_id]
                if tag.exclusive:
                    for span_id, other, group_id, other_name in current[cid]:
                        if group_id == tag.group_id and other != tag_id:
                            ending.append(span_id)
                            label = f"{tag.group_name}/{other_name}"
                            events.append(
                                audit.customer_event_row(
                                    uid,
                                    cid,
                                    "tag_removed",
                                    {"tag": {"before": label, "after": None}},
                                    now,
                                )
                            )
                adding.append(
                    {"customer_id": cid, "tag_id": tag_id, "added_at": now, "added_by_id": uid}
                )
                events.append(
                    audit.customer_event_row(
                        uid, cid, "tag_added", {"tag": {"before": None, "after": tag.label}}, now
                    )
                )
                changed.add(cid)
        for chunk in chunks(sorted(set(ending)), IN_CHUNK):
            await session.execute(
                update(CustomerTag)
                .where(CustomerTag.id.in_(chunk))
                .values(removed_at=now, removed_by_id=uid)
            )
        if adding:
            await session.execute(insert(CustomerTag), adding)
        return changed
