"""Merging a duplicate customer into another (SPEC B4)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from app.models import (
    AuditEvent,
    Contact,
    Contract,
    Customer,
    CustomerPhone,
    CustomerTag,
    CustomerTeamMember,
    FollowUp,
    Notification,
    Opportunity,
    Order,
    OwnershipEvent,
    Reminder,
    Tag,
    TagGroup,
    Visit,
)
from app.models.base import utcnow
from tests.factories import add_team_member, auth, make_contact, make_customer
from tests.lifecycle.conftest import (
    make_contract,
    make_follow_up,
    make_opportunity,
    make_order,
    make_stage,
    make_visit,
    put_in_bin,
    reload,
    rows,
)


async def merge(app, client, user, kept, other):
    return await client.post(
        f"/api/v1/customers/{kept.id}/merge", json={"other_id": other.id}, headers=auth(app, user)
    )


async def make_tags(maker):
    async with maker() as session, session.begin():
        need = TagGroup(name="购买需求", exclusive=True)
        feature = TagGroup(name="企业特征")
        session.add_all([need, feature])
        await session.flush()
        tags = {
            name: Tag(group_id=group.id, name=name)
            for group, name in (
                (need, "高意向"),
                (need, "低意向"),
                (feature, "连锁经营"),
                (feature, "外资企业"),
            )
        }
        session.add_all(tags.values())
        await session.flush()
        return {name: tag.id for name, tag in tags.items()}


async def tag(maker, customer, tag_id, removed=False):
    async with maker() as session, session.begin():
        now = utcnow()
        session.add(
            CustomerTag(
                customer_id=customer.id,
                tag_id=tag_id,
                added_at=now - dt.timedelta(days=10),
                removed_at=now - dt.timedelta(days=1) if removed else None,
            )
        )


async def test_merge_moves_every_child_and_history_to_the_kept_customer(
    app, client, maker, org, db
):
    stage = await make_stage(maker)
    kept = await make_customer(maker, org.rep_a, "青禾科技", phones=["13800000001"])
    other = await make_customer(
        maker,
        org.rep_a,
        "青禾科技有限公司",
        phones=["13800000002", "13800000001"],
        email="hi@qinghe.cn",
        city="杭州市",
        lat=30.2,
        lng=120.1,
        custom_fields={"erp": "SAP"},
        last_follow_up_at=utcnow() - dt.timedelta(hours=1),
    )
    older = await make_customer(maker, org.rep_a, "更早合并的")
    await put_in_bin(maker, older, kind="merged", reason=None)
    async with maker() as session, session.begin():
        (await session.get(Customer, older.id)).merged_into_id = other.id
    contact = await make_contact(maker, other, "王总", phones=["13900000009"])
    async with maker() as session, session.begin():
        session.add(
            CustomerPhone(customer_id=other.id, contact_id=contact.id, number="13900000009")
        )
        session.add(
            AuditEvent(
                entity="customer", entity_id=other.id, customer_id=other.id, action="created"
            )
        )
        session.add(
            OwnershipEvent(
                customer_id=other.id, at=utcnow(), action="created", to_owner_id=org.rep_a.id
            )
        )
    follow_up = await make_follow_up(maker, other, org.rep_a, utcnow() - dt.timedelta(hours=1))
    visit = await make_visit(maker, other, org.rep_a)
    opp = await make_opportunity(maker, stage, other, org.rep_a)
    contract = await make_contract(maker, other, org.rep_a, "signed")
    order = await make_order(maker, other)

    response = await merge(app, client, org.rep_a, kept, other)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == kept.id and response.headers["ETag"] == f'"{body["version"]}"'
    # Empty fields are filled from the duplicate; phones are the union.
    assert body["phones"] == ["13800000001", "13800000002"]
    assert (body["email"], body["city"], body["lat"], body["lng"]) == (
        "hi@qinghe.cn",
        "杭州市",
        30.2,
        120.1,
    )
    assert body["custom_fields"] == {"erp": "SAP"} and body["name"] == "青禾科技"
    assert body["last_follow_up_at"] is not None  # the duplicate's follow-ups count now

    for model, row_id in (
        (Contact, contact.id),
        (FollowUp, follow_up.id),
        (Visit, visit.id),
        (Opportunity, opp.id),
        (Contract, contract.id),
        (Order, order.id),
    ):
        assert (await reload(db, model, row_id)).customer_id == kept.id, model.__name__
    assert await rows(db, select(Reminder.customer_id)) == [(kept.id,)]
    phones = await rows(
        db,
        select(CustomerPhone.customer_id, CustomerPhone.contact_id, CustomerPhone.number)
        .where(CustomerPhone.customer_id.in_([kept.id, other.id]))
        .order_by(CustomerPhone.number),
    )
    assert phones == [
        (kept.id, None, "13800000001"),
        (kept.id, None, "13800000002"),
        (kept.id, contact.id, "13900000009"),
    ]
    assert (await reload(db, Customer, older.id)).merged_into_id == kept.id

    gone = await reload(db, Customer, other.id)
    assert gone.deleted_at is not None and gone.deleted_by_id == org.rep_a.id
    assert (gone.recycle_kind, gone.merged_into_id) == ("merged", kept.id)

    history = await rows(
        db,
        select(OwnershipEvent.customer_id, OwnershipEvent.action).order_by(OwnershipEvent.id),
    )
    assert history == [(kept.id, "created"), (other.id, "merged")]
    events = await rows(
        db, select(AuditEvent.customer_id, AuditEvent.action).order_by(AuditEvent.id)
    )
    assert events == [(kept.id, "created"), (kept.id, "merged"), (other.id, "merged")]
    timeline = await client.get(
        f"/api/v1/customers/{kept.id}/timeline", headers=auth(app, org.rep_a)
    )
    merged_event = timeline.json()["items"][0]
    assert merged_event["action"] == "merged"
    assert merged_event["changes"]["merged_from"]["after"] == other.id
    assert merged_event["changes"]["email"] == {"before": None, "after": "hi@qinghe.cn"}
    in_bin = await client.get(
        "/api/v1/recycle-bin", params={"kind": "merged"}, headers=auth(app, org.rep_a)
    )
    assert {i["id"]: i["merged_into_id"] for i in in_bin.json()["items"]} == {
        other.id: kept.id,
        older.id: kept.id,
    }


async def test_merge_keeps_the_kept_customers_own_values(app, client, maker, org):
    kept = await make_customer(maker, org.rep_a, email="kept@a.cn", city="苏州市", level="A")
    other = await make_customer(maker, org.rep_a, email="other@a.cn", city="杭州市", level="C")
    body = (await merge(app, client, org.rep_a, kept, other)).json()
    assert (body["email"], body["city"], body["level"]) == ("kept@a.cn", "苏州市", "A")


async def test_merge_unions_tags_and_keeps_their_history(app, client, maker, org, db):
    tags = await make_tags(maker)
    kept = await make_customer(maker, org.rep_a)
    other = await make_customer(maker, org.rep_a)
    await tag(maker, kept, tags["高意向"])
    await tag(maker, kept, tags["连锁经营"])
    await tag(maker, other, tags["低意向"])  # same exclusive group as kept's: closed
    await tag(maker, other, tags["连锁经营"])  # kept has it: closed
    await tag(maker, other, tags["外资企业"])  # new: moves over
    await tag(maker, other, tags["低意向"], removed=True)  # history: moves over
    body = (await merge(app, client, org.rep_a, kept, other)).json()
    assert sorted(t["name"] for t in body["tags"]) == ["外资企业", "连锁经营", "高意向"]
    all_rows = await rows(db, select(CustomerTag.customer_id, CustomerTag.removed_at))
    assert len(all_rows) == 6 and {cid for cid, _ in all_rows} == {kept.id}
    active = await rows(
        db,
        select(func.count())
        .select_from(CustomerTag)
        .where(CustomerTag.customer_id == kept.id, CustomerTag.removed_at.is_(None)),
    )
    assert active == [(3,)]


async def test_merge_unions_team_members_keeping_the_wider_access(app, client, maker, org, db):
    soon, later = utcnow() + dt.timedelta(days=1), utcnow() + dt.timedelta(days=9)
    kept = await make_customer(maker, org.rep_a)
    other = await make_customer(maker, org.rep_b)
    await add_team_member(maker, kept, org.rep_c, "read", soon)
    await add_team_member(maker, other, org.rep_c, "write", later)
    await add_team_member(maker, kept, org.rep_d, "write", soon)
    await add_team_member(maker, other, org.rep_d, "read", None)
    await add_team_member(maker, other, org.mgr_hz, "read")
    await add_team_member(maker, other, org.rep_a, "write")  # the kept owner: dropped
    response = await merge(app, client, org.mgr_east, kept, other)
    assert response.status_code == 200, response.text
    members = await rows(
        db,
        select(
            CustomerTeamMember.customer_id,
            CustomerTeamMember.user_id,
            CustomerTeamMember.access,
            CustomerTeamMember.expires_at,
        ).order_by(CustomerTeamMember.user_id),
    )
    by_user = {uid: (cid, access, expires) for cid, uid, access, expires in members}
    assert set(by_user) == {org.rep_c.id, org.rep_d.id, org.mgr_hz.id}
    assert all(cid == kept.id for cid, _, _ in by_user.values())
    assert by_user[org.rep_c.id][1] == "write"
    assert abs(by_user[org.rep_c.id][2] - later) < dt.timedelta(seconds=1)
    assert by_user[org.rep_d.id][1:] == ("write", None)
    assert by_user[org.mgr_hz.id][1:] == ("read", None)


async def test_both_owners_hear_about_a_merge_by_someone_else(app, client, maker, org, db):
    kept = await make_customer(maker, org.rep_a, "甲公司")
    other = await make_customer(maker, org.rep_b, "甲公司分部")
    await merge(app, client, org.mgr_east, kept, other)
    notes = await rows(
        db, select(Notification.user_id, Notification.title).order_by(Notification.user_id)
    )
    title = "Mgr East 将客户 甲公司分部 合并到 甲公司"
    assert notes == [(org.rep_a.id, title), (org.rep_b.id, title)]


async def test_a_customer_cannot_be_merged_into_itself(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a)
    response = await merge(app, client, org.rep_a, customer, customer)
    assert response.status_code == 422


async def test_merge_authorization_changes_nothing_when_refused(app, client, maker, org, db):
    mine = await make_customer(maker, org.rep_a)
    shared = await make_customer(maker, org.rep_c)
    await add_team_member(maker, shared, org.rep_a, "read")
    outside = await make_customer(maker, org.rep_d)
    binned = await make_customer(maker, org.rep_a)
    await put_in_bin(maker, binned)
    await make_contact(maker, shared, "不该动的联系人")
    url = f"/api/v1/customers/{mine.id}/merge"
    assert (await client.post(url, json={"other_id": shared.id})).status_code == 401
    assert (await merge(app, client, org.rep_a, mine, outside)).status_code == 404
    assert (await merge(app, client, org.rep_a, outside, mine)).status_code == 404
    assert (await merge(app, client, org.rep_a, mine, binned)).status_code == 404
    assert (await merge(app, client, org.rep_a, mine, shared)).status_code == 403
    assert (await merge(app, client, org.rep_a, shared, mine)).status_code == 403
    assert (await reload(db, Customer, shared.id)).deleted_at is None
    assert (await reload(db, Customer, mine.id)).version == 1
    assert await rows(db, select(Contact.customer_id)) == [(shared.id,)]
