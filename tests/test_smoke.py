from tests.factories import auth, make_customer, make_org


async def test_rep_lists_own_customer(app, client, maker):
    org = await make_org(maker)
    mine = await make_customer(maker, org.rep_a)
    await make_customer(maker, org.rep_b)
    response = await client.get("/api/v1/customers", headers=auth(app, org.rep_a))
    assert response.status_code == 200, response.text
    assert [c["id"] for c in response.json()["items"]] == [mine.id]
