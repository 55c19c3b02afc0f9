"""The import's duplicate check finds what ``find_duplicates`` finds, for many rows at once."""

from __future__ import annotations

import random

from app.services.customers import NAME_SIMILARITY_THRESHOLD, find_duplicates
from app.services.importer.duplicates import (
    DuplicateKeys,
    NameCandidates,
    _at_least,
    _Bucket,
    match_existing,
)
from app.services.normalize import name_similarity, normalize_name
from tests.factories import make_contact, make_customer


def test_bit_sliced_counts_find_the_lanes_set_in_k_masks():
    rng = random.Random(3)
    lanes = 60
    masks = [rng.getrandbits(lanes) for _ in range(13)]
    for k in range(0, 15):
        expected = sum(
            1 << lane for lane in range(lanes) if sum((m >> lane) & 1 for m in masks) >= k
        )
        assert _at_least(masks, k, (1 << lanes) - 1) == expected, k


def test_the_similarity_bound_never_drops_a_match():
    rng = random.Random(11)
    alphabet = "华星恒瑞博达信远科技贸易有限公司12"
    names = sorted(
        {
            "杭州" + "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 9)))
            for _ in range(400)
        }
    )
    bucket = _Bucket(list(enumerate(names)))
    for name in names[:150]:
        probe = name[:-1] + rng.choice(alphabet) if len(name) > 4 else name
        brute = {
            i
            for i, other in enumerate(names)
            if len(other) >= 4
            and other != probe
            and name_similarity(probe, other) >= NAME_SIMILARITY_THRESHOLD
        }
        assert {cid for cid, _ in bucket.similar(probe)} == brute, probe


async def test_matches_agree_with_find_duplicates(app, maker, org):
    from app.access import load_principal

    specs = [
        ("杭州青禾科技有限公司", ["13812345678"], "info@qinghe.cn"),
        ("杭州青禾科技（滨江）有限公司", ["13900000001"], None),
        ("上海星辰贸易有限公司", ["13700000002"], None),
        ("北京启明有限公司", [], "ceo@qiming.cn"),
    ]
    made = [await make_customer(maker, org.rep_a, n, phones=p, email=e) for n, p, e in specs]
    await make_contact(maker, made[2], "王五", phones=["13500000000"])
    async with maker() as session, session.begin():
        from app.models import CustomerPhone

        session.add(CustomerPhone(customer_id=made[2].id, number="13500000000"))
    rows = [
        ("杭州青禾科技", ["13800000000"], None),  # similar + exact normalised name
        ("青禾", ["13812345678"], None),  # phone
        ("某某公司", [], "CEO@qiming.cn".lower()),  # e-mail
        ("完全不同", ["13500000000"], None),  # a contact's phone
        ("杭州青禾科技滨江", [], None),  # similar names only
        ("无关的名字有限公司", ["13000000000"], None),
    ]
    async with maker() as session:
        principal = await load_principal(session, org.admin.id)
        assert principal is not None
        keys = [
            DuplicateKeys(tuple(phones), email, normalize_name(name))
            for name, phones, email in rows
        ]
        bulk = await match_existing(session, keys, names=NameCandidates())
        for (name, phones, email), found in zip(rows, bulk, strict=True):
            single = await find_duplicates(
                session, principal, name=name, phones=phones, email=email
            )
            mine = [(m.customer_id, sorted(m.matched_on), round(m.similarity, 3)) for m in found]
            theirs = [(d["id"], sorted(d["matched_on"]), d["similarity"]) for d in single]
            # The best match decides a row's fate: it is always the same. A row whose name
            # matched exactly is not compared with every similar name (none can outrank it).
            assert mine[:1] == theirs[:1], name
            if not any("name" in m[1] and m[2] == 1.0 for m in mine):
                assert mine == theirs, name
