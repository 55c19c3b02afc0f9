"""SPEC B4's duplicate check for many rows at once.

The rule is ``services.customers.find_duplicates``'s, with its constants and normalisers: a
customer is a possible duplicate of a row when one of its phones (its own or a contact's) is one
of the row's, its e-mail is the row's, or its normalised name equals the row's or — both names
at least 4 characters — is at least ``NAME_SIMILARITY_THRESHOLD`` similar among the (at most
``NAME_CANDIDATES``) customers whose name starts with the same two characters. Every customer
counts: owned, pooled and in the recycle bin. Matches are ranked as there: most reasons first,
then similarity, then id.

Only the queries differ: one ``IN`` query per few thousand distinct phones, e-mails and names of
the rows, and the customers sharing a two-character prefix with the rows' names read once per
prefix (``NameCandidates`` keeps them for the whole import) — never a query per row.

Similarity is ``difflib``'s ratio, 2·M / (|a| + |b|) with M the characters of the matching
blocks; it can only reach 0.8 when the two names share at least 2·(|a| + |b|) / 5 characters
(counted as multisets: ``quick_ratio``'s bound). That is checked for all of a prefix's
candidates at once: each character occurrence of the candidates is a bitmask over them, the
masks of a row's characters are summed in bit-sliced counters (a few big-integer operations per
character), and only the candidates over the bound are compared with ``ratio`` — exactly
``name_similarity``. A file of 100,000 new names against full prefixes costs seconds, not the
hours a pairwise comparison would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import chunks
from app.models import Customer, CustomerPhone
from app.services.customers import (
    MAX_DUPLICATE_MATCHES,
    NAME_CANDIDATES,
    NAME_SIMILARITY_THRESHOLD,
)
from app.services.importer import bulk
from app.services.importer.plan import IN_CHUNK
from app.services.normalize import escape_like

# Up to this many new prefixes are looked up with LIKE; more read the names once.
PREFIX_QUERY_LIMIT = 50
PREFIXES_PER_QUERY = 25
MIN_SIMILAR_LENGTH = 4
assert NAME_SIMILARITY_THRESHOLD == 0.8  # the integer bounds below are written for it


@dataclass(frozen=True, slots=True)
class DuplicateKeys:
    """What a row is matched on: normalised phones, e-mail and name."""

    phones: tuple[str, ...] = ()
    email: str | None = None
    name: str | None = None


@dataclass(slots=True)
class Match:
    customer_id: int
    matched_on: list[str] = field(default_factory=list)
    similarity: float = 0.0

    def hit(self, reason: str, similarity: float = 1.0) -> None:
        if reason not in self.matched_on:
            self.matched_on.append(reason)
        self.similarity = max(self.similarity, similarity)


def _elements(name: str) -> list[tuple[str, int]]:
    """A name's characters as a set of (character, occurrence) pairs: two names share
    min(count) of each character, their multiset intersection."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for ch in name:
        seen[ch] += 1
        out.append((ch, seen[ch]))
    return out


def _at_least(masks: Iterable[int], k: int, lanes: int) -> int:
    """Bits set in at least ``k`` of ``masks`` (bit-sliced counters, one lane per bit)."""
    counter: list[int] = []
    for mask in masks:
        carry = mask
        for i in range(len(counter)):
            if not carry:
                break
            counter[i], carry = counter[i] ^ carry, counter[i] & carry
        if carry:
            counter.append(carry)
    width = max(len(counter), k.bit_length())
    greater, equal = 0, lanes
    for i in reversed(range(width)):
        bit = counter[i] if i < len(counter) else 0
        if (k >> i) & 1:
            equal &= bit
        else:
            greater |= equal & bit
            equal &= ~bit
    return greater | equal


class _Bucket:
    """The candidates of one prefix, indexed for the similarity bound."""

    def __init__(self, candidates: list[tuple[int, str]]) -> None:
        self.candidates = [(cid, n) for cid, n in candidates if len(n) >= MIN_SIMILAR_LENGTH]
        self.lanes = (1 << len(self.candidates)) - 1
        self.masks: dict[tuple[str, int], int] = defaultdict(int)
        self.by_length: dict[int, int] = defaultdict(int)
        for lane, (_, name) in enumerate(self.candidates):
            bit = 1 << lane
            for element in _elements(name):
                self.masks[element] |= bit
            self.by_length[len(name)] |= bit
        self.matchers: dict[int, SequenceMatcher[str]] = {}

    def similar(self, name: str) -> list[tuple[int, float]]:
        if not self.candidates:
            return []
        la = len(name)
        masks = [m for e in _elements(name) if (m := self.masks.get(e, 0))]
        lanes = 0
        for lb, length_mask in self.by_length.items():
            # ratio ≥ 0.8 needs 5·M ≥ 2·(la + lb), and M ≤ the shared characters.
            need = -(-2 * (la + lb) // 5)
            if need <= min(la, lb):
                lanes |= length_mask & _at_least(masks, need, self.lanes)
        found = []
        while lanes:
            lane = (lanes & -lanes).bit_length() - 1
            lanes &= lanes - 1
            cid, other = self.candidates[lane]
            if other == name:
                continue
            matcher = self.matchers.get(lane)
            if matcher is None:
                # name_similarity(a, b) is SequenceMatcher(None, a, b).ratio(); b is the
                # sequence a matcher indexes, so each candidate's matcher is built once.
                matcher = self.matchers[lane] = SequenceMatcher(None, "", other, autojunk=False)
            matcher.set_seq1(name)
            score = matcher.ratio()
            if score >= NAME_SIMILARITY_THRESHOLD:
                found.append((cid, score))
        return found


class NameCandidates:
    """Customers per two-character name prefix, read once per prefix for a whole import: the
    first ``NAME_CANDIDATES`` by id (``find_duplicates`` reads at most as many)."""

    def __init__(self) -> None:
        self.buckets: dict[str, _Bucket] = {}

    async def load(self, session: AsyncSession, prefixes: set[str]) -> None:
        new = sorted(prefixes - self.buckets.keys())
        if not new:
            return
        found: dict[str, list[tuple[int, str]]] = {p: [] for p in new}
        statements = []
        if len(new) <= PREFIX_QUERY_LIMIT:
            for group in chunks(new, PREFIXES_PER_QUERY):
                like = (
                    Customer.name_normalized.like(f"{escape_like(p)}%", escape="\\") for p in group
                )
                statements.append(
                    select(Customer.id, Customer.name_normalized)
                    .where(or_(*like))
                    .order_by(Customer.id)
                )
        else:
            statements.append(select(Customer.id, Customer.name_normalized).order_by(Customer.id))
        for stmt in statements:
            result = await session.stream(stmt.execution_options(yield_per=10_000))
            async for partition in result.partitions():
                for customer_id, name in partition:
                    bucket = found.get(name[:2])
                    if bucket is not None and len(bucket) < NAME_CANDIDATES:
                        bucket.append((customer_id, name))
        for prefix, candidates in found.items():
            self.buckets[prefix] = _Bucket(candidates)


async def _by_value(
    session: AsyncSession, key_col: object, id_col: object, values: set[str]
) -> dict[str, set[int]]:
    found: dict[str, set[int]] = defaultdict(set)
    for chunk in chunks(sorted(values), IN_CHUNK):
        rows = await session.execute(
            select(key_col, id_col).where(bulk.one_of(session, key_col, chunk))  # type: ignore[call-overload]
        )
        for value, customer_id in rows.all():
            found[value].add(customer_id)
    return found


async def match_existing(
    session: AsyncSession,
    keys: Sequence[DuplicateKeys],
    *,
    names: NameCandidates | None = None,
    ignore: set[int] | frozenset[int] = frozenset(),
) -> list[list[Match]]:
    """For each row's keys, the existing customers that may be the same, best first;
    customers in ``ignore`` (made by this very import) are not looked at."""
    by_phone = await _by_value(
        session,
        CustomerPhone.number,
        CustomerPhone.customer_id,
        {n for k in keys for n in k.phones},
    )
    by_email = await _by_value(
        session, Customer.email_normalized, Customer.id, {k.email for k in keys if k.email}
    )
    by_name = await _by_value(
        session, Customer.name_normalized, Customer.id, {k.name for k in keys if k.name}
    )
    results: list[dict[int, Match]] = []
    for k in keys:
        matched: dict[int, Match] = {}
        for number in k.phones:
            for cid in by_phone.get(number, ()):
                matched.setdefault(cid, Match(cid)).hit("phone")
        if k.email:
            for cid in by_email.get(k.email, ()):
                matched.setdefault(cid, Match(cid)).hit("email")
        if k.name:
            for cid in by_name.get(k.name, ()):
                matched.setdefault(cid, Match(cid)).hit("name")
        if ignore:
            for cid in [c for c in matched if c in ignore]:
                del matched[cid]
        results.append(matched)
    await _similar_names(session, keys, results, names or NameCandidates(), ignore)
    return [
        sorted(m.values(), key=lambda x: (-len(x.matched_on), -x.similarity, x.customer_id))[
            :MAX_DUPLICATE_MATCHES
        ]
        for m in results
    ]


async def _similar_names(
    session: AsyncSession,
    keys: Sequence[DuplicateKeys],
    results: list[dict[int, Match]],
    candidates: NameCandidates,
    ignore: set[int] | frozenset[int],
) -> None:
    """Add the name-similarity hits. A row whose name matched a customer exactly only needs its
    similarity to the customers it matched on phone or e-mail (no other candidate can outrank
    the exact match); the others are compared with their prefix's candidates."""
    wanted: dict[str, list[int]] = defaultdict(list)  # prefix -> rows to compare in full
    partial: dict[int, list[int]] = defaultdict(list)  # customer id -> rows to compare with it
    for i, k in enumerate(keys):
        if not k.name or len(k.name) < MIN_SIMILAR_LENGTH:
            continue
        if any("name" in m.matched_on for m in results[i].values()):
            for cid, match in results[i].items():
                if "name" not in match.matched_on:
                    partial[cid].append(i)
        else:
            wanted[k.name[:2]].append(i)

    await candidates.load(session, set(wanted))
    scores: dict[str, list[tuple[int, float]]] = {}
    for prefix, rows in wanted.items():
        bucket = candidates.buckets[prefix]
        for i in rows:
            name = keys[i].name
            assert name is not None
            if name not in scores:
                scores[name] = bucket.similar(name)
            for cid, score in scores[name]:
                if cid not in ignore:
                    results[i].setdefault(cid, Match(cid)).hit("name", score)

    if partial:
        known: dict[int, str] = {}
        for chunk in chunks(sorted(partial), IN_CHUNK):
            rows_ = await session.execute(
                select(Customer.id, Customer.name_normalized).where(Customer.id.in_(chunk))
            )
            known.update({cid: n for cid, n in rows_.all()})
        for cid, row_ids in partial.items():
            other = known.get(cid)
            if other is None or len(other) < MIN_SIMILAR_LENGTH:
                continue
            matcher = SequenceMatcher(None, "", other, autojunk=False)
            for i in row_ids:
                row_name = keys[i].name
                assert row_name is not None
                if other[:2] != row_name[:2]:
                    continue  # not among find_duplicates' candidates either
                matcher.set_seq1(row_name)
                score = matcher.ratio()
                if score >= NAME_SIMILARITY_THRESHOLD:
                    results[i][cid].hit("name", score)
