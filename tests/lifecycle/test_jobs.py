"""Scheduled lifecycle housekeeping: purging the recycle bin, dropping expired team members."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from app.models import Contact, Customer, CustomerTeamMember
from app.models.base import utcnow
from app.services.lifecycle import purge_recycle_bin, remove_expired_team_members
from tests.factories import add_team_member, make_contact, make_customer
from tests.lifecycle.conftest import make_contract, make_order, put_in_bin, rows


async def test_purge_deletes_old_bin_customers_and_keeps_the_rest(maker, org, db):
    now = utcnow()
    old = await make_customer(maker, org.rep_a, "很久以前")
    await make_contact(maker, old, "随之删除的联系人")
    recent = await make_customer(maker, org.rep_a, "最近")
    with_contract = await make_customer(maker, org.rep_a, "有合同")
    with_order = await make_customer(maker, org.rep_a, "有订单")
    live = await make_customer(maker, org.rep_a, "还在用")
    await make_contract(maker, with_contract, org.rep_a, "void")
    await make_order(maker, with_order)
    for customer in (old, with_contract, with_order):
        await put_in_bin(maker, customer, at=now - dt.timedelta(days=31))
    await put_in_bin(maker, recent, at=now - dt.timedelta(days=29))

    assert await purge_recycle_bin(maker, retention_days=30, now=now) == 1
    remaining = {cid for (cid,) in await rows(db, select(Customer.id))}
    assert remaining == {recent.id, with_contract.id, with_order.id, live.id}
    assert await rows(db, select(Contact.id)) == []
    assert await purge_recycle_bin(maker, retention_days=30, now=now) == 0


async def test_remove_expired_team_members_keeps_current_ones(maker, org, db):
    now = utcnow()
    customer = await make_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.rep_b, "read", now - dt.timedelta(minutes=1))
    await add_team_member(maker, customer, org.rep_c, "write", now + dt.timedelta(days=1))
    await add_team_member(maker, customer, org.rep_d, "read", None)
    assert await remove_expired_team_members(maker, now=now) == 1
    left = {uid for (uid,) in await rows(db, select(CustomerTeamMember.user_id))}
    assert left == {org.rep_c.id, org.rep_d.id}
