"""Contracts: numbering, workflow with approval, signing into the ledger, payments (SPEC F1–F3)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app.models import Contract, Customer, Order, OrderLine, Payment, PaymentPlan
from tests.factories import auth, make_customer, make_org


@pytest.fixture
async def org(maker):
    return await make_org(maker)


@pytest.fixture
async def product(app, client, org):
    body = {"name": "年度服务", "unit_price": "5000", "unit_cost": "1800"}
    return (await client.post("/api/v1/products", json=body, headers=auth(app, org.admin))).json()


async def draft(app, client, user, customer, **body):
    payload = {"customer_id": customer.id, "title": "年度服务合同", "amount": "10000", **body}
    response = await client.post("/api/v1/contracts", json=payload, headers=auth(app, user))
    assert response.status_code == 201, response.text
    return response.json(), response.headers["ETag"]


async def act(app, client, user, contract_id, action, etag, **body):
    return await client.post(
        f"/api/v1/contracts/{contract_id}/{action}",
        json=body,
        headers={**auth(app, user), "If-Match": etag},
    )


async def test_numbers_follow_the_sequence(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a, "编号客户")
    first, _ = await draft(app, client, org.rep_a, customer)
    second, _ = await draft(app, client, org.rep_a, customer)
    period = dt.datetime.now(dt.UTC).strftime("%Y%m")
    assert (first["number"], second["number"]) == (f"HT{period}-0001", f"HT{period}-0002")


async def test_full_workflow_signs_into_the_ledger(app, client, maker, org, product, db):
    customer = await make_customer(maker, org.rep_a, "签约客户")
    pipeline = (
        await client.post(
            "/api/v1/pipelines",
            json={"name": "p", "stages": [{"name": "谈判", "probability": 80}]},
            headers=auth(app, org.admin),
        )
    ).json()
    opp = (
        await client.post(
            "/api/v1/opportunities",
            json={"customer_id": customer.id, "title": "续约", "amount": "10000"},
            headers=auth(app, org.rep_a),
        )
    ).json()
    contract, etag = await draft(
        app,
        client,
        org.rep_a,
        customer,
        amount=None,
        opportunity_id=opp["id"],
        lines=[{"product_id": product["id"], "quantity": 2}],
        start_date="2026-12-01",
        end_date="2027-11-30",
    )
    assert contract["amount"] == "10000.00" and contract["allowed_actions"] == ["submit", "void"]
    cid = contract["id"]
    submitted = await act(app, client, org.rep_a, cid, "submit", etag)
    assert submitted.status_code == 200 and submitted.json()["status"] == "pending_approval"
    own = await act(app, client, org.rep_a, cid, "approve", submitted.headers["ETag"])
    assert own.status_code == 403  # owners never approve their own contracts
    peer = await act(app, client, org.rep_b, cid, "approve", submitted.headers["ETag"])
    assert peer.status_code == 404  # rep_b cannot even see it
    manager_view = (
        await client.get(f"/api/v1/contracts/{cid}", headers=auth(app, org.mgr_east))
    ).json()
    assert "approve" in manager_view["allowed_actions"]
    approved = await act(
        app, client, org.mgr_east, cid, "approve", submitted.headers["ETag"], comment="同意"
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    locked = await client.patch(
        f"/api/v1/contracts/{cid}",
        json={"amount": "1"},
        headers={**auth(app, org.rep_a), "If-Match": approved.headers["ETag"]},
    )
    assert locked.status_code == 409
    signed = await act(app, client, org.rep_a, cid, "sign", approved.headers["ETag"])
    assert signed.status_code == 200 and signed.json()["signed_at"]
    stored = await db.get(Customer, customer.id)
    assert stored.deal_status == "signed" and stored.signed_at is not None
    won = (
        await client.get(f"/api/v1/opportunities/{opp['id']}", headers=auth(app, org.rep_a))
    ).json()
    assert won["status"] == "won"
    order = await db.scalar(select(Order).where(Order.contract_id == cid))
    assert (order.amount_cents, order.cost_cents, order.customer_id) == (
        1_000_000,
        360_000,
        customer.id,
    )
    lines = (await db.scalars(select(OrderLine).where(OrderLine.order_id == order.id))).all()
    assert [(line.quantity, line.unit_price_cents, line.unit_cost_cents) for line in lines] == [
        (2, 500_000, 180_000)
    ]
    active = await act(app, client, org.rep_a, cid, "activate", signed.headers["ETag"])
    done = await act(app, client, org.rep_a, cid, "complete", active.headers["ETag"])
    assert done.json()["status"] == "completed" and done.json()["allowed_actions"] == []
    actions = [
        e["action"]
        for e in (
            await client.get(
                f"/api/v1/customers/{customer.id}/timeline", headers=auth(app, org.rep_a)
            )
        ).json()["items"]
    ]
    for step in (
        "contract_created",
        "contract_submit",
        "contract_approve",
        "contract_sign",
        "contract_activate",
        "contract_complete",
    ):
        assert step in actions
    del pipeline


async def test_illegal_transitions_answer_409_with_the_allowed_ones(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "非法")
    contract, etag = await draft(app, client, org.rep_a, customer)
    response = await act(app, client, org.rep_a, contract["id"], "sign", etag)
    assert response.status_code == 409
    assert response.json()["allowed_actions"] == ["submit", "void"]
    assert (await db.get(Contract, contract["id"])).status == "draft"


async def test_reject_needs_a_comment_and_returns_the_contract_for_editing(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a, "驳回")
    contract, etag = await draft(app, client, org.rep_a, customer)
    submitted = await act(app, client, org.rep_a, contract["id"], "submit", etag)
    no_comment = await act(
        app, client, org.admin, contract["id"], "reject", submitted.headers["ETag"]
    )
    assert no_comment.status_code == 422
    rejected = await act(
        app,
        client,
        org.admin,
        contract["id"],
        "reject",
        submitted.headers["ETag"],
        comment="金额有误",
    )
    assert rejected.json()["status"] == "rejected"
    edited = await client.patch(
        f"/api/v1/contracts/{contract['id']}",
        json={"amount": "9000"},
        headers={**auth(app, org.rep_a), "If-Match": rejected.headers["ETag"]},
    )
    assert edited.status_code == 200 and edited.json()["amount"] == "9000.00"
    again = await act(app, client, org.rep_a, contract["id"], "submit", edited.headers["ETag"])
    assert again.json()["status"] == "pending_approval"


async def test_bad_contracts_write_nothing(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "校验")
    theirs = await make_customer(maker, org.rep_d, "别人的")
    for body in (
        {
            "customer_id": customer.id,
            "title": "x",
            "amount": "1",
            "start_date": "2027-01-02",
            "end_date": "2027-01-01",
        },
        {"customer_id": customer.id, "title": "x"},
        {"customer_id": theirs.id, "title": "x", "amount": "1"},
        {"customer_id": customer.id, "title": "x", "amount": "1", "opportunity_id": 999},
    ):
        assert (
            await client.post("/api/v1/contracts", json=body, headers=auth(app, org.rep_a))
        ).status_code == 422, body
    assert await db.scalar(select(func.count()).select_from(Contract)) == 0


async def signed_contract(app, client, maker, org, amount="10000"):
    customer = await make_customer(maker, org.rep_a, "付款客户")
    contract, etag = await draft(app, client, org.rep_a, customer, amount=amount)
    for user, action in ((org.rep_a, "submit"), (org.mgr_east, "approve"), (org.rep_a, "sign")):
        response = await act(app, client, user, contract["id"], action, etag)
        assert response.status_code == 200, response.text
        etag = response.headers["ETag"]
    return contract["id"]


async def test_payment_plans_and_payments_add_up(app, client, maker, org, db):
    cid = await signed_contract(app, client, maker, org)
    headers = auth(app, org.rep_a)
    url = f"/api/v1/contracts/{cid}"
    first = await client.post(
        f"{url}/payment-plans", json={"due_date": "2026-12-31", "amount": "6000"}, headers=headers
    )
    assert first.status_code == 201 and first.json()["status"] == "pending"
    too_much = await client.post(
        f"{url}/payment-plans",
        json={"due_date": "2027-03-31", "amount": "4000.01"},
        headers=headers,
    )
    assert too_much.status_code == 422
    second = await client.post(
        f"{url}/payment-plans", json={"due_date": "2027-03-31", "amount": "4000"}, headers=headers
    )
    assert second.status_code == 201
    plan = first.json()["id"]
    part = await client.post(
        f"{url}/payments",
        json={"amount": "2500", "received_on": "2026-11-20", "plan_id": plan},
        headers=headers,
    )
    assert part.status_code == 201
    over = await client.post(
        f"{url}/payments",
        json={"amount": "3500.01", "received_on": "2026-11-21", "plan_id": plan},
        headers=headers,
    )
    assert over.status_code == 422
    rest = await client.post(
        f"{url}/payments",
        json={"amount": "3500", "received_on": "2026-11-21", "plan_id": plan},
        headers=headers,
    )
    assert rest.status_code == 201
    view = (await client.get(url, headers=headers)).json()
    assert [(p["amount"], p["paid"], p["status"]) for p in view["payment_plans"]] == [
        ("6000.00", "6000.00", "paid"),
        ("4000.00", "0.00", "pending"),
    ]
    assert view["paid"] == "6000.00"
    beyond = await client.post(
        f"{url}/payments", json={"amount": "4000.01", "received_on": "2026-11-22"}, headers=headers
    )
    assert beyond.status_code == 422
    assert await db.scalar(select(func.count()).select_from(Payment)) == 2
    assert (await db.get(PaymentPlan, plan)).paid_cents == 600_000


async def test_payments_need_a_signed_contract(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a, "未签")
    contract, _ = await draft(app, client, org.rep_a, customer)
    response = await client.post(
        f"/api/v1/contracts/{contract['id']}/payments",
        json={"amount": "1", "received_on": "2026-11-20"},
        headers=auth(app, org.rep_a),
    )
    assert response.status_code == 409


async def test_contracts_outside_scope_are_404(app, client, maker, org, db):
    customer = await make_customer(maker, org.rep_a, "范围")
    contract, etag = await draft(app, client, org.rep_a, customer)
    url = f"/api/v1/contracts/{contract['id']}"
    headers = {**auth(app, org.rep_d), "If-Match": etag}
    for method, path, body in (
        ("GET", "", None),
        ("PATCH", "", {"title": "x"}),
        ("POST", "/submit", {}),
        ("POST", "/void", {}),
        ("POST", "/payment-plans", {"due_date": "2027-01-01", "amount": "1"}),
        ("POST", "/payments", {"amount": "1", "received_on": "2026-11-20"}),
    ):
        response = await client.request(method, f"{url}{path}", json=body, headers=headers)
        assert response.status_code == 404, (method, path)
    assert (await client.get("/api/v1/contracts", headers=auth(app, org.rep_d))).json()[
        "items"
    ] == []
    assert (await db.get(Contract, contract["id"])).status == "draft"


async def test_deadlines_reach_today_and_the_inbox_once(app, client, maker, org, db):
    from app.models import Reminder
    from app.services.relationship import contract_expiry, mark_overdue_payment_plans

    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()  # the rep's local day
    cid = await signed_contract(app, client, maker, org)
    headers = auth(app, org.rep_a)
    etag = (await client.get(f"/api/v1/contracts/{cid}", headers=headers)).headers["ETag"]
    active = await act(app, client, org.rep_a, cid, "activate", etag)
    assert active.status_code == 200
    contract = await db.get(Contract, cid)
    contract.end_date = today + dt.timedelta(days=10)
    db.add(
        PaymentPlan(
            contract_id=cid,
            due_date=today - dt.timedelta(days=2),
            amount_cents=300_000,
            paid_cents=100_000,
            status="partly_paid",
        )
    )
    await db.commit()

    assert await mark_overdue_payment_plans(maker) == 1
    assert await mark_overdue_payment_plans(maker) == 0
    assert await contract_expiry(maker, 30) == 1
    assert await contract_expiry(maker, 30) == 0
    kinds = sorted((await db.scalars(select(Reminder.kind))).all())
    assert kinds == ["contract_expiring", "payment_overdue"]

    body = (await client.get("/api/v1/today", headers=headers)).json()
    assert [(c["id"], c["days_left"]) for c in body["expiring_contracts"]] == [(cid, 10)]
    assert [(p["contract_id"], p["outstanding"]) for p in body["overdue_payments"]] == [
        (cid, "2000.00")
    ]

    contract = await db.get(Contract, cid)
    await db.refresh(contract)
    contract.end_date = today - dt.timedelta(days=1)
    await db.commit()
    await contract_expiry(maker, 30)
    db.expunge_all()
    assert (await db.scalar(select(Contract.status).where(Contract.id == cid))) == "expired"


async def test_approvals_wait_in_the_managers_today(app, client, maker, org):
    customer = await make_customer(maker, org.rep_a, "待审批")
    contract, etag = await draft(app, client, org.rep_a, customer)
    await act(app, client, org.rep_a, contract["id"], "submit", etag)
    manager = (await client.get("/api/v1/today", headers=auth(app, org.mgr_east))).json()[
        "approvals"
    ]
    assert [a["contract_id"] for a in manager] == [contract["id"]]
    assert (await client.get("/api/v1/today", headers=auth(app, org.rep_a))).json()[
        "approvals"
    ] == []
    assert (await client.get("/api/v1/today", headers=auth(app, org.mgr_hz))).json()[
        "approvals"
    ] == []


async def test_numbering_is_configurable(app, client, maker, org):
    admin = auth(app, org.admin)
    current = (
        await client.get("/api/v1/number-sequences/contract", headers=auth(app, org.rep_a))
    ).json()
    period = dt.datetime.now(dt.UTC).strftime("%Y%m")
    assert current["next_number"] == f"HT{period}-0001"
    body = {"prefix": "KH", "date_format": "%Y", "padding": 3}
    assert (
        await client.put(
            "/api/v1/number-sequences/contract", json=body, headers=auth(app, org.rep_a)
        )
    ).status_code == 403
    assert (
        await client.put(
            "/api/v1/number-sequences/contract", json={**body, "date_format": "%H"}, headers=admin
        )
    ).status_code == 422
    changed = (
        await client.put("/api/v1/number-sequences/contract", json=body, headers=admin)
    ).json()
    year = dt.datetime.now(dt.UTC).strftime("%Y")
    assert changed["next_number"] == f"KH{year}-001"
    customer = await make_customer(maker, org.rep_a, "新编号")
    contract, _ = await draft(app, client, org.rep_a, customer)
    assert contract["number"] == f"KH{year}-001"
