"""Transferring customers, and offboarding a leaving user (SPEC B9)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app.models import (
    AuditEvent,
    Contract,
    Customer,
    CustomerTeamMember,
    Notification,
    Opportunity,
    OpportunityHistory,
    OwnershipEvent,
    RefreshToken,
    Reminder,
    User,
    Visit,
)
from app.models.base import utcnow
from tests.factories import PASSWORD, add_team_member, auth, make_contact, make_customer
from tests.lifecycle.conftest import (
    make_contract,
    make_opportunity,
    make_stage,
    make_visit,
    put_in_bin,
    reload,
    rows,
    set_caps,
)


async def transfer(app, client, user, ids, to, **extra):
    return await client.post(
        "/api/v1/customers/transfer",
        json={"customer_ids": ids, "to_owner_id": to.id, **extra},
        headers=auth(app, user),
    )


async def test_manager_transfers_customers_and_the_reclaim_clock_restarts(
    app, client, maker, org, db
):
    long_ago = utcnow() - dt.timedelta(days=90)
    first = await make_customer(
        maker, org.rep_a, "甲", owner_assigned_at=long_ago, reclaim_warned_due_at=long_ago
    )
    second = await make_customer(maker, org.rep_c, "乙", locked_at=utcnow())
    response = await transfer(app, client, org.mgr_east, [first.id, second.id], org.rep_b)
    assert response.status_code == 200, response.text
    assert response.json() == {"transferred": [first.id, second.id], "count": 2}
    for customer in (first, second):
        row = await reload(db, Customer, customer.id)
        assert row.owner_id == org.rep_b.id and row.version == 2
        assert row.owner_assigned_at > utcnow() - dt.timedelta(minutes=1)
        assert row.reclaim_warned_due_at is None and row.locked_at is None
    history = await rows(
        db,
        select(
            OwnershipEvent.customer_id,
            OwnershipEvent.action,
            OwnershipEvent.from_owner_id,
            OwnershipEvent.to_owner_id,
            OwnershipEvent.actor_id,
        ).order_by(OwnershipEvent.customer_id),
    )
    assert history == [
        (first.id, "transferred", org.rep_a.id, org.rep_b.id, org.mgr_east.id),
        (second.id, "transferred", org.rep_c.id, org.rep_b.id, org.mgr_east.id),
    ]
    events = await rows(db, select(AuditEvent.customer_id, AuditEvent.action, AuditEvent.changes))
    assert {(cid, action) for cid, action, _ in events} == {
        (first.id, "transferred"),
        (second.id, "transferred"),
    }
    second_changes = next(c for cid, _, c in events if cid == second.id)
    assert second_changes["owner_id"] == {"before": org.rep_c.id, "after": org.rep_b.id}
    assert second_changes["locked"] == {"before": True, "after": False}
    # The new owner sees them now; the old owner does not.
    mine = await client.get("/api/v1/customers", headers=auth(app, org.rep_b))
    assert {c["id"] for c in mine.json()["items"]} == {first.id, second.id}
    gone = await client.get(f"/api/v1/customers/{first.id}", headers=auth(app, org.rep_a))
    assert gone.status_code == 404


async def test_both_parties_are_notified_once(app, client, maker, org, db):
    a1 = await make_customer(maker, org.rep_a, "甲一")
    a2 = await make_customer(maker, org.rep_a, "甲二")
    c1 = await make_customer(maker, org.rep_c, "丙一")
    await transfer(app, client, org.mgr_east, [a1.id, a2.id, c1.id], org.rep_b)
    notes = await rows(
        db, select(Notification.user_id, Notification.title).order_by(Notification.user_id)
    )
    assert notes == [
        (org.rep_a.id, "Mgr East 将你的 2 个客户转移给 Rep B"),
        (org.rep_b.id, "Mgr East 将 3 个客户转移给你"),
        (org.rep_c.id, "Mgr East 将你的 1 个客户转移给 Rep B"),
    ]


async def test_customers_already_owned_by_the_target_are_skipped(app, client, maker, org, db):
    theirs = await make_customer(maker, org.rep_b)
    mine = await make_customer(maker, org.rep_a)
    response = await transfer(app, client, org.mgr_east, [theirs.id, mine.id], org.rep_b)
    assert response.json() == {"transferred": [mine.id], "count": 1}
    assert (await reload(db, Customer, theirs.id)).version == 1
    assert await rows(db, select(OwnershipEvent.customer_id)) == [(mine.id,)]


async def test_opportunities_and_contracts_go_along_when_included(app, client, maker, org, db):
    stage = await make_stage(maker)
    customer = await make_customer(maker, org.rep_a)
    contact = await make_contact(maker, customer, "李总")
    open_opp = await make_opportunity(maker, stage, customer, org.rep_a)
    won_opp = await make_opportunity(maker, stage, customer, org.rep_a, status="won")
    colleagues_opp = await make_opportunity(maker, stage, customer, org.mgr_east)
    draft = await make_contract(maker, customer, org.rep_a, "draft")
    active = await make_contract(maker, customer, org.rep_a, "active")
    completed = await make_contract(maker, customer, org.rep_a, "completed")
    response = await transfer(
        app,
        client,
        org.mgr_east,
        [customer.id],
        org.rep_b,
        include=["contacts", "opportunities", "contracts"],
    )
    assert response.status_code == 200, response.text
    assert (await reload(db, Opportunity, open_opp.id)).owner_id == org.rep_b.id
    assert (await reload(db, Opportunity, won_opp.id)).owner_id == org.rep_a.id
    assert (await reload(db, Opportunity, colleagues_opp.id)).owner_id == org.mgr_east.id
    assert (await reload(db, Contract, draft.id)).owner_id == org.rep_b.id
    assert (await reload(db, Contract, active.id)).owner_id == org.rep_b.id
    assert (await reload(db, Contract, completed.id)).owner_id == org.rep_a.id
    contact_read = await client.get(f"/api/v1/contacts/{contact.id}", headers=auth(app, org.rep_b))
    assert contact_read.status_code == 200
    # The opportunity's owner history gets a new interval from now.
    history = await rows(
        db,
        select(OpportunityHistory.owner_id, OpportunityHistory.valid_to)
        .where(OpportunityHistory.opportunity_id == open_opp.id)
        .order_by(OpportunityHistory.id),
    )
    assert [owner for owner, _ in history] == [org.rep_a.id, org.rep_b.id]
    assert history[0][1] is not None and history[1][1] is None
    opp_events = await rows(
        db, select(AuditEvent.entity, AuditEvent.entity_id).where(AuditEvent.entity != "customer")
    )
    assert sorted(opp_events) == sorted(
        [("opportunity", open_opp.id), ("contract", draft.id), ("contract", active.id)]
    )


async def test_without_include_opportunities_stay_with_the_previous_owner(
    app, client, maker, org, db
):
    customer = await make_customer(maker, org.rep_a)
    opp = await make_opportunity(maker, await make_stage(maker), customer, org.rep_a)
    contract = await make_contract(maker, customer, org.rep_a)
    await transfer(app, client, org.mgr_east, [customer.id], org.rep_b)
    assert (await reload(db, Opportunity, opp.id)).owner_id == org.rep_a.id
    assert (await reload(db, Contract, contract.id)).owner_id == org.rep_a.id


@pytest.mark.parametrize("keep", ["read", "write"])
async def test_previous_owner_may_stay_on_as_a_team_member(app, client, maker, org, db, keep):
    customer = await make_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.rep_b, "write")  # the new owner was a member
    response = await transfer(
        app, client, org.mgr_east, [customer.id], org.rep_b, previous_owner_access=keep
    )
    assert response.status_code == 200
    members = await rows(
        db,
        select(
            CustomerTeamMember.user_id, CustomerTeamMember.access, CustomerTeamMember.expires_at
        ),
    )
    assert members == [(org.rep_a.id, keep, None)]
    read = await client.get(f"/api/v1/customers/{customer.id}", headers=auth(app, org.rep_a))
    assert read.status_code == 200
    patch = await client.patch(
        f"/api/v1/customers/{customer.id}",
        json={"level": "A"},
        headers={**auth(app, org.rep_a), "If-Match": read.headers["ETag"]},
    )
    assert patch.status_code == (200 if keep == "write" else 403)


async def test_transfer_refused_beyond_the_targets_cap_changes_nothing(app, client, maker, org, db):
    await set_caps(maker, org.rep_b, owned=2)
    await make_customer(maker, org.rep_b)
    already = await make_customer(maker, org.rep_b)
    a1, a2 = await make_customer(maker, org.rep_a), await make_customer(maker, org.rep_a)
    refused = await transfer(app, client, org.mgr_east, [a1.id, a2.id], org.rep_b)
    assert refused.status_code == 409 and refused.json()["cap"] == 2
    assert (await reload(db, Customer, a1.id)).owner_id == org.rep_a.id
    # Those the target owns already are not counted against the cap.
    await set_caps(maker, org.rep_b, owned=3)
    ok = await transfer(app, client, org.mgr_east, [already.id, a1.id], org.rep_b)
    assert ok.status_code == 200 and ok.json()["count"] == 1


async def test_transfer_is_all_or_nothing(app, client, maker, org, db):
    mine = await make_customer(maker, org.rep_a)
    outside = await make_customer(maker, org.rep_d)
    response = await transfer(app, client, org.mgr_east, [mine.id, outside.id], org.rep_b)
    assert response.status_code == 404
    assert str(outside.id) in response.json()["detail"]
    assert (await reload(db, Customer, mine.id)).owner_id == org.rep_a.id
    binned = await make_customer(maker, org.rep_a)
    await put_in_bin(maker, binned)
    response = await transfer(app, client, org.mgr_east, [mine.id, binned.id], org.rep_b)
    assert response.status_code == 404
    assert await rows(db, select(OwnershipEvent.id)) == []


async def test_transfer_authorization(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a)
    await add_team_member(maker, customer, org.rep_b, "read")
    body = {"customer_ids": [customer.id], "to_owner_id": org.rep_c.id}
    assert (await client.post("/api/v1/customers/transfer", json=body)).status_code == 401
    assert (await transfer(app, client, org.rep_d, [customer.id], org.rep_c)).status_code == 404
    assert (await transfer(app, client, org.rep_b, [customer.id], org.rep_b)).status_code == 403
    assert (await reload(db, Customer, customer.id)).owner_id == org.rep_a.id


async def test_target_must_be_an_active_user_in_the_callers_scope(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a)
    outside = await transfer(app, client, org.mgr_east, [customer.id], org.rep_d)
    assert outside.status_code == 422
    assert outside.json()["errors"][0]["loc"] == ["body", "to_owner_id"]
    async with maker() as session, session.begin():
        (await session.get(User, org.rep_b.id)).is_active = False
    inactive = await transfer(app, client, org.mgr_east, [customer.id], org.rep_b)
    assert inactive.status_code == 422
    # A rep (scope: own) cannot hand a customer to a colleague.
    rep = await transfer(app, client, org.rep_a, [customer.id], org.rep_c)
    assert rep.status_code == 422
    assert (await reload(db, Customer, customer.id)).owner_id == org.rep_a.id


@pytest.mark.parametrize(
    "body",
    [
        {"customer_ids": [], "to_owner_id": 1},
        {"customer_ids": [1, 1], "to_owner_id": 1},
        {"customer_ids": list(range(1, 502)), "to_owner_id": 1},
        {"customer_ids": [1], "to_owner_id": 1, "include": ["visits"]},
        {"customer_ids": [1], "to_owner_id": 1, "previous_owner_access": "admin"},
        {"customer_ids": [1], "to_owner_id": 1, "owner_id": 2},
    ],
)
async def test_bad_transfer_bodies_are_422(app, client, org, body):
    response = await client.post(
        "/api/v1/customers/transfer", json=body, headers=auth(app, org.admin)
    )
    assert response.status_code == 422


async def test_a_pool_customer_is_not_transferred(app, client, maker, org):
    unowned = await make_customer(maker, None)
    response = await transfer(app, client, org.admin, [unowned.id], org.rep_b)
    assert response.status_code == 409


# --- offboarding ---------------------------------------------------------------------------------


async def offboard(app, client, user, leaving, to):
    return await client.post(
        f"/api/v1/users/{leaving.id}/offboard",
        json={"to_owner_id": to.id},
        headers=auth(app, user),
    )


async def test_offboarding_hands_over_everything_and_deactivates_the_user(
    app, client, maker, org, db
):
    stage = await make_stage(maker)
    live = await make_customer(maker, org.rep_a, "活的")
    binned = await make_customer(maker, org.rep_a, "回收站的")
    await put_in_bin(maker, binned)
    colleagues = await make_customer(maker, org.rep_c, "同事的")
    open_opp = await make_opportunity(maker, stage, live, org.rep_a)
    on_colleagues = await make_opportunity(maker, stage, colleagues, org.rep_a)
    lost = await make_opportunity(maker, stage, live, org.rep_a, status="lost")
    contract = await make_contract(maker, live, org.rep_a, "pending_approval")
    void = await make_contract(maker, live, org.rep_a, "void")
    planned = await make_visit(maker, colleagues, org.rep_a)
    done = await make_visit(maker, live, org.rep_a, "completed", with_reminder=False)
    # A refresh token that must stop working.
    login = await client.post(
        "/api/v1/auth/token", data={"username": "rep_a", "password": PASSWORD}
    )
    refresh = login.json()["refresh_token"]
    await set_caps(maker, org.rep_b, owned=0)  # caps do not block offboarding

    response = await offboard(app, client, org.admin, org.rep_a, org.rep_b)
    assert response.status_code == 200, response.text
    assert response.json() == {"customers": 2, "opportunities": 2, "contracts": 1, "visits": 1}
    assert (await reload(db, Customer, live.id)).owner_id == org.rep_b.id
    assert (await reload(db, Customer, binned.id)).owner_id == org.rep_b.id
    assert (await reload(db, Customer, colleagues.id)).owner_id == org.rep_c.id
    assert (await reload(db, Opportunity, open_opp.id)).owner_id == org.rep_b.id
    assert (await reload(db, Opportunity, on_colleagues.id)).owner_id == org.rep_b.id
    assert (await reload(db, Opportunity, lost.id)).owner_id == org.rep_a.id
    assert (await reload(db, Contract, contract.id)).owner_id == org.rep_b.id
    assert (await reload(db, Contract, void.id)).owner_id == org.rep_a.id
    assert (await reload(db, Visit, planned.id)).owner_id == org.rep_b.id
    assert (await reload(db, Visit, done.id)).owner_id == org.rep_a.id
    reminders = await rows(db, select(Reminder.user_id))
    assert reminders == [(org.rep_b.id,)]
    history = await rows(
        db, select(OwnershipEvent.action, OwnershipEvent.reason, OwnershipEvent.to_owner_id)
    )
    assert history == [("transferred", "offboarded", org.rep_b.id)] * 2
    leaving = await reload(db, User, org.rep_a.id)
    assert leaving.is_active is False
    revoked = await rows(db, select(RefreshToken.revoked_at))
    assert revoked and all(r is not None for (r,) in revoked)
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    ).status_code == 401
    assert (await client.get("/api/v1/me", headers=auth(app, org.rep_a))).status_code == 401
    notes = await rows(db, select(Notification.user_id, Notification.title))
    assert notes == [(org.rep_b.id, "Admin 将 2 个客户转移给你")]


async def test_offboarding_a_user_who_owns_nothing_just_deactivates(app, client, maker, org, db):
    response = await offboard(app, client, org.admin, org.rep_d, org.rep_b)
    assert response.json() == {"customers": 0, "opportunities": 0, "contracts": 0, "visits": 0}
    assert (await reload(db, User, org.rep_d.id)).is_active is False


async def test_offboarding_needs_an_admin(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a)
    url = f"/api/v1/users/{org.rep_a.id}/offboard"
    assert (await client.post(url, json={"to_owner_id": org.rep_b.id})).status_code == 401
    for user in (org.mgr_east, org.rep_b):
        assert (await offboard(app, client, user, org.rep_a, org.rep_b)).status_code == 403
    assert (await reload(db, Customer, customer.id)).owner_id == org.rep_a.id
    assert (await reload(db, User, org.rep_a.id)).is_active is True


async def test_offboarding_checks_the_people(app, client, maker, org, db):
    missing = await client.post(
        "/api/v1/users/999999/offboard",
        json={"to_owner_id": org.rep_b.id},
        headers=auth(app, org.admin),
    )
    assert missing.status_code == 404
    assert (await offboard(app, client, org.admin, org.rep_a, org.rep_a)).status_code == 422
    assert (await offboard(app, client, org.admin, org.admin, org.rep_a)).status_code == 409
    async with maker() as session, session.begin():
        (await session.get(User, org.rep_b.id)).is_active = False
    assert (await offboard(app, client, org.admin, org.rep_a, org.rep_b)).status_code == 422
    assert (await reload(db, User, org.rep_a.id)).is_active is True
    count = await rows(db, select(func.count()).select_from(OwnershipEvent))
    assert count == [(0,)]
